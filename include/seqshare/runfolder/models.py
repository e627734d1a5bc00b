"""The immutable result of reading a run folder: what is delivered to whom."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath

from seqshare.runfolder.layout import Layout


@dataclass(frozen=True)
class RunFile:
    """One fastq file; ``pool_id``/``sample_id`` are None for Undetermined reads."""

    relative_path: PurePosixPath  # to the run folder root
    size: int
    pool_id: str | None
    sample_id: str | None
    lane: int | None  # None when lanes were not split
    read: str  # R1, R2, I1, I2


@dataclass(frozen=True)
class Sample:
    """A sample of the sheet; ``line`` is where it first appears, for messages."""

    sample_id: str
    sample_name: str | None
    pool_id: str
    lanes: tuple[int, ...]  # from the sheet; empty when the sheet has no Lane column
    line: int


@dataclass(frozen=True)
class RunFolder:
    """A complete, consistent run folder. ``pool_files`` is read-only and sorted by pool id."""

    run_id: str
    flowcell: str
    instrument: str
    started_at: datetime | None
    started_at_note: str
    lanes: tuple[int, ...]
    completion_marker: str
    root: Path  # resolved
    layout: Layout
    output_dir: PurePosixPath  # relative to root
    sample_sheet: Path
    samples: tuple[Sample, ...]
    pool_files: Mapping[str, tuple[RunFile, ...]]
    undetermined: tuple[RunFile, ...]

    @property
    def pool_ids(self) -> tuple[str, ...]:
        """Pools with files in this run, sorted."""
        return tuple(self.pool_files)
