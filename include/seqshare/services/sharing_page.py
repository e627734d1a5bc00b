"""What the Data Sharing page shows, read with a fixed number of queries whatever the number of projects.

The rules stay where they are: whom a user may share with is `sharing.shareable_groups`, a change is
`sharing.set_sharing_now`; this module only gathers what the page says about them (pools sequenced or not,
time to live, delivery history). A project outside the user's group is `access.hidden`: word for word a
missing one.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from seqshare import config
from seqshare.db.models import Delivery, Group, Pool, Project, Run, RunLane, Share, User
from seqshare.errors import NotFound
from seqshare.rules import GroupKind
from seqshare.services import access, lookup, sharing
from seqshare.services.views import GroupView, ProjectView


def _open_shares(session: Session, which: ColumnElement[bool]) -> dict[int, list[GroupView]]:
    """project id → the groups it is shared with now (open shares), by name, for the shares `which` picks
    (a condition on `Share.project_id`; a subquery rather than a list of ids keeps it one query)."""
    shared: dict[int, list[GroupView]] = defaultdict(list)
    rows = session.execute(
        select(Share.project_id, Group)
        .join(Group, Group.id == Share.group_id)
        .where(which, Share.revoked_at.is_(None))
    )
    for project_id, group in rows:
        shared[project_id].append(GroupView.of(group))
    for groups in shared.values():
        groups.sort(key=lambda g: g.name.casefold())
    return shared


def group_projects(session: Session, username: str) -> list[ProjectView]:
    """The projects of the user and of the other members of the user's group, by name, in four queries
    whatever their number: the user, the projects with their owners, their pools, their open shares.
    (No `selectinload`: it sends one more query per 500 parents.)"""
    actor = lookup.user(session, username)
    of_group = (
        select(Project.id).join(User, User.id == Project.owner_id).where(User.group_id == actor.group_id)
    )
    rows = session.execute(
        select(Project.id, Project.name, User.username, Group.name)
        .join(User, User.id == Project.owner_id)
        .join(Group, Group.id == User.group_id)
        .where(User.group_id == actor.group_id)
        .order_by(Project.name)
    ).all()
    pools: dict[int, list[str]] = defaultdict(list)
    for project_id, pool in session.execute(
        select(Pool.project_id, Pool.name).where(Pool.project_id.in_(of_group)).order_by(Pool.name)
    ):
        pools[project_id].append(pool)
    shared = _open_shares(session, Share.project_id.in_(of_group))
    return [
        ProjectView(
            name=name,
            owner=owner,
            owner_group=group,
            shared_with=tuple(shared.get(project_id, ())),
            pools=tuple(pools.get(project_id, ())),
        )
        for project_id, name, owner, group in rows
    ]


def own_project(session: Session, username: str, project: str) -> Project:
    """The project if it belongs to the user's group; else exactly the error of a missing project."""
    actor = lookup.user(session, username)
    try:
        found = lookup.project(session, project)
    except NotFound:
        raise access.hidden(project) from None
    if found.owner.group_id != actor.group_id:
        raise access.hidden(project)
    return found


@dataclass(frozen=True)
class Sequenced:
    run_id: str
    started_at: datetime | None


@dataclass(frozen=True)
class PoolState:
    pool: str
    runs: tuple[Sequenced, ...]  # empty: not yet sequenced (will be sent to external groups shared with)


@dataclass(frozen=True)
class Delivered:
    """One run's delivery of one pool to one group, from the ledger."""

    run_id: str
    group: str
    pool: str
    files: int
    delivered_at: datetime
    expires_at: datetime
    purged: int  # files already removed after their expiry

    @property
    def removed(self) -> bool:
        return self.purged >= self.files


@dataclass(frozen=True)
class GroupChoice:
    group: GroupView
    ticked: bool
    ttl: timedelta  # how long copies delivered to it stay (its own, else the default)
    received: tuple[Delivered, ...] = ()  # what the ledger says this group already got of the project

    @property
    def external(self) -> bool:
        return self.group.kind is GroupKind.EXTERNAL


@dataclass(frozen=True)
class SharingPage:
    project: ProjectView
    choices: tuple[GroupChoice, ...]
    pools: tuple[PoolState, ...]
    deliveries: tuple[Delivered, ...]

    @property
    def waiting(self) -> tuple[str, ...]:
        return tuple(p.pool for p in self.pools if not p.runs)

    @property
    def sequenced(self) -> tuple[PoolState, ...]:
        return tuple(p for p in self.pools if p.runs)

    def not_sent(self, choice: GroupChoice) -> tuple[PoolState, ...]:
        """The sequenced pools, with their runs, that `choice`'s group did not receive on those runs: sharing
        now will not send them (a pool it did receive is said as delivered, not as "will not be sent")."""
        got = {(d.pool, d.run_id) for d in choice.received}
        left = (
            PoolState(p.pool, tuple(r for r in p.runs if (p.pool, r.run_id) not in got))
            for p in self.sequenced
        )
        return tuple(p for p in left if p.runs)


def sharing_page(session: Session, username: str, project: str) -> SharingPage:
    """Everything the project's page shows, for a member of its owner's group."""
    proj = own_project(session, username, project)
    offered = sharing.shareable_groups(session, username, proj.name)
    shared = _open_shares(session, Share.project_id == proj.id).get(proj.id, [])
    current = {g.name for g in shared}
    ttl_days = dict(session.execute(select(Group.name, Group.ttl_days)).all())
    default_ttl = config.default_ttl()
    # a group shared with today but no longer offered (e.g. its kind changed) stays listed, ticked
    listed = {g.name: g for g in [*offered, *shared]}
    pool_ids = {p.id: p.name for p in proj.pools}
    runs: dict[str, dict[str, Sequenced]] = {name: {} for name in pool_ids.values()}
    if pool_ids:
        for pool_name, run_id, started in session.execute(
            select(Pool.name, Run.run_id, Run.sequencing_started_at)
            .join(RunLane, RunLane.pool_id == Pool.id)
            .join(Run, Run.id == RunLane.run_id)
            .where(Pool.id.in_(pool_ids))
        ):
            runs[pool_name][run_id] = Sequenced(run_id, started)
    pools = tuple(
        PoolState(name, tuple(sorted(runs[name].values(), key=lambda r: (r.started_at is None, r.run_id))))
        for name in sorted(pool_ids.values())
    )
    deliveries = tuple(
        Delivered(run_id, group, pool, files, first, last, purged or 0)
        for run_id, group, pool, files, first, last, purged in session.execute(
            select(
                Run.run_id,
                Group.name,
                Pool.name,
                func.count(Delivery.id),
                func.min(Delivery.delivered_at),
                func.max(Delivery.expires_at),
                func.count(Delivery.purged_at),
            )
            .join(Run, Run.id == Delivery.run_id)
            .join(Group, Group.id == Delivery.group_id)
            .join(Pool, Pool.id == Delivery.pool_id)
            .where(Pool.project_id == proj.id)
            .group_by(Run.run_id, Group.name, Pool.name)
            .order_by(Run.run_id, Group.name, Pool.name)
        )
    )
    choices = tuple(
        GroupChoice(
            group=g,
            ticked=g.name in current,
            ttl=timedelta(days=ttl_days[g.name]) if ttl_days.get(g.name) else default_ttl,
            received=tuple(d for d in deliveries if d.group == g.name),
        )
        for g in sorted(listed.values(), key=lambda g: g.name.casefold())
    )
    view = ProjectView(
        name=proj.name,
        owner=proj.owner.username,
        owner_group=proj.owner.group.name,
        shared_with=tuple(shared),
        pools=tuple(sorted(pool_ids.values())),
    )
    return SharingPage(view, choices, pools, deliveries)


def current_groups(session: Session, username: str, project: str) -> tuple[str, ...]:
    """The groups the project is shared with now, by name (for the stale-form check and the confirmation)."""
    proj = own_project(session, username, project)
    shares = _open_shares(session, Share.project_id == proj.id)
    return tuple(g.name for g in shares.get(proj.id, []))
