"""List the run folders under the roots, and judge one folder: complete (with its run id), waiting, or
unreadable.

Rules:
- only immediate subfolders of each root are candidates (hidden ones and files are ignored); listing
  a root reads its directory once (``os.scandir``: no stat per entry, except to follow a symlink);
- ``seqshare.runfolder.awaiting`` decides completeness (completion markers, never file ages), so a
  half-written folder is simply picked up on a later scan;
- the run id comes from RunInfo.xml (``read_run_info``). There is **no fallback to the folder name**:
  folders are often renamed (``..._PE150_Knight``), and a folder whose RunInfo.xml cannot be read would
  fail later in ``read_run_folder`` anyway. Such a folder is reported as unreadable, on every scan, until
  it is fixed;
- a folder that cannot be judged (a failed run, several outputs, a malformed or hostile instrument file,
  anything raised while reading it) is unreadable with a one-line reason; the other folders are judged as
  usual: one folder never fails the scan;
- where each run's demultiplexed output is, is read once per scan from the settings
  (``seqshare.config.output_search``: ``SEQSHARE_OUTPUT_PATTERNS``, ``SEQSHARE_OUTPUT_ROOT``); a bad
  setting fails the scan, since it would hide every run.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from seqshare import config
from seqshare.errors import SeqshareError, one_line
from seqshare.runfolder import OutputSearch, awaiting, read_run_info
from seqshare.runfolder.completion import RTA_COMPLETE
from seqshare.runfolder.runinfo import RUN_INFO, RUN_PARAMETERS

log = logging.getLogger("seqshare.scanner")


@dataclass(frozen=True)
class FoundRun:
    """A complete run folder and the instrument's run id from its RunInfo.xml."""

    run_folder: str  # absolute path, as found under its root (not resolved: symlinks keep their name)
    run_id: str


class Stage(StrEnum):
    """What a waiting folder waits for, in the facility's words."""

    INSTRUMENT_FILES = "instrument files"  # RunInfo.xml or RunParameters.xml not written yet
    SEQUENCING = "completion marker"  # still sequencing or copying
    DEMULTIPLEXING = "demultiplexing"  # sequenced; the output (or its finishing marker) is not there yet


@dataclass(frozen=True)
class Waiting:
    """A folder not finished yet: ``what`` names the file or folder it waits for."""

    run_folder: str
    stage: Stage
    what: str


@dataclass(frozen=True)
class Unreadable:
    """A folder that cannot be judged as it is; an operator must look at it."""

    run_folder: str
    reason: str


Judgement = FoundRun | Waiting | Unreadable


@dataclass(frozen=True)
class Listing:
    """The candidate folders under the roots, in order, and what could not be listed."""

    folders: tuple[str, ...]  # absolute paths
    unlistable: tuple[Unreadable, ...]  # roots (or entries) that could not be read


def list_roots(roots: Iterable[Path | str]) -> Listing:
    """The immediate, non-hidden subfolders of each root, sorted per root. Never raises for one root."""
    folders: list[str] = []
    unlistable: list[Unreadable] = []
    for root in roots:
        base = os.path.abspath(root)
        try:
            with os.scandir(base) as entries:
                found = sorted((e for e in entries if not e.name.startswith(".")), key=lambda e: e.name)
        except OSError as exc:
            unlistable.append(Unreadable(base, f"cannot list run root: {exc.strerror or exc}"))
            continue
        for entry in found:
            try:
                if entry.is_dir():  # the type from the directory listing; a symlink is followed
                    folders.append(os.path.join(base, entry.name))
            except OSError as exc:
                unlistable.append(Unreadable(os.path.join(base, entry.name), one_line(exc)))
    return Listing(tuple(folders), tuple(unlistable))


def judge(folder: str, search: OutputSearch) -> Judgement:
    """Whether ``folder`` is complete (and which run it holds), what it waits for, or why it is unreadable.

    Reads only what ``awaiting`` needs (a few stats and small marker files), then RunInfo.xml once the
    folder is complete. Never raises for anything in the folder.
    """
    path = Path(folder)
    try:
        what = awaiting(path, search=search)
        if what is not None:
            return Waiting(folder, _stage(what), what)
        info = read_run_info(path)
    except (SeqshareError, OSError) as exc:
        return Unreadable(folder, one_line(exc))
    except Exception as exc:  # a hostile folder must not stop the scan of every other run
        return Unreadable(folder, f"cannot judge it: {type(exc).__name__}: {one_line(exc)}")
    return FoundRun(run_folder=folder, run_id=info.run_id)


def _stage(what: str) -> Stage:
    if what == RUN_INFO or what in RUN_PARAMETERS:
        return Stage.INSTRUMENT_FILES
    if RTA_COMPLETE in what:  # awaiting names every sequencing marker it accepts
        return Stage.SEQUENCING
    return Stage.DEMULTIPLEXING


def find_completed_runs(roots: Iterable[Path | str], search: OutputSearch | None = None) -> list[FoundRun]:
    """Every complete run folder directly under ``roots``, sorted by run id, judging each one (no Airflow).

    The scanning DAG does not call this: it judges only folders whose run was not triggered yet
    (``seqshare.scanner.selection``). Unreadable folders and a run id found in two folders are logged
    and left out. ``search`` (where the output is) defaults to the settings; a bad setting raises
    InvalidInput.
    """
    from seqshare.scanner.selection import unique_runs  # selection builds on this module

    search = config.output_search() if search is None else search
    listing = list_roots(roots)
    for bad in listing.unlistable:
        log.warning("skipping %s: %s", bad.run_folder, bad.reason)
    found = []
    for folder in listing.folders:
        judged = judge(folder, search)
        if isinstance(judged, Unreadable):
            log.warning("skipping run folder %s: %s", folder, judged.reason)
        elif isinstance(judged, FoundRun):
            found.append(judged)
    runs, duplicates = unique_runs(found)
    for run_id, folders in duplicates:
        log.error(
            "run %s is in %d folders (%s); none is delivered until only one remains",
            run_id,
            len(folders),
            ", ".join(folders),
        )
    return list(runs)
