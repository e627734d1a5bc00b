"""Stand-in for the real ``distribute_run`` DAG: only what the scanner test needs (the id and one task).

The scanner test copies this file next to ``dags/scan_run_folders.py`` in a temporary DAGs folder, so
``dag.test()`` serialises it and ``TriggerDagRunOperator`` finds its target. Runs it receives are only
queued (no scheduler runs in tests).
"""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import Param, dag, get_current_context, task


@dag(
    dag_id="distribute_run",
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    default_args={"owner": "seqshare", "retries": 0},
    doc_md=__doc__,
    params={"run_folder": Param(type="string")},  # the contract with the scanner, as in the real DAG
)
def distribute_run() -> None:
    @task
    def read_conf() -> str:
        return get_current_context()["dag_run"].conf["run_folder"]

    read_conf()


distribute_run()
