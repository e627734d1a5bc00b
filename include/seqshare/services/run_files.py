"""Which files a caller may fetch: a pool's files on a run are exactly those the run's frozen plan lists
for that pool (`DeliveryPlan.files`, or the groups' files in plans frozen before it listed every pool):
nothing else in a run folder is ever served, whatever name is asked for. Visibility is checked afresh on
every call (`services.access`); a hidden pool, a missing one, a missing run and a file that is not the
pool's all raise the same NotFound. Reading the file itself, its version and md5: `services.files`.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePosixPath

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from seqshare.db.models import Pool, Project, Run, RunLane, RunSnapshot, User
from seqshare.delivery.plan import DeliveryPlan, SourceFile
from seqshare.errors import InvalidInput, NotFound, quote
from seqshare.names import not_text
from seqshare.services import access
from seqshare.services.access import Action

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunFile:
    """A file of a pool on a run, as the run's frozen plan lists it."""

    run_id: str
    run_key: int
    pool: str
    pool_id: int
    project: str
    source: str  # relative to the run folder (or absolute, for an output folder kept elsewhere)
    size: int  # as planned
    resolved: str | None  # the file the source resolved to when the plan was frozen
    run_folder: str
    output_dir: str | None

    @property
    def name(self) -> str:
        return PurePosixPath(self.source).name

    @property
    def path(self) -> str:
        """Where a client stores it: `<run id>/<pool>/<file name>`."""
        return f"{self.run_id}/{self.pool}/{self.name}"


def no_such_file(run_id: str, pool: str, name: str) -> NotFound:
    """The one answer for a hidden pool, a missing one, a missing run and a file that is not the pool's."""
    return NotFound(f"no such file: {quote(f'{run_id}/{pool}/{name}')}")


def no_such_target(target: str) -> NotFound:
    return NotFound(f"no such pool or project: {quote(target)}")


# What every file request asks, built once: building a statement (and its cache key) anew on each call cost
# more CPU than running it.
_FROZEN_AT = select(RunSnapshot.run_id, RunSnapshot.frozen_at).where(
    RunSnapshot.run_id.in_(bindparam("runs", expanding=True))
)
_RUNS = (
    select(RunLane.run_id, RunLane.pool_id, Run.run_id)
    .join(Run, Run.id == RunLane.run_id)
    .where(RunLane.pool_id.in_(bindparam("pools", expanding=True)))
    .distinct()
)
_RUN = _RUNS.where(Run.run_id == bindparam("run"))
_POOL = select(Pool.id, Pool.name, Project.name).join(Project).where(Pool.name == bindparam("pool"))


def _plan_files(plan: DeliveryPlan) -> list[SourceFile]:
    if plan.files:
        return list(plan.files)
    seen = {
        (f.pool, f.source): SourceFile(f.pool, f.source, f.size, f.resolved)
        for g in plan.groups
        for f in g.files
    }
    return [seen[k] for k in sorted(seen)]


@dataclass(frozen=True)
class _FrozenFiles:
    """What a file request needs of a run's frozen plan: where the run is, and each pool's files."""

    run_folder: str
    output_dir: str | None
    by_pool: dict[str, tuple[SourceFile, ...]]


class PlanFiles:
    """The pool files of frozen plans, parsed once per process and kept for the most recent runs.

    A run's plan is written once, when its snapshot is frozen, and never changes (`services.runs`), so a
    file request needs only the snapshot's key: before, every request loaded and parsed the whole plan, and
    a NovaSeq X run's plan lists 10,000+ files (about 3 MB of JSON, 30 ms of CPU to parse) for each file
    fetched. Keyed by (run, frozen_at): a plan frozen anew (a database restored) is read anew. One per app
    (`web.app`), never shared between databases; thread-safe (the API serves requests on threads).
    """

    def __init__(self, runs: int = 32) -> None:
        self._runs = runs
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple[int, datetime], _FrozenFiles | None] = OrderedDict()

    def frozen(self, session: Session, run_keys: Iterable[int]) -> dict[int, _FrozenFiles]:
        """The frozen files of each of `run_keys` that has a frozen plan."""
        keys = dict(session.execute(_FROZEN_AT, {"runs": list(set(run_keys))}).all())
        found: dict[int, _FrozenFiles | None] = {}
        with self._lock:
            for run_key, frozen_at in keys.items():
                if (run_key, frozen_at) in self._cache:
                    self._cache.move_to_end((run_key, frozen_at))
                    found[run_key] = self._cache[(run_key, frozen_at)]
        missing = set(keys) - set(found)
        if missing:
            for snapshot in session.scalars(select(RunSnapshot).where(RunSnapshot.run_id.in_(missing))):
                found[snapshot.run_id] = _parse(snapshot.plan)
                with self._lock:
                    self._cache[(snapshot.run_id, keys[snapshot.run_id])] = found[snapshot.run_id]
                    while len(self._cache) > self._runs:
                        self._cache.popitem(last=False)
        return {run_key: files for run_key, files in found.items() if files is not None}


def _parse(plan_data: object) -> _FrozenFiles | None:
    if not plan_data:
        return None
    plan = DeliveryPlan.from_dict(plan_data)  # type: ignore[arg-type]
    by_pool: dict[str, list[SourceFile]] = {}
    for f in _plan_files(plan):
        by_pool.setdefault(f.pool, []).append(f)
    return _FrozenFiles(plan.run_folder, plan.output_dir, {p: tuple(fs) for p, fs in by_pool.items()})


def _files_of(
    session: Session,
    pools: dict[int, str],
    project: str,
    run_id: str | None,
    plans: PlanFiles | None = None,
) -> list[RunFile]:
    """The files of `pools` (id -> name) on each run they were sequenced on (or on `run_id` only), by run
    and name. A name held twice in a pool is served under neither (a frozen plan never has that; logged if
    one does). Two queries (the runs, the frozen plans' keys): a file request pays them every time."""
    if run_id is None:
        rows = session.execute(_RUNS, {"pools": list(pools)})
    else:
        rows = session.execute(_RUN, {"pools": list(pools), "run": run_id})
    runs: dict[int, str] = {}
    pairs: set[tuple[int, int]] = set()
    for run_key, pool_id, run_name in rows:
        runs[run_key] = run_name
        pairs.add((run_key, pool_id))
    frozen = (plans or PlanFiles()).frozen(session, set(runs))
    found: dict[tuple[str, str, str], RunFile | None] = {}
    for run_key, pool_id in sorted(pairs, key=lambda rp: (runs[rp[0]], pools[rp[1]])):
        plan = frozen.get(run_key)
        if plan is None:  # not frozen yet: its files are not known
            continue
        pool = pools[pool_id]
        for f in plan.by_pool.get(pool, ()):
            rf = RunFile(
                run_id=runs[run_key],
                run_key=run_key,
                pool=pool,
                pool_id=pool_id,
                project=project,
                source=f.source,
                size=f.size,
                resolved=f.resolved,
                run_folder=plan.run_folder,
                output_dir=plan.output_dir,
            )
            key = (rf.run_id, pool, rf.name)
            if key in found:
                log.warning("%s is listed twice in the frozen plan: not served", rf.path)
                found[key] = None
            else:
                found[key] = rf
    return [f for f in found.values() if f is not None]


def _visible_pools(
    session: Session, who: access.Caller, target: str, now: datetime
) -> tuple[str, dict[int, str]]:
    """The project and pools (id -> name) `target` (a pool id, else a project name) names, if `who` may
    see them."""
    if not_text(target):
        raise no_such_target(target)
    pool = session.execute(_POOL, {"pool": target}).one_or_none()
    name = pool[2] if pool is not None else target
    try:
        project = access.check(session, who, Action.VIEW_PROJECT, name, now)
    except NotFound:
        raise no_such_target(target) from None
    pools = {pool[0]: pool[1]} if pool is not None else {p.id: p.name for p in project.pools}
    return project.name, pools


def downloadable(
    session: Session,
    *,
    username: str,
    target: str,
    now: datetime,
    run_id: str | None = None,
    plans: PlanFiles | None = None,
    who: access.Caller | None = None,
) -> tuple[str, list[RunFile]]:
    """(project name, the files of the pool or project `target` on its runs, or on `run_id` only); `who`:
    the caller, if the transaction has found them already."""
    try:
        who = who or access.caller(session, username)
        project, pools = _visible_pools(session, who, target, now)
    except InvalidInput:  # a name no record can have: missing, like any other
        raise no_such_target(target) from None
    return project, _files_of(session, pools, project, run_id, plans)


def find_file(
    session: Session,
    *,
    username: str,
    run_id: str,
    pool: str,
    name: str,
    now: datetime,
    plans: PlanFiles | None = None,
    who: access.Caller | None = None,
) -> RunFile:
    """The file `name` of `pool` on `run_id`, if the caller may see the pool now; else `no_such_file`.

    Every file request asks this, so the pool and the visibility of its project are one query
    (`access.visible`: the visibility rule in SQL, held equal to `access.check` by tests/web/test_api.py)."""
    try:
        who = who or access.caller(session, username)
    except (NotFound, InvalidInput):
        raise no_such_file(run_id, pool, name) from None
    found = session.execute(
        select(Pool.id, Pool.name, Project.name)
        .join(Project, Project.id == Pool.project_id)
        .join(User, User.id == Project.owner_id)
        .where(Pool.name == pool, access.visible(who, now))
    ).one_or_none()
    if found is None:  # no such pool, or one the caller may not see now: the same answer
        raise no_such_file(run_id, pool, name)
    pool_id, pool_name, project = found
    for f in _files_of(session, {pool_id: pool_name}, project, run_id, plans):
        if f.name == name:
            return f
    raise no_such_file(run_id, pool, name)
