"""
### Scan run folders

Every 5 minutes, list the complete Illumina run folders under `SEQSHARE_RUN_ROOTS` (folders separated
by `:`) and trigger one `distribute_run` DAG run per folder, with the run id `run__<run id>` and
`conf={"run_folder": "<path>"}`.

A folder is picked up once its completion markers are there (`seqshare.runfolder.is_complete`); a
folder already triggered is skipped (the mapped instance shows *skipped*), so scanning again is
harmless. Folders that cannot be read, or whose run id appears twice, are listed in the scan task's
log and retried on every scan. Why a scan and not a sensor or an asset watcher:
`docs/adr/0002-one-dag-run-per-run-folder.md`.

To deliver a run folder again, clear (or delete) its `distribute_run` DAG run.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import dag, task

from seqshare.scanner import dag_run_id_for, find_completed_runs, run_roots_from_env

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
    def find_complete_run_folders() -> list[dict]:
        """One TriggerDagRunOperator argument set per complete run folder."""
        runs = find_completed_runs(run_roots_from_env())
        return [
            {"trigger_run_id": dag_run_id_for(run.run_id), "conf": {"run_folder": run.run_folder}}
            for run in runs
        ]

    TriggerDagRunOperator.partial(
        task_id="trigger_distribute_run",
        trigger_dag_id=DISTRIBUTE_RUN,
        logical_date=None,  # runs of a run folder have no logical date; two triggers never clash on one
        skip_when_already_exists=True,
        wait_for_completion=False,
        map_index_template="{{ task.trigger_run_id }}",
    ).expand_kwargs(find_complete_run_folders())


scan_run_folders()
