"""The transfer tasks' Celery queue comes from `SEQSHARE_TRANSFER_QUEUE`, read when the DAG is parsed; unset,
they stay on Airflow's default queue, which every worker listens to (the CeleryExecutor run is
tests/distributed/test_celery.py)."""

from __future__ import annotations

import pytest

from tests.airflow_env import DAGS


def parsed_queues() -> dict[str, str]:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=DAGS / "distribute_run.py")
    assert not bag.import_errors
    return {task.task_id: task.queue for task in bag.dags["distribute_run"].tasks}


@pytest.mark.parametrize("value", [None, "", "  "], ids=["unset", "empty", "blank"])
def test_without_a_transfer_queue_every_task_goes_to_the_default_queue(
    airflow_db, monkeypatch, value
) -> None:
    from airflow.configuration import conf

    if value is None:
        monkeypatch.delenv("SEQSHARE_TRANSFER_QUEUE", raising=False)
    else:
        monkeypatch.setenv("SEQSHARE_TRANSFER_QUEUE", value)
    assert set(parsed_queues().values()) == {conf.get("operators", "default_queue")}


def test_the_transfer_queue_takes_the_deliveries_only(airflow_db, monkeypatch) -> None:
    from airflow.configuration import conf

    monkeypatch.setenv("SEQSHARE_TRANSFER_QUEUE", "near-storage")
    queues = parsed_queues()
    assert queues.pop("deliver") == "near-storage"
    assert set(queues.values()) == {conf.get("operators", "default_queue")}
