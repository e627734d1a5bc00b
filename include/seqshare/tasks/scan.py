"""The scanning DAG's task body: list the roots, pick the new runs, name their DAG runs."""

from __future__ import annotations

from collections.abc import Callable, Collection

from seqshare.scanner import dag_run_id_for, run_roots_from_env, scan, scan_batch
from seqshare.services import runs
from seqshare.tasks import app_sessions


def find_new_run_folders(*, count: Callable[[list[str]], int], max_map_length: int) -> list[dict]:
    """One ``TriggerDagRunOperator`` argument set per new complete run folder, at most one batch.

    ``count(ids)`` is Airflow's count of ``distribute_run`` DAG runs with those ids. Runs that seqshare's
    database froze before are left out (and logged): a DAG run deleted or cleaned away never makes a scan
    send a run's files again by itself.
    """
    batch, source = scan_batch(max_map_length)
    with app_sessions() as sessions:

        def processed(run_ids: Collection[str]) -> dict[str, str]:
            with sessions() as session:
                return runs.frozen_runs(session, run_ids)

        found = scan(run_roots_from_env(), count=count, batch=batch, batch_source=source, processed=processed)
    return [
        {"trigger_run_id": dag_run_id_for(run.run_id), "conf": {"run_folder": run.run_folder}}
        for run in found.new
    ]
