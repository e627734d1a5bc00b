"""Ledger services for the purge: the groups to visit, their delivered files, and marking files purged."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from seqshare.db.models import Delivery, DeliveryState, Group
from seqshare.purge.plan import LedgerFile
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
