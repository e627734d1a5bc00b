"""The bodies of the `distribute_run` DAG's tasks: plain functions over plain values (JSON-able in, out).

Each opens the application database itself (SEQSHARE_DATABASE_URL), never Airflow's, and holds no state
between calls, so any task can be retried or cleared on its own.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from seqshare.config import instrument_zone, parallel_connections
from seqshare.delivery.plan import DeliveryPlan
from seqshare.errors import InvalidInput
from seqshare.instants import parse_instant
from seqshare.runfolder import RunFolder, read_run_folder
from seqshare.services import ledger, runs
from seqshare.services.delivery import GroupReport, deliver_group
from seqshare.tasks import app_sessions
from seqshare.transfer import Remote


def parse_override(value: str | None) -> datetime | None:
    return parse_instant(value, "sequencing_time") if value else None


def read_folder(run_folder: str) -> RunFolder:
    """The run folder as every reader of it must see it: instrument local times in the configured zone."""
    return read_run_folder(Path(run_folder), local_tz=instrument_zone())


def register(run_folder: str) -> str:
    """Read the run folder whole (any problem stops the run here) and register its run; returns the run id."""
    folder = read_folder(run_folder)
    with app_sessions() as sessions, sessions.begin() as s:
        runs.register_run(s, folder)
    return folder.run_id


def freeze(run_folder: str, sequencing_time: str | None, actor: str) -> DeliveryPlan:
    """Freeze the snapshot and plan at the first run; later runs get the stored plan back unchanged."""
    folder = read_folder(run_folder)
    override = parse_override(sequencing_time)
    with app_sessions() as sessions, sessions.begin() as s:
        return runs.freeze_snapshot(s, folder, override=override, actor=actor, now=datetime.now(UTC))


def group_assignments(plan: DeliveryPlan) -> list[dict[str, Any]]:
    """One mapped task's arguments per receiving external group (empty: nothing to deliver)."""
    return [
        {"run_id": plan.run_id, "group": g.group, "files": len(g.files), "bytes": g.bytes}
        for g in plan.groups
    ]


def deliver(
    run_id: str, group: str, connect: Callable[[], Remote], log: Callable[[str], None] = print
) -> GroupReport:
    """Deliver one group's files of the run, per the frozen plan."""
    parallel = parallel_connections()
    with app_sessions() as sessions:
        with sessions.begin() as s:
            plan = runs.stored_plan(s, run_id)
        if plan is None:
            raise InvalidInput(f"run {run_id} has no frozen plan; run the freeze_snapshot task first")
        return deliver_group(
            plan,
            group,
            connect=connect,
            sessions=sessions,
            delivered_at=datetime.now(UTC),
            parallel=parallel,
            log=log,
        )


def undelivered_groups(assignments: list[dict[str, Any]], reports: list[dict[str, Any]]) -> list[str]:
    """The groups the plan assigned files to whose delivery reported nothing (their task failed)."""
    return sorted({a["group"] for a in assignments} - {r["group"] for r in reports})


def summarise(run_id: str, reports: list[dict[str, Any]]) -> dict[str, Any]:
    """The DAG run's result: what each group got, what the ledger holds now."""
    with app_sessions() as sessions, sessions.begin() as s:
        plan = runs.stored_plan(s, run_id)
        rows = ledger.ledger(s, run_id)
    return {
        "run_id": run_id,
        "groups": reports,
        "ledger_files": len(rows),
        "ledger_bytes": sum(r.size for r in rows),
        "plan": plan.render() if plan else None,
    }
