"""Transfer layer shaped like rclone: a small `Remote` interface, one module per backend (local, SFTP),
single-file `copy_file` on top, one place for retry decisions and one dry-run guard.

No Airflow imports here, and paramiko is imported only by `seqshare.transfer.sftp` (loaded lazily on first
use of `SftpRemote` / `SftpConfig` from this package).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from seqshare.transfer.copy import CopyResult, copy_file, partial_path
from seqshare.transfer.errors import (
    AuthenticationFailed,
    ConnectionLost,
    CorruptedTransfer,
    DestinationConflict,
    HostKeyMismatch,
    NoSpace,
    SourceChanged,
    SourceChangedWhileRead,
    TransferError,
    UnsafePath,
    backoff_delays,
    call_with_retry,
    is_retryable,
)
from seqshare.transfer.guard import Action, Guard, PlannedAction
from seqshare.transfer.local import LocalRemote
from seqshare.transfer.paths import check_path, resolve_under
from seqshare.transfer.remote import BaseRemote, Entry, Remote, RemoveResult
from seqshare.transfer.send import FileToSend, SendFailed, SendFailure, put_text, send_files

if TYPE_CHECKING:
    from seqshare.transfer.sftp import SftpConfig, SftpRemote

__all__ = [
    "Action",
    "AuthenticationFailed",
    "BaseRemote",
    "ConnectionLost",
    "CopyResult",
    "CorruptedTransfer",
    "DestinationConflict",
    "Entry",
    "FileToSend",
    "Guard",
    "HostKeyMismatch",
    "LocalRemote",
    "NoSpace",
    "PlannedAction",
    "Remote",
    "RemoveResult",
    "SendFailed",
    "SendFailure",
    "SftpConfig",
    "SftpRemote",
    "SourceChanged",
    "SourceChangedWhileRead",
    "TransferError",
    "UnsafePath",
    "backoff_delays",
    "call_with_retry",
    "check_path",
    "copy_file",
    "is_retryable",
    "partial_path",
    "put_text",
    "resolve_under",
    "send_files",
]


def __getattr__(name: str) -> Any:
    if name in ("SftpConfig", "SftpRemote"):
        from seqshare.transfer import sftp

        return getattr(sftp, name)
    raise AttributeError(f"module 'seqshare.transfer' has no attribute {name!r}")
