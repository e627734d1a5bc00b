"""The single exception raised for anything wrong with a run folder.

Callers (scanners, the CLI) catch one class and show one message that tells an
operator which file to look at, and for sample sheets which line.
"""

from __future__ import annotations

from pathlib import Path

from seqshare.errors import SeqshareError


class RunFolderError(SeqshareError):
    """A run folder, sample sheet or output file that cannot be delivered as is."""

    def __init__(self, path: Path | str, reason: str, *, line: int | None = None) -> None:
        self.path = Path(path)
        self.line = line
        self.reason = reason
        where = f"{path}:{line}" if line is not None else f"{path}"
        super().__init__(f"{where}: {reason}")
