"""
### Distribute a run folder to the external groups entitled to it

Triggered once per run folder by `scan_run_folders` (run id `run__<run id>`), or by hand with
`conf={"run_folder": "/path/to/run", "sequencing_time": null, "output_dir": null}` (`output_dir`: the
demultiplexed output, absolute or relative to the run folder, when it is not where seqshare looks).

1. **register_run**: read the run folder whole (a malformed folder or sample sheet, an unknown pool,
   a file escaping the folder stops the run here, naming the file and line) and register the run.
   `freeze_snapshot` reads the same output folder again, or stops.
2. **freeze_snapshot**: for each pool, the external groups its project was shared with at sequencing
   time: the `sequencing_time` override if given (audited), else the LIMS's start, else the
   instrument's files. Frozen at the first run; every re-run reuses it unchanged, and refuses to go on
   if the run folder's files changed since.
3. **plan_deliveries**: the groups each pool goes to, and those withheld with the reason, in the log
   and kept with the run (`seqshare run plan RUN`), before anything is copied.
4. **deliver**: one task per external group (named after the group), at most `sftp_sessions` pool
   slots at once. A failure fails only that group's task; retries back off; clearing a failed group's
   task with "Downstream" resumes where it stopped (files already delivered and verified are skipped)
   and runs the report again.
5. **record_and_report**: what each group received and what the ledger holds. It runs whatever failed
   before it, and fails (so does the DAG run) unless every group of the frozen plan reported all its
   files in this DAG run, naming what failed: registration, the snapshot, the plan, or the groups.
   A run with no external share is green with nothing to do.

SFTP target: the Airflow Connection `seqshare_sftp` (see `seqshare.airflow_connection`). With the
CeleryExecutor, `SEQSHARE_TRANSFER_QUEUE` puts the `deliver` tasks on their own Celery queue (workers close
to the storage run `airflow celery worker --queues <it>`); unset, they go to Airflow's default queue.
Paramiko's per-connection lines stay out of the `deliver` logs unless `SEQSHARE_LOG_SSH=1`.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

from airflow.sdk import Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException

from seqshare.config import parallel_connections

SFTP_POOL = "sftp_sessions"
TRANSFER_QUEUE_ENV = "SEQSHARE_TRANSFER_QUEUE"


def transfer_queue() -> dict[str, str]:
    """`queue=` for the transfer tasks when `SEQSHARE_TRANSFER_QUEUE` names one, else nothing.

    Unset by default: a Celery worker listening only on Airflow's default queue must still run deliveries
    (a task on a queue nobody listens to stays queued forever, silently). The LocalExecutor ignores queues.
    """
    queue = os.environ.get(TRANSFER_QUEUE_ENV, "").strip()
    return {"queue": queue} if queue else {}


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
        "output_dir": Param(
            None,
            type=["null", "string"],
            description="The demultiplexed output folder, absolute or relative to the run folder, when it "
            "is not where seqshare looks by default. Kept in the DAG run's conf: a cleared task reads the "
            "same folder; a new DAG run of the same run folder must be given the same value.",
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
    def register_run() -> dict[str, str]:
        from seqshare.errors import SeqshareError
        from seqshare.tasks import distribute as tasks

        params = get_current_context()["params"]
        try:
            return tasks.register(params["run_folder"], params.get("output_dir"))
        except SeqshareError as exc:
            raise _fail_without_retry(exc) from None

    @task
    def freeze_snapshot(run: dict[str, str]) -> dict[str, Any]:
        from seqshare.errors import SeqshareError
        from seqshare.tasks import distribute as tasks

        context = get_current_context()
        params = context["params"]
        try:
            plan = tasks.freeze(
                params["run_folder"],
                params.get("sequencing_time"),
                actor=f"airflow:{context['dag_run'].run_id}",
                output_dir=params.get("output_dir"),
                expected_output=run["output_dir"],
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
        **transfer_queue(),  # type: ignore[arg-type]
    )
    def deliver(assignment: dict[str, Any]) -> dict[str, Any]:
        from dataclasses import asdict

        from seqshare.airflow_connection import sftp_config_from_connection
        from seqshare.tasks import distribute as tasks
        from seqshare.transfer import SftpRemote, is_retryable

        context = get_current_context()
        context["group"] = assignment["group"]  # names this mapped instance in the UI
        ti = context["ti"]
        config = sftp_config_from_connection()
        try:
            report = tasks.deliver(
                assignment["run_id"],
                assignment["group"],
                connect=lambda: SftpRemote.connect(config),
                task_instance=tasks.task_instance_holder(ti.dag_id, ti.run_id, ti.task_id, ti.map_index),
                try_number=ti.try_number,
            )
        except Exception as exc:  # a dropped connection or a busy delivery: Airflow retries with backoff
            if not is_retryable(exc):
                raise _fail_without_retry(exc) from exc
            raise
        print(report.describe())
        return asdict(report)

    @task(trigger_rule="all_done")  # runs whatever failed before; green only if every group got its files
    def record_and_report(
        run: dict[str, str] | None, plan: dict[str, Any] | None, assignments: Any, reports: Any
    ) -> dict[str, Any]:
        from seqshare.errors import SeqshareError
        from seqshare.tasks import distribute as tasks

        try:  # an upstream task that failed pushed no XCom: its argument is None
            return tasks.report(
                run["run_id"] if run else None,
                frozen=plan is not None,
                planned=assignments is not None,
                reports=[r for r in (reports or []) if r],
            )
        except SeqshareError as exc:  # fail the DAG run too: ops must see what to fix and clear
            raise _fail_without_retry(exc) from None

    run = register_run()
    plan = freeze_snapshot(run)
    assignments = plan_deliveries(plan)
    record_and_report(run, plan, assignments, deliver.expand(assignment=assignments))


distribute_run()
