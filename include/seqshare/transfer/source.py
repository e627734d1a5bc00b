"""The local file being sent, as one version: a source that changes while it is read is never delivered.

An in-place rewrite during an upload makes the bytes sent (and the md5 computed from them) a mix of two
versions, which the remote size check cannot see. So the file's version is taken from the open file before
the first read and compared after the last one, on the open file and at its path: one fstat and one stat
per file, none per chunk.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from seqshare.transfer.errors import SourceChangedWhileRead


@dataclass(frozen=True)
class SourceVersion:
    """What tells one version of a local file from another without reading it: a write changes the size
    or the mtime and ctime (the ctime also catches a write whose mtime was put back); a file renamed over
    the path is another inode. Timestamps have the filesystem's granularity (nanoseconds on ext4/XFS; since
    Linux 6.13 the first write after a stat always gets a newer one)."""

    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int
    device: int

    @classmethod
    def of(cls, st: os.stat_result) -> SourceVersion:
        return cls(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)

    @classmethod
    def of_open(cls, fileno: int) -> SourceVersion:
        return cls.of(os.fstat(fileno))

    def changes_to(self, later: SourceVersion) -> str | None:
        """How `later` differs, in words; None when it is the same version."""
        if (later.inode, later.device) != (self.inode, self.device):
            return f"replaced at its path by another file, inode {self.inode} → {later.inode}"
        if later.size != self.size:
            return f"modified in place, {self.size} → {later.size} bytes"
        if later.mtime_ns != self.mtime_ns:
            return "modified in place, same size, new mtime"
        if later.ctime_ns != self.ctime_ns:
            return "its ctime changed, same size and mtime: rewritten with the mtime put back, or re-linked"
        return None

    def check_unchanged(self, path: str, fileno: int) -> None:
        """Raise `SourceChangedWhileRead` unless the file now at `path` and the open file `fileno` are both
        still this version (the path first: a file renamed over it also changes the open one's ctime)."""
        try:
            change = self.changes_to(SourceVersion.of(os.stat(path)))
        except FileNotFoundError:
            change = "removed from its path"
        if change is None:
            change = self.changes_to(SourceVersion.of_open(fileno))
        if change is not None:
            raise changed_while_read(path, change)


def changed_while_read(path: str, change: str) -> SourceChangedWhileRead:
    return SourceChangedWhileRead(
        f"{path} changed while it was read ({change}); the copy was discarded and nothing was delivered or "
        "recorded; a later try sends it whole once nothing writes to it"
    )
