"""Clear task instances of a finished DAG run as ops do in the UI, then let the run go on (no scheduler).

`clear` makes the calls of the REST endpoint behind the UI's "Clear Task Instance" dialog
(`POST /api/v2/dags/{dag_id}/clearTaskInstances` with `dag_run_id`, `task_ids: [["deliver", 2]]`,
`include_downstream`, in airflow/api_fastapi/core_api/routes/public/task_instances.py of 3.3.2).
`resume` then does what the scheduler does with the re-queued run, with `dag.test()`'s own in-process loop:
the cleared task instances run again, the others keep their state and XComs.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

TaskMarker = str | tuple[str, int]


def clear(dag_id: str, run_id: str, task_ids: Iterable[TaskMarker], *, downstream: bool) -> list[TaskMarker]:
    """Clear `task_ids` (a task id, or (task id, map index) for one mapped instance) of the DAG run, with
    their downstream relatives when `downstream` (the dialog's "Downstream"); returns what was cleared."""
    from airflow.models.dagbag import DBDagBag
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import clear_task_instances, find_relevant_relatives
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from sqlalchemy import select

    with create_session() as session:
        dag_run = session.scalar(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
        assert dag_run is not None, f"no DAG run {run_id} of {dag_id}"
        dag = DBDagBag().get_dag_for_run(dag_run, session=session)
        normal = {t for t in task_ids if isinstance(t, str)}
        mapped = {t for t in task_ids if isinstance(t, tuple)}
        if downstream:
            relatives = find_relevant_relatives(
                normal, mapped, dag=dag, run_id=run_id, direction="downstream", session=session
            )
            normal.update(t for t in relatives if isinstance(t, str))
            mapped.update(t for t in relatives if isinstance(t, tuple))
        markers = [*normal, *((t, m) for t, m in mapped if t not in normal)]
        tis = dag.clear(dry_run=True, task_ids=markers, run_id=run_id, session=session, only_failed=False)
        clear_task_instances(list(tis), session, DagRunState.QUEUED)
        return sorted((ti.task_id, ti.map_index) for ti in tis)


def resume(dag: Any, run_id: str) -> str:
    """Run the cleared task instances of the DAG run until it finishes; returns the run's final state."""
    from airflow import settings
    from airflow.models.dagbag import DBDagBag
    from airflow.models.dagrun import DagRun
    from airflow.sdk.definitions.dag import _run_task
    from airflow.utils import timezone
    from airflow.utils.state import DagRunState, TaskInstanceState
    from sqlalchemy import select

    session = settings.Session()
    try:
        dr = session.scalar(select(DagRun).where(DagRun.dag_id == dag.dag_id, DagRun.run_id == run_id))
        dr.dag = DBDagBag().get_dag_for_run(dr, session=session)
        dr.state = DagRunState.RUNNING  # the scheduler starts a queued run
        session.commit()
        while dr.state == DagRunState.RUNNING:
            session.expire_all()
            schedulable, _ = dr.update_state(session=session)
            for ti in schedulable:
                ti.try_number += 1
                ti.state = TaskInstanceState.SCHEDULED
                ti.scheduled_dttm = timezone.utcnow()
            session.commit()
            scheduled = [ti for ti in dr.get_task_instances(session=session) if ti.state == "scheduled"]
            assert scheduled or dr.state != DagRunState.RUNNING, "the run is stuck: nothing to run"
            for ti in scheduled:
                _run_task(ti=ti, task=dag.task_dict[ti.task_id])
        return str(dr.state)
    finally:
        session.close()
