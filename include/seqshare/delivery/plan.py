"""The delivery plan: for each external group, the files to copy and where, before anything is copied.

Remote layout, under the SFTP root: `<group ftp_dir>/<run id>/<pool>/<file>`, with `md5sums.txt` per pool
(`md5sum -c` compatible, run from the pool's folder) and `README.txt` per run giving the pools and the date
the files expire.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any

from seqshare.delivery.instant import Precision
from seqshare.delivery.snapshot import PoolSnapshot, SnapshotSource, Withheld, WithheldReason
from seqshare.errors import InvalidInput

MANIFEST = "md5sums.txt"
README = "README.txt"


@dataclass(frozen=True)
class SourceFile:
    """A file of the run folder that belongs to a pool."""

    pool: str
    source: str
    size: int
    resolved: str | None = None  # absolute, links followed: delivery reads exactly this file or nothing


@dataclass(frozen=True)
class PlannedFile:
    pool: str
    source: str  # relative to the run folder
    remote_path: str  # relative to the SFTP root
    size: int
    resolved: str | None = None  # the file it was when frozen (links followed); None in older plans


@dataclass(frozen=True)
class GroupPlan:
    group: str
    ftp_dir: str
    files: tuple[PlannedFile, ...]

    @property
    def pools(self) -> tuple[str, ...]:
        return tuple(sorted({f.pool for f in self.files}))

    @property
    def bytes(self) -> int:
        return sum(f.size for f in self.files)

    def run_dir(self, run_id: str) -> str:
        return f"{self.ftp_dir}/{run_id}"


@dataclass(frozen=True)
class DeliveryPlan:
    """Who receives what of a run, frozen with its snapshot. Plans frozen before the precision, the note
    and the owner rule existed have None there and still read (`from_dict`)."""

    run_id: str
    run_folder: str
    instant: datetime
    source: SnapshotSource
    pools: tuple[PoolSnapshot, ...]
    groups: tuple[GroupPlan, ...]
    precision: Precision | None = None  # how precisely the instant is known
    instant_note: str | None = None  # where the instant came from, and why it is certain
    # The demultiplexed output the files were read from (relative to the run folder, or absolute when kept
    # elsewhere): delivery reads only there and in the run folder. None in plans frozen before it was kept.
    output_dir: str | None = None
    # Every pool's files on the run, delivered or not (the internal API lists them); () in older plans.
    files: tuple[SourceFile, ...] = ()

    def group(self, name: str) -> GroupPlan:
        for g in self.groups:
            if g.group == name:
                return g
        raise InvalidInput(f"group {name!r} receives nothing from run {self.run_id}")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["instant"] = self.instant.isoformat()
        for pool in data["pools"]:
            for w in pool["withheld"]:
                w["at"] = w["at"].isoformat() if w["at"] else None
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeliveryPlan:
        return cls(
            run_id=data["run_id"],
            run_folder=data["run_folder"],
            instant=datetime.fromisoformat(data["instant"]),
            source=SnapshotSource(data["source"]),
            pools=tuple(
                PoolSnapshot(
                    pool=p["pool"],
                    project=p["project"],
                    owner=p.get("owner"),
                    groups=tuple(p["groups"]),
                    withheld=tuple(
                        Withheld(
                            w["group"],
                            WithheldReason(w["reason"]),
                            datetime.fromisoformat(w["at"]) if w["at"] else None,
                        )
                        for w in p["withheld"]
                    ),
                )
                for p in data["pools"]
            ),
            groups=tuple(
                GroupPlan(g["group"], g["ftp_dir"], tuple(PlannedFile(**f) for f in g["files"]))
                for g in data["groups"]
            ),
            precision=Precision(data["precision"]) if data.get("precision") else None,
            instant_note=data.get("instant_note"),
            output_dir=data.get("output_dir"),
            files=tuple(SourceFile(**f) for f in data.get("files", ())),
        )

    def render(self) -> str:
        """The plan as text for people: task logs and `seqshare run plan`."""
        how = f", {self.precision.value}" if self.precision else ""
        lines = [f"run {self.run_id}: snapshot at {self.instant.isoformat()} ({self.source.value}{how})"]
        if self.instant_note:
            lines.append(f"  sequencing time: {self.instant_note}")
        if self.output_dir:
            lines.append(f"  files read from: {self.output_dir}")
        for pool in self.pools:
            lines.append(f"  {pool.pool} (project {pool.project})")
            receivers = [f"{g} ({pool.reason(g)})" for g in pool.groups]
            lines.append(f"    delivered to: {', '.join(receivers) or 'no external group'}")
            lines.extend(f"    withheld from {w.describe()}" for w in pool.withheld)
        for g in self.groups:
            lines.append(
                f"  group {g.group} -> {g.run_dir(self.run_id)}/: {len(g.files)} files, "
                f"{g.bytes:,} bytes, pools {', '.join(g.pools)}"
            )
        if not self.groups:
            lines.append("  nothing to deliver: no pool of this run goes to an external group")
        return "\n".join(lines)


def plan_deliveries(
    *,
    run_id: str,
    run_folder: str,
    instant: datetime,
    source: SnapshotSource,
    snapshot: Sequence[PoolSnapshot],
    files: Sequence[SourceFile],
    group_dirs: Mapping[str, str],
    precision: Precision | None = None,
    instant_note: str | None = None,
    output_dir: str | None = None,
) -> DeliveryPlan:
    """Assign each pool's files to the groups the snapshot entitles; one GroupPlan per receiving group."""
    by_pool: dict[str, list[SourceFile]] = {}
    for f in files:
        by_pool.setdefault(f.pool, []).append(f)
    per_group: dict[str, list[PlannedFile]] = {}
    for pool in snapshot:
        names: dict[str, str] = {}
        for f in by_pool.get(pool.pool, []):
            name = PurePosixPath(f.source).name
            if name in (MANIFEST, README) or name in names:
                other = names.get(name, "the manifest")
                raise InvalidInput(
                    f"run {run_id}: pool {pool.pool} has two files named {name} "
                    f"({f.source} and {other}); they would overwrite each other"
                )
            names[name] = f.source
        for group in pool.groups:
            base = f"{group_dirs[group]}/{run_id}/{pool.pool}"
            per_group.setdefault(group, []).extend(
                PlannedFile(
                    pool=pool.pool,
                    source=f.source,
                    remote_path=f"{base}/{PurePosixPath(f.source).name}",
                    size=f.size,
                    resolved=f.resolved,
                )
                for f in sorted(by_pool.get(pool.pool, []), key=lambda f: f.source)
            )
    groups = tuple(
        GroupPlan(group=g, ftp_dir=group_dirs[g], files=tuple(fs))
        for g, fs in sorted(per_group.items(), key=lambda kv: kv[0].casefold())
        if fs
    )
    return DeliveryPlan(
        run_id=run_id,
        run_folder=run_folder,
        instant=instant,
        source=source,
        pools=tuple(snapshot),
        groups=groups,
        precision=precision,
        instant_note=instant_note,
        output_dir=output_dir,
        files=tuple(sorted(files, key=lambda f: (f.pool, f.source))),
    )


def manifest_text(files: Sequence[PlannedFile], md5s: Mapping[str, str]) -> str:
    """`md5sum -c` input for one pool's folder: `<md5>  <name>` per line, sorted by name."""
    rows = sorted((PurePosixPath(f.remote_path).name, md5s[f.remote_path]) for f in files)
    return "".join(f"{md5}  {name}\n" for name, md5 in rows)


def readme_text(plan: DeliveryPlan, group: GroupPlan, delivered_at: datetime, expires_at: datetime) -> str:
    pools = "\n".join(
        f"  {p}/  ({sum(1 for f in group.files if f.pool == p)} files, checksums in {p}/{MANIFEST})"
        for p in group.pools
    )
    return (
        f"Sequencing run {plan.run_id}, delivered to {group.group} by the sequencing facility.\n\n"
        f"Pools:\n{pools}\n\n"
        f"Delivered: {delivered_at:%Y-%m-%d %H:%M} UTC\n"
        f"These files will be DELETED from this server on {expires_at:%Y-%m-%d} (UTC).\n"
        "Copy them before then.\n"
        f"Check a pool's files after download with: cd <pool> && md5sum -c {MANIFEST}\n"
    )
