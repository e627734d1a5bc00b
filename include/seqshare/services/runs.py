"""Run services: register a run folder, freeze its snapshot once, plan its deliveries, keep the ledger.

The snapshot is frozen by the first DAG run of a run folder and reused unchanged by every re-run, so a
sharing change made while a delivery is half done can never change who receives that run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from seqshare import config
from seqshare.db.models import (
    AuditAction,
    AuditEvent,
    Delivery,
    DeliveryLease,
    DeliveryState,
    Group,
    Pool,
    Run,
    RunLane,
    RunSnapshot,
    Share,
    SnapshotEntry,
)
from seqshare.delivery.plan import DeliveryPlan, SourceFile, plan_deliveries
from seqshare.delivery.snapshot import GroupShare, SnapshotSource, snapshot_run
from seqshare.errors import InvalidInput, SeqshareError
from seqshare.runfolder import RunFolder
from seqshare.services import lookup


@dataclass(frozen=True)
class SequencingInstant:
    instant: datetime
    source: SnapshotSource


RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")


def register_run(session: Session, folder: RunFolder) -> None:
    """Record the run folder's run (creating the run if the LIMS has not) and check its pools are known."""
    if not RUN_ID.fullmatch(folder.run_id):  # it becomes a folder name on the FTP server
        raise InvalidInput(
            f"{folder.root / 'RunInfo.xml'}: run id {folder.run_id!r} is not a safe folder name "
            "(letters, digits, '_', '.', '-'; starting with a letter or digit)"
        )
    pools = {p.name: p for p in session.scalars(select(Pool).where(Pool.name.in_(folder.pool_ids)))}
    for sample in folder.samples:
        if sample.pool_id not in pools:
            raise InvalidInput(
                f"{folder.sample_sheet}:{sample.line}: pool {sample.pool_id} (sample "
                f"{sample.sample_id}) is not known to seqshare; import it from the LIMS first"
            )
    run = session.scalar(select(Run).where(Run.run_id == folder.run_id).options(selectinload(Run.lanes)))
    if run is None:
        run = Run(run_id=folder.run_id)
        session.add(run)
    run.flowcell = run.flowcell or folder.flowcell
    run.instrument = run.instrument or folder.instrument
    run.run_folder = str(folder.root)
    if not run.lanes:  # the LIMS is authoritative for lanes when it has them; else the sample sheet
        lanes = {(lane, pools[s.pool_id].id) for s in folder.samples for lane in (s.lanes or folder.lanes)}
        run.lanes = [RunLane(lane=lane, pool_id=pool_id) for lane, pool_id in sorted(lanes)]
    session.flush()


def sequencing_instant(run: Run, folder: RunFolder, override: datetime | None) -> SequencingInstant:
    """The instant of the snapshot: an override given by ops, else the LIMS's start, else the instrument's."""
    if override is not None:
        if override.tzinfo is None:
            raise InvalidInput(f"sequencing-time override {override.isoformat()} has no time zone")
        return SequencingInstant(override, SnapshotSource.OVERRIDE)
    if run.sequencing_started_at is not None:
        return SequencingInstant(run.sequencing_started_at, SnapshotSource.LIMS)
    if folder.started_at is not None:
        return SequencingInstant(folder.started_at, SnapshotSource.INSTRUMENT)
    raise InvalidInput(
        f"run {folder.run_id}: no sequencing start time in the LIMS or in the instrument's "
        "files; trigger it with a sequencing_time override"
    )


def _histories(session: Session, projects: set[int]) -> dict[str, list[GroupShare]]:
    shares = session.scalars(
        select(Share)
        .where(Share.project_id.in_(projects))
        .options(selectinload(Share.group), selectinload(Share.project))
    )
    histories: dict[str, list[GroupShare]] = {}
    for s in shares:
        histories.setdefault(s.project.name, []).append(
            GroupShare(s.group.name, s.group.kind, s.granted_at, s.revoked_at)
        )
    return histories


def freeze_snapshot(
    session: Session, folder: RunFolder, *, override: datetime | None, actor: str, now: datetime
) -> DeliveryPlan:
    """Freeze the run's snapshot and plan at the first call; return the stored plan on every later call.

    A re-run with a different override is refused: the snapshot of a run never changes once frozen.
    """
    run = lookup.run(session, folder.run_id)
    frozen = session.get(RunSnapshot, run.id)
    if frozen is not None:
        if override is not None and override != frozen.instant:
            raise InvalidInput(
                f"run {run.run_id}: the snapshot was frozen at {frozen.instant.isoformat()} "
                f"({frozen.source.value}) on {frozen.frozen_at:%Y-%m-%d %H:%M} UTC and cannot be changed"
            )
        plan = DeliveryPlan.from_dict(frozen.plan)
        _check_unchanged(plan, folder)
        return plan

    when = sequencing_instant(run, folder, override)
    pools = {
        p.name: p
        for p in session.scalars(
            select(Pool).where(Pool.name.in_(folder.pool_ids)).options(selectinload(Pool.project))
        )
    }
    snapshot = snapshot_run(
        {name: p.project.name for name, p in pools.items()},
        _histories(session, {p.project_id for p in pools.values()}),
        when.instant,
    )
    groups = {g.name: g for g in session.scalars(select(Group))}
    files = [
        SourceFile(pool=pool, source=str(f.relative_path), size=f.size)
        for pool, fs in folder.pool_files.items()
        for f in fs
    ]
    plan = plan_deliveries(
        run_id=run.run_id,
        run_folder=str(folder.root),
        instant=when.instant,
        source=when.source,
        snapshot=snapshot,
        files=files,
        group_dirs={n: g.ftp_dir for n, g in groups.items() if g.ftp_dir},
    )
    session.add(
        RunSnapshot(
            run_id=run.id,
            instant=when.instant,
            source=when.source,
            frozen_at=now,
            frozen_by=actor,
            plan=plan.to_dict(),
            entries=[
                SnapshotEntry(pool_id=pools[p.pool].id, group_id=groups[g].id)
                for p in snapshot
                for g in p.groups
            ],
        )
    )
    if when.source is SnapshotSource.OVERRIDE:
        session.add(
            AuditEvent(
                at=now,
                actor=actor,
                action=AuditAction.RUN_SNAPSHOT_OVERRIDE,
                project_id=None,
                via="airflow",
                before={
                    "run": run.run_id,
                    "lims": _iso(run.sequencing_started_at),
                    "instrument": _iso(folder.started_at),
                },
                after={"run": run.run_id, "instant": when.instant.isoformat()},
            )
        )
    session.flush()
    return plan


def _check_unchanged(plan: DeliveryPlan, folder: RunFolder) -> None:
    """A re-run delivers the frozen plan only if the run folder still holds exactly the planned files of
    every delivered pool (a re-demultiplexed folder may have moved a sample to another pool)."""
    planned = {(f.pool, f.source, f.size) for g in plan.groups for f in g.files}
    pools = {pool for pool, _, _ in planned}
    current = {
        (pool, str(f.relative_path), f.size)
        for pool, fs in folder.pool_files.items()
        if pool in pools
        for f in fs
    }
    if planned != current:
        example = ", ".join(f"{p}:{s} ({n} bytes)" for p, s, n in sorted(planned ^ current)[:3])
        raise InvalidInput(
            f"run {plan.run_id}: the files of {folder.root} changed since its snapshot was frozen "
            f"(e.g. {example}); nothing more is delivered. Deliver the new output as a new run."
        )


def _iso(when: datetime | None) -> str | None:
    return when.isoformat() if when else None


def stored_plan(session: Session, run_id: str) -> DeliveryPlan | None:
    """The frozen plan of a run, or None if no DAG run has frozen it yet."""
    run = lookup.run(session, run_id)
    frozen = session.get(RunSnapshot, run.id)
    return DeliveryPlan.from_dict(frozen.plan) if frozen else None


def preview_plan(session: Session, folder: RunFolder, override: datetime | None = None) -> DeliveryPlan:
    """What freezing would produce now, without writing anything (for `seqshare run plan`)."""
    with session.begin_nested() as savepoint:
        register_run(session, folder)
        plan = freeze_snapshot(
            session, folder, override=override, actor="preview", now=datetime.now().astimezone()
        )
        savepoint.rollback()
    return plan


# -- the ledger ---------------------------------------------------------------------------------------


def delivered_md5s(session: Session, run_id: str, group: str) -> dict[str, str]:
    """remote path → md5 of the files already delivered (and verified) to the group for this run."""
    rows = session.execute(
        select(Delivery.remote_path, Delivery.md5)
        .join(Delivery.run)
        .join(Delivery.group)
        .where(Run.run_id == run_id, Group.name == group, Delivery.state == DeliveryState.DELIVERED)
    )
    return {path: md5 for path, md5 in rows}


def group_ttl(session: Session, group: str) -> timedelta:
    """The group's time to live for delivered files: its own, else the default (SEQSHARE_TTL_DAYS, 30)."""
    days = lookup.group(session, group).ttl_days
    return timedelta(days=days) if days else config.default_ttl()


def record_delivery(
    session: Session,
    *,
    run_id: str,
    group: str,
    pool: str,
    remote_path: str,
    size: int,
    md5: str,
    delivered_at: datetime,
) -> bool:
    """Write one ledger row; a file already recorded for the group is left as it is (re-runs).

    Returns True if a row was written.
    """
    grp = lookup.group(session, group)
    existing = session.scalar(
        select(Delivery).where(Delivery.group_id == grp.id, Delivery.remote_path == remote_path)
    )
    if existing is not None and existing.state is DeliveryState.DELIVERED:
        if existing.md5 != md5 or existing.size != size:
            raise InvalidInput(
                f"{remote_path}: ledger has md5 {existing.md5} ({existing.size} bytes) but the "
                f"delivered file is {md5} ({size} bytes)"
            )
        return False
    run = lookup.run(session, run_id)
    pool_row = session.scalars(select(Pool).where(Pool.name == pool)).one()
    if existing is not None:  # purged earlier and delivered again by a re-run: a new life for the row
        session.delete(existing)
        session.flush()
    session.add(
        Delivery(
            run_id=run.id,
            group_id=grp.id,
            pool_id=pool_row.id,
            remote_path=remote_path,
            size=size,
            md5=md5,
            state=DeliveryState.DELIVERED,
            delivered_at=delivered_at,
            expires_at=delivered_at + group_ttl(session, group),
        )
    )
    session.flush()
    return True


@dataclass(frozen=True)
class LedgerRow:
    group: str
    pool: str
    remote_path: str
    size: int
    md5: str
    state: str
    delivered_at: datetime
    expires_at: datetime


def ledger(session: Session, run_id: str) -> list[LedgerRow]:
    """Every file delivered for the run (an unknown run is an error, not an empty ledger)."""
    run = lookup.run(session, run_id)
    rows = session.scalars(
        select(Delivery)
        .where(Delivery.run_id == run.id)
        .options(selectinload(Delivery.group), selectinload(Delivery.pool))
        .order_by(Delivery.remote_path)
    )
    return [
        LedgerRow(
            d.group.name,
            d.pool.name,
            d.remote_path,
            d.size,
            d.md5,
            d.state.value,
            d.delivered_at,
            d.expires_at,
        )
        for d in rows
    ]


# -- one delivery per (run, group) at a time ----------------------------------------------------------

LEASE_STALE_AFTER = timedelta(hours=13)  # longer than the deliver task's execution_timeout (12 h)


class DeliveryBusy(SeqshareError):
    """Another delivery of this run to this group is in progress: try again later."""

    retryable = True


def acquire_lease(
    sessions: sessionmaker[Session], *, run_id: str, group: str, holder: str, now: datetime
) -> None:
    """Take the (run, group) lease in its own transaction, or raise DeliveryBusy.

    A lease older than LEASE_STALE_AFTER belongs to a delivery that died without releasing it; it is
    taken over with a compare-and-swap, so two takers cannot both win.
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
        if current.acquired_at > now - LEASE_STALE_AFTER:
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
