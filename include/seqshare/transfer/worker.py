"""The child side of `send_files_processes`: `python -m seqshare.transfer.worker`.

One worker = one process = one SFTP connection (so paramiko's encryption runs on its own core). It reads
framed messages from stdin and answers on stdout (the protocol is in `seqshare.transfer.procs`):

- CONFIG (first message): the `SftpConfig` as JSON → connect, answer READY or ERROR (then exit);
- OPEN / DATA / CLOSE (a large file split by byte range): open the parent-created `.partial` for writing
  without truncation, write each chunk at its offset (pipelined requests), close (every write's status is
  checked) and answer ACK; any error → ERROR, then exit (the parent retries the file from scratch);
- COPY (a whole smaller file): `copy_file` on this connection (reads the file itself, md5 in the same
  pass) → RESULT or ERROR; the worker exits after a retryable error (its connection is suspect).

stdin is read by a helper thread into a small bounded queue, so the next chunks are ready while the main
thread encrypts; the worker exits when stdin closes (the parent finished or died). stdout is kept for the
protocol: fd 1 is pointed at stderr so stray prints or logs cannot corrupt it.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import sys
import threading
from datetime import UTC, datetime
from typing import Any, BinaryIO

from seqshare.transfer.procs import (
    FROM_WORKER,
    TO_WORKER,
    W_ACK,
    W_CLOSE,
    W_CONFIG,
    W_COPY,
    W_DATA,
    W_ERROR,
    W_OPEN,
    W_READY,
    W_RESULT,
    WORKER_QUEUE_CHUNKS,
    config_from_json,
    describe_error,
)

_EOF = None


def _read_exactly(stream: BinaryIO, size: int) -> bytearray | None:
    buffer = bytearray(size)
    view = memoryview(buffer)
    got = 0
    while got < size:
        n = stream.readinto(view[got:])  # type: ignore[attr-defined]
        if not n:
            return None
        got += n
    return buffer  # type: ignore[return-value]


def _reader(stream: BinaryIO, frames: queue.Queue[Any]) -> None:
    try:
        while True:
            header = _read_exactly(stream, TO_WORKER.size)
            if header is None:
                break
            kind, fid, offset, length = TO_WORKER.unpack(header)
            payload = _read_exactly(stream, length) if length else b""
            if payload is None:
                break
            frames.put((kind, fid, offset, payload))
    except (OSError, ValueError):
        pass
    finally:
        frames.put(_EOF)


class _Out:
    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream

    def send(self, kind: int, fid: int, payload: dict[str, Any] | None = None) -> None:
        data = json.dumps(payload).encode() if payload is not None else b""
        self._stream.write(FROM_WORKER.pack(kind, fid, len(data)) + data)
        self._stream.flush()


def main() -> int:
    # Keep the protocol's pipes private: fd 1 → stderr, fd 0 → /dev/null.
    inp = os.fdopen(os.dup(0), "rb", buffering=0)
    out = _Out(os.fdopen(os.dup(1), "wb"))
    os.dup2(2, 1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)

    frames: queue.Queue[Any] = queue.Queue(maxsize=WORKER_QUEUE_CHUNKS)
    threading.Thread(target=_reader, args=(inp, frames), name="seqshare-worker-stdin", daemon=True).start()

    first = frames.get()
    if first is _EOF or first[0] != W_CONFIG:
        return 2
    from seqshare.transfer.copy import copy_file
    from seqshare.transfer.errors import is_retryable
    from seqshare.transfer.send import _DirCache
    from seqshare.transfer.sftp import SftpRemote

    try:
        remote = SftpRemote.connect(config_from_json(bytes(first[3])))
    except Exception as exc:
        out.send(W_ERROR, first[1], describe_error(exc))
        return 1
    out.send(W_READY, first[1], {"request_size": remote.request_size, "cipher": remote.cipher})
    cached = _DirCache(remote)
    handles: dict[int, Any] = {}
    try:
        while (frame := frames.get()) is not _EOF:
            kind, fid, offset, payload = frame
            try:
                with remote._translate():
                    if kind == W_DATA:
                        handle = handles[fid]
                        handle.seek(offset)
                        handle.write(payload)
                    elif kind == W_OPEN:
                        path = json.loads(bytes(payload))["path"]
                        handle = remote._client.open(remote._abs(path), "r+b", bufsize=0)  # no truncation
                        handle.MAX_REQUEST_SIZE = remote.request_size  # per file (see sftp.py)
                        handle.set_pipelined(True)
                        handles[fid] = handle
                    elif kind == W_CLOSE:
                        handles.pop(fid).close()  # waits for every pipelined write's status
                        out.send(W_ACK, fid)
                    elif kind == W_COPY:
                        job = json.loads(bytes(payload))
                        mtime = job["mtime"]
                        result = copy_file(
                            job["local_path"],
                            cached,  # type: ignore[arg-type]
                            job["remote_path"],
                            delivered_md5=job["delivered_md5"],
                            mtime=datetime.fromtimestamp(mtime, UTC) if mtime is not None else None,
                            compute_md5=job["compute_md5"],
                        )
                        out.send(
                            W_RESULT,
                            fid,
                            {
                                "path": result.path,
                                "size": result.size,
                                "md5": result.md5,
                                "skipped": result.skipped,
                                "seconds": result.seconds,
                            },
                        )
                    else:
                        raise ValueError(f"unknown message kind {kind}")
            except Exception as exc:
                out.send(W_ERROR, fid, describe_error(exc))
                if kind != W_COPY or is_retryable(exc):
                    return 1  # a split file is retried from scratch; a suspect connection is not reused
    except (BrokenPipeError, OSError):
        return 1  # the parent went away
    finally:
        for handle in handles.values():
            with contextlib.suppress(Exception):
                handle.close()
        with contextlib.suppress(Exception):
            remote.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
