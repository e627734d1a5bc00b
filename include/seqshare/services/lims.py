"""LIMS import: validate a whole export first, then upsert it idempotently in one transaction.

Bad input writes nothing and names the record and field: `pools[2] (SLX-12345).samples[0].index: ...`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from seqshare.db.models import Group, Pool, Project, Run, RunLane, Sample, User
from seqshare.errors import InvalidInput, quote
from seqshare.lims_schema import LimsExport
from seqshare.rules import GroupKind
from seqshare.services.lims_dirs import check_ftp_dirs, free_moving_dirs
from seqshare.services.lims_read import label, read_export

__all__ = ["ImportReport", "import_export", "read_export", "validate_references"]


@dataclass
class ImportReport:
    """How many records of each kind were created, updated or already up to date."""

    counts: dict[str, Counter[str]] = field(default_factory=dict)

    def count(self, kind: str, outcome: str) -> None:
        self.counts.setdefault(kind, Counter())[outcome] += 1

    @property
    def changed(self) -> bool:
        return any(c["created"] or c["updated"] for c in self.counts.values())

    def as_dict(self) -> dict[str, dict[str, int]]:
        outcomes = ("created", "updated", "unchanged")
        return {kind: {o: c[o] for o in outcomes} for kind, c in self.counts.items()}


def _check_unique(kind: str, names: Iterable[str]) -> None:
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            raise InvalidInput(f"{kind}[{i}] ({label(name)}): appears more than once in the file")
        seen.add(name)


def validate_references(session: Session, export: LimsExport) -> None:
    """Cross-record checks against the file and the database; raises before anything is written."""
    _check_unique("groups", (g.name for g in export.groups))
    _check_unique("users", (u.username for u in export.users))
    _check_unique("projects", (p.name for p in export.projects))
    _check_unique("pools", (p.id for p in export.pools))
    _check_unique("runs", (r.run_id for r in export.runs))

    db_groups = {g.name: g for g in session.scalars(select(Group))}
    for i, g in enumerate(export.groups):
        where = f"groups[{i}] ({label(g.name)})"
        if g.kind is GroupKind.EXTERNAL and not g.ftp_dir:
            raise InvalidInput(f"{where}.ftp_dir: an external group needs its directory on the FTP server")
        if g.kind is GroupKind.INTERNAL and g.ftp_dir:
            raise InvalidInput(
                f"{where}.ftp_dir: internal groups get no FTP directory (they use the download tool)"
            )
        if g.special and g.kind is not GroupKind.EXTERNAL:
            raise InvalidInput(f"{where}.special: only an external group can be the special group")
        if not g.receives_own_projects and g.kind is not GroupKind.EXTERNAL:
            raise InvalidInput(
                f"{where}.receives_own_projects: applies to external groups only (an internal group's "
                "members download their own projects)"
            )

    # The state after the import: file records over database records.
    after = {name: (g.kind, g.ftp_dir, g.is_special) for name, g in db_groups.items()}
    after.update({g.name: (g.kind, g.ftp_dir, g.special) for g in export.groups})
    specials = sorted(name for name, (_, _, special) in after.items() if special)
    if len(specials) > 1:
        raise InvalidInput(
            f"groups: more than one special group after import ({', '.join(specials)}); "
            "set special: false on all but one"
        )
    check_ftp_dirs(session, export, db_groups)

    def known(names_in_file: Iterable[str], column: Any) -> set[str]:
        return set(names_in_file) | set(session.scalars(select(column)))

    groups = set(after)
    users = known((u.username for u in export.users), User.username)
    projects = known((p.name for p in export.projects), Project.name)
    pools = known((p.id for p in export.pools), Pool.name)
    for i, u in enumerate(export.users):
        if u.group not in groups:
            raise InvalidInput(f"users[{i}] ({u.username}).group: unknown group {quote(u.group)}")
    for i, p in enumerate(export.projects):
        if p.owner not in users:
            raise InvalidInput(f"projects[{i}] ({label(p.name)}).owner: unknown user {quote(p.owner)}")
    for i, pool in enumerate(export.pools):
        if pool.project not in projects:
            raise InvalidInput(f"pools[{i}] ({pool.id}).project: unknown project {quote(pool.project)}")
        seen: set[str] = set()
        for j, sample in enumerate(pool.samples):
            if sample.name in seen:
                raise InvalidInput(
                    f"pools[{i}] ({pool.id}).samples[{j}].name: {quote(sample.name)} appears twice"
                )
            seen.add(sample.name)
    for i, run in enumerate(export.runs):
        for j, lane in enumerate(run.lanes):
            for pool_id in lane.pools:
                if pool_id not in pools:
                    raise InvalidInput(
                        f"runs[{i}] ({run.run_id}).lanes[{j}].pools: unknown pool {quote(pool_id)}"
                    )
            if len(set(lane.pools)) != len(lane.pools):
                raise InvalidInput(f"runs[{i}] ({run.run_id}).lanes[{j}].pools: a pool is listed twice")


def _upsert(
    session: Session,
    report: ImportReport,
    kind: str,
    model: type,
    key: dict[str, Any],
    values: dict[str, Any],
) -> Any:
    row = session.scalar(select(model).filter_by(**key))
    if row is None:
        row = model(**key, **values)
        session.add(row)
        session.flush()
        report.count(kind, "created")
        return row
    changed = {k: v for k, v in values.items() if getattr(row, k) != v}
    for k, v in changed.items():
        setattr(row, k, v)
    report.count(kind, "updated" if changed else "unchanged")
    return row


def import_export(session: Session, export: LimsExport) -> ImportReport:
    """Upsert the export. Validates everything first; the caller's transaction makes it all or nothing."""
    validate_references(session, export)
    report = ImportReport()
    by_name: dict[str, Any] = {}
    # Unset the special flag first, so moving it from one group to another never breaks the unique index.
    for g in export.groups:
        row = session.scalar(select(Group).filter_by(name=g.name))
        if row is not None and row.is_special and not g.special:
            row.is_special = False
    session.flush()
    free_moving_dirs(session, export)
    for g in export.groups:
        by_name[g.name] = _upsert(
            session,
            report,
            "groups",
            Group,
            {"name": g.name},
            {
                "kind": g.kind,
                "ftp_dir": g.ftp_dir,
                "is_special": g.special,
                "ttl_days": g.ttl_days,
                "receives_own_projects": g.receives_own_projects,
            },
        )

    def group_id(name: str) -> int:
        return (by_name.get(name) or session.scalars(select(Group).filter_by(name=name)).one()).id

    users: dict[str, User] = {}
    for u in export.users:
        users[u.username] = _upsert(
            session,
            report,
            "users",
            User,
            {"username": u.username},
            {"name": u.name, "email": u.email, "group_id": group_id(u.group)},
        )

    def user_id(username: str) -> int:
        return (users.get(username) or session.scalars(select(User).filter_by(username=username)).one()).id

    projects: dict[str, Project] = {}
    for p in export.projects:
        projects[p.name] = _upsert(
            session, report, "projects", Project, {"name": p.name}, {"owner_id": user_id(p.owner)}
        )

    def project_id(name: str) -> int:
        return (projects.get(name) or session.scalars(select(Project).filter_by(name=name)).one()).id

    pools: dict[str, Pool] = {}
    for pool in export.pools:
        row = _upsert(
            session, report, "pools", Pool, {"name": pool.id}, {"project_id": project_id(pool.project)}
        )
        pools[pool.id] = row
        for s in pool.samples:
            _upsert(
                session,
                report,
                "samples",
                Sample,
                {"pool_id": row.id, "name": s.name},
                {"index1": s.index, "index2": s.index2},
            )

    def pool_id(name: str) -> int:
        return (pools.get(name) or session.scalars(select(Pool).filter_by(name=name)).one()).id

    for r in export.runs:
        run = session.scalar(select(Run).filter_by(run_id=r.run_id))
        created = run is None
        if run is None:
            run = Run(run_id=r.run_id)
            session.add(run)
        fields = {
            "flowcell": r.flowcell,
            "instrument": r.instrument,
            "run_folder": r.run_folder,
            "sequencing_started_at": r.started_at,
        }
        changed = {k: v for k, v in fields.items() if created or getattr(run, k) != v}
        for k, v in changed.items():
            setattr(run, k, v)
        # The LIMS is authoritative for what was sequenced on a run: its lanes replace ours when given.
        wanted = {(lane.lane, pool_id(p)) for lane in r.lanes for p in lane.pools}
        have = {(ln.lane, ln.pool_id) for ln in run.lanes}
        if r.lanes and wanted != have:
            run.lanes = [RunLane(lane=lane, pool_id=pid) for lane, pid in sorted(wanted)]
            changed["lanes"] = True
        report.count("runs", "created" if created else "updated" if changed else "unchanged")
    session.flush()
    return report
