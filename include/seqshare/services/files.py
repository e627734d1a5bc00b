"""The download API's rules: which files a caller may fetch, the file itself, its md5, and the record.

A pool's files on a run are exactly those the run's frozen plan lists for that pool (`DeliveryPlan.files`,
or the groups' files in plans frozen before it listed every pool): nothing else in a run folder is ever
served, whatever name is asked for. Each is checked again when opened, as delivery checks it: the path must
still resolve to the file frozen in the plan (`services.delivery.check_own_file`), it is opened without
following a last link, and the opened descriptor must be that very file. Visibility is checked afresh on
every call (`services.access`); a hidden pool, a missing one, a missing run and a file that is not the
pool's all raise the same NotFound.

A file version is its `(device, inode, size, mtime_ns, ctime_ns)`; its md5 is computed once per version from
the open file (or taken from the delivery ledger when the file is provably unchanged since it was delivered),
stored in `file_checksum`, and reused. No database transaction is held while a file is read.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath

from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from seqshare.db.models import Delivery, FileChecksum, Pool, Project, Run, RunLane, RunSnapshot, User
from seqshare.delivery.plan import DeliveryPlan, PlannedFile, SourceFile
from seqshare.errors import InvalidInput, NotFound, SeqshareError, quote
from seqshare.names import not_text
from seqshare.services import access
from seqshare.services.access import Action
from seqshare.services.delivery import check_own_file

log = logging.getLogger(__name__)
CHUNK = 1024 * 1024
"""Bytes read per call: memory per download stays at about one chunk, whatever the file's size."""


class FileChanged(SeqshareError):
    """The file changed on the server while it was read, or since the version the caller names."""


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


@dataclass(frozen=True)
class Version:
    """What identifies one version of a file; `tag` is the API's ETag."""

    dev: int
    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> Version:
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    @property
    def tag(self) -> str:
        """`<dev>-<inode>-<size>-<mtime_ns>-<ctime_ns>` in hex, at most 78 characters on Linux (the column
        holds 80). The ctime is what no user can set back: a file rewritten in place with its size and mtime
        restored (`cp -p`, `rsync --inplace -t`) is a new version all the same, so a stored md5 or an ETag
        of the old bytes never matches it (rows stored under the older 3-part tag simply stop matching)."""
        return f"{self.dev:x}-{self.inode:x}-{self.size:x}-{self.mtime_ns:x}-{self.ctime_ns:x}"


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
_STORED = select(FileChecksum.md5).where(
    FileChecksum.run_id == bindparam("run"),
    FileChecksum.pool_id == bindparam("pool"),
    FileChecksum.path == bindparam("path"),
    FileChecksum.version == bindparam("version"),
)


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


@dataclass
class OpenFile:
    """A run file opened for reading: the descriptor, the path it was judged at, its version at opening."""

    fd: int
    path: Path
    version: Version

    def changed(self) -> str | None:
        """What changed since it was opened, on the open file or at its path; None if nothing did. Two
        stat calls: cheap enough to ask before every chunk is sent."""
        try:
            there = os.stat(self.path)
        except OSError as exc:
            return f"removed ({exc.strerror})"
        if (there.st_dev, there.st_ino) != (self.version.dev, self.version.inode):
            return "replaced by another file"
        now = Version.of(os.fstat(self.fd))
        if (now.size, now.mtime_ns, now.ctime_ns) != (
            self.version.size,
            self.version.mtime_ns,
            self.version.ctime_ns,
        ):
            return f"modified ({now.size} bytes now, {self.version.size} when opened)"
        return None

    def read(self, offset: int, size: int = CHUNK) -> bytes:
        return os.pread(self.fd, size, offset)

    def close(self) -> None:
        """Close it (again: nothing)."""
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)


def open_file(f: RunFile) -> OpenFile:
    """Open `f` for reading if it is still the pool's own file (else `no_such_file`, the reason logged)."""
    local = Path(f.run_folder) / f.source
    planned = PlannedFile(pool=f.pool, source=f.source, remote_path=f.path, size=f.size, resolved=f.resolved)
    root = Path(f.run_folder).resolve()  # the areas delivery reads from (`source_areas`)
    areas = (root, None if f.output_dir is None else (root / f.output_dir).resolve())
    try:
        target = check_own_file(local, planned, areas)
        fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except (InvalidInput, OSError) as exc:
        log.warning("not serving %s: %s", f.path, exc)
        raise no_such_file(f.run_id, f.pool, f.name) from None
    try:
        st = os.fstat(fd)
        opened = os.path.realpath(f"/proc/self/fd/{fd}") if os.path.isdir("/proc/self/fd") else str(target)
        if not stat.S_ISREG(st.st_mode) or opened != str(target):  # a folder swapped in between
            raise InvalidInput(f"{local}: opened {opened}, not the regular file {target}")
    except (InvalidInput, OSError) as exc:
        os.close(fd)
        log.warning("not serving %s: %s", f.path, exc)
        raise no_such_file(f.run_id, f.pool, f.name) from None
    return OpenFile(fd=fd, path=target, version=Version.of(st))


@contextmanager
def opened(f: RunFile) -> Iterator[OpenFile]:
    handle = open_file(f)
    try:
        yield handle
    finally:
        handle.close()


def compute_md5(handle: OpenFile) -> str:
    """The md5 of the whole open file, read in chunks; FileChanged if it changed meanwhile."""
    digest = hashlib.md5(usedforsecurity=False)
    offset = 0
    while chunk := handle.read(offset):
        digest.update(chunk)
        offset += len(chunk)
    reason = handle.changed()
    if reason or offset != handle.version.size:
        raise FileChanged(
            f"file changed on the server: {handle.path.name} was {reason or 'resized'} while read"
        )
    return digest.hexdigest()


_hashing_lock = threading.Lock()
_hashing: dict[tuple[int, int, str, str], threading.Lock] = {}


def _stored(session: Session, f: RunFile, version: Version) -> str | None:
    found = {"run": f.run_key, "pool": f.pool_id, "path": f.source, "version": version.tag}
    return session.execute(_STORED, found).scalar()


def _from_ledger(session: Session, f: RunFile, version: Version) -> str | None:
    """A delivery's md5 of this file, if the file has not been touched since that delivery (its size is the
    same and neither its mtime nor its ctime is later than the delivery)."""
    rows = session.execute(
        select(Delivery.remote_path, Delivery.size, Delivery.md5, Delivery.delivered_at).where(
            Delivery.run_id == f.run_key, Delivery.pool_id == f.pool_id, Delivery.size == version.size
        )
    )
    touched = max(version.mtime_ns, version.ctime_ns)
    for path, _, md5, delivered_at in rows:
        if PurePosixPath(path).name == f.name and touched < round(delivered_at.timestamp() * 1e6) * 1000:
            return md5
    return None


def stored_checksum(session: Session, f: RunFile, version: Version) -> tuple[str | None, bool]:
    """(the md5 of `version` of `f` if known without reading the file, whether it is a delivery's not kept
    yet: `keep_ledger_checksum` keeps it, once per version). One query when stored, two otherwise."""
    md5 = _stored(session, f, version)
    if md5 is not None:
        return md5, False
    ledger_md5 = _from_ledger(session, f, version)
    return ledger_md5, ledger_md5 is not None


def keep_ledger_checksum(
    sessions: sessionmaker[Session], f: RunFile, version: Version, md5: str, *, now: datetime
) -> str:
    """Keep a delivery's md5 of `version` (found by `stored_checksum`); the md5 that stands."""
    return _store(sessions, f, version, md5, source="ledger", now=now)


def known_checksum(
    sessions: sessionmaker[Session], f: RunFile, handle: OpenFile, *, now: datetime
) -> str | None:
    """The md5 of the opened version of `f` if it is known without reading the file: stored, else a
    delivery's (stored now). Two queries: what a HEAD, or a request waiting for no hash, may afford."""
    with sessions.begin() as s:
        md5, from_ledger = stored_checksum(s, f, handle.version)
    if md5 is None or not from_ledger:
        return md5
    return keep_ledger_checksum(sessions, f, handle.version, md5, now=now)


def checksum(sessions: sessionmaker[Session], f: RunFile, handle: OpenFile, *, now: datetime) -> str:
    """The md5 of the opened version of `f`: known (`known_checksum`), else computed from the open file and
    stored (one computation per version in this process; another process's is kept if stored first)."""
    md5 = known_checksum(sessions, f, handle, now=now)
    if md5 is not None:
        return md5
    key = (f.run_key, f.pool_id, f.source, handle.version.tag)
    with _hashing_lock:
        lock = _hashing.setdefault(key, threading.Lock())
    try:
        with lock:  # a caller that waited here finds the md5 its predecessor stored
            return known_checksum(sessions, f, handle, now=now) or _store(
                sessions, f, handle.version, compute_md5(handle), source="server", now=now
            )
    finally:  # also when the file changed while read: no lock is left behind per version
        with _hashing_lock:
            if _hashing.get(key) is lock:  # not a newer caller's lock for the same version
                del _hashing[key]


def _store(
    sessions: sessionmaker[Session], f: RunFile, version: Version, md5: str, *, source: str, now: datetime
) -> str:
    """Keep `md5` for `version`; the md5 that stands (another server process's, if it stored one first)."""
    try:
        with sessions.begin() as s:
            s.add(
                FileChecksum(
                    run_id=f.run_key,
                    pool_id=f.pool_id,
                    path=f.source,
                    version=version.tag,
                    size=version.size,
                    md5=md5,
                    source=source,  # "server" (read here) or "ledger" (a delivery's)
                    computed_at=now,
                )
            )
    except IntegrityError:  # another server process stored it first: theirs stands
        with sessions.begin() as s:
            return _stored(s, f, version) or md5
    return md5


@dataclass(frozen=True)
class Listed:
    """A file the caller may download now: its size as it is now, its md5 if stored for this version."""

    file: RunFile
    size: int
    md5: str | None


def listing(
    sessions: sessionmaker[Session],
    *,
    username: str,
    target: str,
    now: datetime,
    run_id: str | None = None,
    plans: PlanFiles | None = None,
) -> tuple[str, list[Listed]]:
    """(project, the files of `target` that can be served now). A file that cannot (gone, or no longer the
    pool's own) is left out and logged: fetching it would fail the same way. Never computes an md5."""
    with sessions.begin() as s:
        project, found = downloadable(
            s, username=username, target=target, now=now, run_id=run_id, plans=plans
        )
    versions: list[tuple[RunFile, Version]] = []
    for f in found:
        try:
            with opened(f) as handle:
                versions.append((f, handle.version))
        except NotFound:
            continue
    with sessions.begin() as s:
        rows = s.execute(
            select(
                FileChecksum.run_id,
                FileChecksum.pool_id,
                FileChecksum.path,
                FileChecksum.version,
                FileChecksum.md5,
            ).where(
                FileChecksum.run_id.in_({f.run_key for f, _ in versions}),
                FileChecksum.pool_id.in_({f.pool_id for f, _ in versions}),
            )
        )
        stored = {(run, pool, path, version): md5 for run, pool, path, version, md5 in rows}
    return project, [
        Listed(f, v.size, stored.get((f.run_key, f.pool_id, f.source, v.tag))) for f, v in versions
    ]
