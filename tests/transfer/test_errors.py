"""The single retry decision and the backoff helper."""

from __future__ import annotations

import errno

import paramiko
import pytest

from seqshare.errors import InvalidInput
from seqshare.services.leases import DeliveryBusy
from seqshare.transfer import (
    AuthenticationFailed,
    ConnectionLost,
    CorruptedTransfer,
    DestinationConflict,
    HostKeyMismatch,
    NoSpace,
    SourceChanged,
    UnsafePath,
    backoff_delays,
    call_with_retry,
    is_retryable,
)
from seqshare.transfer.errors import SourceChangedWhileRead
from seqshare.transfer.sftp import _status_error

RETRYABLE = [
    DeliveryBusy("another DAG run is delivering this run to this group"),
    ConnectionLost("dropped"),
    CorruptedTransfer("sizes differ"),
    SourceChangedWhileRead("x.fastq.gz changed while it was read"),  # a file still being written settles
    EOFError(),
    ConnectionResetError(errno.ECONNRESET, "reset"),
    BrokenPipeError(errno.EPIPE, "pipe"),
    ConnectionRefusedError(errno.ECONNREFUSED, "refused"),
    TimeoutError(),
    TimeoutError(),
    OSError(errno.ENETUNREACH, "unreachable"),
    paramiko.SSHException("Server connection dropped: "),
    paramiko.ssh_exception.NoValidConnectionsError({("127.0.0.1", 22): OSError("refused")}),
]
PERMANENT = [
    InvalidInput("a malformed sample sheet"),
    HostKeyMismatch("mismatch"),
    AuthenticationFailed("no"),
    paramiko.AuthenticationException("no"),
    PermissionError(errno.EACCES, "Permission denied"),
    FileNotFoundError(errno.ENOENT, "No such file"),
    NoSpace("No space left on device"),
    OSError(errno.ENOSPC, "No space left on device"),
    OSError(errno.EDQUOT, "Disk quota exceeded"),
    OSError("Failure: No space left on device (SFTP status 4)"),
    OSError("Failure"),  # a status the server answered deliberately
    DestinationConflict("exists"),
    UnsafePath("../x"),
    SourceChanged("md5"),
    ValueError("bug"),
]


@pytest.mark.parametrize("exc", RETRYABLE, ids=lambda e: type(e).__name__)
def test_transient_failures_are_retryable(exc: BaseException) -> None:
    assert is_retryable(exc)


@pytest.mark.parametrize("exc", PERMANENT, ids=lambda e: f"{type(e).__name__}-{e}"[:40])
def test_permanent_failures_are_not_retried(exc: BaseException) -> None:
    assert not is_retryable(exc)


def test_sftp_statuses_map_to_the_standard_errors() -> None:
    assert isinstance(_status_error(2, "No such file", "/x"), FileNotFoundError)
    assert isinstance(_status_error(3, "Permission denied", "/x"), PermissionError)
    assert isinstance(_status_error(4, "No space left on device", "/x"), NoSpace)
    assert _status_error(0, "OK", "/x") is None
    generic = _status_error(4, "Failure", "/x")
    assert isinstance(generic, OSError)
    assert not is_retryable(generic)


def test_backoff_is_exponential_capped_and_jittered() -> None:
    assert list(backoff_delays(5, base=1, cap=4, rand=lambda: 1.0)) == [1, 2, 4, 4]
    assert list(backoff_delays(5, base=1, cap=4, rand=lambda: 0.0)) == [0.5, 1, 2, 2]
    assert list(backoff_delays(1)) == []


def test_call_with_retry_retries_transient_errors_then_succeeds() -> None:
    slept: list[float] = []
    calls = iter([ConnectionLost("1"), EOFError(), "done"])

    def operation() -> str:
        item = next(calls)
        if isinstance(item, BaseException):
            raise item
        return item

    assert call_with_retry(operation, attempts=3, sleep=slept.append, rand=lambda: 1.0) == "done"
    assert slept == [1.0, 2.0]


def test_call_with_retry_gives_up_after_the_attempts() -> None:
    slept: list[float] = []

    def operation() -> None:
        raise ConnectionLost("still down")

    with pytest.raises(ConnectionLost):
        call_with_retry(operation, attempts=3, sleep=slept.append)
    assert len(slept) == 2


def test_call_with_retry_does_not_retry_permanent_errors() -> None:
    slept: list[float] = []

    def operation() -> None:
        raise DestinationConflict("exists")

    with pytest.raises(DestinationConflict):
        call_with_retry(operation, attempts=5, sleep=slept.append)
    assert slept == []
