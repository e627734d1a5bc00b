"""LIMS import: validate a whole export first, then upsert it idempotently in one transaction.

Bad input writes nothing and names the record and field: `pools[2] (SLX-12345).samples[0].index: ...`.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from seqshare.db.models import Group, Pool, Project, Run, RunLane, Sample, User
from seqshare.errors import InvalidInput
from seqshare.lims_schema import LimsExport
from seqshare.rules import GroupKind

KEYS = {"groups": "name", "users": "username", "projects": "name", "pools": "id", "runs": "run_id"}


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


def read_export(path: Path) -> LimsExport:
    """Parse and validate a LIMS export file (JSON or YAML)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInput(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{path}: cannot read: {exc}") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise InvalidInput(f"{path}{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise InvalidInput(f"{path}: expected a mapping with groups, users, projects, pools, runs")
    try:
        return LimsExport.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(f"{path}: {_describe(exc, data)}") from None


def _describe(exc: ValidationError, data: dict[str, Any]) -> str:
    """The first error as `pools[2] (SLX-1).samples[0].index: message (got 'X')`, plus a count of others."""
    err = exc.errors()[0]
    loc = list(err["loc"])
    parts: list[str] = []
    node: Any = data
    for i, step in enumerate(loc):
        if isinstance(step, int):
            parts[-1] += f"[{step}]"
            node = node[step] if isinstance(node, list) and step < len(node) else None
            kind = loc[i - 1] if i else None
            if isinstance(node, dict) and kind in KEYS and node.get(KEYS[kind]) is not None:
                parts[-1] += f" ({node.get(KEYS[str(kind)])})"
        else:
            parts.append(str(step))
            node = node.get(step) if isinstance(node, dict) else None
    where = ".".join(parts) or "file"
    got = "" if err["type"] == "missing" else f" (got {err.get('input')!r})"
    more = len(exc.errors()) - 1
    return f"{where}: {err['msg']}{got}" + (f"; and {more} more error(s)" if more else "")


def _check_unique(kind: str, names: Iterable[str]) -> None:
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            raise InvalidInput(f"{kind}[{i}] ({name}): appears more than once in the file")
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
        where = f"groups[{i}] ({g.name})"
        if g.kind is GroupKind.EXTERNAL and not g.ftp_dir:
            raise InvalidInput(f"{where}.ftp_dir: an external group needs its directory on the FTP server")
        if g.kind is GroupKind.INTERNAL and g.ftp_dir:
            raise InvalidInput(
                f"{where}.ftp_dir: internal groups get no FTP directory (they use the download tool)"
            )
        if g.special and g.kind is not GroupKind.EXTERNAL:
            raise InvalidInput(f"{where}.special: only an external group can be the special group")

    # The state after the import: file records over database records.
    after = {name: (g.kind, g.ftp_dir, g.is_special) for name, g in db_groups.items()}
    after.update({g.name: (g.kind, g.ftp_dir, g.special) for g in export.groups})
    specials = sorted(name for name, (_, _, special) in after.items() if special)
    if len(specials) > 1:
        raise InvalidInput(
            f"groups: more than one special group after import ({', '.join(specials)}); "
            "set special: false on all but one"
        )
    in_file = {g.name for g in export.groups}
    dir_owner = {g.ftp_dir: name for name, g in db_groups.items() if g.ftp_dir and name not in in_file}
    for i, g in enumerate(export.groups):
        if g.ftp_dir and dir_owner.setdefault(g.ftp_dir, g.name) != g.name:
            raise InvalidInput(
                f"groups[{i}] ({g.name}).ftp_dir: {g.ftp_dir!r} is already the directory "
                f"of group {dir_owner[g.ftp_dir]}"
            )
    # One group's directory may not hold another's: purging the outer one would reach into the inner one.
    for i, g in enumerate(export.groups):
        for other_dir, other in dir_owner.items():
            if (
                g.ftp_dir
                and other != g.name
                and (other_dir.startswith(g.ftp_dir + "/") or g.ftp_dir.startswith(other_dir + "/"))
            ):
                raise InvalidInput(
                    f"groups[{i}] ({g.name}).ftp_dir: {g.ftp_dir!r} and {other_dir!r} (group {other}) are "
                    "nested; each group needs a directory of its own"
                )

    def known(names_in_file: Iterable[str], column: Any) -> set[str]:
        return set(names_in_file) | set(session.scalars(select(column)))

    groups = set(after)
    users = known((u.username for u in export.users), User.username)
    projects = known((p.name for p in export.projects), Project.name)
    pools = known((p.id for p in export.pools), Pool.name)
    for i, u in enumerate(export.users):
        if u.group not in groups:
            raise InvalidInput(f"users[{i}] ({u.username}).group: unknown group {u.group!r}")
    for i, p in enumerate(export.projects):
        if p.owner not in users:
            raise InvalidInput(f"projects[{i}] ({p.name}).owner: unknown user {p.owner!r}")
    for i, pool in enumerate(export.pools):
        if pool.project not in projects:
            raise InvalidInput(f"pools[{i}] ({pool.id}).project: unknown project {pool.project!r}")
        seen: set[str] = set()
        for j, sample in enumerate(pool.samples):
            if sample.name in seen:
                raise InvalidInput(f"pools[{i}] ({pool.id}).samples[{j}].name: {sample.name!r} appears twice")
            seen.add(sample.name)
    for i, run in enumerate(export.runs):
        for j, lane in enumerate(run.lanes):
            for pool_id in lane.pools:
                if pool_id not in pools:
                    raise InvalidInput(f"runs[{i}] ({run.run_id}).lanes[{j}].pools: unknown pool {pool_id!r}")
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
    for g in export.groups:
        by_name[g.name] = _upsert(
            session,
            report,
            "groups",
            Group,
            {"name": g.name},
            {"kind": g.kind, "ftp_dir": g.ftp_dir, "is_special": g.special, "ttl_days": g.ttl_days},
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
