"""
### Scan run folders

Every 5 minutes, list the run folders under `SEQSHARE_RUN_ROOTS` (folders separated by `:`) and trigger
one `distribute_run` DAG run for each **new** complete folder, with the run id `run__<run id>` and
`conf={"run_folder": "<path>"}`.

New means: no `distribute_run` DAG run `run__<run id>` exists yet (Airflow's run id is the truth).
A folder whose name is a run already triggered is skipped without being read; only the other folders
are read (completion markers, then RunInfo.xml), so a scan costs little beyond listing the roots however
many folders they hold, and `trigger_distribute_run` has one instance per new run only (none most of the
time). At most `SEQSHARE_SCAN_BATCH` runs (default 256, never more than `[core] max_map_length`) are
triggered per scan; the rest are left for the next scans, and the log says how many and which limit.

The log of `find_new_run_folders` lists, one line each with counts: the runs triggered, the folders
still waiting and what for (instrument files, completion marker, demultiplexing), the folders skipped as
unreadable and why, and any run found in two folders (delivered from neither). Why a scan and how it
stays cheap: `docs/adr/0002-one-dag-run-per-run-folder.md`, `docs/adr/0007-a-scan-reads-only-new-folders.md`.

To deliver a run folder again, clear its `distribute_run` DAG run. A run whose DAG run was deleted (or
removed by `airflow db clean`) is not triggered again by a scan once seqshare has frozen its snapshot:
its files may be purged already, and sending them again is for ops to decide (trigger it by hand; the
scan's log gives the run id and conf).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import dag, get_current_context, task

DISTRIBUTE_RUN = "distribute_run"


@dag(
    dag_id="scan_run_folders",
    schedule="*/5 * * * *",
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "seqshare", "retries": 2, "retry_delay": timedelta(minutes=1)},
    doc_md=__doc__,
    tags=["seqshare"],
)
def scan_run_folders() -> None:
    @task(execution_timeout=timedelta(minutes=10))
    def find_new_run_folders() -> list[dict]:
        """One TriggerDagRunOperator argument set per new complete run folder, at most one batch."""
        from airflow.sdk import conf

        from seqshare.tasks.scan import find_new_run_folders as find

        ti = get_current_context()["ti"]
        return find(
            count=lambda ids: ti.get_dr_count(dag_id=DISTRIBUTE_RUN, run_ids=ids),
            max_map_length=conf.getint("core", "max_map_length", fallback=1024),
        )

    TriggerDagRunOperator.partial(
        task_id="trigger_distribute_run",
        trigger_dag_id=DISTRIBUTE_RUN,
        logical_date=None,  # runs of a run folder have no logical date; two triggers never clash on one
        skip_when_already_exists=True,  # a scan overlapping another: the second trigger is skipped
        wait_for_completion=False,
        map_index_template="{{ task.trigger_run_id }}",
    ).expand_kwargs(find_new_run_folders())


scan_run_folders()
