"""Find the fastq files under an output folder without ever leaving the run folder or its output folder.

Only ``<out>``, ``<out>/<a>`` and ``<out>/<a>/<b>`` are searched: that is as deep as any layout puts
fastq files, and it keeps the scan away from the BCL tree when ``<out>`` is ``BaseCalls``. Top-level
``Reports``, ``Logs``, ``Stats``, ``InterOp`` and ``L00<n>`` folders are skipped. Symlinked folders are
not followed (no loops, no files counted twice). Empty fastq.gz files are refused: a valid gzip is never
0 bytes, so such a file is half written.

A file delivered as a sample's must be that sample's own file, so links are held to this:

- a symlink may point only inside the run folder or its output folder (``areas``);
- a symlinked fastq must point to a file of the same name in the same folders (``<pool>/<name>``
  under some other base, e.g. a copy of the output on a demultiplexing disk): a link to another
  sample's, another lane's or Undetermined's file, to a BCL or a sample sheet, has another name or place;
  in a flat output (no pool folders) the target must lie directly in the run folder or an output folder;
- two names for one file (a symlink or a hard link to a file found under another name) are refused:
  one file belongs to one sample. A hard link to a file outside the output (``st_nlink > 1``) is
  accepted: it carries no second name here to compare, and hard-link backups and deduplicating
  copies of run folders make such links for good reasons.
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


def scan_fastqs(root: Path, out: Path, areas: tuple[Path, ...] = ()) -> tuple[FoundFastq, ...]:
    """All fastq files under ``out``; ``root`` is the run folder, ``areas`` where links may point (default
    ``root`` and ``out``), all resolved. Paths are relative to ``root``, absolute when ``out`` is outside."""
    areas = areas or (root, out)
    found: list[FoundFastq] = []
    seen: dict[tuple[int, int], FoundFastq] = {}
    pending: list[tuple[Path, tuple[str, ...]]] = [(out, ())]
    while pending:
        folder, parts = pending.pop()
        with os.scandir(folder) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                path = Path(entry.path)
                is_dir = entry.is_dir(follow_symlinks=False)
                if is_dir and (parts or not _SKIP_TOP.fullmatch(entry.name)) and len(parts) < _MAX_DEPTH:
                    pending.append((path, (*parts, entry.name)))
                    continue
                target = path.resolve() if entry.is_symlink() else None
                if target is not None and not any(target.is_relative_to(a) for a in areas):
                    where = "the run folder" if out.is_relative_to(root) else f"the run folder and {out}"
                    raise RunFolderError(path, f"symlink points outside {where}, to {target}")
                match = FASTQ_NAME.fullmatch(entry.name)
                if match is None or entry.is_dir():
                    continue
                if not entry.is_file():
                    raise RunFolderError(path, "fastq name but not a regular file (dangling symlink?)")
                if target is not None and (
                    target.parts[-len(parts) - 1 :] != (*parts, entry.name)
                    # a flat output has no pool folder to compare: the target must sit at the top of an
                    # area (the output, or the run's folder under the output root), not in any folder
                    or (not parts and target.parent not in areas)
                ):
                    raise RunFolderError(
                        path,
                        f"symlink to {target}, not to this sample's file: a linked fastq must point to a "
                        f"file of the same name in the same folders ({PurePosixPath(*parts, entry.name)})",
                    )
                stat = entry.stat()
                if stat.st_size == 0:
                    raise RunFolderError(path, "empty fastq.gz file (still being written?)")
                rel = PurePosixPath(
                    *(path.relative_to(root).parts if path.is_relative_to(root) else path.parts)
                )
                lane = int(match["lane"]) if match["lane"] else None
                fastq = FoundFastq(path, rel, parts, match["prefix"], lane, match["read"], stat.st_size)
                other = seen.setdefault((stat.st_dev, stat.st_ino), fastq)
                if other is not fastq:
                    raise RunFolderError(
                        path,
                        f"same file as {other.relative_path} (symlink or hard link); a file is one sample's",
                    )
                found.append(fastq)
    return tuple(sorted(found, key=lambda f: f.relative_path))
