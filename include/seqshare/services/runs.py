"""Run services: register a run folder, freeze its snapshot once, plan its deliveries.

The ledger of delivered files is `services.ledger`; the (run, group) lease is `services.leases`.

The snapshot is frozen by the first DAG run of a run folder and reused unchanged by every re-run, so a
sharing change made while a delivery is half done can never change who receives that run.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from seqshare import config
from seqshare.db.models import (
    AuditAction,
    AuditEvent,
    Group,
    Pool,
    Project,
    Run,
    RunLane,
    RunSnapshot,
    Share,
    SnapshotEntry,
    User,
)
from seqshare.delivery.instant import Precision, SequencingInstant, settle
from seqshare.delivery.plan import DeliveryPlan, SourceFile, plan_deliveries
from seqshare.delivery.snapshot import GroupShare, ProjectOwner, SnapshotSource, snapshot_run
from seqshare.errors import InvalidInput
from seqshare.runfolder import RunFolder
from seqshare.runfolder.models import StartPrecision
from seqshare.services import lookup

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
    """The instant of the snapshot: an override given by ops, else the LIMS's start, else the instrument's.

    The instrument's may be a window (a date only): `delivery.instant.settle` decides whether it is good
    enough for the run's share history."""
    if override is not None:
        if override.tzinfo is None or override.utcoffset() is None:
            raise InvalidInput(f"sequencing-time override {override.isoformat()} has no time zone")
        return SequencingInstant(
            override, SnapshotSource.OVERRIDE, Precision.EXACT, "override given by ops when triggering"
        )
    if run.sequencing_started_at is not None:
        return SequencingInstant(
            run.sequencing_started_at, SnapshotSource.LIMS, Precision.EXACT, "the run's start in the LIMS"
        )
    start = folder.start
    if start is not None:
        return SequencingInstant(
            instant=start.earliest,
            source=SnapshotSource.INSTRUMENT,
            precision=_PRECISION[start.precision],
            note=start.note,
            latest=start.latest,
        )
    raise InvalidInput(
        f"run {folder.run_id}: no sequencing start time in the LIMS, in the instrument's files or in the "
        "run id; trigger it with a sequencing_time override (ISO 8601 with a time zone)"
    )


_PRECISION = {
    StartPrecision.EXACT: Precision.EXACT,
    StartPrecision.LOCAL: Precision.LOCAL,
    StartPrecision.DAY: Precision.DAY,
}


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


def _owners(session: Session, projects: set[int]) -> dict[str, ProjectOwner]:
    """Each project's owner's group (today's: the owner rule does not depend on time) and its switch."""
    rows = session.execute(
        select(Project.name, Group.name, Group.kind, Group.receives_own_projects)
        .join(User, Project.owner_id == User.id)
        .join(Group, User.group_id == Group.id)
        .where(Project.id.in_(projects))
    )
    return {project: ProjectOwner(group, kind, receives) for project, group, kind, receives in rows}


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
    project_ids = {p.project_id for p in pools.values()}
    histories = _histories(session, project_ids)
    owners = _owners(session, project_ids)
    owners_receive = config.owner_receives_own()
    when = settle(
        run.run_id,
        when,
        histories,
        always_entitled={(p, o.group) for p, o in owners.items() if o.receives(owners_receive)},
    )
    snapshot = snapshot_run(
        {name: p.project.name for name, p in pools.items()},
        histories,
        when.instant,
        owners,
        owners_receive=owners_receive,
    )
    groups = {g.name: g for g in session.scalars(select(Group))}
    files = [
        SourceFile(
            pool=pool,
            source=str(f.relative_path),
            size=f.size,
            resolved=str((folder.root / f.relative_path).resolve()),
        )
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
        precision=when.precision,
        instant_note=when.note,
        output_dir=str(folder.output_dir),
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


def frozen_runs(session: Session, run_ids: Iterable[str]) -> dict[str, str]:
    """The runs among ``run_ids`` whose snapshot was frozen, and when (UTC, to the minute): the scan
    never triggers these again by itself (``seqshare.scanner.selection``)."""
    ids = sorted(set(run_ids))
    frozen: dict[str, str] = {}
    for start in range(0, len(ids), 500):  # bounded IN lists on both backends
        rows = session.execute(
            select(Run.run_id, RunSnapshot.frozen_at)
            .join(RunSnapshot, RunSnapshot.run_id == Run.id)
            .where(Run.run_id.in_(ids[start : start + 500]))
        )
        frozen.update((run_id, f"{at:%Y-%m-%d %H:%M} UTC") for run_id, at in rows)
    return frozen
