"""The immutable result of reading a run folder: what is delivered to whom."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath

from seqshare.runfolder.layout import Layout


class StartPrecision(enum.StrEnum):
    """How precisely the instrument's files give the run's start."""

    EXACT = "exact"  # a timestamp with its zone
    LOCAL = "local"  # a timestamp without a zone: instrument-local time, read in the configured zone
    DAY = "day"  # a date only (in the files, or the run id's date): some time that day


@dataclass(frozen=True)
class InstrumentStart:
    """When the instrument's files say the run started: every instant from ``earliest`` to ``latest``
    (both included) is possible. One instant when exact; a whole day for a date; two instants an hour apart
    for a local time the clocks passed twice (or skipped). Deciding what a window means for the snapshot
    is not the reader's job (see :mod:`seqshare.delivery.instant`)."""

    earliest: datetime
    latest: datetime
    precision: StartPrecision
    note: str  # where it came from and what was assumed, for people (e.g. "RunInfo.xml Date 231108 ...")


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
    started_at: datetime | None  # ``start.earliest``: kept for display; decisions use ``start``
    started_at_note: str
    start: InstrumentStart | None  # None: no date at all in the instrument's files or the run id
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
