"""One delivery per (run, group) at a time: a lease row in the application database.

Two DAG runs of one run folder (or a cleared task next to its still-running retry) must never write the
same files at once; the second waits (DeliveryBusy, retried by Airflow).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from seqshare.db.models import DeliveryLease
from seqshare.errors import SeqshareError
from seqshare.services import lookup

LEASE_STALE_AFTER = timedelta(hours=13)  # longer than the deliver task's execution_timeout (12 h)


class DeliveryBusy(SeqshareError):
    """Another delivery of this run to this group is in progress: try again later."""

    retryable = True


def acquire_lease(
    sessions: sessionmaker[Session],
    *,
    run_id: str,
    group: str,
    holder: str,
    now: datetime,
    takes_over: str | None = None,
) -> None:
    """Take the (run, group) lease in its own transaction, or raise DeliveryBusy.

    A lease older than LEASE_STALE_AFTER belongs to a delivery that died without releasing it; it is
    taken over with a compare-and-swap, so two takers cannot both win. So is a lease whose holder starts
    with `takes_over`: an earlier try of the same Airflow task instance, which Airflow only retries once
    that try is over (a worker lost with it: its heartbeat stopped, the task was failed).
    """
    with sessions.begin() as s:
        run_pk, group_pk = lookup.run(s, run_id).id, lookup.group(s, group).id
    try:
        with sessions.begin() as s:
            s.add(DeliveryLease(run_id=run_pk, group_id=group_pk, holder=holder, acquired_at=now))
        return
    except IntegrityError:
        pass
    with sessions.begin() as s:
        current = s.get(DeliveryLease, (run_pk, group_pk))
        if current is None:
            raise DeliveryBusy(f"run {run_id} to {group}: the lease changed hands; try again")
        superseded = takes_over is not None and current.holder.startswith(takes_over)
        if current.acquired_at > now - LEASE_STALE_AFTER and not superseded:
            raise DeliveryBusy(
                f"run {run_id} is being delivered to {group} by {current.holder} since "
                f"{current.acquired_at:%Y-%m-%d %H:%M:%S} UTC; this delivery waits its turn"
            )
        taken = s.execute(
            update(DeliveryLease)
            .where(
                DeliveryLease.run_id == run_pk,
                DeliveryLease.group_id == group_pk,
                DeliveryLease.holder == current.holder,
                DeliveryLease.acquired_at == current.acquired_at,
            )
            .values(holder=holder, acquired_at=now)
        ).rowcount
    if taken != 1:
        raise DeliveryBusy(f"run {run_id} to {group}: another delivery took over the stale lease first")


def break_lease(session: Session, run_id: str, group: str) -> DeliveryLease | None:
    """Remove the (run, group) lease whoever holds it; returns the lease removed, if there was one.

    For ops, after a delivery was killed outright (OOM, a lost worker) and left its lease: without this,
    clearing its task only gets `DeliveryBusy` until the lease is LEASE_STALE_AFTER old."""
    run_pk, group_pk = lookup.run(session, run_id).id, lookup.group(session, group).id
    lease = session.get(DeliveryLease, (run_pk, group_pk))
    if lease is not None:
        session.delete(lease)
    return lease


def release_lease(sessions: sessionmaker[Session], *, run_id: str, group: str, holder: str) -> None:
    with sessions.begin() as s:
        run_pk, group_pk = lookup.run(s, run_id).id, lookup.group(s, group).id
        s.execute(
            delete(DeliveryLease).where(
                DeliveryLease.run_id == run_pk,
                DeliveryLease.group_id == group_pk,
                DeliveryLease.holder == holder,
            )
        )
