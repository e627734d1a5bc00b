"""A root full of cheap, metadata-only completed run folders (for the scanner's tests and bench/scan.py).

Each folder holds what ``seqshare.runfolder.awaiting`` and ``read_run_info`` need and nothing more: a
MiSeq RunInfo.xml and runParameters.xml naming the run, RTAComplete.txt, and BCL Convert's
``BCLConvert/Reports/fastq_list.csv``; about 1 s per 1,000 folders.
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.unit.runfolder.builders import MISEQ

_INFO = (MISEQ / "RunInfo.xml").read_text()
_PARAMS = (MISEQ / "runParameters.xml").read_text()
_MISEQ_ID = MISEQ.name


def farm_run_id(number: int) -> str:
    """The run id of folder ``number``: a MiSeq run id with the run counter and flow cell varied."""
    return f"231108_M04586_{number:04d}_000000000-F{number:05d}"


def completed_run(root: Path, run_id: str, *, name: str | None = None, demultiplexed: bool = True) -> Path:
    """One metadata-only run folder for ``run_id`` under ``root`` (named ``name``, default the run id)."""
    folder = root / (name or run_id)
    reports = folder / "BCLConvert" / "Reports"
    os.makedirs(reports if demultiplexed else folder)
    (folder / "RunInfo.xml").write_text(_INFO.replace(_MISEQ_ID, run_id))
    (folder / "runParameters.xml").write_text(_PARAMS.replace(_MISEQ_ID, run_id))
    (folder / "RTAComplete.txt").write_text(" ")
    if demultiplexed:
        (reports / "fastq_list.csv").write_text("RGID\n")
    return folder


def farm(root: Path, count: int, *, start: int = 0) -> list[str]:
    """``count`` completed run folders under ``root``; returns their run ids in order."""
    root.mkdir(parents=True, exist_ok=True)
    ids = [farm_run_id(n) for n in range(start, start + count)]
    for run_id in ids:
        completed_run(root, run_id)
    return ids
