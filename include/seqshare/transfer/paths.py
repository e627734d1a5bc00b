"""The one place that decides whether a remote path is acceptable and where it lands under a root.

Paths handed to a `Remote` are POSIX strings relative to the remote's root (a group's delivery
directory). Anything that could escape that root, or confuse a log line or the SFTP protocol, is refused
with `UnsafePath` before any I/O happens.
"""

from __future__ import annotations

import posixpath

from seqshare.transfer.errors import UnsafePath

_FORBIDDEN_CHARS = ("\x00", "\n", "\r", "\\")


def check_path(path: str) -> str:
    """Return `path` normalised ("a//b/./c" → "a/b/c"; "", "." → "" meaning the root), or raise `UnsafePath`.

    Refused: non-strings, absolute paths, any ".." component, NUL, CR, LF and backslash characters.
    """
    if not isinstance(path, str):
        raise UnsafePath(f"remote path must be a str, got {type(path).__name__}")
    for char in _FORBIDDEN_CHARS:
        if char in path:
            raise UnsafePath(f"remote path {path!r} contains a forbidden character {char!r}")
    if path.startswith("/"):
        raise UnsafePath(f"remote path {path!r} is absolute; paths are relative to the remote root")
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise UnsafePath(f"remote path {path!r} contains '..'")
    return "/".join(parts)


def resolve_under(root: str, path: str) -> str:
    """Check `path` with `check_path` and join it under `root` (a POSIX directory path)."""
    relative = check_path(path)
    root = root.rstrip("/") or "/"
    return posixpath.join(root, relative) if relative else root


def split_parent(path: str) -> tuple[str, str]:
    """("a/b/c.fastq.gz") → ("a/b", "c.fastq.gz"); the path is checked first."""
    relative = check_path(path)
    if not relative:
        raise UnsafePath("the remote root has no parent and no name")
    parent, _, name = relative.rpartition("/")
    return parent, name
