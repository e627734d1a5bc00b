"""A retry of a delivery task takes over the lease its lost earlier try left; nobody else does (both
backends). The lost worker itself, end to end: tests/distributed/test_celery.py."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from seqshare.db.models import DeliveryLease
from seqshare.runfolder import read_run_folder
from seqshare.services import leases, runs
from seqshare.tasks.distribute import task_instance_holder
from tests.runs import POOLS, RUN_ID, build_run, load_scenario

NOW = datetime(2026, 3, 5, 12, 0, tzinfo=UTC)


@pytest.fixture
def registered(sessions, tmp_path):
    built = build_run(tmp_path / "runs", POOLS, size=16)
    with sessions.begin() as s:
        load_scenario(s)
        runs.register_run(s, read_run_folder(built.path))
    return sessions


def holder_of(sessions) -> str:
    with sessions() as s:
        return s.scalars(select(DeliveryLease.holder)).one()


def test_a_retry_of_the_same_task_instance_takes_over_its_lost_try_s_lease(registered) -> None:
    mine = task_instance_holder("distribute_run", "run__X", "deliver", 1)
    leases.acquire_lease(registered, run_id=RUN_ID, group="Ext Co", holder=f"{mine}1 on w1:7", now=NOW)

    leases.acquire_lease(
        registered, run_id=RUN_ID, group="Ext Co", holder=f"{mine}2 on w2:9", now=NOW, takes_over=mine
    )

    assert holder_of(registered) == f"{mine}2 on w2:9"


@pytest.mark.parametrize(
    "other",
    [
        ("distribute_run", "run__X", "deliver", 10),  # another group's task of the same DAG run
        ("distribute_run", "manual__2026-03-05", "deliver", 1),  # another DAG run of the same folder
    ],
    ids=["another map index", "another DAG run"],
)
def test_any_other_delivery_still_waits_for_the_lease(registered, other) -> None:
    mine = task_instance_holder("distribute_run", "run__X", "deliver", 1)
    theirs = task_instance_holder(*other)
    leases.acquire_lease(registered, run_id=RUN_ID, group="Ext Co", holder=f"{mine}1 on w1:7", now=NOW)

    with pytest.raises(leases.DeliveryBusy, match=r"being delivered to Ext Co by distribute_run/run__X/"):
        leases.acquire_lease(
            registered, run_id=RUN_ID, group="Ext Co", holder=f"{theirs}1 on w2:9", now=NOW, takes_over=theirs
        )
    assert holder_of(registered) == f"{mine}1 on w1:7"


def test_a_long_dag_run_id_still_names_one_task_instance_within_the_holder_s_200_characters() -> None:
    long_run = "manual__" + "x" * 240
    a = task_instance_holder("distribute_run", long_run, "deliver", 1)
    b = task_instance_holder("distribute_run", long_run + "y", "deliver", 1)
    assert a != b
    assert len(f"{a}12 on some-worker-host.example.org:4194304:0123abcd") <= 200
