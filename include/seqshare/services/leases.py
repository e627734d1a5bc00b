"""One delivery per (run, group) at a time: a lease row in the application database.

Two DAG runs of one run folder (or a cleared task next to its still-running retry) must never write the
same files at once; the second waits (DeliveryBusy, retried by Airflow).

The holder renews the lease while it delivers (`acquired_at` is the last renewal), and every ledger write
renews it in the same transaction, or stops the delivery with LeaseLost when someone else holds it now:
a delivery that lost its lease (stalled past the takeover bound, or unlocked by ops) records nothing more
and renames nothing into a final name (ADR 8).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from seqshare.db.models import DeliveryLease
from seqshare.errors import SeqshareError
from seqshare.services import lookup

log = logging.getLogger(__name__)

LEASE_STALE_AFTER = timedelta(hours=13)  # longer than the deliver task's execution_timeout (12 h)
LEASE_RENEW_EVERY = timedelta(seconds=15)
# A retry of the same task instance takes over its earlier try's lease only once it went unrenewed this
# long: the earlier try is dead or frozen (a live one renews every LEASE_RENEW_EVERY). Well under Airflow's
# task_instance_heartbeat_timeout (300 s), after which it starts the retry at all.
LEASE_TAKEOVER_AFTER = 3 * LEASE_RENEW_EVERY


class DeliveryBusy(SeqshareError):
    """Another delivery of this run to this group is in progress: try again later."""

    retryable = True


class LeaseLost(SeqshareError):
    """This delivery's lease is now someone else's (a retry took it over, or ops unlocked it): it stopped.

    Retryable: whoever holds the lease now is delivering the same frozen plan; a retry waits for it
    (DeliveryBusy), then finds its files in the ledger and only writes the manifests. A retry of a try that
    Airflow already gave up on is never run: Airflow ignores the outcome of a try it failed.
    """

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

    A lease not renewed for LEASE_STALE_AFTER belongs to a delivery that died without releasing it; it is
    taken over with a compare-and-swap, so two takers cannot both win (nor a renewal and a taker). So is
    a lease whose holder starts with `takes_over` once not renewed for LEASE_TAKEOVER_AFTER: an earlier
    try of the same Airflow task instance, which Airflow retries once that try's heartbeat stopped; a try
    that is still alive (its supervisor died, not it) keeps renewing, and this retry waits.
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
        own_try = takes_over is not None and current.holder.startswith(takes_over)
        stale_after = LEASE_TAKEOVER_AFTER if own_try else LEASE_STALE_AFTER
        if current.acquired_at > now - stale_after:
            raise DeliveryBusy(
                f"run {run_id} is being delivered to {group} by {current.holder} (lease renewed "
                f"{current.acquired_at:%Y-%m-%d %H:%M:%S} UTC); this delivery waits its turn"
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
        raise DeliveryBusy(
            f"run {run_id} to {group}: the lease was renewed or taken over meanwhile; this delivery waits "
            "its turn"
        )


def hold_lease(session: Session, *, run_id: str, group: str, holder: str, now: datetime) -> None:
    """Renew the lease in `session`'s transaction, or raise LeaseLost if `holder` no longer holds it.

    The UPDATE locks the lease row until the transaction ends (SQLite: the write lock taken at BEGIN), so
    a ledger write in the same transaction is either before any takeover, or refused after it."""
    run_pk, group_pk = lookup.run(session, run_id).id, lookup.group(session, group).id
    held = session.execute(
        update(DeliveryLease)
        .where(
            DeliveryLease.run_id == run_pk,
            DeliveryLease.group_id == group_pk,
            DeliveryLease.holder == holder,
        )
        .values(acquired_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if held != 1:
        current = session.get(DeliveryLease, (run_pk, group_pk))
        now_held = f"{current.holder} holds it now" if current is not None else "nobody holds it now"
        raise LeaseLost(
            f"run {run_id} to {group}: this delivery lost its lease ({now_held}); it stopped and records "
            "nothing more"
        )


class LeaseKeeper:
    """Renews a held lease every `every` from a daemon thread, and tells the delivery it was lost.

    `check()` is cheap (a flag: between files and chunks); `hold(session)` renews in the caller's
    transaction (every ledger write, and right before each rename into a final name). Either raises
    LeaseLost once any renewal found the lease gone, and so does every call after it.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        run_id: str,
        group: str,
        holder: str,
        clock: Callable[[], datetime],
        every: timedelta = LEASE_RENEW_EVERY,
        log: Callable[[str], None] = print,
    ) -> None:
        self._sessions, self._every, self.clock, self._log = sessions, every, clock, log
        self._key = {"run_id": run_id, "group": group, "holder": holder}
        self._lost: LeaseLost | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="seqshare-lease", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._done.wait(self._every.total_seconds()):
            try:
                self.renew()
            except LeaseLost as lost:
                self._log(f"{lost}: stopping the transfers")
                return
            except Exception as exc:  # the database away for a while: renew later, fence at the next write
                log.warning("could not renew the delivery lease: %s: %s", type(exc).__name__, exc)

    def check(self) -> None:
        if self._lost is not None:
            raise LeaseLost(str(self._lost))

    def hold(self, session: Session) -> None:
        self.check()
        try:
            hold_lease(session, **self._key, now=self.clock())
        except LeaseLost as lost:
            self._lost = lost
            raise

    def renew(self) -> None:
        with self._sessions.begin() as s:
            self.hold(s)


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
