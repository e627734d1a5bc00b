"""The download API's files: the file itself, its version and its md5 (which files a caller may fetch:
`services.run_files`, re-exported here for the routes).

A pool's file is checked again when opened, as delivery checks it: the path must
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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath

from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from seqshare.db.models import Delivery, FileChecksum
from seqshare.delivery.plan import PlannedFile
from seqshare.errors import InvalidInput, NotFound, SeqshareError
from seqshare.services.delivery import check_own_file
from seqshare.services.run_files import (  # re-exported: the routes and tests know them as files.*
    PlanFiles,
    RunFile,
    downloadable,
    find_file,
    no_such_file,
    no_such_target,
)

log = logging.getLogger(__name__)
CHUNK = 1024 * 1024
"""Bytes read per call: memory per download stays at about one chunk, whatever the file's size."""


__all__ = [
    "CHUNK",
    "FileChanged",
    "Listed",
    "OpenFile",
    "PlanFiles",
    "RunFile",
    "Version",
    "checksum",
    "compute_md5",
    "downloadable",
    "find_file",
    "keep_ledger_checksum",
    "known_checksum",
    "listing",
    "no_such_file",
    "no_such_target",
    "open_file",
    "opened",
    "stored_checksum",
]


class FileChanged(SeqshareError):
    """The file changed on the server while it was read, or since the version the caller names."""


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


# Built once: building a statement anew on each request cost more CPU than running it.
_STORED = select(FileChecksum.md5).where(
    FileChecksum.run_id == bindparam("run"),
    FileChecksum.pool_id == bindparam("pool"),
    FileChecksum.path == bindparam("path"),
    FileChecksum.version == bindparam("version"),
)


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
