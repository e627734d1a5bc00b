"""Transfer errors, the single decision about which of them are worth retrying, and one backoff helper.

Every backend maps its own failures onto these types (or onto the standard `OSError` subclasses), so the
callers — a sync loop, an Airflow task — only ever ask `is_retryable(exc)`.
"""

from __future__ import annotations

import errno
import random
import socket
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from seqshare.errors import SeqshareError

T = TypeVar("T")


class TransferError(SeqshareError):
    """Base class for errors raised by seqshare.transfer. `retryable` is read by `is_retryable`."""


class UnsafePath(TransferError, ValueError):
    """A remote path is absolute, contains '..' or a forbidden character."""


class HostKeyMismatch(TransferError):
    """The server's host key is not the one configured for the connection. Never retried."""


class AuthenticationFailed(TransferError):
    """The server refused our key."""


class ConnectionLost(TransferError):
    """The connection dropped (or could not be opened) — retry on a fresh connection."""

    retryable = True


class DestinationConflict(TransferError):
    """The destination already holds a different file; seqshare never replaces it silently."""


class CorruptedTransfer(TransferError):
    """Sizes (or checksums of the bytes sent) differ after an upload. Retried from scratch."""

    retryable = True


class SourceChanged(TransferError):
    """The local file's md5 is not the one the ledger expects (the source changed or is damaged)."""


class SourceChangedWhileRead(SourceChanged):
    """The local file changed while it was read (size, mtime, ctime, or another file now at its path), so
    the bytes sent may mix two versions; the copy was discarded and nothing was recorded.

    Retryable: a file still being written settles, and a later try reads one whole version; since nothing
    was delivered or recorded, trying again is safe. A file that never settles fails once the bounded
    retries (in `send_files`, then Airflow's) are used up.
    """

    retryable = True


class NoSpace(TransferError, OSError):
    """The server reports it is out of space or quota."""


_RETRYABLE_ERRNOS = frozenset(
    {
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.ECONNREFUSED,
        errno.EPIPE,
        errno.ETIMEDOUT,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.ENETDOWN,
        errno.EHOSTDOWN,
    }
)
_NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def looks_like_no_space(exc: BaseException) -> bool:
    """True for ENOSPC/EDQUOT and for SFTP statuses whose text says so (e.g. FX_FAILURE "No space left")."""
    if isinstance(exc, NoSpace):
        return True
    if isinstance(exc, OSError) and exc.errno in _NO_SPACE_ERRNOS:
        return True
    text = str(exc).lower()
    return "no space" in text or "quota" in text or "disk full" in text


def is_retryable(exc: BaseException) -> bool:
    """Decide, in one place, whether retrying the operation (on a fresh connection) can help.

    Yes: dropped/refused/timed-out connections, EOF, socket errors, paramiko transport errors.
    Also yes: a source file that changed while it was read (it may still be being written, and settle).
    No: host key mismatch, authentication, permission denied, no space, conflicts, bad paths, a source file
    that does not match the ledger, and any status the SFTP server answered deliberately.
    """
    if isinstance(exc, SeqshareError):  # transfer errors, and the domain's own (e.g. a busy delivery)
        return exc.retryable
    if looks_like_no_space(exc):
        return False
    try:  # paramiko is optional at import time: only the SFTP backend needs it
        from paramiko.ssh_exception import (
            AuthenticationException,
            BadHostKeyException,
            IncompatiblePeer,
            NoValidConnectionsError,
            SSHException,
        )
    except ImportError:  # pragma: no cover - paramiko is a dependency
        pass
    else:
        if isinstance(exc, AuthenticationException | BadHostKeyException | IncompatiblePeer):
            return False
        if isinstance(exc, NoValidConnectionsError | SSHException):
            return True
    if isinstance(exc, EOFError | ConnectionError | TimeoutError | socket.timeout | socket.gaierror):
        return True
    if isinstance(exc, PermissionError | FileNotFoundError | FileExistsError | IsADirectoryError):
        return False
    if isinstance(exc, OSError):
        return exc.errno in _RETRYABLE_ERRNOS
    return False


def backoff_delays(
    attempts: int,
    *,
    base: float = 1.0,
    cap: float = 60.0,
    rand: Callable[[], float] = random.random,
) -> Iterator[float]:
    """Yield `attempts - 1` delays: exponential (base·2^n, capped) with "full jitter" in [delay/2, delay]."""
    for n in range(max(attempts - 1, 0)):
        delay = min(cap, base * (2**n))
        yield delay / 2 + rand() * delay / 2


def call_with_retry(
    operation: Callable[[], T],
    *,
    attempts: int = 5,
    base: float = 1.0,
    cap: float = 60.0,
    sleep: Callable[[float], None] = time.sleep,
    rand: Callable[[], float] = random.random,
    retryable: Callable[[BaseException], bool] = is_retryable,
    on_retry: Callable[[int, BaseException, float], None] | None = None,
) -> T:
    """Call `operation()` until it succeeds, a non-retryable error occurs, or `attempts` are used up.

    `operation` must open its own connection each time (a dropped SFTP session cannot be reused).
    `sleep` and `rand` are injectable for tests; `on_retry(attempt, exc, delay)` is called before sleeping.
    """
    delays = backoff_delays(attempts, base=base, cap=cap, rand=rand)
    attempt = 1
    while True:
        try:
            return operation()
        except Exception as exc:
            delay = next(delays, None)
            if delay is None or not retryable(exc):
                raise
            if on_retry is not None:
                on_retry(attempt, exc, delay)
            sleep(delay)
            attempt += 1
