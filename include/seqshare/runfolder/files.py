"""Find the fastq files under an output folder without ever leaving the run folder.

Only ``<out>``, ``<out>/<a>`` and ``<out>/<a>/<b>`` are searched: that is as deep as any layout puts
fastq files, and it keeps the scan away from the BCL tree when ``<out>`` is ``BaseCalls``. Top-level
``Reports``, ``Logs``, ``Stats``, ``InterOp`` and ``L00<n>`` folders are skipped. A symlink whose
target is outside the run folder is an error; symlinked folders inside it are not followed (no loops,
no files counted twice). Empty fastq.gz files are refused: a valid gzip is never 0 bytes, so such a
file is half written.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from seqshare.runfolder.errors import RunFolderError

FASTQ_NAME = re.compile(
    r"(?P<prefix>.+)_S(?P<number>\d+)(?:_L(?P<lane>\d{3}))?_(?P<read>[RI][1-9])_001\.fastq\.gz"
)
_MAX_DEPTH = 2
_SKIP_TOP = re.compile(r"Reports|Logs|Stats|InterOp|L\d{3}")


@dataclass(frozen=True)
class FoundFastq:
    """A fastq file as named on disk, before it is matched to a sample."""

    path: Path  # absolute, for messages
    relative_path: PurePosixPath  # to the run folder
    folders: tuple[str, ...]  # between the output folder and the file
    prefix: str  # sample id or name, or "Undetermined"
    lane: int | None  # None when lanes were not split
    read: str  # R1, R2, I1, I2
    size: int


def scan_fastqs(root: Path, out: Path) -> tuple[FoundFastq, ...]:
    """All fastq files under ``out`` (both already resolved, ``out`` inside ``root``)."""
    found: list[FoundFastq] = []
    pending: list[tuple[Path, tuple[str, ...]]] = [(out, ())]
    while pending:
        folder, parts = pending.pop()
        with os.scandir(folder) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                path = Path(entry.path)
                rel = PurePosixPath(*path.relative_to(root).parts)
                is_dir = entry.is_dir(follow_symlinks=False)
                if is_dir and (parts or not _SKIP_TOP.fullmatch(entry.name)) and len(parts) < _MAX_DEPTH:
                    pending.append((path, (*parts, entry.name)))
                    continue
                if entry.is_symlink() and not path.resolve().is_relative_to(root):
                    raise RunFolderError(path, f"symlink points outside the run folder, to {path.resolve()}")
                match = FASTQ_NAME.fullmatch(entry.name)
                if match is None or entry.is_dir():
                    continue
                if not entry.is_file():
                    raise RunFolderError(path, "fastq name but not a regular file (dangling symlink?)")
                size = entry.stat().st_size
                if size == 0:
                    raise RunFolderError(path, "empty fastq.gz file (still being written?)")
                lane = int(match["lane"]) if match["lane"] else None
                found.append(FoundFastq(path, rel, parts, match["prefix"], lane, match["read"], size))
    return tuple(sorted(found, key=lambda f: f.relative_path))
