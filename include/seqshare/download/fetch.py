"""One file's fetch: skip it if already here and verified, else resume or start it, verify, and name it.

Bytes go to `<name>.partial`, locked against a second client writing the same file. A resumed request
asks for the rest (`Range: bytes=N-`) of the very version the partial holds (`If-Match: <ETag>`, kept in
`<name>.partial.etag`, written before the first byte); the md5 covers the whole file because the partial's
existing bytes are hashed first. Only when the md5 matches the server's (`X-Seqshare-MD5`, computed by the
server from the file itself) is the partial fsynced and renamed to its final name, so nothing unverified
ever carries one. A file changed on the server (412, or a stream cut short while its ETag moved) is
reported and its partial removed: never mixed; the next run starts it over. A wrong md5 is fetched again
once from zero; a dropped connection is resumed a few times.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from seqshare.download.body import Stopped, copy_body
from seqshare.download.errors import BadAnswer, from_os_error, from_response, from_transport
from seqshare.download.plan import Job
from seqshare.errors import one_line

if TYPE_CHECKING:
    from seqshare.download.progress import Events

CHUNK = 1 << 20  # reading a partial or a final file to hash it
RECONNECTS = 3  # a connection dropped mid-file is resumed this many times
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")


class Status(StrEnum):
    DONE = "done"
    SKIPPED = "skipped"  # already here, same size and md5
    CHANGED = "changed"  # the file changed on the server: reported, its partial removed
    FAILED = "failed"
    NOT_STARTED = "not started"  # the run stopped before this file began (or while it was in progress)


@dataclass(frozen=True)
class Outcome:
    job: Job
    status: Status
    received: int = 0  # bytes that came over the network for this file in this run
    resumed_from: int = 0  # bytes already in the partial when the last request began
    md5: str | None = None
    message: str | None = None


class _Again(Exception):
    """Fetch this file again: from zero (`fresh`, after a wrong md5) or from where it stopped."""

    def __init__(self, reason: str, *, fresh: bool) -> None:
        super().__init__(reason)
        self.fresh = fresh


class _Changed(Exception):
    """The file changed on the server (412, 409, or a body cut short while its version moved): `when`."""


def fetch(client: httpx.Client, job: Job, events: Events, stop: threading.Event) -> Outcome:
    """Bring one file to its final name, verified; an Outcome for per-file results, DownloadError for what
    ends the whole run (token refused, not visible, disk full, server unreachable)."""
    try:
        checked, fresh, md5_retried, reconnects = False, False, False, 0
        while True:
            if stop.is_set():
                raise Stopped
            try:
                if not checked:
                    skipped = _already_here(client, job)
                    if skipped is not None:
                        return skipped
                    checked = True
                return _transfer(client, job, events, stop, fresh=fresh)
            except Busy:
                return Outcome(job, Status.FAILED, message="another seqshare download is writing this file")
            except _Changed as changed:
                _discard(job)
                return Outcome(
                    job,
                    Status.CHANGED,
                    message=f"changed on the server {changed}; the next run fetches it anew",
                )
            except BadAnswer as bad:  # this file's answer only: the others may still come
                return Outcome(job, Status.FAILED, message=str(bad))
            except _Again as again:
                if again.fresh:
                    if md5_retried:
                        _discard(job)
                        return Outcome(job, Status.FAILED, message=f"{again} again after a fresh download")
                    md5_retried, fresh = True, True
                    events.note(f"{job.shown}: {again}; fetching it again from the start")
                else:
                    reconnects += 1
                    if reconnects > RECONNECTS:
                        return Outcome(job, Status.FAILED, message=f"{again} ({RECONNECTS} resumes failed)")
                    fresh = False
    except OSError as exc:
        raise from_os_error(exc, job.final) from None


def _already_here(client: httpx.Client, job: Job) -> Outcome | None:
    """SKIPPED when the final file has the server's size and md5 (hashed once, then by its stamp)."""
    try:
        info = job.final.stat()
    except FileNotFoundError:
        return None
    if info.st_size != job.remote.size:
        return None
    want = job.remote.md5 or _server_md5(client, job)
    stamp = _read_stamp(job.stamp)
    key = {"size": info.st_size, "mtime_ns": info.st_mtime_ns, "ino": info.st_ino}
    if stamp == {**key, "md5": want}:
        return Outcome(job, Status.SKIPPED, md5=want)
    with job.final.open("rb") as f:
        have = hash_from(f, hashlib.md5(usedforsecurity=False)).hexdigest()
    if have != want:
        return None  # fetched again; the rename replaces it only once the new copy is verified
    _write_stamp(job.stamp, {**key, "md5": have})
    return Outcome(job, Status.SKIPPED, md5=have)


def _server_md5(client: httpx.Client, job: Job) -> str:
    """The server's md5 of the file when the listing had none yet: a HEAD gives it once the server knows
    it; otherwise a one-byte GET, which makes the server compute it (before its first byte)."""
    response = _request(client, "HEAD", job, {})
    if response.status_code == 409:
        raise _Changed("while the server computed its md5")
    if response.status_code != 200:
        raise from_response(response, job.shown)
    if response.headers.get("x-seqshare-md5"):
        return _md5_header(response)
    with _stream(client, job, {"Range": "bytes=0-0"}) as response:  # the body (one byte) is never read
        if response.status_code == 409:
            raise _Changed("while the server computed its md5")
        if response.status_code not in (200, 206):
            raise from_response(response, job.shown)
        return _md5_header(response)


def _transfer(
    client: httpx.Client, job: Job, events: Events, stop: threading.Event, *, fresh: bool
) -> Outcome:
    with _Partial(job) as partial:
        offset, etag = (0, None) if fresh else _resume_point(job, partial.open(create=False))
        digest = hashlib.md5(usedforsecurity=False)
        if offset:
            hash_from(partial.file, digest, limit=offset)
        headers = {"Range": f"bytes={offset}-", "If-Match": etag} if offset and etag else {}
        with _stream(client, job, headers) as response:
            if response.status_code == 412:
                raise _Changed("since its partial download began")
            if response.status_code == 409:
                raise _Changed("while the server computed its md5")
            if response.status_code == 416:  # the partial is longer than the very same version: corrupt
                raise _Again("its partial file is longer than the file on the server", fresh=True)
            if response.status_code not in (200, 206):
                raise from_response(response, job.shown)
            if response.status_code == 200 and offset:  # the server sent it whole: start over
                offset, digest = 0, hashlib.md5(usedforsecurity=False)
            if response.status_code == 206:
                _check_range(response, offset)
            served_etag = _header(response, "etag")
            server_md5 = _md5_header(response)
            length = int(_header(response, "content-length"))
            f = partial.file if offset else partial.start(served_etag)
            f.seek(offset)
            events.started(job, offset, offset + length)
            received = copy_body(
                response,
                f.fileno(),
                digest,
                expected=length,
                progress=lambda n: events.advance(job, n),
                stop=stop,
            )
        if received < length:  # cut short: the server stops a file that changes while it streams it
            if _moved(client, job, served_etag):
                raise _Changed("during the download")
            raise _Again(
                f"the connection dropped after {offset + received:,} of {offset + length:,} bytes",
                fresh=False,
            )
        if digest.hexdigest() != server_md5:
            raise _Again("md5 mismatch (corrupt partial or transfer)", fresh=True)
        os.fsync(f.fileno())
        os.replace(job.partial, job.final)
    _fsync_dir(job.final.parent)
    job.etag_file.unlink(missing_ok=True)
    info = job.final.stat()
    _write_stamp(
        job.stamp, {"size": info.st_size, "mtime_ns": info.st_mtime_ns, "ino": info.st_ino, "md5": server_md5}
    )
    return Outcome(job, Status.DONE, received=received, resumed_from=offset, md5=server_md5)


class Busy(Exception):
    """Another process holds the partial's lock (another `seqshare download` into the same folder)."""


class _Partial:
    """`<name>.partial`, opened and locked (flock, so two clients never write one file) only when there is
    a partial to resume or an answer to write: a refused request leaves nothing behind."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self._file: Any = None

    def __enter__(self) -> _Partial:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def file(self) -> Any:
        return self._file

    def open(self, *, create: bool) -> int:
        """Open it (if it exists, or `create`) and return its size (0 when there is none)."""
        flags = os.O_RDWR | os.O_CLOEXEC | (os.O_CREAT if create else 0)
        try:
            fd = os.open(self.job.partial, flags, 0o666)
        except FileNotFoundError:
            return 0
        self._file = os.fdopen(fd, "r+b", buffering=0)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.close()
            raise Busy from None
        return os.fstat(fd).st_size

    def start(self, etag: str) -> Any:
        """Empty it (or create it) for the version `etag`, noted beside it before the first byte."""
        if self._file is None:
            self.job.final.parent.mkdir(parents=True, exist_ok=True)
            self.open(create=True)
        self._file.truncate(0)
        _write_small(self.job.etag_file, etag)
        return self._file

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _resume_point(job: Job, size: int) -> tuple[int, str | None]:
    """Where to resume: the partial's size, if its ETag is known and it is not longer than the file."""
    try:
        etag = job.etag_file.read_text(encoding="ascii").strip()
    except (FileNotFoundError, UnicodeDecodeError):
        return 0, None
    if not etag or size <= 0 or size >= job.remote.size:
        return 0, None  # nothing to resume, or a whole partial that was never verified: fetch it again
    return size, etag


def _check_range(response: httpx.Response, offset: int) -> None:
    found = _CONTENT_RANGE.fullmatch(response.headers.get("content-range", "").strip())
    if not found or int(found.group(1)) != offset:
        raise BadAnswer(f"the server answered a range request with {response.headers.get('content-range')!r}")


def _moved(client: httpx.Client, job: Job, etag: str) -> bool:
    """Whether the file's version is no longer `etag` (a HEAD with If-Match: 412)."""
    response = _request(client, "HEAD", job, {"If-Match": etag})
    if response.status_code in (409, 412):
        return True
    if response.status_code != 200:
        raise from_response(response, job.shown)
    return False


@contextmanager
def _stream(client: httpx.Client, job: Job, headers: dict[str, str]) -> Iterator[httpx.Response]:
    """A GET whose body is read by the caller. No connection at all: the server is out of reach (the run
    stops); a connection lost before the answer: this file is tried again."""
    try:
        with client.stream("GET", job.remote.url, headers=headers) as response:
            yield response
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        raise from_transport(exc, str(client.base_url)) from None
    except httpx.TransportError as exc:
        raise _Again(f"the connection failed: {one_line(exc, 120)}", fresh=False) from None


def _request(client: httpx.Client, method: str, job: Job, headers: dict[str, str]) -> httpx.Response:
    try:
        return client.request(method, job.remote.url, headers=headers)
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        raise from_transport(exc, str(client.base_url)) from None
    except httpx.TransportError as exc:
        raise _Again(f"the connection failed: {one_line(exc, 120)}", fresh=False) from None


def _header(response: httpx.Response, name: str) -> str:
    value = response.headers.get(name)
    if not value:
        raise BadAnswer(f"the server's answer for {response.request.url.path} has no {name} header")
    return value


def _md5_header(response: httpx.Response) -> str:
    md5 = _header(response, "x-seqshare-md5").strip().lower()
    if len(md5) != 32 or not set(md5) <= set("0123456789abcdef"):
        raise BadAnswer(f"the server's answer for {response.request.url.path} has a bad md5 {md5[:40]!r}")
    return md5


def hash_from(f: Any, digest: Any, limit: int | None = None) -> Any:
    """Feed `digest` with the file's bytes from its start (up to `limit`), in large reads."""
    f.seek(0)
    left = limit
    while left is None or left > 0:
        block = f.read(CHUNK if left is None else min(CHUNK, left))
        if not block:
            break
        digest.update(block)
        if left is not None:
            left -= len(block)
    return digest


def _discard(job: Job) -> None:
    job.partial.unlink(missing_ok=True)
    job.etag_file.unlink(missing_ok=True)


def _write_small(path: Path, text: str) -> None:
    path.write_text(text + "\n", encoding="ascii")


def _read_stamp(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_stamp(path: Path, stamp: dict[str, Any]) -> None:
    """The verification stamp, written whole (temporary file, then rename) so a crash cannot leave half."""
    path.parent.mkdir(exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    tmp.write_text(json.dumps(stamp, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    except OSError as exc:  # some filesystems refuse fsync on a directory; the rename stands
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)


__all__ = ["Outcome", "Status", "Stopped", "fetch", "hash_from"]
