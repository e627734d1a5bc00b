"""Ledger services for the purge: the directories to visit, their delivered files, marking files purged."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from seqshare import config
from seqshare.db.models import Delivery, DeliveryState, Group, Pool, Run
from seqshare.purge.plan import LedgerFile, delivery_directory
from seqshare.rules import GroupKind
from seqshare.services import lookup


def external_groups(session: Session) -> list[tuple[str, str]]:
    """(name, ftp_dir) of every external group with a directory on the FTP server, by name."""
    rows = session.execute(
        select(Group.name, Group.ftp_dir)
        .where(Group.kind == GroupKind.EXTERNAL, Group.ftp_dir.is_not(None))
        .order_by(Group.name)
    )
    return [(name, ftp_dir) for name, ftp_dir in rows]


@dataclass(frozen=True, order=True)
class PurgeTarget:
    """One directory to purge for one group."""

    group: str
    directory: str
    current: bool  # the group's FTP directory today; else one its deliveries are (or were lately) under

    @property
    def label(self) -> str:
        return self.group if self.current else f"{self.group} (former directory {self.directory})"


def purge_targets(session: Session, now: datetime | None = None) -> list[PurgeTarget]:
    """Every (group, directory) to purge: each external group's FTP directory, and every directory a
    group's deliveries are under, whatever the group's kind and FTP directory today (a group made
    internal, or whose directory moved, still has files there until they expire), while any of them is
    live and for one time to live after the last was purged: the README and manifests, which the ledger
    does not hold, go by their modification time and may be younger than the last file."""
    now = now or datetime.now(UTC)
    default = config.default_ttl()
    longest = max(default, timedelta(days=session.scalar(select(func.max(Group.ttl_days))) or 0))
    targets = {(name, ftp_dir): True for name, ftp_dir in external_groups(session)}
    rows = session.execute(
        select(Group.name, Group.ttl_days, Delivery.purged_at, Delivery.remote_path, Run.run_id, Pool.name)
        .join(Delivery.group)
        .join(Delivery.run)
        .join(Delivery.pool)
        .where(or_(Delivery.state == DeliveryState.DELIVERED, Delivery.purged_at >= now - longest))
    )
    for group, ttl_days, purged_at, remote_path, run_id, pool in rows:
        ttl = timedelta(days=ttl_days) if ttl_days else default
        if purged_at is not None and purged_at < now - ttl:
            continue
        directory = delivery_directory(remote_path, run_id, pool)
        if directory:
            targets.setdefault((group, directory), False)
    return sorted(PurgeTarget(group, directory, current) for (group, directory), current in targets.items())


def delivered_by_others(session: Session, group: str, directory: str) -> frozenset[str]:
    """Paths under `directory` that other groups' ledgers hold as delivered (not purged): a directory
    that changed hands still holds its former group's files, which this group's purge must not take."""
    grp = lookup.group(session, group)
    rows = session.scalars(
        select(Delivery.remote_path).where(
            Delivery.group_id != grp.id,
            Delivery.state == DeliveryState.DELIVERED,
            Delivery.remote_path.startswith(directory + "/", autoescape=True),
        )
    )
    return frozenset(rows)


def delivered_files(session: Session, group: str) -> list[LedgerFile]:
    """The group's files the ledger holds as delivered (not yet purged)."""
    grp = lookup.group(session, group)
    rows = session.execute(
        select(Delivery.id, Delivery.remote_path, Delivery.expires_at).where(
            Delivery.group_id == grp.id, Delivery.state == DeliveryState.DELIVERED
        )
    )
    return [LedgerFile(id, path, expires) for id, path, expires in rows]


def mark_purged(session: Session, ledger_ids: Iterable[int], *, at: datetime, by: str) -> int:
    """Record that these files are gone from the server: when and by which purge."""
    ids = list(ledger_ids)
    if not ids:
        return 0
    result = session.execute(
        update(Delivery)
        .where(Delivery.id.in_(ids), Delivery.state == DeliveryState.DELIVERED)
        .values(state=DeliveryState.PURGED, purged_at=at, purged_by=by)
    )
    return result.rowcount
