"""Benchmark one scan of the run roots at 300, 1,000 and 5,000 run folders, against listing the roots.

Run:  .venv/bin/python bench/scan.py [--sizes 300,1000,5000] [--repeats 5] [--dir /tmp]

Each size is its own root of metadata-only completed run folders (``tests/unit/scanner_farm.py``: RunInfo.xml,
runParameters.xml, RTAComplete.txt, BCLConvert/Reports/fastq_list.csv), every one already triggered, plus 2
new complete folders and 1 still demultiplexing. Airflow's DAG runs are a SQLite table (dag_id, run_id)
holding the known runs, asked with the very query the execution API's ``/dag-runs/count`` runs; the HTTP
hop to the API server is not included (the bench prints how many counts a scan asks). Timed, interleaved
in each repeat, medians reported, page cache warm (the tree was just written):

- peer ``os.scandir``: list the root and keep the subfolders (``entry.is_dir()``): the floor any scan pays;
- seqshare scan (now): ``seqshare.scanner.scan``: list, ask Airflow which folder names are known runs,
  judge only the others, pick the new ones (what ``find_new_run_folders`` does before the trigger instances);
- every folder judged (before): ``find_completed_runs``, which judges every folder (completion markers,
  output, RunInfo.xml) as the scan did before it asked Airflow first.

Trigger task instances per scan are counted, not timed: before, one per complete folder (+1 scan task +
the mapped task); now, one per new run. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "include"))

from seqshare.runfolder import OutputSearch  # noqa: E402
from seqshare.scanner import dag_run_id_for, find_completed_runs, scan  # noqa: E402
from tests.unit.runfolder.builders import touch  # noqa: E402
from tests.unit.scanner_farm import completed_run, farm, farm_run_id  # noqa: E402


def build(root: Path, size: int) -> list[str]:
    """``size`` known runs, 2 new, 1 demultiplexing; returns the known run ids."""
    known = farm(root, size)
    for n in (90001, 90002):
        completed_run(root, farm_run_id(n))
    waiting = completed_run(root, farm_run_id(90003), demultiplexed=False)
    touch(waiting / "BCLConvert" / "Logs" / "Info.log", "started")
    return known


def airflow_counts(known: list[str]) -> tuple[Callable[[list[str]], int], list[int]]:
    """Airflow's DAG-run count over a SQLite dag_run table, and a list recording each call's size."""
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE dag_run (dag_id TEXT, run_id TEXT, PRIMARY KEY (dag_id, run_id))")
    db.executemany("INSERT INTO dag_run VALUES ('distribute_run', ?)", [(dag_run_id_for(r),) for r in known])
    calls: list[int] = []

    def count(ids: list[str]) -> int:
        calls.append(len(ids))
        marks = ",".join("?" * len(ids))
        query = f"SELECT count(*) FROM dag_run WHERE dag_id = 'distribute_run' AND run_id IN ({marks})"
        return db.execute(query, ids).fetchone()[0]

    return count, calls


def listing(root: Path) -> int:
    with os.scandir(root) as entries:
        return sum(1 for e in entries if not e.name.startswith(".") and e.is_dir())


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="300,1000,5000")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="where the trees are written")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    logging.disable(logging.WARNING)  # the scan's own log lines are not measured
    search = OutputSearch()
    cpus, python = os.cpu_count(), platform.python_version()
    print(f"machine: {platform.node()}, {platform.platform()}, {cpus} CPUs, Python {python}")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; trees under {args.dir}")
    work = Path(tempfile.mkdtemp(prefix="seqshare-bench-scan-", dir=args.dir))
    try:
        print(
            "| folders | os.scandir (peer) | seqshare scan (now) | now / peer | every folder judged (before) "
            "| before / now | counts asked | task instances per scan, before → now |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for size in sizes:
            root = work / str(size)
            known = build(root, size)
            count, calls = airflow_counts(known)
            found = scan([root], count=count, batch=256, search=search)
            assert len(found.new) == 2 and len(found.waiting) == 1 and found.already == size, found
            asked = len(calls)
            assert len(find_completed_runs([root], search)) == size + 2
            times: dict[str, list[float]] = {"peer": [], "now": [], "before": []}
            methods: dict[str, Callable[[], object]] = {
                "peer": lambda root=root: listing(root),
                "now": lambda root=root, count=count: scan([root], count=count, batch=256, search=search),
                "before": lambda root=root: find_completed_runs([root], search),
            }
            for repeat in range(args.repeats):
                order = list(methods) if repeat % 2 == 0 else list(reversed(methods))
                for name in order:
                    times[name].append(timed(methods[name]))
            peer, now, before = (statistics.median(times[k]) for k in ("peer", "now", "before"))
            print(
                f"| {size + 3:,} | {peer * 1000:.1f} ms | {now * 1000:.1f} ms | {now / peer:.1f}× "
                f"| {before * 1000:.0f} ms | {before / now:.0f}× | {asked} | {1 + size + 2} → {1 + 2} |"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
