"""The DAG run id a run folder gets, and the scan's settings (roots, how many runs one scan may start)."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path

RUN_ROOTS_ENV = "SEQSHARE_RUN_ROOTS"
SCAN_BATCH_ENV = "SEQSHARE_SCAN_BATCH"
# A scan's trigger instances must finish well inside the 5-minute schedule: 303 instances took 2-3 minutes
# of every slot on a 2-core machine (issue 11), so one scan starts at most this many runs by default.
DEFAULT_SCAN_BATCH = 256
DAG_RUN_PREFIX = "run__"
# Airflow's default [scheduler] allowed_run_id_pattern is ^[A-Za-z0-9_.~:+-]+$ and run ids are at most
# 250 characters (StringID). Run ids made only of these characters are used as they are.
_PLAIN = re.compile(r"[A-Za-z0-9_.-]{1,200}")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


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


def scan_batch(max_map_length: int, environ: Mapping[str, str] | None = None) -> tuple[int, str]:
    """How many runs one scan may start, and the setting that says so (for the log).

    ``SEQSHARE_SCAN_BATCH`` (default 256), never more than Airflow's ``[core] max_map_length``: more
    mapped instances than that fail the scan itself, and then nothing new is delivered at all.
    A value that is not a positive whole number raises ValueError naming it.
    """
    value = (os.environ if environ is None else environ).get(SCAN_BATCH_ENV, "").strip()
    wanted, source = DEFAULT_SCAN_BATCH, f"{SCAN_BATCH_ENV} default"
    if value:
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"{SCAN_BATCH_ENV}={value[:50]!r}: give a whole number of runs, at least 1")
        wanted, source = int(value), SCAN_BATCH_ENV
    if max_map_length < wanted:
        return max(max_map_length, 1), "Airflow's [core] max_map_length"
    return wanted, source
