"""An answer's body to the partial file and the md5, as fast as the machine allows.

The network's pieces (up to 1 MiB, `client.READ_SIZE`) are gathered into blocks of at least 1 MiB, each
written with one system call and handed to the md5 whole: hashing is the most expensive step (about
1.5 CPU s per GiB) and releases the GIL, and one call per block rather than per piece keeps the threads
from handing the GIL back and forth thousands of times per GiB. For a large file the md5 runs on its own
thread, so it overlaps receiving and writing the next block instead of following them; the network thread
waits for it only when it falls eight blocks behind. Small files hash inline (a thread per file would cost
more than it saves).
"""

from __future__ import annotations

import os
import queue
import threading
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from collections.abc import Callable

BATCH = 1 << 20
HASH_THREAD_FROM = 8 << 20  # bytes still to come from which the md5 gets its own thread
_QUEUED_BATCHES = 8


class Stopped(Exception):
    """The run is stopping (a fatal error elsewhere, or Ctrl-C); the partial stays for the next run."""


class _Hasher:
    """The md5 on its own thread, fed batches in order."""

    def __init__(self, digest: Any) -> None:
        self._digest = digest
        self._batches: queue.Queue[list[bytes] | None] = queue.Queue(maxsize=_QUEUED_BATCHES)
        self._thread = threading.Thread(target=self._run, name="seqshare-md5", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        update = self._digest.update
        while (batch := self._batches.get()) is not None:
            for piece in batch:
                update(piece)

    def __call__(self, batch: list[bytes]) -> None:
        self._batches.put(batch)

    def finish(self) -> None:
        self._batches.put(None)
        self._thread.join()


def _inline(digest: Any) -> Callable[[list[bytes]], None]:
    update = digest.update

    def hash_batch(batch: list[bytes]) -> None:
        for piece in batch:
            update(piece)

    return hash_batch


def _write_all(fd: int, batch: list[bytes]) -> None:
    """`writev` the batch; a short write (rare on a local disk) continues with what is left."""
    written = os.writev(fd, batch)
    total = sum(len(p) for p in batch)
    if written < total:
        rest = memoryview(b"".join(batch))[written:]
        while rest:
            rest = rest[os.write(fd, rest) :]


def copy_body(
    response: httpx.Response,
    fd: int,
    digest: Any,
    *,
    expected: int,
    progress: Callable[[int], None],
    stop: threading.Event,
) -> int:
    """Write the body at `fd`'s position and feed `digest`; the bytes received (fewer if it was cut short:
    an incomplete body, a reset, a read timeout; the caller finds out why)."""
    hasher = _Hasher(digest) if expected >= HASH_THREAD_FROM else None
    hash_batch = hasher or _inline(digest)
    received, batch, batched = 0, [], 0
    try:
        try:
            for piece in response.iter_raw():
                batch.append(piece)
                batched += len(piece)
                if batched >= BATCH:
                    if stop.is_set():
                        raise Stopped
                    batch = [b"".join(batch)]
                    _write_all(fd, batch)
                    hash_batch(batch)
                    received += batched
                    progress(batched)
                    batch, batched = [], 0
        except httpx.TransportError:
            pass
        if batch:
            _write_all(fd, batch)
            hash_batch(batch)
            received += batched
            progress(batched)
    finally:
        if hasher is not None:
            hasher.finish()
    return received
