"""What a caller may read of the catalogue: visible projects (paged), a project's pools, samples, runs, files.

Every function starts with the permission check of `seqshare.services.access` and runs a fixed number of
queries whatever the number of projects, pools, samples or runs (`selectinload`, one query per kind).

A run's files come from its frozen plan (`run_snapshot.plan`, written when the run's delivery started),
never from the run folder per request. Today's plans list the files of the pools delivered to an external
group; a pool whose files the plan does not list has `files = None` ("not listed"), never a made-up empty
list. If a plan carries a top-level `files` list (every pool's files: `pool`, `source`, `size`), it is used
for every pool. md5s come from `known_md5s`, the seam for server-side checksums.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from seqshare.db.models import Delivery, Pool, Project, Run, RunLane, RunSnapshot, User
from seqshare.errors import InvalidInput, NotFound, quote
from seqshare.services import access
from seqshare.services.access import Action

MAX_PAGE = 500
Access = Literal["owned", "shared"]


@dataclass(frozen=True)
class ProjectSummary:
    name: str
    owner: str
    owner_group: str
    access: Access  # "owned": by the caller's group; "shared": shared with it now
    pools: tuple[str, ...]


@dataclass(frozen=True)
class ProjectPage:
    projects: tuple[ProjectSummary, ...]
    next_cursor: str | None  # give it back as `cursor` for the next page; None: this was the last


@dataclass(frozen=True)
class SampleView:
    name: str
    pool: str
    index1: str | None
    index2: str | None


@dataclass(frozen=True)
class RunView:
    run_id: str
    flowcell: str | None
    instrument: str | None
    sequencing_started_at: datetime | None
    lanes: tuple[int, ...]  # lanes carrying any of the project's pools
    pools: tuple[str, ...]  # the project's pools on this run


@dataclass(frozen=True)
class ProjectDetail:
    name: str
    owner: str
    owner_group: str
    access: Access
    pools: tuple[str, ...]
    samples: tuple[SampleView, ...]
    runs: tuple[RunView, ...]


@dataclass(frozen=True)
class FileView:
    path: str  # relative to the run folder
    size: int
    md5: str | None  # None until a delivery (or, later, the server) computed it


@dataclass(frozen=True)
class PoolFiles:
    run_id: str
    pool: str
    files: tuple[FileView, ...] | None  # None: the run's frozen plan does not list this pool's files


def _cursor(name: str) -> str:
    return base64.urlsafe_b64encode(name.encode()).decode().rstrip("=")


def _after(cursor: str) -> str:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidInput(f"cursor {quote(cursor)} is not one this API gave; start without it") from None


def _access(who: access.Caller, project: Project) -> Access:
    return "owned" if project.owner.group_id == who.group_id else "shared"


def list_projects(
    session: Session, *, username: str, now: datetime, limit: int = 100, cursor: str | None = None
) -> ProjectPage:
    """The projects `username` sees, by name, `limit` at a time (keyset paging: stable under inserts)."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit {limit}: give 1 to {MAX_PAGE}")
    who = access.caller(session, username)
    query = (
        select(Project)
        .join(Project.owner)
        .where(access.visible(who, now))
        .options(selectinload(Project.pools), selectinload(Project.owner).selectinload(User.group))
        .order_by(Project.name)
        .limit(limit + 1)
    )
    if cursor is not None:
        query = query.where(Project.name > _after(cursor))
    found = list(session.scalars(query))
    page = found[:limit]
    return ProjectPage(
        projects=tuple(
            ProjectSummary(
                name=p.name,
                owner=p.owner.username,
                owner_group=p.owner.group.name,
                access=_access(who, p),
                pools=tuple(pool.name for pool in p.pools),
            )
            for p in page
        ),
        next_cursor=_cursor(page[-1].name) if len(found) > limit else None,
    )


def _visible_project(
    session: Session, username: str, project: str, now: datetime
) -> tuple[access.Caller, Project]:
    who = access.caller(session, username)
    found = access.check(session, who, Action.VIEW_PROJECT, project, now)
    loaded = session.scalar(
        select(Project)
        .where(Project.id == found.id)
        .options(
            selectinload(Project.pools).selectinload(Pool.samples),
            selectinload(Project.owner).selectinload(User.group),
        )
    )
    assert loaded is not None
    return who, loaded


def _lanes(session: Session, pool_ids: Iterable[int]) -> list[RunLane]:
    return list(
        session.scalars(
            select(RunLane)
            .where(RunLane.pool_id.in_(list(pool_ids)))
            .options(selectinload(RunLane.run), selectinload(RunLane.pool))
        )
    )


def project_detail(session: Session, *, username: str, project: str, now: datetime) -> ProjectDetail:
    """One visible project: its pools, samples (with index sequences) and the runs its pools were on."""
    who, proj = _visible_project(session, username, project, now)
    runs: dict[int, tuple[Run, set[int], set[str]]] = {}
    for lane in _lanes(session, (p.id for p in proj.pools)):
        entry = runs.setdefault(lane.run_id, (lane.run, set(), set()))
        entry[1].add(lane.lane)
        entry[2].add(lane.pool.name)
    return ProjectDetail(
        name=proj.name,
        owner=proj.owner.username,
        owner_group=proj.owner.group.name,
        access=_access(who, proj),
        pools=tuple(p.name for p in proj.pools),
        samples=tuple(
            SampleView(name=s.name, pool=p.name, index1=s.index1, index2=s.index2)
            for p in proj.pools
            for s in p.samples
        ),
        runs=tuple(
            RunView(
                run_id=run.run_id,
                flowcell=run.flowcell,
                instrument=run.instrument,
                sequencing_started_at=run.sequencing_started_at,
                lanes=tuple(sorted(lanes)),
                pools=tuple(sorted(pools)),
            )
            for run, lanes, pools in sorted(runs.values(), key=lambda r: r[0].run_id)
        ),
    )


def known_md5s(session: Session, run_ids: Iterable[int], pool_ids: Iterable[int]) -> dict[tuple, str]:
    """md5s known for run files: (run id, pool id, file name, size) -> md5.

    Today from the delivery ledger (a delivery computes each file's md5 while uploading it; the file name
    is unique within a pool's folder). The seam for server-side md5s: merge them in here.
    """
    rows = session.execute(
        select(Delivery.run_id, Delivery.pool_id, Delivery.remote_path, Delivery.size, Delivery.md5).where(
            Delivery.run_id.in_(list(run_ids)), Delivery.pool_id.in_(list(pool_ids))
        )
    )
    return {(run, pool, PurePosixPath(path).name, size): md5 for run, pool, path, size, md5 in rows}


def _plan_files(plan: Mapping[str, Any] | None) -> dict[str, dict[str, int]]:
    """pool -> {path relative to the run folder: size}, as the frozen plan lists them."""
    listed: dict[str, dict[str, int]] = {}
    if not plan:
        return listed
    everything = plan.get("files")
    sources = everything if everything is not None else [f for g in plan["groups"] for f in g["files"]]
    for f in sources:
        listed.setdefault(f["pool"], {})[f["source"]] = f["size"]
    return listed


def project_files(
    session: Session, *, username: str, project: str, now: datetime, run_id: str | None = None
) -> list[PoolFiles]:
    """The files of each of the project's pools on each of its runs (or on `run_id` only)."""
    _, proj = _visible_project(session, username, project, now)
    pools = {p.id: p.name for p in proj.pools}
    lanes = _lanes(session, pools)
    if run_id is not None:
        lanes = [lane for lane in lanes if lane.run.run_id == run_id]
        if not lanes:
            raise NotFound(f"project {proj.name} has no pool on run {quote(run_id)}")
    on_run = sorted({(lane.run.run_id, lane.run_id, lane.pool.name, lane.pool_id) for lane in lanes})
    run_keys = {key for _, key, _, _ in on_run}
    listed_by_run = {
        s.run_id: _plan_files(s.plan)
        for s in session.scalars(select(RunSnapshot).where(RunSnapshot.run_id.in_(run_keys)))
    }
    md5s = known_md5s(session, run_keys, pools)
    answer = []
    for run_name, run_key, pool, pool_id in on_run:
        listed = listed_by_run.get(run_key, {}).get(pool)
        files = (
            None
            if listed is None
            else tuple(
                FileView(
                    path=path,
                    size=size,
                    md5=md5s.get((run_key, pool_id, PurePosixPath(path).name, size)),
                )
                for path, size in sorted(listed.items())
            )
        )
        answer.append(PoolFiles(run_id=run_name, pool=pool, files=files))
    return answer
