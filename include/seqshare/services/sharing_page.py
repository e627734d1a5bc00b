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

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from seqshare import config
from seqshare.db.models import Delivery, Group, Pool, Project, Run, RunLane, Share, User
from seqshare.errors import NotFound
from seqshare.rules import GroupKind
from seqshare.services import access, lookup, sharing
from seqshare.services.views import GroupView, ProjectView


def _open_shares(session: Session, project_ids: list[int]) -> dict[int, list[GroupView]]:
    """project id → the groups it is shared with now (open shares), by name: one query."""
    shared: dict[int, list[GroupView]] = defaultdict(list)
    if not project_ids:
        return shared
    rows = session.execute(
        select(Share.project_id, Group)
        .join(Group, Group.id == Share.group_id)
        .where(Share.project_id.in_(project_ids), Share.revoked_at.is_(None))
    )
    for project_id, group in rows:
        shared[project_id].append(GroupView.of(group))
    for groups in shared.values():
        groups.sort(key=lambda g: g.name.casefold())
    return shared


def group_projects(session: Session, username: str) -> list[ProjectView]:
    """The projects of the user and of the other members of the user's group, by name (three queries:
    the user, the projects with owners and pools, the open shares)."""
    actor = lookup.user(session, username)
    projects = list(
        session.scalars(
            select(Project)
            .join(Project.owner)
            .where(User.group_id == actor.group_id)
            .options(selectinload(Project.pools), selectinload(Project.owner).selectinload(User.group))
            .order_by(Project.name)
        )
    )
    shared = _open_shares(session, [p.id for p in projects])
    return [
        ProjectView(
            name=p.name,
            owner=p.owner.username,
            owner_group=p.owner.group.name,
            shared_with=tuple(shared.get(p.id, ())),
            pools=tuple(pool.name for pool in p.pools),
        )
        for p in projects
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
class GroupChoice:
    group: GroupView
    ticked: bool
    ttl: timedelta  # how long copies delivered to it stay (its own, else the default)

    @property
    def external(self) -> bool:
        return self.group.kind is GroupKind.EXTERNAL


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


def sharing_page(session: Session, username: str, project: str) -> SharingPage:
    """Everything the project's page shows, for a member of its owner's group."""
    proj = own_project(session, username, project)
    offered = sharing.shareable_groups(session, username, proj.name)
    shared = _open_shares(session, [proj.id]).get(proj.id, [])
    current = {g.name for g in shared}
    ttl_days = dict(session.execute(select(Group.name, Group.ttl_days)).all())
    default_ttl = config.default_ttl()
    # a group shared with today but no longer offered (e.g. its kind changed) stays listed, ticked
    listed = {g.name: g for g in [*offered, *shared]}
    choices = tuple(
        GroupChoice(
            group=g,
            ticked=g.name in current,
            ttl=timedelta(days=ttl_days[g.name]) if ttl_days.get(g.name) else default_ttl,
        )
        for g in sorted(listed.values(), key=lambda g: g.name.casefold())
    )
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
    return tuple(g.name for g in _open_shares(session, [proj.id]).get(proj.id, []))
