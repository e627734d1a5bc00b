"""The bodies of the `purge_expired_deliveries` DAG's tasks and of `seqshare purge` (same code for both)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from seqshare.purge.group import purge_group
from seqshare.services import ledger as delivered
from seqshare.services import purge as ledger
from seqshare.tasks import app_sessions
from seqshare.transfer import Guard, Remote


def groups_to_purge() -> list[dict[str, str]]:
    """One mapped task's arguments per external group with an FTP directory."""
    with app_sessions() as sessions, sessions.begin() as s:
        return [{"group": name, "ftp_dir": ftp_dir} for name, ftp_dir in ledger.external_groups(s)]


def purge(
    group: str,
    ftp_dir: str,
    *,
    connect: Callable[[Guard], Remote],
    dry_run: bool,
    actor: str,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Purge one group's expired files now (or list them, in a dry run); returns the group's summary."""
    now = datetime.now(UTC)
    with app_sessions() as sessions:
        with sessions.begin() as s:
            ttl = delivered.group_ttl(s, group)
            others = frozenset(d for name, d in ledger.external_groups(s) if name != group)
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
