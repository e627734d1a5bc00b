"""Find the run folders that are ready to deliver and not triggered yet, and name the DAG run each gets.

No Airflow imports: the scanning DAG (``dags/scan_run_folders.py``) passes Airflow's DAG-run count in.

    listing = list_roots(run_roots_from_env())
    scan = select(listing, triggered=..., judge=..., batch=...)   # selection: the rules, pure
    log_scan(scan)                                                # report: one line per folder
    trigger each of scan.new as run__<run id> (dag_run_id_for)

The scan's cost follows what is new: a folder whose run was triggered before costs one name in a batched
DAG-run count, and only the other folders are read (docs/adr/0007-a-scan-reads-only-new-folders.md).
Modules: :mod:`~seqshare.scanner.folders` (listing a root, judging one folder),
:mod:`~seqshare.scanner.selection`, :mod:`~seqshare.scanner.report`, :mod:`~seqshare.scanner.naming`
(DAG run ids, settings).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from seqshare import config
from seqshare.runfolder import OutputSearch
from seqshare.scanner.folders import (
    FoundRun,
    Listing,
    Stage,
    Unreadable,
    Waiting,
    find_completed_runs,
    judge,
    list_roots,
)
from seqshare.scanner.naming import (
    DAG_RUN_PREFIX,
    RUN_ROOTS_ENV,
    SCAN_BATCH_ENV,
    dag_run_id_for,
    run_roots_from_env,
    scan_batch,
)
from seqshare.scanner.report import describe, log_scan
from seqshare.scanner.selection import Processed, Scan, existing_runs, nothing_processed, select


def scan(
    roots: Iterable[Path | str],
    *,
    count: Callable[[list[str]], int],
    batch: int,
    batch_source: str = "",
    search: OutputSearch | None = None,
    processed: Processed = nothing_processed,
) -> Scan:
    """List ``roots`` and select the new runs; ``count(ids)`` counts the ``distribute_run`` DAG runs with
    those ids (Airflow), ``processed(run_ids)`` names the runs seqshare froze before (its database). Logs
    the result. A bad output setting raises InvalidInput before anything is read.
    """
    search = config.output_search() if search is None else search
    result = select(
        list_roots(roots),
        triggered=lambda ids: existing_runs(ids, count),
        judge=lambda folder: judge(folder, search),
        batch=batch,
        batch_source=batch_source,
        processed=processed,
    )
    log_scan(result)
    return result


__all__ = [
    "DAG_RUN_PREFIX",
    "RUN_ROOTS_ENV",
    "SCAN_BATCH_ENV",
    "FoundRun",
    "Listing",
    "Processed",
    "Scan",
    "Stage",
    "Unreadable",
    "Waiting",
    "dag_run_id_for",
    "describe",
    "existing_runs",
    "find_completed_runs",
    "judge",
    "list_roots",
    "log_scan",
    "nothing_processed",
    "run_roots_from_env",
    "scan",
    "scan_batch",
    "select",
]
