"""The bodies of the `purge_expired_deliveries` DAG's tasks and of `seqshare purge` (same code for both)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from seqshare.purge.group import purge_group
from seqshare.services import ledger as delivered
from seqshare.services import purge as ledger
from seqshare.tasks import app_sessions, quiet_ssh_logs
from seqshare.transfer import Guard, Remote


def groups_to_purge() -> list[dict[str, str]]:
    """One mapped task's arguments per directory to purge (`services.purge.purge_targets`): every external
    group's FTP directory, and every directory a group's deliveries are under, whatever its kind and FTP
    directory today. `label` names the task (the group, and the directory if no longer the group's)."""
    with app_sessions() as sessions, sessions.begin() as s:
        return [{"group": t.group, "ftp_dir": t.directory, "label": t.label} for t in ledger.purge_targets(s)]


def purge(
    group: str,
    ftp_dir: str,
    *,
    connect: Callable[[Guard], Remote],
    dry_run: bool,
    actor: str,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Purge one group's expired files from `ftp_dir` now (or list them, in a dry run); returns the
    summary. The other directories to purge (any group's) nested in this one are left to their own purge."""
    quiet_ssh_logs()
    now = datetime.now(UTC)
    with app_sessions() as sessions:
        with sessions.begin() as s:
            ttl = delivered.group_ttl(s, group)
            others = frozenset(t.directory for t in ledger.purge_targets(s) if t.directory != ftp_dir)
        remote = connect(Guard(dry_run=dry_run))
        try:
            _, report = purge_group(
                group=group,
                group_dir=ftp_dir,
                remote=remote,
                sessions=sessions,
                now=now,
                ttl=ttl,
                actor=actor,
                log=log,
                other_groups=others,
            )
        finally:
            remote.close()
    log(report.describe())
    summary = asdict(report)
    summary["oldest_remaining"] = report.oldest_remaining.isoformat() if report.oldest_remaining else None
    summary["ttl_days"] = ttl.days
    summary["line"] = report.describe()  # the one summary line, for the DAG's report
    return summary
