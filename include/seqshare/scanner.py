"""Find run folders that are ready to deliver, and name the one DAG run each of them gets.

Pure Python (no Airflow): the scanning DAG (``dags/scan_run_folders.py``) calls
``find_completed_runs(run_roots_from_env())`` every few minutes and triggers ``distribute_run`` once per
folder with ``trigger_run_id=dag_run_id_for(run_id)``; Airflow refuses a second run with the same id, so
re-scanning the same folders is harmless (see docs/adr/0002-one-dag-run-per-run-folder.md).

Rules:
- only immediate subfolders of each root are candidates; ``seqshare.runfolder.is_complete`` decides
  (completion markers, never file ages), so a half-written folder is simply picked up on a later scan;
- the run id comes from RunInfo.xml (``read_run_info``). There is **no fallback to the folder name**:
  folders are often renamed (``..._PE150_Knight``), and a folder whose RunInfo.xml cannot be read would
  fail later in ``read_run_folder`` anyway. Such a folder is skipped with a warning, on every scan, until
  it is fixed;
- two folders with the same run id (a copy, a re-demultiplexing next to the original) are both skipped
  with an error: which one to deliver is an operator's decision, never a guess;
- an unreadable root or folder is logged and skipped; the scan itself never fails because of one folder:
  a folder that cannot be judged (a failed run, several outputs, a malformed or hostile instrument file,
  anything raised while reading it) is logged on one line naming the folder and the reason, and the
  other folders are scanned as usual;
- where each run's demultiplexed output is, is read once per scan from the settings
  (``seqshare.config.output_search``: ``SEQSHARE_OUTPUT_PATTERNS``, ``SEQSHARE_OUTPUT_ROOT``); a bad
  setting fails the scan, since it would hide every run.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from seqshare import config
from seqshare.errors import SeqshareError, one_line
from seqshare.runfolder import OutputSearch, awaiting, read_run_info

log = logging.getLogger(__name__)

RUN_ROOTS_ENV = "SEQSHARE_RUN_ROOTS"
DAG_RUN_PREFIX = "run__"
# Airflow's default [scheduler] allowed_run_id_pattern is ^[A-Za-z0-9_.~:+-]+$ and run ids are at most
# 250 characters (StringID). Run ids made only of these characters are used as they are.
_PLAIN = re.compile(r"[A-Za-z0-9_.-]{1,200}")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class FoundRun:
    """A complete run folder and the instrument's run id from its RunInfo.xml."""

    run_folder: str  # absolute path, as found under its root (not resolved: symlinks keep their name)
    run_id: str


def find_completed_runs(roots: Iterable[Path | str], search: OutputSearch | None = None) -> list[FoundRun]:
    """Complete run folders directly under ``roots``, sorted by run id. Never raises for one bad folder.

    ``search`` (where the output is) defaults to the settings; a bad setting raises InvalidInput.
    """
    search = config.output_search() if search is None else search
    found: dict[str, list[FoundRun]] = {}
    for root in roots:
        for folder in _subfolders(Path(root)):
            run = _completed_run(folder, search)
            if run is not None:
                found.setdefault(run.run_id, []).append(run)
    runs = []
    for run_id, candidates in sorted(found.items()):
        if len(candidates) > 1:
            log.error(
                "run %s is in %d folders (%s); none is delivered until only one remains",
                run_id,
                len(candidates),
                ", ".join(c.run_folder for c in candidates),
            )
            continue
        runs.append(candidates[0])
    return runs


def _subfolders(root: Path) -> list[Path]:
    try:
        entries = sorted(root.iterdir())
    except OSError as exc:
        log.warning("cannot list run root %s: %s", root, exc)
        return []
    folders = []
    for entry in entries:
        if entry.name.startswith("."):
            continue
        try:
            if entry.is_dir():
                folders.append(entry.absolute())
        except OSError as exc:
            log.warning("skipping %s: %s", entry, exc)
    return folders


def _completed_run(folder: Path, search: OutputSearch) -> FoundRun | None:
    """The folder's run when it is complete; None, with one log line when it cannot be judged."""
    try:
        if awaiting(folder, search=search) is not None:
            return None
        info = read_run_info(folder)
    except (SeqshareError, OSError) as exc:
        log.warning("skipping run folder %s: %s", folder, one_line(exc))
        return None
    except Exception as exc:  # a hostile folder must not stop the scan of every other run
        log.error(
            "skipping run folder %s: cannot judge it: %s: %s", folder, type(exc).__name__, one_line(exc)
        )
        return None
    return FoundRun(run_folder=str(folder), run_id=info.run_id)


def dag_run_id_for(run_id: str) -> str:
    """The Airflow DAG run id for an instrument run id: ``run__<run_id>``; the same input, the same id.

    Run ids with characters Airflow does not accept, or very long ones, become
    ``run__<sanitised, shortened>~<12 hex digits of SHA-256>``; only these contain ``~``, so the two
    forms never collide.
    """
    if not run_id:
        raise ValueError("run id is empty")
    if _PLAIN.fullmatch(run_id):
        return DAG_RUN_PREFIX + run_id
    digest = hashlib.sha256(run_id.encode()).hexdigest()[:12]
    return f"{DAG_RUN_PREFIX}{_UNSAFE.sub('-', run_id)[:200]}~{digest}"


def run_roots_from_env(environ: Mapping[str, str] | None = None) -> list[Path]:
    """The run roots in ``SEQSHARE_RUN_ROOTS`` (``os.pathsep``-separated); empty entries are ignored.

    Raises ValueError when none is set: a scan of nothing would succeed silently forever.
    """
    value = (os.environ if environ is None else environ).get(RUN_ROOTS_ENV, "")
    roots = [Path(part.strip()) for part in value.split(os.pathsep) if part.strip()]
    if not roots:
        raise ValueError(
            f"{RUN_ROOTS_ENV} is not set: give the folders the instruments write run folders into, "
            f"separated by {os.pathsep!r}"
        )
    return roots


__all__ = ["RUN_ROOTS_ENV", "FoundRun", "dag_run_id_for", "find_completed_runs", "run_roots_from_env"]
