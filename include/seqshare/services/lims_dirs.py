"""The groups' FTP directories in a LIMS import: who may have which directory, and when one may change.

A directory is where a group's delivered files live until the purge removes them, and the purge of a group
works only inside that group's directory and only on its own ledger rows. So a directory assignment that
leaves a delivered file outside its group's directory, or inside another group's, loses it (never purged)
or hands it to the wrong group (readable by them, deleted by their purge as "not in the ledger").
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from seqshare.db.models import Delivery, DeliveryLease, DeliveryState, Group, Run
from seqshare.errors import InvalidInput, quote
from seqshare.lims_schema import GroupIn, LimsExport
from seqshare.rules import GroupKind
from seqshare.services.lims_read import label


def _utc(when: datetime | None) -> str:
    return f"{when:%Y-%m-%d %H:%M:%S} UTC" if when else "?"


def check_ftp_dirs(session: Session, export: LimsExport, db_groups: dict[str, Group]) -> None:
    """Every directory after the import belongs to one group, none inside another, and none changes in a way
    that separates a delivered file from its group. Raises InvalidInput naming the first offending record."""
    in_file = {g.name for g in export.groups}
    dir_owner = {g.ftp_dir: name for name, g in db_groups.items() if g.ftp_dir and name not in in_file}
    for i, g in enumerate(export.groups):
        if g.ftp_dir and dir_owner.setdefault(g.ftp_dir, g.name) != g.name:
            raise InvalidInput(
                f"groups[{i}] ({label(g.name)}).ftp_dir: {quote(g.ftp_dir)} is already the directory "
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
                    f"groups[{i}] ({label(g.name)}).ftp_dir: {quote(g.ftp_dir)} and {quote(other_dir)} "
                    f"(group {other}) are nested; each group needs a directory of its own"
                )
    for i, g in enumerate(export.groups):
        row = db_groups.get(g.name)
        old = row.ftp_dir if row is not None else None
        if g.ftp_dir == old:
            continue  # unchanged: whatever sits there today is not made worse by this file
        where = f"groups[{i}] ({label(g.name)})"
        if g.ftp_dir:
            _refuse_other_groups_files(session, where, g)
        if row is not None and old is not None:
            _refuse_move_with_live_files(session, where, g, row, old)


def _refuse_other_groups_files(session: Session, where: str, g: GroupIn) -> None:
    """A directory holding another group's delivered, not yet purged files (left there by a move made before
    this rule, or by an older system) is not given away, nor is any directory containing them: the new
    owner could read them and its purge would delete them as untracked. A directory merely *inside* such a
    holder's current directory is refused by the nesting rule above."""
    assert g.ftp_dir
    held = session.execute(
        select(Group.name, func.count(), func.max(Delivery.expires_at))
        .join(Delivery.group)
        .where(
            Delivery.state == DeliveryState.DELIVERED,
            Delivery.remote_path.startswith(g.ftp_dir + "/", autoescape=True),
            Group.name != g.name,
        )
        .group_by(Group.name)
        .order_by(Group.name)
    ).first()
    if held is not None:
        other, count, last = held
        raise InvalidInput(
            f"{where}.ftp_dir: {quote(g.ftp_dir)} holds {count} delivered file(s) of group {other} "
            f"(the last expires {_utc(last)}); it can be given to another group only after they are purged"
        )


def _refuse_move_with_live_files(session: Session, where: str, g: GroupIn, row: Group, old: str) -> None:
    """A group's directory does not move (nor go, by the group becoming internal) away from the group's
    delivered files not yet purged, nor while a delivery to it is running: the files would stay where the
    group's purge no longer looks, and their directory could be given to another group. A move that keeps
    every such file inside the new directory (back to where the files are, or to a parent) is fine.

    Carrying the files along (renaming the directory on the server and the ledger rows in one step) is not
    done here: the LIMS import has no access to the server. With nothing live, a move is only a new name,
    and so is a swap of two groups' directories in one file, which is allowed (the import frees the moving
    directories first, then assigns them): refusing it would only make the facility do it in two imports
    through a temporary name, with the same end state and nothing safer.
    """
    # Lock the group's row first: a delivery reads it with a shared lock once it holds its lease
    # (services.delivery.deliver_group), so it either shows up in the lease check below or waits for
    # this import and then sees the new directory.
    session.execute(select(Group.id).where(Group.id == row.id).with_for_update())
    live = select(func.count(), func.max(Delivery.expires_at)).where(
        Delivery.group_id == row.id, Delivery.state == DeliveryState.DELIVERED
    )
    if g.ftp_dir:
        live = live.where(~Delivery.remote_path.startswith(g.ftp_dir + "/", autoescape=True))
    count, last = session.execute(live).one()
    change = (
        f"cannot move group {row.name}'s directory from {quote(old)} to {quote(g.ftp_dir)}"
        if g.kind is GroupKind.EXTERNAL
        else f"group {row.name} cannot become internal (its directory {quote(old)} would be forgotten)"
    )
    field = "ftp_dir" if g.kind is GroupKind.EXTERNAL else "kind"
    if count:
        raise InvalidInput(
            f"{where}.{field}: {change}: {count} delivered file(s) of the group, not yet purged, would be "
            f"left outside its directory (the last expires {_utc(last)}); wait until they are purged (the "
            f"daily purge, or `seqshare purge --group {quote(row.name)}` after that time), then import again"
        )
    lease = session.execute(
        select(Run.run_id, DeliveryLease.acquired_at)
        .join(Run, Run.id == DeliveryLease.run_id)
        .where(DeliveryLease.group_id == row.id)
        .order_by(DeliveryLease.acquired_at)
    ).first()
    if lease is not None:
        raise InvalidInput(
            f"{where}.{field}: {change} while run {lease.run_id} is being delivered to it (lease renewed "
            f"{_utc(lease.acquired_at)}); import again when the delivery has finished"
        )


def free_moving_dirs(session: Session, export: LimsExport) -> None:
    """Unset the directory of every group that gets another one, before any is assigned: a swap of two
    groups' directories in one file then never meets the unique index half-way (rows are flushed one at a
    time). check_ftp_dirs has already made sure that none of them has live files."""
    for g in export.groups:
        row = session.scalar(select(Group).filter_by(name=g.name))
        if row is not None and row.ftp_dir is not None and row.ftp_dir != g.ftp_dir:
            row.ftp_dir = None
    session.flush()
