"""
### Distribute a run folder to the external groups entitled to it

Triggered once per run folder by `scan_run_folders` (run id `run__<run id>`), or by hand with
`conf={"run_folder": "/path/to/run", "sequencing_time": null}`.

1. **register_run**: read the run folder whole (a malformed folder or sample sheet, an unknown pool,
   a file escaping the folder stops the run here, naming the file and line) and register the run.
2. **freeze_snapshot**: for each pool, the external groups its project was shared with at sequencing
   time: the `sequencing_time` override if given (audited), else the LIMS's start, else the
   instrument's files. Frozen at the first run; every re-run reuses it unchanged, and refuses to go on
   if the run folder's files changed since.
3. **plan_deliveries**: the groups each pool goes to, and those withheld with the reason, in the log
   and kept with the run (`seqshare run plan RUN`), before anything is copied.
4. **deliver**: one task per external group (named after the group), at most `sftp_sessions` pool
   slots at once. A failure fails only that group's task; retries back off; clearing a failed group's
   task resumes where it stopped (files already delivered and verified are skipped).
5. **record_and_report**: what each group received and what the ledger holds.

SFTP target: the Airflow Connection `seqshare_sftp` (see `seqshare.airflow_connection`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException

from seqshare.config import parallel_connections

SFTP_POOL = "sftp_sessions"


def _fail_without_retry(exc: Exception) -> AirflowFailException:
    """Bad input does not get better by retrying: fail the task at once with the one-line reason."""
    return AirflowFailException(str(exc))


@dag(
    dag_id="distribute_run",
    schedule=None,
    catchup=False,
    max_active_runs=4,
    doc_md=__doc__,
    tags=["seqshare", "delivery"],
    params={
        "run_folder": Param(type="string", description="Absolute path of the run folder."),
        "sequencing_time": Param(
            None,
            type=["null", "string"],
            description="Override of the sequencing instant (ISO 8601 with a time zone); audited.",
        ),
    },
    default_args={
        "owner": "seqshare",
        "retries": 2,
        "retry_delay": timedelta(seconds=30),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=30),
    },
)
def distribute_run() -> None:
    @task
    def register_run() -> str:
        from seqshare.errors import SeqshareError
        from seqshare.tasks import distribute as tasks

        params = get_current_context()["params"]
        try:
            return tasks.register(params["run_folder"])
        except SeqshareError as exc:
            raise _fail_without_retry(exc) from None

    @task
    def freeze_snapshot(run: str) -> dict[str, Any]:
        from seqshare.errors import SeqshareError
        from seqshare.tasks import distribute as tasks

        context = get_current_context()
        params = context["params"]
        try:
            plan = tasks.freeze(
                params["run_folder"],
                params.get("sequencing_time"),
                actor=f"airflow:{context['dag_run'].run_id}",
            )
        except SeqshareError as exc:
            raise _fail_without_retry(exc) from None
        return plan.to_dict()

    @task
    def plan_deliveries(plan: dict[str, Any]) -> list[dict[str, Any]]:
        from seqshare.delivery.plan import DeliveryPlan
        from seqshare.tasks import distribute as tasks

        frozen = DeliveryPlan.from_dict(plan)
        print(frozen.render())  # the task log shows the whole plan before anything is copied
        return tasks.group_assignments(frozen)

    @task(
        map_index_template="{{ group }}",
        pool=SFTP_POOL,
        pool_slots=parallel_connections(),  # one slot per SFTP connection the delivery opens
        retries=4,
        execution_timeout=timedelta(hours=12),
    )
    def deliver(assignment: dict[str, Any]) -> dict[str, Any]:
        from dataclasses import asdict

        from seqshare.airflow_connection import sftp_config_from_connection
        from seqshare.tasks import distribute as tasks
        from seqshare.transfer import SftpRemote, is_retryable

        get_current_context()["group"] = assignment["group"]  # names this mapped instance in the UI
        config = sftp_config_from_connection()
        try:
            report = tasks.deliver(
                assignment["run_id"], assignment["group"], connect=lambda: SftpRemote.connect(config)
            )
        except Exception as exc:  # a dropped connection or a busy delivery: Airflow retries with backoff
            if not is_retryable(exc):
                raise _fail_without_retry(exc) from exc
            raise
        print(report.describe())
        return asdict(report)

    @task(trigger_rule="all_done")  # report the groups that were delivered even when one failed
    def record_and_report(run: str | None, assignments: Any, reports: Any) -> dict[str, Any]:
        from seqshare.tasks import distribute as tasks

        if run is None:
            raise AirflowFailException("the run was not registered: see register_run's log")
        summary = tasks.summarise(run, [r for r in (reports or []) if r])
        print(summary["plan"])
        print(f"ledger: {summary['ledger_files']} files, {summary['ledger_bytes']:,} bytes")
        failed = tasks.undelivered_groups(list(assignments or []), summary["groups"])
        if failed:  # fail the DAG run too: ops must see which group to clear and re-run
            raise AirflowFailException(f"delivery failed for {', '.join(failed)}; see their deliver tasks")
        return summary

    run = register_run()
    assignments = plan_deliveries(freeze_snapshot(run))
    record_and_report(run, assignments, deliver.expand(assignment=assignments))


distribute_run()
