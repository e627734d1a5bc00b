"""Which run folders a scan triggers: those whose run has no ``distribute_run`` DAG run yet.

Airflow's own DAG run ``run__<run id>`` is the truth of "already triggered" (its run id is a unique key:
a second trigger is refused, however many scans overlap). A scan asks Airflow in two rounds, each a few
batched counts (:func:`existing_runs`), and reads folders only in between:

1. every listed folder's **name** as a run id: Illumina names a run folder after its run, so a folder
   whose ``run__<name>`` exists is already triggered, known without a stat or an XML parse. This is
   only ever used to *skip*: a folder is never triggered under its name;
2. every other folder is judged (``folders.judge``: completion markers, then RunInfo.xml): waiting,
   unreadable, or complete with its run id; a complete folder whose ``run__<run id>`` exists (a renamed
   folder) is already triggered too. A run id found in two folders is triggered from neither.

3. a run that seqshare's own database says was processed before (its snapshot frozen by a DAG run that
   no longer exists: deleted, or removed by ``airflow db clean``) is never triggered again by a scan:
   its files may have been purged after their time to live, and sending them again is an operator's
   decision (trigger ``distribute_run`` by hand), not a side effect of cleaning Airflow's history.

What is left is new: sorted by run id (instrument run ids start with the date, so oldest first), at most
``batch`` are triggered now and the rest wait for the next scan, which finds them new again.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass

from seqshare.scanner.folders import FoundRun, Judgement, Listing, Unreadable, Waiting
from seqshare.scanner.naming import dag_run_id_for

# A DAG-run count is a GET with one query parameter per run id; 100 ids (~5 KB) keep the request line far
# below the API server's limits (uvicorn/h11 refuses about 16 KB of request line and headers).
COUNT_CHUNK = 100

Triggered = Callable[[Collection[str]], set[str]]
Processed = Callable[[Collection[str]], dict[str, str]]  # run ids -> when their snapshot was frozen


def nothing_processed(run_ids: Collection[str]) -> dict[str, str]:
    return {}


@dataclass(frozen=True)
class Scan:
    """What one scan found: counts for the log, and the runs to trigger now."""

    listed: int  # run folders under the roots
    already: int  # of them, folders whose run was triggered before
    new: tuple[FoundRun, ...]  # to trigger in this scan, at most ``batch``
    deferred: tuple[FoundRun, ...]  # new too, beyond the batch: the next scan triggers them
    processed: tuple[tuple[FoundRun, str], ...]  # no DAG run, but frozen before (when): not triggered
    waiting: tuple[Waiting, ...]
    unreadable: tuple[Unreadable, ...]  # folders (and roots) that cannot be judged
    duplicates: tuple[tuple[str, tuple[str, ...]], ...]  # (run id, folders): triggered from none
    batch: int
    batch_source: str  # the setting that set ``batch``, for the log
    judged: int  # folders read in this scan (the others were known by their name)


def select(
    listing: Listing,
    *,
    triggered: Triggered,
    judge: Callable[[str], Judgement],
    batch: int,
    batch_source: str = "",
    processed: Processed = nothing_processed,
) -> Scan:
    """Sort the listed folders into already triggered, new (at most ``batch`` now), waiting, unreadable.

    ``triggered(dag_run_ids)`` returns those of the ids that exist (Airflow); ``judge(folder)`` reads one
    folder; ``processed(run_ids)`` says which runs seqshare froze before, and when (its database). Pure
    apart from these three: the unit tests pass fakes.
    """
    if batch < 1:
        raise ValueError(f"batch {batch}: a scan must be allowed to start at least one run")
    by_name = {folder: dag_run_id_for(os.path.basename(folder)) for folder in listing.folders}
    known = triggered(set(by_name.values()))
    unknown = [folder for folder in listing.folders if by_name[folder] not in known]
    already = len(listing.folders) - len(unknown)
    # Runs seqshare processed whose DAG run was cleaned away: known by their folder's name too (step 3
    # before step 2), so a whole cleaned history costs one query per scan, not a read of every folder.
    names = {os.path.basename(folder): folder for folder in unknown}
    frozen_by_name = processed(set(names)) if names else {}
    before = [(FoundRun(names[name], name), when) for name, when in sorted(frozen_by_name.items())]
    unknown = [folder for folder in unknown if os.path.basename(folder) not in frozen_by_name]

    waiting: list[Waiting] = []
    unreadable: list[Unreadable] = list(listing.unlistable)
    complete: list[FoundRun] = []
    for folder in unknown:
        judged = judge(folder)
        if isinstance(judged, FoundRun):
            complete.append(judged)
        elif isinstance(judged, Waiting):
            waiting.append(judged)
        else:
            unreadable.append(judged)

    runs, duplicates = unique_runs(complete)
    ids = {dag_run_id_for(r.run_id) for r in runs}
    asked = {by_name[r.run_folder] for r in runs}  # only a renamed folder's run id is still to be asked
    renamed = (ids & known) | triggered(ids - asked - known)
    new = [run for run in runs if dag_run_id_for(run.run_id) not in renamed]
    already += len(runs) - len(new)
    frozen = processed({run.run_id for run in new}) if new else {}  # renamed folders of cleaned runs
    before += [(run, frozen[run.run_id]) for run in new if run.run_id in frozen]
    new = [run for run in new if run.run_id not in frozen]
    return Scan(
        listed=len(listing.folders),
        already=already,
        new=tuple(new[:batch]),
        deferred=tuple(new[batch:]),
        processed=tuple(before),
        waiting=tuple(waiting),
        unreadable=tuple(unreadable),
        duplicates=duplicates,
        batch=batch,
        batch_source=batch_source,
        judged=len(unknown),  # the folders read
    )


def unique_runs(
    found: Iterable[FoundRun],
) -> tuple[tuple[FoundRun, ...], tuple[tuple[str, tuple[str, ...]], ...]]:
    """Runs sorted by run id, and the run ids found in more than one folder (left out: which copy to
    deliver is an operator's decision, never a guess)."""
    by_run: dict[str, list[str]] = {}
    for run in found:
        by_run.setdefault(run.run_id, []).append(run.run_folder)
    runs = tuple(
        FoundRun(folders[0], run_id) for run_id, folders in sorted(by_run.items()) if len(folders) == 1
    )
    duplicates = tuple(
        (run_id, tuple(folders)) for run_id, folders in sorted(by_run.items()) if len(folders) > 1
    )
    return runs, duplicates


def existing_runs(
    dag_run_ids: Iterable[str], count: Callable[[list[str]], int], chunk: int = COUNT_CHUNK
) -> set[str]:
    """The ids among ``dag_run_ids`` that have a DAG run, from counts of DAG runs with given ids.

    ``count(ids)`` is Airflow's DAG-run count (``RuntimeTaskInstance.get_dr_count``). A chunk whose count
    is 0 or all of it is settled in one call; otherwise it is halved, so k existing runs among n cost
    about n/chunk + k·log2(chunk) calls at worst, and the usual scan (all known, or none) n/chunk.
    """
    ids = sorted(set(dag_run_ids))
    found: set[str] = set()
    for start in range(0, len(ids), chunk):
        _bisect(ids[start : start + chunk], count, found)
    return found


def _bisect(ids: Sequence[str], count: Callable[[list[str]], int], found: set[str]) -> None:
    if not ids:  # never ask with no ids: Airflow would count every DAG run
        return
    n = count(list(ids))
    if n == 0:
        return
    if n >= len(ids):
        found.update(ids)
        return
    middle = len(ids) // 2
    _bisect(ids[:middle], count, found)
    _bisect(ids[middle:], count, found)
