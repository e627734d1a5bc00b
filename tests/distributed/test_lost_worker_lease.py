"""A retry of a delivery task takes over the lease its lost earlier try left once that lease went
unrenewed for LEASE_TAKEOVER_AFTER; nobody else does (both backends, the clock injected). Two live tries
with real files: tests/integration/test_lease_takeover.py. The lost worker itself, end to end:
tests/distributed/test_celery.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from seqshare.db.models import DeliveryLease
from seqshare.runfolder import read_run_folder
from seqshare.services import leases, runs
from seqshare.services.leases import LEASE_RENEW_EVERY, LEASE_STALE_AFTER, LEASE_TAKEOVER_AFTER
from seqshare.tasks.distribute import task_instance_holder
from tests.runs import POOLS, RUN_ID, build_run, load_scenario

NOW = datetime(2026, 3, 5, 12, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)
MINE = task_instance_holder("distribute_run", "run__X", "deliver", 1)
TRY1, TRY2 = f"{MINE}1 on w1:7", f"{MINE}2 on w2:9"


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


def retry(sessions, now: datetime) -> None:
    leases.acquire_lease(sessions, run_id=RUN_ID, group="Ext Co", holder=TRY2, now=now, takes_over=MINE)


def renew(sessions, holder: str, now: datetime) -> None:
    with sessions.begin() as s:
        leases.hold_lease(s, run_id=RUN_ID, group="Ext Co", holder=holder, now=now)


def test_a_retry_takes_over_its_earlier_try_s_lease_once_it_went_unrenewed(registered) -> None:
    leases.acquire_lease(registered, run_id=RUN_ID, group="Ext Co", holder=TRY1, now=NOW)

    retry(registered, NOW + LEASE_TAKEOVER_AFTER)

    assert holder_of(registered) == TRY2
    with pytest.raises(leases.LeaseLost, match=r"lost its lease \(distribute_run/.* try 2 on w2:9 holds it"):
        renew(registered, TRY1, NOW + LEASE_TAKEOVER_AFTER + SECOND)  # try 1 wakes up: it is fenced out
    assert holder_of(registered) == TRY2


def test_a_retry_waits_while_its_earlier_try_still_renews_the_lease(registered) -> None:
    leases.acquire_lease(registered, run_id=RUN_ID, group="Ext Co", holder=TRY1, now=NOW)
    renewed = NOW + timedelta(hours=1)  # a long delivery, alive: its supervisor died, not the task
    renew(registered, TRY1, renewed)

    with pytest.raises(leases.DeliveryBusy, match=r"by distribute_run/run__X/deliver\[1\] try 1 on w1:7"):
        retry(registered, renewed + LEASE_TAKEOVER_AFTER - SECOND)
    assert holder_of(registered) == TRY1
    assert LEASE_TAKEOVER_AFTER >= 3 * LEASE_RENEW_EVERY  # a renewal or two may be late without a takeover


@pytest.mark.parametrize(
    "other",
    [
        ("distribute_run", "run__X", "deliver", 10),  # another group's task of the same DAG run
        ("distribute_run", "manual__2026-03-05", "deliver", 1),  # another DAG run of the same folder
    ],
    ids=["another map index", "another DAG run"],
)
def test_any_other_delivery_still_waits_for_the_lease(registered, other) -> None:
    theirs = task_instance_holder(*other)
    leases.acquire_lease(registered, run_id=RUN_ID, group="Ext Co", holder=TRY1, now=NOW)

    with pytest.raises(leases.DeliveryBusy, match=r"being delivered to Ext Co by distribute_run/run__X/"):
        leases.acquire_lease(
            registered,
            run_id=RUN_ID,
            group="Ext Co",
            holder=f"{theirs}1 on w2:9",
            now=NOW + LEASE_STALE_AFTER - SECOND,  # long unrenewed, but not 13 h
            takes_over=theirs,
        )
    assert holder_of(registered) == TRY1


def test_a_long_dag_run_id_still_names_one_task_instance_within_the_holder_s_200_characters() -> None:
    long_run = "manual__" + "x" * 240
    a = task_instance_holder("distribute_run", long_run, "deliver", 1)
    b = task_instance_holder("distribute_run", long_run + "y", "deliver", 1)
    assert a != b
    assert len(f"{a}12 on some-worker-host.example.org:4194304:0123abcd") <= 200
