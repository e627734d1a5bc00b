"""`send_files_processes`: `send_files` with worker **processes** instead of threads (paramiko encrypts under
the GIL, so threads share one core; see /work/shared/notes/sftp.md). Same results, `on_sent` and `SendFailed`
contract as `send_files`.

Workers are `python -m seqshare.transfer.worker` children started with `subprocess` (not `multiprocessing`:
Airflow may run tasks in daemonic processes, which cannot fork multiprocessing children). Each holds one SFTP
connection. They talk over their stdin/stdout with binary frames:

- parent → worker: header `!BIQI` (kind, file id, offset, payload length) + payload;
  kinds CONFIG (JSON of `SftpConfig`), OPEN (JSON path), DATA (bytes at offset), CLOSE, COPY (JSON job);
- worker → parent: header `!BII` (kind, file id, length) + JSON; kinds READY, ACK, RESULT, ERROR.

Two kinds of work, largest files first:

1. **Large files** (≥ `SPLIT_MIN_SIZE`), one at a time over all workers: the parent does what `copy_file`
   does around the bytes on its own connection (`_check_existing`, stale partial removed, the `.partial`
   created empty), then reads the file **once**, md5 in a helper thread in the same pass, and deals 4 MiB
   chunks round-robin to the workers, which write them at their offsets into the partial (opened without
   truncation). After every worker acknowledged its close (all write statuses checked), the parent compares
   the partial's size, sets mtime and renames it into place (never replacing). Any error kills the workers
   and the file is retried from scratch (`call_with_retry`); the partial is removed on failure.
2. **Smaller files**: one driver thread per worker sends whole-file COPY jobs; the worker runs `copy_file`
   itself (it reads the file once, md5 in the same pass), so many files spread over the processes.

Retryable errors restart the worker and retry the file with backoff; non-retryable ones are recorded for that
file while the others continue; a host key mismatch or refused key (checked first on the parent's own
connection) fails every file at once, none tried. Workers exit when their stdin closes (the parent finished
or died) and are killed in `finally`. Memory is flat: each worker buffers at most `WORKER_QUEUE_CHUNKS`
chunks, and pipe writes block when it is full.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import logging
import os
import queue
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import fields
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from seqshare.transfer import errors as _errors
from seqshare.transfer.copy import CHUNK_SIZE, CopyResult, _check_existing, _Md5, partial_path
from seqshare.transfer.errors import (
    ConnectionLost,
    CorruptedTransfer,
    DestinationConflict,
    SourceChanged,
    TransferError,
    call_with_retry,
    is_retryable,
)
from seqshare.transfer.paths import check_path, split_parent
from seqshare.transfer.remote import epoch_seconds
from seqshare.transfer.send import FileToSend, SendFailed, SendFailure, _describe, _DirCache

if TYPE_CHECKING:
    from seqshare.transfer.sftp import SftpConfig, SftpRemote

log = logging.getLogger(__name__)

# -- protocol (shared with seqshare.transfer.worker) --------------------------------------------------------
TO_WORKER = struct.Struct("!BIQI")  # kind, file id, offset, payload length
FROM_WORKER = struct.Struct("!BII")  # kind, file id, payload length
W_CONFIG, W_OPEN, W_DATA, W_CLOSE, W_COPY = 1, 2, 3, 4, 5
W_READY, W_ACK, W_RESULT, W_ERROR = 11, 12, 13, 14
WORKER_QUEUE_CHUNKS = 3  # chunks a worker holds besides the one it is writing: memory stays flat

DEFAULT_PROCESSES = 2
SPLIT_MIN_SIZE = 32 * 1024 * 1024  # files this large are split by byte range over all workers
_DEAD = -1


class WorkerError(TransferError):
    """An error raised in a worker process that has no local class; keeps the worker's retry decision."""

    def __init__(self, message: str, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


_TRANSFER_ERRORS = {
    cls.__name__: cls
    for cls in vars(_errors).values()
    if isinstance(cls, type) and issubclass(cls, TransferError)
}
_OS_ERRORS = {
    cls.__name__: cls
    for cls in (FileNotFoundError, PermissionError, FileExistsError, NotADirectoryError, IsADirectoryError)
}


def describe_error(exc: BaseException) -> dict[str, Any]:
    return {
        "type": type(exc).__name__,
        "message": str(exc),
        "retryable": is_retryable(exc),
        "errno": getattr(exc, "errno", None),
    }


def rebuild_error(info: dict[str, Any]) -> Exception:
    """The worker's exception as the same class here (so `is_retryable` and callers see what they would
    see in-process), or a `WorkerError` carrying the worker's retry decision."""
    name, message = info.get("type", "Exception"), info.get("message", "")
    if name in _TRANSFER_ERRORS:
        return _TRANSFER_ERRORS[name](message)
    if name in _OS_ERRORS and info.get("errno") is not None:
        return _OS_ERRORS[name](info["errno"], message)
    return WorkerError(f"{name}: {message}", bool(info.get("retryable")))


def config_to_json(config: SftpConfig) -> bytes:
    """The config for a worker (sent over its stdin, never on a command line). A key given as an object
    travels as its private key text (RSA/ECDSA) or its Ed25519 seed."""
    data: dict[str, Any] = {
        f.name: getattr(config, f.name) for f in fields(config) if f.name != "private_key"
    }
    data["ciphers"] = list(config.ciphers)
    key = config.private_key
    if key is not None:
        signing = getattr(key, "_signing_key", None)
        if key.get_name() == "ssh-ed25519" and signing is not None:
            data["private_key_ed25519_seed"] = bytes(signing.encode()).hex()
        else:
            text = io.StringIO()
            key.write_private_key(text)
            data["private_key_text"] = text.getvalue()
    return json.dumps(data).encode()


def config_from_json(raw: bytes) -> SftpConfig:
    import paramiko

    from seqshare.transfer.sftp import SftpConfig

    data = json.loads(raw)
    seed, text = data.pop("private_key_ed25519_seed", None), data.pop("private_key_text", None)
    data["ciphers"] = tuple(data["ciphers"])
    key: paramiko.PKey | None = None
    if seed is not None:
        import nacl.signing

        key = paramiko.Ed25519Key.__new__(paramiko.Ed25519Key)
        key.public_blob = None
        signing = nacl.signing.SigningKey(bytes.fromhex(seed))
        key._signing_key, key._verifying_key = signing, signing.verify_key  # type: ignore[attr-defined]
    elif text is not None:
        for key_class in (paramiko.ECDSAKey, paramiko.RSAKey):
            with contextlib.suppress(paramiko.SSHException, ValueError):
                key = key_class.from_private_key(io.StringIO(text))
                break
    return SftpConfig(**data, private_key=key)


# -- one worker process, seen from the parent ---------------------------------------------------------------
def _worker_env() -> dict[str, str]:
    """PYTHONPATH with the folder this seqshare was imported from, so the child imports the same code."""
    import seqshare

    here = str(Path(seqshare.__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH")) if p)
    return env


class _Worker:
    def __init__(self, config_json: bytes, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "seqshare.transfer.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            close_fds=True,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self._stdin: IO[bytes] = self.process.stdin
        self.replies: queue.SimpleQueue[tuple[int, int, Any]] = queue.SimpleQueue()
        self._reader = threading.Thread(
            target=self._read, args=(self.process.stdout,), name="seqshare-proc-reader", daemon=True
        )
        self._reader.start()
        self.ready = False
        self.send(W_CONFIG, 0, payload=config_json)

    @property
    def pid(self) -> int:
        return self.process.pid

    def _read(self, stream: IO[bytes]) -> None:
        try:
            while len(header := stream.read(FROM_WORKER.size)) == FROM_WORKER.size:
                kind, fid, length = FROM_WORKER.unpack(header)
                body = stream.read(length) if length else b""
                if len(body) != length:
                    break
                self.replies.put((kind, fid, json.loads(body) if body else None))
        except (OSError, ValueError):
            pass
        finally:
            self.replies.put((_DEAD, 0, None))

    def send(self, kind: int, fid: int, offset: int = 0, payload: bytes | bytearray = b"") -> None:
        try:
            self._stdin.write(TO_WORKER.pack(kind, fid, offset, len(payload)))
            if payload:
                self._stdin.write(payload)
            self._stdin.flush()
        except (OSError, ValueError) as exc:  # the worker exited: report why, if it said
            raise self._death_reason(fid, timeout=2.0) from exc

    def _death_reason(self, fid: int, timeout: float) -> Exception:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                kind, _, payload = self.replies.get(timeout=left)
            except queue.Empty:
                break
            if kind == W_ERROR:
                return rebuild_error(payload)
            if kind == _DEAD:
                self.replies.put((_DEAD, 0, None))  # stays dead for later readers
                break
        return ConnectionLost(f"worker process {self.pid} exited (code {self.process.poll()})")

    def reply(self, fid: int, expect: int) -> Any:
        """Wait for this file's `expect` reply; raise the worker's error, or ConnectionLost if it died."""
        while True:
            kind, got, payload = self.replies.get()
            if kind == _DEAD:
                self.replies.put((_DEAD, 0, None))
                raise ConnectionLost(f"worker process {self.pid} exited (code {self.process.poll()})")
            if got != fid:
                continue  # a stale reply (cannot happen with one worker per attempt; harmless)
            if kind == W_ERROR:
                raise rebuild_error(payload)
            if kind == expect:
                return payload

    def wait_ready(self) -> None:
        self.reply(0, W_READY)
        self.ready = True

    def stop(self, *, graceful: bool) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._stdin.close()  # the worker exits at end of input
        if graceful:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=5)
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        if self.process.stdout is not None:
            with contextlib.suppress(OSError):
                self.process.stdout.close()


class _Fatal(Exception):
    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


class _Stopped(Exception):
    """The run is stopping (an error in the caller's thread): do not start workers or retry."""


class _Pool:
    """The worker slots; every start and kill under one lock, so `close()` leaves no process behind."""

    def __init__(self, config: SftpConfig, size: int) -> None:
        self._config_json = config_to_json(config)
        self._env = _worker_env()
        self._lock = threading.Lock()
        self._closed = False
        self.slots: list[_Worker | None] = [None] * size

    def get(self, slot: int) -> _Worker:
        """The slot's worker, started and connected if needed; connect errors raise as in-process."""
        with self._lock:
            if self._closed:
                raise _Stopped()
            worker = self.slots[slot]
            if worker is None or worker.process.poll() is not None:
                if worker is not None:
                    worker.stop(graceful=False)
                worker = self.slots[slot] = _Worker(self._config_json, self._env)
        if not worker.ready:
            try:
                worker.wait_ready()
            except Exception as exc:
                self.kill(slot)
                if not is_retryable(exc):
                    raise _Fatal(exc) from exc
                raise
        return worker

    def get_all(self) -> list[_Worker]:
        started = []
        with self._lock:  # start every missing process first: they connect in parallel
            if self._closed:
                raise _Stopped()
            for slot, worker in enumerate(self.slots):
                if worker is None or worker.process.poll() is not None:
                    if worker is not None:
                        worker.stop(graceful=False)
                    self.slots[slot] = _Worker(self._config_json, self._env)
                started.append(slot)
        return [self.get(slot) for slot in started]

    def kill(self, slot: int) -> None:
        with self._lock:
            worker, self.slots[slot] = self.slots[slot], None
        if worker is not None:
            worker.stop(graceful=False)

    def kill_all(self) -> None:
        for slot in range(len(self.slots)):
            self.kill(slot)

    def close(self, *, graceful: bool) -> None:
        with self._lock:
            self._closed = True
            workers, self.slots = self.slots, [None] * len(self.slots)
        for worker in workers:
            if worker is not None:
                with contextlib.suppress(OSError, ValueError):
                    worker._stdin.close()
        for worker in workers:
            if worker is not None:
                worker.stop(graceful=graceful)


# -- the entry point ----------------------------------------------------------------------------------------
def send_files_processes(
    files: Sequence[FileToSend],
    config: SftpConfig,
    *,
    processes: int = DEFAULT_PROCESSES,
    mtime: datetime | None = None,
    on_sent: Callable[[FileToSend, CopyResult], None] | None = None,
    attempts: int = 4,
    sleep: Callable[[float], None] = time.sleep,
    compute_md5: bool = True,
    backoff_base: float = 1.0,
) -> list[CopyResult]:
    """Send `files` to the SFTP server of `config` with `processes` worker processes; one `CopyResult` per
    file, in the order given. Same contract as `send_files` (see the module docstring for how); raises
    `SendFailed` (after every other file was tried) if any file failed."""
    if processes < 1:
        raise ValueError("processes must be at least 1")
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    for file in files:
        check_path(file.remote_path)
    total = len(files)
    if total == 0:
        return []
    mtime_seconds = epoch_seconds(mtime) if mtime is not None else None

    from seqshare.transfer.sftp import SftpRemote

    order = sorted(range(total), key=lambda i: (-files[i].size, files[i].remote_path))
    split = [i for i in order if files[i].size >= SPLIT_MIN_SIZE]
    whole = [i for i in order if files[i].size < SPLIT_MIN_SIZE]
    results: list[CopyResult | None] = [None] * total
    failures: dict[int, SendFailure] = {}
    fatal: BaseException | None = None
    ids = itertools.count(1)
    pool = _Pool(config, processes)
    ok = False

    def on_retry(attempt: int, exc: BaseException, delay: float) -> None:
        log.warning("retrying after %s (attempt %d, in %.1f s)", _describe(exc), attempt, delay)

    def fail(index: int, exc: BaseException) -> None:
        failures[index] = SendFailure(files[index], _describe(exc), is_retryable(exc))

    try:
        # The parent's own connection: checks host key and credentials before any process starts, and
        # does the per-file steps around split files.
        control: _DirCache | None = None
        control_remote: SftpRemote | None = None

        def drop_control() -> None:
            nonlocal control, control_remote
            if control_remote is not None:
                with contextlib.suppress(Exception):
                    control_remote.close()
            control = control_remote = None

        def ensure_control() -> _DirCache:
            nonlocal control, control_remote
            if control is None:
                try:
                    control_remote = SftpRemote.connect(config)
                except Exception as exc:
                    if not is_retryable(exc):
                        raise _Fatal(exc) from exc
                    raise
                control = _DirCache(control_remote)
            return control

        try:
            try:
                call_with_retry(ensure_control, attempts=attempts, base=backoff_base, sleep=sleep)
            except _Fatal as exc:
                fatal = exc.cause
            except Exception as exc:
                fatal = exc  # unreachable after every attempt: nothing is tried
            if fatal is None:
                for index in split:
                    file = files[index]

                    def attempt(file: FileToSend = file) -> CopyResult:
                        return _send_split(file, ensure_control(), pool, next(ids), mtime, compute_md5)

                    def retry_split(attempt: int, exc: BaseException, delay: float) -> None:
                        on_retry(attempt, exc, delay)
                        drop_control()

                    try:
                        result = call_with_retry(
                            attempt, attempts=attempts, base=backoff_base, sleep=sleep, on_retry=retry_split
                        )
                    except _Fatal as exc:
                        fatal = exc.cause
                        break
                    except Exception as exc:
                        pool.kill_all()
                        if is_retryable(exc):
                            drop_control()
                        fail(index, exc)
                        continue
                    results[index] = result
                    if on_sent is not None:
                        on_sent(file, result)
        finally:
            drop_control()

        if fatal is None and whole:
            fatal = _send_whole(
                files,
                whole,
                pool,
                results,
                fail,
                on_sent,
                on_retry,
                ids,
                mtime_seconds=mtime_seconds,
                compute_md5=compute_md5,
                attempts=attempts,
                sleep=sleep,
                backoff_base=backoff_base,
            )
        ok = True
    finally:
        pool.close(graceful=ok)

    for index in order:  # files never tried (a fatal connection error)
        if results[index] is None and index not in failures:
            error = fatal if fatal is not None else RuntimeError("not sent")
            failures[index] = SendFailure(files[index], _describe(error), is_retryable(error))
    if failures:
        ordered = [failures[i] for i in sorted(failures)]
        raise SendFailed(ordered, total) from fatal
    return [r for r in results if r is not None]


def _send_split(
    file: FileToSend,
    control: _DirCache,
    pool: _Pool,
    fid: int,
    mtime: datetime | None,
    compute_md5: bool,
) -> CopyResult:
    """One large file over every worker (byte ranges); `copy_file`'s steps around the bytes."""
    started = time.monotonic()
    local_path = os.fspath(file.local_path)
    size = os.stat(local_path).st_size
    remote: Any = control
    skipped = _check_existing(remote, file.remote_path, local_path, size, None, file.delivered_md5)
    if skipped is not None:
        return skipped
    parent, _ = split_parent(file.remote_path)
    partial = partial_path(file.remote_path)
    control.makedirs(parent)
    stale = remote.stat(partial)
    if stale is not None:
        if stale.is_dir:
            raise DestinationConflict(f"{partial!r} (the upload's temporary name) is a folder on the remote")
        remote.remove(partial)
    workers = pool.get_all()

    created = False
    hasher = _Md5(in_thread=True) if compute_md5 else None
    try:
        remote.open_write(partial).close()  # created empty here; the workers never create or truncate
        created = True
        opened: list[_Worker] = []
        open_message = json.dumps({"path": partial}).encode()
        sent = 0
        with open(local_path, "rb") as source:
            for n in itertools.count():
                chunk = source.read(CHUNK_SIZE)
                if not chunk:
                    break
                if hasher is not None:
                    hasher.update(chunk)
                worker = workers[n % len(workers)]
                if n < len(workers):
                    worker.send(W_OPEN, fid, payload=open_message)
                    opened.append(worker)
                worker.send(W_DATA, fid, sent, chunk)
                sent += len(chunk)
        md5 = hasher.hexdigest() if hasher is not None else None
        for worker in opened:
            worker.send(W_CLOSE, fid)
        for worker in opened:
            worker.reply(fid, W_ACK)  # every write's status checked by the worker's close
        if sent != size:
            raise SourceChanged(f"{local_path} changed while it was read: {size} bytes at start, {sent} read")
        uploaded = remote.stat(partial)
        if uploaded is None or uploaded.size != size:
            remote_size = None if uploaded is None else uploaded.size
            raise CorruptedTransfer(
                f"corrupted on transfer: sizes differ: local {size} bytes, remote {partial!r} {remote_size}"
            )
        if mtime is not None:
            remote.set_mtime(partial, mtime)
        try:
            remote.rename(partial, file.remote_path)
        except FileExistsError as exc:
            raise DestinationConflict(
                f"{file.remote_path!r} appeared on the remote during the upload"
            ) from exc
    except BaseException:
        pool.kill_all()  # nothing more is written to the partial; the next attempt starts fresh workers
        if created:
            with contextlib.suppress(Exception):
                remote.remove(partial)
        raise
    finally:
        if hasher is not None:
            hasher.stop()
    return CopyResult(file.remote_path, size, md5, skipped=False, seconds=time.monotonic() - started)


def _send_whole(
    files: Sequence[FileToSend],
    indexes: list[int],
    pool: _Pool,
    results: list[CopyResult | None],
    fail: Callable[[int, BaseException], None],
    on_sent: Callable[[FileToSend, CopyResult], None] | None,
    on_retry: Callable[[int, BaseException, float], None],
    ids: itertools.count[int],
    *,
    mtime_seconds: float | None,
    compute_md5: bool,
    attempts: int,
    sleep: Callable[[float], None],
    backoff_base: float,
) -> BaseException | None:
    """Whole files as COPY jobs: one driver thread per worker slot, results handled in this thread.
    Returns the error that stopped the run early (a fatal connect error), if any."""
    pending: queue.SimpleQueue[int] = queue.SimpleQueue()
    for index in indexes:
        pending.put(index)
    events: queue.SimpleQueue[tuple[str, int, Any]] = queue.SimpleQueue()
    stop = threading.Event()
    id_lock = threading.Lock()

    def driver(slot: int) -> None:
        exit_error: BaseException | None = None
        connecting = False

        def retry(attempt: int, exc: BaseException, delay: float) -> None:
            if stop.is_set():
                raise _Stopped()
            on_retry(attempt, exc, delay)
            pool.kill(slot)

        try:
            while not stop.is_set():
                try:
                    index = pending.get_nowait()
                except queue.Empty:
                    break
                file = files[index]
                job = json.dumps(
                    {
                        "local_path": os.fspath(file.local_path),
                        "remote_path": file.remote_path,
                        "delivered_md5": file.delivered_md5,
                        "mtime": mtime_seconds,
                        "compute_md5": compute_md5,
                    }
                ).encode()

                def attempt(job: bytes = job) -> CopyResult:
                    nonlocal connecting
                    if stop.is_set():
                        raise _Stopped()
                    connecting = True
                    worker = pool.get(slot)
                    connecting = False
                    with id_lock:
                        fid = next(ids)
                    worker.send(W_COPY, fid, payload=job)
                    return CopyResult(**worker.reply(fid, W_RESULT))

                try:
                    result = call_with_retry(
                        attempt, attempts=attempts, base=backoff_base, sleep=sleep, on_retry=retry
                    )
                except _Stopped:
                    pending.put(index)
                    return
                except _Fatal as exc:
                    pending.put(index)
                    exit_error = exc.cause
                    stop.set()
                    return
                except Exception as exc:
                    if is_retryable(exc):
                        pool.kill(slot)
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
            events.put(("exit", -1, exit_error))

    threads = [
        threading.Thread(target=driver, args=(slot,), name=f"seqshare-proc-driver-{slot}", daemon=True)
        for slot in range(min(len(pool.slots), len(indexes)))
    ]
    for thread in threads:
        thread.start()
    exit_errors: list[BaseException] = []
    alive = len(threads)
    try:
        while alive:
            kind, index, payload = events.get()
            if kind == "exit":
                alive -= 1
                if payload is not None:
                    exit_errors.append(payload)
            elif kind == "failed":
                fail(index, payload)
            else:
                results[index] = payload
                if on_sent is not None:
                    on_sent(files[index], payload)
    finally:
        stop.set()
        if alive:  # an error here (e.g. in on_sent): no new starts; workers finish their current file
            pool.close(graceful=True)  # (≤ 5 s each, then killed) so no partial is left behind
        for thread in threads:
            thread.join()
    return next((e for e in exit_errors if not is_retryable(e)), exit_errors[0] if exit_errors else None)


__all__ = ["DEFAULT_PROCESSES", "SPLIT_MIN_SIZE", "WorkerError", "send_files_processes"]
