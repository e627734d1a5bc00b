"""`copy_file`: one local file to one remote path, checked and atomic (rclone's operations.Copy, reduced).

The bytes go to `.<name>.partial` beside the destination (`.<name>.<tag>.partial` for a writer with a
tag: one name per writer, so a writer only ever renames bytes it wrote itself, ADR 8), are hashed (md5)
in the same single read pass, the remote size is compared with the local one, the delivery time is set as
mtime, and only then is the partial renamed into place (a rename that never replaces). The final name is
therefore never visible while incomplete. Nor does a source that changed while it was read
(`seqshare.transfer.source`: its size, mtime, ctime or inode before the first read and after the last):
the partial is discarded and `SourceChangedWhileRead` raised, which is retryable. Any failure removes the
partial when the connection still allows it; a leftover partial from an earlier run is removed and the
upload restarted from scratch (no resume: a resumed file would need the earlier bytes re-read to hash
them, which costs as much as sending them again over loopback/LAN).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO

from seqshare.transfer.errors import CorruptedTransfer, DestinationConflict, SourceChanged
from seqshare.transfer.guard import Action
from seqshare.transfer.paths import split_parent
from seqshare.transfer.remote import Remote
from seqshare.transfer.source import SourceVersion, changed_while_read

log = logging.getLogger(__name__)

CHUNK_SIZE = 4 * 1024 * 1024  # ≥ 1 MiB per write keeps ~16 SFTP requests of 255 KiB in flight per call
_HASH_QUEUE_CHUNKS = 4  # at most this many chunks wait for the hash thread: memory stays flat


@dataclass(frozen=True)
class CopyResult:
    path: str
    size: int
    md5: str | None  # of the bytes sent; on a skip, the ledger's md5 when one was given
    skipped: bool
    dry_run: bool = False
    seconds: float = 0.0


def partial_path(remote_path: str, tag: str | None = None) -> str:
    """The temporary name of an upload to `remote_path`; `tag` makes it one writer's own."""
    parent, name = split_parent(remote_path)
    partial = f".{name}.{tag}.partial" if tag else f".{name}.partial"
    return f"{parent}/{partial}" if parent else partial


class _Md5:
    """md5 of the chunks in order; in a helper thread (hashlib releases the GIL on big buffers, so it
    overlaps paramiko's encryption: notes measured 292 MB/s vs 248 inline) or inline."""

    def __init__(self, *, in_thread: bool) -> None:
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._queue: queue.Queue[bytes | None] | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        if in_thread:
            self._queue = queue.Queue(maxsize=_HASH_QUEUE_CHUNKS)
            self._thread = threading.Thread(target=self._run, name="seqshare-md5", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        assert self._queue is not None
        while (chunk := self._queue.get()) is not None:
            try:
                self._md5.update(chunk)
            except BaseException as exc:  # pragma: no cover - hashlib does not fail on bytes
                self._error = exc

    def update(self, chunk: bytes) -> None:
        if self._queue is None:
            self._md5.update(chunk)
        else:
            self._queue.put(chunk)

    def hexdigest(self) -> str:
        self.stop()
        if self._error is not None:
            raise self._error
        return self._md5.hexdigest()

    def stop(self) -> None:
        if self._thread is not None and self._queue is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None


def _md5_of(stream: BinaryIO) -> str:
    digest = hashlib.md5(usedforsecurity=False)  # a checksum for md5sum -c, not security
    while chunk := stream.read(4 * 1024 * 1024):
        digest.update(chunk)
    return digest.hexdigest()


def _check_existing(
    remote: Remote,
    remote_path: str,
    source: BinaryIO,
    size: int,
    expected_md5: str | None,
    delivered_md5: str | None,
    check_unchanged: Callable[[], None],
) -> CopyResult | None:
    existing = remote.stat(remote_path)
    if existing is None:
        return None
    hint = (
        "seqshare never replaces a delivered file; remove or rename it on the server if it must be replaced"
    )
    if not existing.is_file:
        kind = "a folder" if existing.is_dir else "a symlink"
        raise DestinationConflict(f"{remote_path!r} exists on the remote as {kind}; {hint}")
    if existing.size != size:
        raise DestinationConflict(
            f"{remote_path!r} exists on the remote with {existing.size} bytes, the local file has {size}; "
            f"{hint}"
        )
    if expected_md5 and delivered_md5 and expected_md5.lower() != delivered_md5.lower():
        raise DestinationConflict(
            f"{remote_path!r} exists on the remote with md5 {delivered_md5} (ledger), the local file should "
            f"have {expected_md5}; {hint}"
        )
    if delivered_md5 is None:
        # Not in our ledger (a crash between rename and record, or a file put there by someone else):
        # same size proves nothing, so compare the bytes before calling it delivered. A source that
        # changed meanwhile makes either answer (and the md5 the ledger would record) unreliable.
        local_md5 = _md5_of(source)
        with remote.open_read(remote_path) as theirs:
            remote_md5 = _md5_of(theirs)
        check_unchanged()
        if local_md5 != remote_md5:
            raise DestinationConflict(
                f"{remote_path!r} exists on the remote with the same size but other content "
                f"(md5 {remote_md5}, local {local_md5}); {hint}"
            )
        return CopyResult(remote_path, size, local_md5, skipped=True)
    return CopyResult(remote_path, size, delivered_md5, skipped=True)


def copy_file(
    local_path: str | os.PathLike[str],
    remote: Remote,
    remote_path: str,
    *,
    expected_md5: str | None = None,
    delivered_md5: str | None = None,
    mtime: datetime | None = None,
    compute_md5: bool = True,
    hash_in_thread: bool = True,
    chunk_size: int = CHUNK_SIZE,
    progress: Callable[[int], None] | None = None,
    helpers: Sequence[Remote] = (),
    partial_tag: str | None = None,
    before_rename: Callable[[], None] | None = None,
) -> CopyResult:
    """Copy `local_path` to `remote_path` on `remote`; see the module docstring for the steps.

    - `expected_md5`: what the ledger says the local file's md5 is; a different md5 of the bytes read raises
      `SourceChanged` and nothing is left on the remote.
    - `delivered_md5`: the ledger's md5 for a file already delivered at `remote_path`. An existing
      destination of the same size is skipped (rclone's size-only check: the remote bytes are not re-read)
      unless both md5s are given and differ; a different size, a folder or a symlink there raises
      `DestinationConflict`, leaving it untouched.
    - `mtime`: the delivery time to set on the file (whole seconds over SFTP).
    - `progress(bytes_sent_so_far)` is called after each chunk is handed to the remote.
    - `helpers`: more connections to the same server and root. A file of more than one chunk is then split:
      this thread reads and hashes it once, in order, and every connection writes the chunks it takes at
      their offsets into the one partial (paramiko encrypts at about one core per connection, and one
      connection waits on the server's window; see bench/README.md). The checks before the rename are the
      same.
    - `partial_tag`: the writer's own partial name (`partial_path`); `before_rename()` is called right
      before the rename into the final name, after every check: raising there (a delivery that lost its
      lease) discards the partial and leaves the final name alone.
    A source that changed while it was read (here or while compared with a same-size file not in the
    ledger) raises `SourceChangedWhileRead`, retryable, and leaves nothing on the remote.
    Dry-run remotes (`remote.guard.dry_run`) only plan: the copy is recorded and nothing is written.
    """
    started = time.monotonic()
    path = os.fspath(local_path)
    with open(path, "rb") as source:
        before = SourceVersion.of_open(source.fileno())  # before the first read; compared after the last

        def check_unchanged() -> None:
            before.check_unchanged(path, source.fileno())

        skipped = _check_existing(
            remote, remote_path, source, before.size, expected_md5, delivered_md5, check_unchanged
        )
        if skipped is not None:
            return skipped
        if remote.guard.dry_run:
            remote.guard.allow(Action.WRITE, remote_path)
            return CopyResult(remote_path, before.size, expected_md5, skipped=False, dry_run=True)
        return _upload(
            source,
            path,
            before.size,
            check_unchanged,
            remote,
            remote_path,
            expected_md5=expected_md5,
            mtime=mtime,
            compute_md5=compute_md5,
            hash_in_thread=hash_in_thread,
            chunk_size=chunk_size,
            progress=progress,
            helpers=helpers,
            started=started,
            partial_tag=partial_tag,
            before_rename=before_rename,
        )


def _upload(
    source: BinaryIO,
    local_path: str,
    size: int,
    check_unchanged: Callable[[], None],
    remote: Remote,
    remote_path: str,
    *,
    expected_md5: str | None,
    mtime: datetime | None,
    compute_md5: bool,
    hash_in_thread: bool,
    chunk_size: int,
    progress: Callable[[int], None] | None,
    helpers: Sequence[Remote],
    started: float,
    partial_tag: str | None = None,
    before_rename: Callable[[], None] | None = None,
) -> CopyResult:
    """The upload proper: partial, one read and hash pass, the checks, then the rename."""
    partial = partial_path(remote_path, partial_tag)
    parent, _ = split_parent(remote_path)
    remote.makedirs(parent)
    stale = remote.stat(partial)
    if stale is not None:
        if stale.is_dir:
            raise DestinationConflict(f"{partial!r} (the upload's temporary name) is a folder on the remote")
        remote.remove(partial)

    created = False
    try:
        out = remote.open_write(partial)
        created = True
        if helpers and size > chunk_size:
            outs = _open_helpers(out, helpers, partial)
            sent, md5 = _stream_split(source, outs, compute_md5, chunk_size, progress)
        else:
            with out:
                sent, md5 = _stream(source, out, compute_md5, hash_in_thread, chunk_size, progress)
        check_unchanged()  # after the last read, before anything vouches for the bytes sent
        if sent != size:
            raise changed_while_read(local_path, f"{size} bytes at the start, {sent} read")
        if expected_md5 and md5 and md5.lower() != expected_md5.lower():
            raise SourceChanged(f"{local_path} has md5 {md5}, the ledger expects {expected_md5}")
        uploaded = remote.stat(partial)
        if uploaded is None or uploaded.size != size:
            remote_size = None if uploaded is None else uploaded.size
            raise CorruptedTransfer(
                f"corrupted on transfer: sizes differ: local {size} bytes, remote {partial!r} {remote_size}"
            )
        if mtime is not None:
            remote.set_mtime(partial, mtime)
        if before_rename is not None:
            before_rename()
        try:
            remote.rename(partial, remote_path)
        except FileExistsError as exc:
            raise DestinationConflict(f"{remote_path!r} appeared on the remote during the upload") from exc
    except BaseException:
        if created:
            with contextlib.suppress(Exception):
                remote.remove(partial)
        raise
    return CopyResult(remote_path, size, md5, skipped=False, seconds=time.monotonic() - started)


def _write_all(out: BinaryIO, data: bytes) -> None:
    """A raw file may write fewer bytes than asked (a full disk); after a seek, a short write would leave
    a hole that the final size check cannot see, so the rest is written or the error raised."""
    done = 0
    while done < len(data):
        written = out.write(data[done:] if done else data)  # a copy only after a short write
        if not written:
            raise OSError(f"wrote nothing of the {len(data) - done} bytes left of a chunk")
        done += written


def _stream(
    source: BinaryIO,
    out: BinaryIO,
    compute_md5: bool,
    hash_in_thread: bool,
    chunk_size: int,
    progress: Callable[[int], None] | None,
) -> tuple[int, str | None]:
    hasher = _Md5(in_thread=hash_in_thread) if compute_md5 else None
    sent = 0
    try:
        while chunk := source.read(chunk_size):
            if hasher is not None:
                hasher.update(chunk)
            _write_all(out, chunk)
            sent += len(chunk)
            if progress is not None:
                progress(sent)
        return sent, hasher.hexdigest() if hasher is not None else None
    finally:
        if hasher is not None:
            hasher.stop()


def _open_helpers(out: BinaryIO, helpers: Sequence[Remote], partial: str) -> list[BinaryIO]:
    """The primary's writer plus one writer per helper on the same (already created) partial. A helper
    that cannot open it (a server that refuses read-write opens, a dropped helper connection) is left
    out: the primary carries on with the others, alone at worst."""
    outs = [out]
    for helper in helpers:
        try:
            outs.append(helper.open_update(partial))
        except Exception as exc:
            log.warning("a split upload goes on without one connection: %s: %s", type(exc).__name__, exc)
        except BaseException:
            for opened in outs:
                with contextlib.suppress(Exception):
                    opened.close()
            raise
    return outs


def _stream_split(
    source: BinaryIO,
    outs: Sequence[BinaryIO],
    compute_md5: bool,
    chunk_size: int,
    progress: Callable[[int], None] | None,
) -> tuple[int, str | None]:
    """Read and hash `source` once, in order, in this thread; each writer's thread takes the next chunk and
    writes it at its offset. Every writer is closed (its statuses awaited) before this returns; the first
    writer error is raised. At most len(outs) chunks wait in the queue: memory stays flat."""
    work: queue.Queue[tuple[int, bytes] | None] = queue.Queue(maxsize=len(outs))
    errors: list[BaseException] = []
    failed = threading.Event()

    def write_chunks(out: BinaryIO) -> None:
        ok = True
        while (item := work.get()) is not None:
            if ok:  # after an error, keep taking chunks so the reader never blocks
                try:
                    out.seek(item[0])
                    _write_all(out, item[1])
                except BaseException as exc:
                    ok = False
                    errors.append(exc)
                    failed.set()
        try:
            out.close()  # waits for every pipelined write's status
        except BaseException as exc:
            if ok:
                errors.append(exc)
                failed.set()

    threads = [
        threading.Thread(target=write_chunks, args=(out,), name=f"seqshare-split-{n}", daemon=True)
        for n, out in enumerate(outs)
    ]
    started: list[threading.Thread] = []
    digest = hashlib.md5(usedforsecurity=False) if compute_md5 else None
    sent = 0
    try:
        for thread in threads:
            thread.start()  # may fail (no threads left): the finally block still stops the started ones
            started.append(thread)
        while not failed.is_set() and (chunk := source.read(chunk_size)):
            if digest is not None:
                digest.update(chunk)  # releases the GIL: overlaps the writers' encryption
            work.put((sent, chunk))
            sent += len(chunk)
            if progress is not None:
                progress(sent)
    finally:
        for _ in started:
            work.put(None)
        for thread in started:
            thread.join()
        for out in outs[len(started) :]:  # writers whose thread never started
            with contextlib.suppress(Exception):
                out.close()
    if errors:
        raise errors[0]
    return sent, digest.hexdigest() if digest is not None else None
