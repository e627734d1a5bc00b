"""Purge one group's directory: list it (never following symlinks), plan, delete, record in the ledger.

Deletions go through the remote's dry-run guard and its pipelined `remove_many`; each reply is checked,
and each batch is recorded in the ledger before the next, so an interrupted purge finishes next time.
Right before each batch's removes (and before removing emptied folders), every folder from the group's
directory down to each path is looked at again (one pipelined lstat per distinct folder): a path with a
symlink anywhere in it is refused and reported, never deleted, so a folder swapped for a link to another
group's folder after the listing changes nothing there (see `BaseRemote.remove_many` for the window that
remains, and docs/deployment-sftp.md for the account set-up that closes it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from seqshare.errors import SeqshareError
from seqshare.purge.plan import PurgePlan, Refusal, RemoteEntry, plan_purge
from seqshare.services import purge as ledger
from seqshare.transfer import Remote
from seqshare.transfer.remote import SymlinkInPath

BATCH = 2000


class GroupDirectoryRefused(SeqshareError):
    """The group's directory itself is unsafe to purge (a symlink, or not a folder)."""


@dataclass
class PurgeReport:
    group: str
    group_dir: str
    dry_run: bool
    files: int = 0
    bytes_freed: int = 0
    folders_removed: int = 0
    ledger_marked: int = 0
    already_gone: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)
    untracked_purged: int = 0  # files the ledger did not know, purged by their modification time
    untracked_kept: int = 0
    kept_files: int = 0
    oldest_remaining: datetime | None = None

    def describe(self) -> str:
        verb = "would free" if self.dry_run else "freed"
        oldest = f"{self.oldest_remaining:%Y-%m-%d}" if self.oldest_remaining else "none"
        return (
            f"{self.group} ({self.group_dir}/): "
            f"{self.files} files ({self.untracked_purged} not in the ledger), "
            f"{verb} {self.bytes_freed:,} bytes; "
            f"{self.kept_files} files remain (oldest {oldest}); "
            f"{len(self.refused)} refused, {len(self.failed)} failed"
            + (f"; WARNING: {self.untracked_kept} files not in the ledger" if self.untracked_kept else "")
        )


def walk(remote: Remote, group_dir: str, *, other_groups: frozenset[str] = frozenset()) -> list[RemoteEntry]:
    """Every entry under the group's directory, by lstat; symlinked folders are listed, not entered.

    Another group's directory inside this one (the LIMS import refuses that) is skipped entirely.
    """
    top = remote.stat(group_dir)
    if top is None:
        return []
    if top.is_symlink or not top.is_dir:
        raise GroupDirectoryRefused(
            f"{group_dir}: the group's directory is "
            f"{'a symlink' if top.is_symlink else 'not a folder'}; nothing is purged"
        )
    out: list[RemoteEntry] = []
    level = [group_dir]
    while level:  # one depth at a time, each depth's folders listed together (pipelined over SFTP)
        deeper: list[str] = []
        for entries in remote.list_many(level):
            for e in entries:
                if e.path in other_groups:
                    continue
                is_dir = e.is_dir and not e.is_symlink
                out.append(RemoteEntry(e.path, e.size, e.mtime, is_dir=is_dir, is_symlink=e.is_symlink))
                if is_dir:
                    deeper.append(e.path)
        level = deeper
    return out


def _directory_of(path: str, group_dir: str, others: frozenset[str]) -> str | None:
    """The deepest of the directories to purge that holds `path` (None: none does). A ledger row is
    planned by the purge of that directory only; a row under none is planned here (and refused as
    outside)."""
    while "/" in path:
        path = path.rsplit("/", 1)[0]
        if path == group_dir or path in others:
            return path
    return None


def _batches(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def purge_group(
    *,
    group: str,
    group_dir: str,
    remote: Remote,
    sessions: sessionmaker[Session],
    now: datetime,
    ttl: timedelta,
    actor: str,
    log: Callable[[str], None] = print,
    other_groups: frozenset[str] = frozenset(),
) -> tuple[PurgePlan, PurgeReport]:
    """Purge `group_dir` for `group`. `other_groups`: the other directories to purge (other groups' and
    this group's other ones), skipped when nested in this one; their ledger rows are left to them."""
    dry_run = remote.guard.dry_run
    with sessions.begin() as s:
        known = [
            lf
            for lf in ledger.delivered_files(s, group)
            if _directory_of(lf.remote_path, group_dir, other_groups) in (group_dir, None)
        ]
        others_delivered = ledger.delivered_by_others(s, group, group_dir)
    plan = plan_purge(
        group=group,
        group_dir=group_dir,
        entries=walk(remote, group_dir, other_groups=other_groups),
        ledger=known,
        now=now,
        ttl=ttl,
        others_delivered=others_delivered,
    )
    for line in plan.lines():
        log(("DRY RUN: " if dry_run else "") + line)
    report = PurgeReport(
        group=group,
        group_dir=group_dir,
        dry_run=dry_run,
        refused=[(p, r.value) for p, r in plan.refused],
        untracked_kept=len(plan.untracked_kept),
        kept_files=plan.kept_files,
        oldest_remaining=plan.oldest_kept,
    )
    for batch in _batches(list(plan.deletions), BATCH):
        results = remote.remove_many((d.path for d in batch), within=group_dir)
        done = []
        for deletion, result in zip(batch, results, strict=True):
            if result.error is None or isinstance(result.error, FileNotFoundError):
                done.append(deletion)  # a file already gone is fine
            elif isinstance(result.error, SymlinkInPath):
                report.refused.append((deletion.path, Refusal.SYMLINK_IN_PATH.value))
                log(f"REFUSED {deletion.path}: {result.error}")
            else:
                report.failed.append((deletion.path, f"{type(result.error).__name__}: {result.error}"))
        report.files += len(done)
        report.untracked_purged += sum(1 for d in done if d.ledger_id is None)
        report.bytes_freed += sum(d.size for d in done)
        if not dry_run:
            with sessions.begin() as s:
                report.ledger_marked += ledger.mark_purged(
                    s, (d.ledger_id for d in done if d.ledger_id is not None), at=now, by=actor
                )
    if not dry_run and plan.gone:
        with sessions.begin() as s:
            report.already_gone = ledger.mark_purged(s, plan.gone, at=now, by=actor)
    failed_dirs = {path.rsplit("/", 1)[0] for path, _ in report.failed + report.refused}
    folders = [
        folder
        for folder in plan.dirs
        if not any(f == folder or f.startswith(folder + "/") for f in failed_dirs)
    ]
    unsafe = remote.check_parents(folders, within=group_dir) if folders else []
    for folder, problem in zip(folders, unsafe, strict=True):
        if problem is not None:
            if not isinstance(problem, FileNotFoundError):
                log(f"kept folder {folder}: {problem}")
            continue
        try:
            remote.rmdir(folder)
            report.folders_removed += 1
        except OSError as exc:  # a file appeared meanwhile, or it is already gone: leave it
            log(f"kept folder {folder}: {exc}")
    return plan, report
