"""Sharing services: what a user sees, whom they may share with, Set Sharing, Do Not Share, snapshots."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from seqshare import rules
from seqshare.db.engine import lost_race
from seqshare.db.models import AuditAction, AuditEvent, Group, Project, Share, User
from seqshare.errors import ConcurrentChange, InvalidInput, SharingRefused, StaleChange
from seqshare.services import lookup
from seqshare.services.views import GroupView, ProjectView, ShareRecord, SharingChange


def _require_aware(instant: datetime, what: str) -> None:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise InvalidInput(f"{what} {instant.isoformat()} has no time zone; give one, e.g. +00:00")


def _open_shares(session: Session, project: Project) -> list[Share]:
    return list(
        session.scalars(
            select(Share)
            .where(Share.project_id == project.id, Share.revoked_at.is_(None))
            .options(selectinload(Share.group))
        )
    )


def _sorted_groups(groups: Iterable[Group]) -> tuple[GroupView, ...]:
    return tuple(sorted((GroupView.of(g) for g in groups), key=lambda g: g.name.casefold()))


def _project_view(session: Session, project: Project) -> ProjectView:
    return ProjectView(
        name=project.name,
        owner=project.owner.username,
        owner_group=project.owner.group.name,
        shared_with=_sorted_groups(s.group for s in _open_shares(session, project)),
        pools=tuple(p.name for p in project.pools),
    )


def visible_projects(session: Session, username: str) -> list[ProjectView]:
    """The projects of the user and of the other members of the user's group, by name."""
    actor = lookup.user(session, username)
    projects = session.scalars(
        select(Project)
        .join(Project.owner)
        .where(User.group_id == actor.group_id)
        .options(selectinload(Project.pools), selectinload(Project.owner).selectinload(User.group))
        .order_by(Project.name)
    )
    return [_project_view(session, p) for p in projects]


def project_view(session: Session, project: str) -> ProjectView:
    return _project_view(session, lookup.project(session, project))


def shareable_groups(session: Session, username: str, project: str) -> list[GroupView]:
    """The groups `username` may pick for `project` on the Data Sharing page (refuses non-members)."""
    actor = lookup.user(session, username)
    proj = lookup.project(session, project)
    _authorize(actor, proj)
    offered = rules.shareable(
        GroupView.of(actor.group).ref,
        GroupView.of(proj.owner.group).ref,
        (GroupView.of(g).ref for g in session.scalars(select(Group))),
    )
    names = {g.name for g in offered}
    return list(_sorted_groups(g for g in session.scalars(select(Group)) if g.name in names))


def _authorize(actor: User, project: Project) -> None:
    reason = rules.refusal_to_change(actor.username, actor.group.name, project.owner.group.name, project.name)
    if reason:
        raise SharingRefused(reason)


def _last_change(session: Session, project: Project) -> datetime | None:
    """The instant of the project's latest grant or revocation: a new change may not be dated before it."""
    return max(
        (
            t
            for s in session.scalars(select(Share).where(Share.project_id == project.id))
            for t in (s.granted_at, s.revoked_at)
            if t is not None
        ),
        default=None,
    )


def set_sharing(
    session: Session,
    *,
    project: str,
    groups: Iterable[str],
    actor: str,
    now: datetime,
    via: str = "cli",
    expected_before: Iterable[str] | None = None,
) -> SharingChange:
    """Set Sharing: the project is shared with exactly `groups` from `now` on (an empty set clears).

    All or nothing: a refused or unknown group refuses the whole change and writes nothing. Groups kept
    from before are not re-granted (their interval simply continues); only added groups are checked
    against the rules, so a share that was allowed when granted can be kept.

    The project is locked for the rest of the transaction, so changes of one project never interleave.
    `now` is the caller's: the demo and tests record history at fixed instants, and a `now` earlier
    than the last change is refused (history cannot be rewritten). A person changing the sharing as of
    the present goes through `set_sharing_now`, which reads the clock only once it holds the lock.
    `expected_before` (the groups a page's form was shown with) is compared under the same lock: if the
    project's groups differ, StaleChange is raised and nothing is written.
    """
    _require_aware(now, "time of change")
    user = lookup.user(session, actor)
    proj = lookup.project(session, project, for_update=True)
    _authorize(user, proj)
    wanted = {name: lookup.group(session, name) for name in dict.fromkeys(groups)}

    open_shares = {s.group.name: s for s in _open_shares(session, proj)}
    if expected_before is not None and set(expected_before) != set(open_shares):
        now_shared = ", ".join(sorted(open_shares, key=str.casefold)) or "no group"
        raise StaleChange(
            f"the sharing of {proj.name} changed since the form was shown (it is now shared with "
            f"{now_shared}); nothing was changed"
        )
    actor_ref, owner_ref = GroupView.of(user.group).ref, GroupView.of(proj.owner.group).ref
    for name, group in wanted.items():
        if name in open_shares:
            continue
        reason = rules.refusal_to_share(actor_ref, owner_ref, GroupView.of(group).ref)
        if reason:
            raise SharingRefused(f"cannot share project {proj.name} with {name}: {reason}")

    last = _last_change(session, proj)
    if last is not None and last > now:
        raise InvalidInput(
            f"the last sharing change of {proj.name} is later than {now.isoformat()}; "
            "history cannot be rewritten"
        )

    def names(groups: Iterable[str]) -> tuple[str, ...]:
        return tuple(sorted(groups, key=str.casefold))

    change = SharingChange(project=proj.name, before=names(open_shares), after=names(wanted), at=now)
    if not change.changed:
        return change
    for name, share in open_shares.items():
        if name not in wanted:
            share.revoked_at, share.revoked_by_id = now, user.id
    for name, group in wanted.items():
        if name not in open_shares:
            session.add(Share(project_id=proj.id, group_id=group.id, granted_at=now, granted_by_id=user.id))
    session.add(
        AuditEvent(
            at=now,
            actor=user.username,
            project_id=proj.id,
            via=via,
            action=AuditAction.SHARE_SET if wanted else AuditAction.SHARE_CLEAR,
            before=list(change.before),
            after=list(change.after),
        )
    )
    session.flush()
    return change


def set_sharing_now(
    sessions: sessionmaker[Session],
    *,
    project: str,
    groups: Iterable[str],
    actor: str,
    clock: Callable[[], datetime],
    via: str = "cli",
    attempts: int = 3,
    sleep: Callable[[float], None] = time.sleep,
    expected_before: Iterable[str] | None = None,
) -> SharingChange:
    """Set Sharing as of the present, in its own transaction: what a person at the CLI or a page expects.

    `now` is read from `clock` only after the project is locked, so every change committed while this
    one waited for the lock is earlier than its `now`, and the change goes through whatever the race.
    What can still go wrong is retried with a fresh transaction and a fresh `now`, up to `attempts`
    times, then refused with ConcurrentChange (nothing changed):
    - the database gave up the transaction for a concurrent one (`seqshare.db.engine.lost_race`);
    - the clock reads earlier than the last change (another host's clock ahead, or this one stepped
      back): the retry waits out the gap, up to a second each time.
    """
    groups = tuple(groups)
    expected = None if expected_before is None else tuple(expected_before)
    why = ""
    for attempt in range(1, attempts + 1):
        try:
            with sessions.begin() as session:
                proj = lookup.project(session, project, for_update=True)
                now = clock()
                _require_aware(now, "time of change")
                last = _last_change(session, proj)
                if last is None or last <= now:
                    return set_sharing(
                        session,
                        project=project,
                        groups=groups,
                        actor=actor,
                        now=now,
                        via=via,
                        expected_before=expected,
                    )
                why = f"its last change is later than this host's clock, by {last - now}"
                wait = (last - now).total_seconds()
        except DBAPIError as exc:
            why, wait = lost_race(exc) or "", 0.05 * attempt
            if not why:
                raise
        if attempt < attempts:
            sleep(min(wait, 1.0))
    raise ConcurrentChange(
        f"the sharing of {project} was not changed after {attempts} attempts ({why}); try again"
    )


def clear_sharing(
    session: Session, *, project: str, actor: str, now: datetime, via: str = "cli"
) -> SharingChange:
    """Do Not Share: revoke every group the project is shared with."""
    return set_sharing(session, project=project, groups=(), actor=actor, now=now, via=via)


def shared_at(session: Session, project: str, instant: datetime) -> list[GroupView]:
    """The groups the project was shared with at `instant`: the snapshot rule for deliveries.

    A share counts from its grant (inclusive) to its revocation (exclusive).
    """
    _require_aware(instant, "instant")
    proj = lookup.project(session, project)
    shares = session.scalars(
        select(Share)
        .where(
            Share.project_id == proj.id,
            Share.granted_at <= instant,
            or_(Share.revoked_at.is_(None), Share.revoked_at > instant),
        )
        .options(selectinload(Share.group))
    )
    return list(_sorted_groups({s.group_id: s.group for s in shares}.values()))


def history(session: Session, project: str) -> list[ShareRecord]:
    """Every share interval of the project, oldest grant first (then by group name)."""
    proj = lookup.project(session, project)
    shares = session.scalars(
        select(Share)
        .where(Share.project_id == proj.id)
        .order_by(Share.granted_at, Share.id)
        .options(selectinload(Share.group), selectinload(Share.granted_by), selectinload(Share.revoked_by))
    )
    shares = sorted(shares, key=lambda s: (s.granted_at, s.group.name.casefold(), s.id))
    return [
        ShareRecord(
            group=s.group.name,
            granted_at=s.granted_at,
            granted_by=s.granted_by.username,
            revoked_at=s.revoked_at,
            revoked_by=s.revoked_by.username if s.revoked_by else None,
        )
        for s in shares
    ]
