"""Who may do what to which project: the one permission check the API (and later the page) calls.

`check(session, caller, action, project, now)` answers for one project with the pure rule
(`seqshare.rules.may_see`); `visible(caller, now)` is the same rule as a SQL condition, so a long list is
filtered and paged in the database. Nothing is cached: a grant or a revocation counts from the next call.

A project the caller may not see raises exactly the NotFound of a project that does not exist, so an
answer never tells a caller that a name they may not see is taken.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, exists, false, or_, select
from sqlalchemy.orm import Session, joinedload

from seqshare import rules
from seqshare.db.models import Project, Share, User
from seqshare.errors import NotFound, SharingRefused, quote
from seqshare.services import lookup
from seqshare.services.views import GroupView


class Action(enum.StrEnum):
    VIEW_PROJECT = "view-project"  # its pools, samples, runs and files
    CHANGE_SHARING = "change-sharing"  # Set Sharing / Do Not Share (the Data Sharing page)


@dataclass(frozen=True)
class Caller:
    """The user behind a request, with their group as it is now (a move in the LIMS counts at once)."""

    username: str
    group_id: int
    group: rules.GroupRef


def caller(session: Session, username: str) -> Caller:
    user = session.scalar(
        select(User).where(User.id == lookup.user(session, username).id).options(joinedload(User.group))
    )
    assert user is not None
    return Caller(username=user.username, group_id=user.group_id, group=GroupView.of(user.group).ref)


def _shared_now(group_id: int, now: datetime) -> ColumnElement[bool]:
    """The project is shared with the group at `now`: the interval [granted_at, revoked_at) holds it."""
    return exists().where(
        Share.project_id == Project.id,
        Share.group_id == group_id,
        Share.granted_at <= now,
        or_(Share.revoked_at.is_(None), Share.revoked_at > now),
    )


def visible(who: Caller, now: datetime) -> ColumnElement[bool]:
    """`rules.may_see` in SQL, on a query over Project joined to its owner (User)."""
    owned = User.group_id == who.group_id
    shared = _shared_now(who.group_id, now) if who.group.kind is rules.GroupKind.INTERNAL else false()
    return or_(owned, shared)


def hidden(project: str) -> NotFound:
    """The error for a missing project, and for one the caller may not see: the very same."""
    return NotFound(f"unknown project {quote(project)}")


def check(session: Session, who: Caller, action: Action, project: str, now: datetime) -> Project:
    """The project if `who` may do `action` on it. A project `who` may not see raises NotFound, word for
    word that of a missing one; one they see but may not change raises SharingRefused."""
    try:
        found = lookup.project(session, project)
    except NotFound:
        raise hidden(project) from None
    owner_group = session.scalar(
        select(User).where(User.id == found.owner_id).options(joinedload(User.group))
    )
    assert owner_group is not None
    shares = session.scalars(
        select(Share).where(Share.project_id == found.id, Share.group_id == who.group_id)
    )
    intervals = [rules.ShareInterval(who.group.name, s.granted_at, s.revoked_at) for s in shares]
    names = rules.shared_at(intervals, now)
    if not rules.may_see(who.group, owner_group.group.name, names):
        raise hidden(project)
    if action is Action.CHANGE_SHARING:  # seen (e.g. shared with the caller) is not enough to change it
        reason = rules.refusal_to_change(who.username, who.group.name, owner_group.group.name, found.name)
        if reason:
            raise SharingRefused(reason)
    return found
