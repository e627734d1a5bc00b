"""`send_files`: many files to one remote, in parallel and resumable; `put_text` for small generated files.

- `parallel` worker threads, each with its **own connection** from `connect()` (paramiko encrypts in the
  calling thread, and one SFTP session must be used by one thread at a time), reused for many files.
- Largest files first, so the run does not end with one worker sending a big file while the others idle.
- When a group has fewer files of `split_min_size` or more than connections (say one 30 GB BAM), those go
  first, one at a time, each split over all `parallel` connections (`copy_file(helpers=...)`: one read and
  md5 pass, chunks written at their offsets by every connection); the other files then go one per
  connection. One connection carries at most the server's window (2 MiB on OpenSSH) per round trip, so
  on a distant server a lone large file would otherwise leave the other connections idle (ADR 4).
- Every file goes through `copy_file` (temporary name → size check → rename that never replaces; md5 in the
  same pass; a destination already holding a file of the same size is skipped).
- Retryable errors (`is_retryable`) drop that worker's connection, and the file is retried on a fresh one
  with backoff; non-retryable errors (a conflicting destination, permission denied, no space…) are recorded
  for that file without retrying, and the other files carry on. At the end `SendFailed` lists every failure.
- A source that changed while it was read (`SourceChangedWhileRead`: the copy discarded, nothing recorded)
  is retried the same way but on the same connection: a file still being written may settle meanwhile.
- A connection that cannot be made for a non-retryable reason (host key mismatch, authentication refused, bad
  key file) stops the whole run at once: every file not yet sent is reported failed, none is tried.
- `on_sent(file, result)` runs in the **calling** thread as each file completes (or is skipped), so the caller
  can record its ledger row per file and a crash mid-run resumes from what was recorded.
- A caller that may lose the right to write (a delivery whose lease was taken over, ADR 8) passes
  `interrupt` (cheap, called before each file and after each chunk) and `before_rename` (called right before
  each rename into a final name), and a `partial_tag` naming its own partials. Whatever either raises stops
  every worker at once (their partials removed, nothing retried) and is raised as it is.

Memory stays flat: at most `parallel` files are in flight, each streamed in `copy_file`'s chunks.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from seqshare.transfer.copy import CopyResult, copy_file, partial_path
from seqshare.transfer.errors import (
    DestinationConflict,
    SourceChangedWhileRead,
    TransferError,
    call_with_retry,
    is_retryable,
)
from seqshare.transfer.guard import Guard
from seqshare.transfer.paths import check_path, split_parent
from seqshare.transfer.remote import Remote

log = logging.getLogger(__name__)

DEFAULT_PARALLEL = 2
SPLIT_MIN_SIZE = 64 * 1024 * 1024  # smaller files gain less from a split than they pay in extra opens


@dataclass(frozen=True)
class FileToSend:
    local_path: Path
    remote_path: str  # relative to the remote root, e.g. "acme/RUN_ID/SLX-1/x_R1_001.fastq.gz"
    size: int
    delivered_md5: str | None = None  # from our ledger if it was delivered before (re-run)


@dataclass(frozen=True)
class SendFailure:
    file: FileToSend
    error: str
    retryable: bool


class SendFailed(TransferError):
    """Some files could not be sent; `failures` lists every one (the others were delivered)."""

    def __init__(self, failures: Sequence[SendFailure], total: int) -> None:
        self.failures = list(failures)
        self.total = total
        first = self.failures[0]
        super().__init__(
            f"{len(self.failures)} of {total} files failed: {first.file.remote_path}: {first.error}"
        )

    @property
    def retryable(self) -> bool:  # type: ignore[override]
        """True when every failure is retryable (a later run may succeed without anyone acting)."""
        return all(f.retryable for f in self.failures)


class _Fatal(Exception):
    """A connection could not be made and retrying cannot help: stop every worker."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


class _Stopped(Exception):
    """The caller's `interrupt` or `before_rename` raised: stop every worker, raise the cause unchanged."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


def _stopping(hook: Callable[[], None] | None) -> Callable[[], None] | None:
    """`hook` with whatever it raises wrapped in `_Stopped`, which neither `copy_file` nor `call_with_retry`
    mistakes for a transfer error."""
    if hook is None:
        return None

    def call() -> None:
        try:
            hook()
        except Exception as exc:
            raise _Stopped(exc) from exc

    return call


class _DirCache:
    """The worker's remote with `makedirs` remembered per connection (copy_file calls it for every file,
    which costs a stat per path component). Everything else is passed through."""

    def __init__(self, remote: Remote) -> None:
        self._remote = remote
        self._made: set[str] = set()

    def makedirs(self, dir: str) -> None:
        if dir in self._made:
            return
        self._remote.makedirs(dir)
        self._made.add(dir)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._remote, name)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def send_files(
    files: Sequence[FileToSend],
    connect: Callable[[], Remote],
    *,
    parallel: int = DEFAULT_PARALLEL,
    mtime: datetime | None = None,
    on_sent: Callable[[FileToSend, CopyResult], None] | None = None,
    attempts: int = 4,
    sleep: Callable[[float], None] = time.sleep,
    guard: Guard | None = None,
    compute_md5: bool = True,
    backoff_base: float = 1.0,
    split_min_size: int = SPLIT_MIN_SIZE,
    partial_tag: str | None = None,
    interrupt: Callable[[], None] | None = None,
    before_rename: Callable[[], None] | None = None,
) -> list[CopyResult]:
    """Send `files` over `parallel` connections; returns one `CopyResult` per file, in the order given.

    `connect()` opens a new connection (called once per worker, and again after a dropped connection).
    `attempts` counts tries per file (and per connection attempt); `sleep` is injectable for tests.
    `guard`, when given, replaces the guard of every connection (e.g. `Guard(dry_run=True)`).
    `compute_md5=False` skips hashing (benchmarks; the results then carry no md5).
    `split_min_size`: files at least this large are split over all connections when they are fewer than
    the connections.
    `partial_tag`, `interrupt`, `before_rename`: see the module docstring.
    Raises `SendFailed` (after every other file was tried) if any file failed.
    """
    if parallel < 1:
        raise ValueError("parallel must be at least 1")
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    for file in files:
        check_path(file.remote_path)
    total = len(files)
    if total == 0:
        return []

    order = sorted(range(total), key=lambda i: (-files[i].size, files[i].remote_path))
    large = [i for i in order if files[i].size >= split_min_size]
    # Whole files in parallel already keep every connection busy when there are enough large ones; a split
    # costs more CPU (two sshd sessions for the same bytes), so only fewer large files than connections
    # (one BAM, or a run's last big file) are split.
    split = large if 1 <= len(large) < parallel else []
    whole = [i for i in order if i not in split]
    # (files, worker threads, connections per worker): split files first, one at a time over every
    # connection; then the others, one per connection.
    phases = [(split, 1, parallel), (whole, min(parallel, len(whole)), 1)]
    queues: list[queue.SimpleQueue[int]] = []
    for indices, _, _ in phases:
        phase_queue: queue.SimpleQueue[int] = queue.SimpleQueue()
        for index in indices:
            phase_queue.put(index)
        queues.append(phase_queue)
    events: queue.SimpleQueue[tuple[str, int, Any]] = queue.SimpleQueue()
    stop = threading.Event()
    check = _stopping(interrupt)
    confirm = _stopping(before_rename)
    progress = (lambda _sent: check()) if check is not None else None

    def worker(pending: queue.SimpleQueue[int], width: int) -> None:
        remote: Remote | None = None
        helpers: list[Remote] = []
        cached: _DirCache | None = None
        exit_error: BaseException | None = None

        def drop() -> None:
            nonlocal remote, cached
            for opened in [remote, *helpers]:
                if opened is not None:
                    with contextlib.suppress(Exception):
                        opened.close()
            remote = cached = None
            helpers.clear()

        connecting = False  # True while (and if the last attempt failed while) opening a connection

        def open_one() -> Remote:
            try:
                opened = connect()
            except Exception as exc:
                if not is_retryable(exc):
                    raise _Fatal(exc) from exc
                raise
            if guard is not None:
                opened.guard = guard
            return opened

        def ensure_connected() -> _DirCache:
            nonlocal remote, cached, connecting
            if cached is None:
                connecting = True
                remote = open_one()
                while len(helpers) < width - 1:
                    try:
                        helpers.append(open_one())
                    except Exception as exc:  # e.g. a server that caps sessions per user
                        log.warning(
                            "splitting over %d of %d connections: %s", len(helpers) + 1, width, _describe(exc)
                        )
                        break
                connecting = False
                cached = _DirCache(remote)
            return cached

        def on_retry(attempt: int, exc: BaseException, delay: float) -> None:
            log.warning("retrying after %s (attempt %d, in %.1f s)", _describe(exc), attempt, delay)
            if not isinstance(exc, SourceChangedWhileRead):  # the connection itself is fine then
                drop()

        try:
            while not stop.is_set():
                try:
                    index = pending.get_nowait()
                except queue.Empty:
                    break
                file = files[index]

                def attempt(file: FileToSend = file) -> CopyResult:
                    if check is not None:
                        check()
                    target = ensure_connected()
                    return copy_file(
                        file.local_path,
                        target,  # type: ignore[arg-type]
                        file.remote_path,
                        delivered_md5=file.delivered_md5,
                        mtime=mtime,
                        compute_md5=compute_md5,
                        helpers=helpers,
                        progress=progress,
                        partial_tag=partial_tag,
                        before_rename=confirm,
                    )

                try:
                    result = call_with_retry(
                        attempt, attempts=attempts, base=backoff_base, sleep=sleep, on_retry=on_retry
                    )
                except _Stopped as stopped:
                    exit_error = stopped
                    stop.set()
                    return
                except _Fatal as fatal:
                    pending.put(index)  # not tried: reported with the rest by the caller's thread
                    exit_error = fatal.cause
                    stop.set()
                    return
                except Exception as exc:
                    if is_retryable(exc):
                        drop()
                        if connecting:  # the server stayed unreachable: leave the file to the others
                            pending.put(index)
                            exit_error = exc
                            return
                    events.put(("failed", index, exc))
                else:
                    events.put(("sent", index, result))
        except BaseException as exc:  # pragma: no cover - a bug; reported rather than hanging the caller
            exit_error = exc
            stop.set()
        finally:
            drop()
            events.put(("exit", -1, exit_error))

    results: list[CopyResult | None] = [None] * total
    failures: dict[int, SendFailure] = {}
    exit_errors: list[BaseException] = []
    for (indices, workers, width), pending in zip(phases, queues, strict=True):
        if not indices or stop.is_set():
            continue
        threads = [
            threading.Thread(target=worker, args=(pending, width), name=f"seqshare-send-{n}", daemon=True)
            for n in range(workers)
        ]
        for thread in threads:
            thread.start()
        alive = len(threads)
        try:
            while alive:
                kind, index, payload = events.get()
                if kind == "exit":
                    alive -= 1
                    if payload is not None:
                        exit_errors.append(payload)
                elif kind == "failed":
                    failures[index] = SendFailure(files[index], _describe(payload), is_retryable(payload))
                else:
                    results[index] = payload
                    if on_sent is not None:
                        on_sent(files[index], payload)
        except BaseException:
            stop.set()  # on an error in on_sent (or Ctrl-C): workers finish their current file and stop
            raise
        finally:
            for thread in threads:
                thread.join()

    stopped = next((e for e in exit_errors if isinstance(e, _Stopped)), None)
    if stopped is not None:  # the caller withdrew the right to write: its own error, nothing else
        raise stopped.cause
    # Files never tried: a fatal connection error (or every worker lost the server).
    reason = next((e for e in exit_errors if not is_retryable(e)), exit_errors[0] if exit_errors else None)
    for pending in queues:
        while True:
            try:
                index = pending.get_nowait()
            except queue.Empty:
                break
            if results[index] is None and index not in failures:
                error = reason if reason is not None else RuntimeError("not sent")
                failures[index] = SendFailure(files[index], _describe(error), is_retryable(error))

    if failures:
        ordered = [failures[i] for i in sorted(failures)]
        raise SendFailed(ordered, total) from reason
    return [r for r in results if r is not None]


def put_text(
    remote: Remote,
    remote_path: str,
    text: str,
    *,
    mtime: datetime | None = None,
    partial_tag: str | None = None,
) -> bool:
    """Write a small generated file (checksum manifest, README) atomically: temporary name, then a rename
    that replaces. Returns False, writing nothing, when an identical file is already there.

    Only for seqshare's own generated files: this is the one place a delivered file may be replaced.
    `partial_tag`: the writer's own temporary name (`partial_path`).
    """
    data = text.encode("utf-8")
    existing = remote.stat(remote_path)
    if existing is not None:
        if not existing.is_file:
            kind = "a folder" if existing.is_dir else "a symlink"
            raise DestinationConflict(f"{remote_path!r} exists on the remote as {kind}; not replacing it")
        if existing.size == len(data) and remote.read_bytes(remote_path) == data:
            return False
    parent, _ = split_parent(remote_path)
    remote.makedirs(parent)
    partial = partial_path(remote_path, partial_tag)
    stale = remote.stat(partial)
    if stale is not None:
        if not stale.is_file:
            raise DestinationConflict(f"{partial!r} (the temporary name) is not a file on the remote")
        remote.remove(partial)
    created = False
    try:
        with remote.open_write(partial) as out:
            created = True
            out.write(data)
        if mtime is not None:
            remote.set_mtime(partial, mtime)
        remote.rename(partial, remote_path, replace=True)
    except BaseException:
        if created:
            with contextlib.suppress(Exception):
                remote.remove(partial)
        raise
    return True


__all__ = [
    "DEFAULT_PARALLEL",
    "SPLIT_MIN_SIZE",
    "FileToSend",
    "SendFailed",
    "SendFailure",
    "put_text",
    "send_files",
]
