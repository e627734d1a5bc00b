"""The scan's log: what it triggered, what it left for the next scan and why, what waits, what is unreadable.

One line per folder, each list headed by its count, so ops can grep a task log for a folder's name and
see at once why it was not delivered yet.
"""

from __future__ import annotations

import logging

from seqshare.scanner.naming import dag_run_id_for
from seqshare.scanner.selection import Scan

log = logging.getLogger("seqshare.scanner")
SHOWN_PROCESSED = 5  # a cleaned history of thousands of runs is a count, not thousands of lines a scan


def describe(scan: Scan) -> list[tuple[int, str]]:
    """The scan's log lines as (logging level, line)."""
    new = len(scan.new) + len(scan.deferred)
    lines = [
        (
            logging.INFO,
            f"{scan.listed:,} run folders: {scan.already:,} already triggered, {new:,} new, "
            f"{len(scan.processed):,} processed before, "
            f"{len(scan.waiting):,} waiting, {len(scan.unreadable):,} unreadable, "
            f"{len(scan.duplicates):,} runs in several folders ({scan.judged:,} folders read)",
        )
    ]
    if scan.new:
        lines.append((logging.INFO, f"triggering {len(scan.new):,} new runs:"))
        lines += [(logging.INFO, f"  {dag_run_id_for(r.run_id)}: {r.run_folder}") for r in scan.new]
    if scan.deferred:
        lines.append(
            (
                logging.WARNING,
                f"{new:,} new runs exceed this scan's limit of {scan.batch:,} ({scan.batch_source}): "
                f"{len(scan.deferred):,} left for the next scans, first {scan.deferred[0].run_id}",
            )
        )
    if scan.processed:
        lines.append(
            (
                logging.WARNING,
                f"processed before but without a distribute_run DAG run now ({len(scan.processed):,}; "
                "deleted, or removed by `airflow db clean`): not triggered again, its files may have been "
                "purged; to deliver one again, trigger distribute_run with the run id and conf shown"
                + (
                    f" (the first {SHOWN_PROCESSED} of them):"
                    if len(scan.processed) > SHOWN_PROCESSED
                    else ":"
                ),
            )
        )
        lines += [
            (
                logging.WARNING,
                f"  {dag_run_id_for(r.run_id)}: snapshot frozen {when}; "
                f'conf {{"run_folder": "{r.run_folder}"}}',
            )
            for r, when in scan.processed[:SHOWN_PROCESSED]
        ]
    if scan.waiting:
        lines.append((logging.INFO, f"waiting ({len(scan.waiting):,}):"))
        lines += [
            (logging.INFO, f"  {w.run_folder}: waits for {w.stage.value}: {w.what}") for w in scan.waiting
        ]
    if scan.unreadable:
        lines.append((logging.WARNING, f"unreadable, skipped until fixed ({len(scan.unreadable):,}):"))
        lines += [(logging.WARNING, f"  {u.run_folder}: {u.reason}") for u in scan.unreadable]
    for run_id, folders in scan.duplicates:
        lines.append(
            (
                logging.ERROR,
                f"run {run_id} is in {len(folders)} folders ({', '.join(folders)}); "
                "none is delivered until only one remains",
            )
        )
    return lines


def log_scan(scan: Scan) -> None:
    """Write :func:`describe` to the ``seqshare.scanner`` logger (the task log, inside Airflow)."""
    for level, line in describe(scan):
        log.log(level, "%s", line)
