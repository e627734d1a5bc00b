"""The ledger: every file delivered to a group, verified, until it expires and is purged.

A row is written as soon as its file is verified (one transaction per file), so an interrupted delivery
resumes where it stopped and a re-run never sends or records a file twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from seqshare import config
from seqshare.db.models import Delivery, DeliveryState, Group, Pool, Run
from seqshare.errors import InvalidInput
from seqshare.services import lookup


def delivered_md5s(session: Session, run_id: str, group: str) -> dict[str, str]:
    """remote path → md5 of the files already delivered (and verified) to the group for this run."""
    rows = session.execute(
        select(Delivery.remote_path, Delivery.md5)
        .join(Delivery.run)
        .join(Delivery.group)
        .where(Run.run_id == run_id, Group.name == group, Delivery.state == DeliveryState.DELIVERED)
    )
    return {path: md5 for path, md5 in rows}


def group_ttl(session: Session, group: str) -> timedelta:
    """The group's time to live for delivered files: its own, else the default (SEQSHARE_TTL_DAYS, 30)."""
    days = lookup.group(session, group).ttl_days
    return timedelta(days=days) if days else config.default_ttl()


def record_delivery(
    session: Session,
    *,
    run_id: str,
    group: str,
    pool: str,
    remote_path: str,
    size: int,
    md5: str,
    delivered_at: datetime,
) -> bool:
    """Write one ledger row; a file already recorded for the group is left as it is (re-runs).

    Returns True if a row was written.
    """
    grp = lookup.group(session, group)
    existing = session.scalar(
        select(Delivery).where(Delivery.group_id == grp.id, Delivery.remote_path == remote_path)
    )
    if existing is not None and existing.state is DeliveryState.DELIVERED:
        if existing.md5 != md5 or existing.size != size:
            raise InvalidInput(
                f"{remote_path}: ledger has md5 {existing.md5} ({existing.size} bytes) but the "
                f"delivered file is {md5} ({size} bytes)"
            )
        return False
    run = lookup.run(session, run_id)
    pool_row = session.scalars(select(Pool).where(Pool.name == pool)).one()
    if existing is not None:  # purged earlier and delivered again by a re-run: a new life for the row
        session.delete(existing)
        session.flush()
    session.add(
        Delivery(
            run_id=run.id,
            group_id=grp.id,
            pool_id=pool_row.id,
            remote_path=remote_path,
            size=size,
            md5=md5,
            state=DeliveryState.DELIVERED,
            delivered_at=delivered_at,
            expires_at=delivered_at + group_ttl(session, group),
        )
    )
    session.flush()
    return True


@dataclass(frozen=True)
class LedgerRow:
    group: str
    pool: str
    remote_path: str
    size: int
    md5: str
    state: str
    delivered_at: datetime
    expires_at: datetime


def ledger(session: Session, run_id: str) -> list[LedgerRow]:
    """Every file delivered for the run (an unknown run is an error, not an empty ledger)."""
    run = lookup.run(session, run_id)
    rows = session.scalars(
        select(Delivery)
        .where(Delivery.run_id == run.id)
        .options(selectinload(Delivery.group), selectinload(Delivery.pool))
        .order_by(Delivery.remote_path)
    )
    return [
        LedgerRow(
            d.group.name,
            d.pool.name,
            d.remote_path,
            d.size,
            d.md5,
            d.state.value,
            d.delivered_at,
            d.expires_at,
        )
        for d in rows
    ]
