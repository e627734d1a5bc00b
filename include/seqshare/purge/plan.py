"""What to purge from one group's directory, decided on plain values (a listing, the ledger, now, the TTL).

Rules: a file the ledger delivered goes once its expiry has passed; a file the ledger does not know goes
once its modification time is older than the TTL; nothing newer than the TTL is ever deleted, whatever
the ledger says. Symlinks are never followed or deleted (reported), nor is anything behind one. A ledger
path outside the group's directory is refused (reported), and so is a file another group's ledger holds
as delivered (a directory that changed hands). Folders left empty are removed, never the group's
directory itself.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import PurePosixPath

from seqshare.delivery.plan import MANIFEST, README
from seqshare.transfer.errors import UnsafePath
from seqshare.transfer.paths import check_path


class PurgeReason(enum.StrEnum):
    EXPIRED = "delivered, expired"
    UNTRACKED = "not in the ledger, older than the time to live"


class Refusal(enum.StrEnum):
    SYMLINK = "symlink: never followed or deleted"
    SYMLINK_IN_PATH = "a folder on its path is a symlink (or not a folder): never followed"
    OTHER_GROUP = "another group's delivery (in its ledger): never deleted by this group's purge"
    OUTSIDE = "ledger path outside the group's directory"
    NEWER = "ledger says expired but the file is newer than the time to live"


@dataclass(frozen=True)
class RemoteEntry:
    path: str  # relative to the SFTP root
    size: int
    mtime: datetime
    is_dir: bool = False
    is_symlink: bool = False


@dataclass(frozen=True)
class LedgerFile:
    id: int
    remote_path: str
    expires_at: datetime


@dataclass(frozen=True)
class Deletion:
    path: str
    size: int
    age: timedelta
    reason: PurgeReason
    ledger_id: int | None = None


@dataclass(frozen=True)
class PurgePlan:
    group: str
    group_dir: str
    deletions: tuple[Deletion, ...]
    dirs: tuple[str, ...]  # folders empty once the deletions are done, deepest first
    refused: tuple[tuple[str, Refusal], ...]
    gone: tuple[int, ...]  # expired ledger ids whose file is already absent
    kept_files: int
    kept_bytes: int
    oldest_kept: datetime | None
    untracked_kept: tuple[str, ...] = field(default=())  # files the ledger lost track of (not ours by name)

    @property
    def bytes(self) -> int:
        return sum(d.size for d in self.deletions)

    def lines(self) -> list[str]:
        """The plan for people: what goes, with size and age, and what is refused."""
        out = [
            f"{self.group} ({self.group_dir}/): {len(self.deletions)} files, {self.bytes:,} bytes to purge"
        ]
        out += [
            f"  delete {d.path}  {d.size:,} bytes, {d.age.days} days old ({d.reason.value})"
            for d in self.deletions
        ]
        out += [f"  remove empty folder {d}" for d in self.dirs]
        out += [f"  REFUSED {path}: {why.value}" for path, why in self.refused]
        if self.untracked_kept:
            out.append(
                f"  WARNING: {len(self.untracked_kept)} files not in the ledger (kept until they are "
                f"older than the time to live), e.g. {self.untracked_kept[0]}"
            )
        return out


def delivery_directory(remote_path: str, run_id: str, pool: str) -> str | None:
    """The group directory a ledger row was delivered under (`<dir>/<run id>/<pool>/<file>`), or None
    when its path does not have that shape (then it belongs to no directory and is reported, not used)."""
    try:
        relative = check_path(remote_path)
    except UnsafePath:
        return None
    if relative != remote_path:
        return None
    parts = relative.split("/")
    if len(parts) < 4 or parts[-3:-1] != [run_id, pool]:
        return None
    return "/".join(parts[:-3])


def _inside(path: str, group_dir: str) -> bool:
    try:
        relative = check_path(path)
    except UnsafePath:
        return False
    return relative.startswith(group_dir + "/")


def plan_purge(
    *,
    group: str,
    group_dir: str,
    entries: Sequence[RemoteEntry],
    ledger: Iterable[LedgerFile],
    now: datetime,
    ttl: timedelta,
    others_delivered: frozenset[str] = frozenset(),
) -> PurgePlan:
    """`others_delivered`: paths under this directory that other groups' ledgers hold as delivered."""
    ledger_by_path: dict[str, LedgerFile] = {}
    refused: list[tuple[str, Refusal]] = []
    for lf in ledger:
        if _inside(lf.remote_path, group_dir):
            ledger_by_path[lf.remote_path] = lf
        else:
            refused.append((lf.remote_path, Refusal.OUTSIDE))

    deletions: list[Deletion] = []
    kept: list[RemoteEntry] = []
    untracked: list[str] = []
    seen: set[str] = set()
    for e in entries:
        if e.is_dir:
            continue
        seen.add(e.path)
        if e.is_symlink:
            refused.append((e.path, Refusal.SYMLINK))
            kept.append(e)
            continue
        if e.path in others_delivered:
            refused.append((e.path, Refusal.OTHER_GROUP))
            kept.append(e)
            continue
        age = now - e.mtime
        lf = ledger_by_path.get(e.path)
        if lf is not None and lf.expires_at <= now:
            if age >= ttl:
                deletions.append(Deletion(e.path, e.size, age, PurgeReason.EXPIRED, lf.id))
            else:
                refused.append((e.path, Refusal.NEWER))
                kept.append(e)
        elif lf is None and age >= ttl:
            deletions.append(Deletion(e.path, e.size, age, PurgeReason.UNTRACKED))
        else:
            kept.append(e)
            if lf is None and PurePosixPath(e.path).name not in (MANIFEST, README):
                untracked.append(e.path)

    links = {e.path for e in entries if e.is_symlink}
    gone: list[int] = []
    for path, lf in ledger_by_path.items():
        if lf.expires_at > now or path in seen:
            continue
        if any(str(parent) in links for parent in PurePosixPath(path).parents):
            refused.append((path, Refusal.SYMLINK_IN_PATH))  # not listed because behind a symlink
        else:
            gone.append(lf.id)
    occupied = {str(parent) for e in kept for parent in PurePosixPath(e.path).parents}
    dirs = sorted(
        (
            e.path
            for e in entries
            if e.is_dir and not e.is_symlink and e.path != group_dir and e.path not in occupied
        ),
        key=lambda d: (-d.count("/"), d),
    )
    return PurgePlan(
        group=group,
        group_dir=group_dir,
        deletions=tuple(sorted(deletions, key=lambda d: d.path)),
        dirs=tuple(dirs),
        refused=tuple(refused),
        gone=tuple(gone),
        kept_files=len(kept),
        kept_bytes=sum(e.size for e in kept),
        oldest_kept=min((e.mtime for e in kept), default=None),
        untracked_kept=tuple(untracked),
    )
