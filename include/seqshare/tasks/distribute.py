"""The bodies of the `distribute_run` DAG's tasks: plain functions over plain values (JSON-able in, out).

Each opens the application database itself (SEQSHARE_DATABASE_URL), never Airflow's, and holds no state
between calls, so any task can be retried or cleared on its own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from seqshare.config import instrument_zone, parallel_connections
from seqshare.delivery.plan import DeliveryPlan
from seqshare.errors import InvalidInput, SeqshareError
from seqshare.instants import parse_instant
from seqshare.runfolder import RunFolder, read_run_folder
from seqshare.services import ledger, runs
from seqshare.services.delivery import GroupReport, deliver_group
from seqshare.tasks import app_sessions, quiet_ssh_logs
from seqshare.transfer import Remote


class RunNotDelivered(SeqshareError):
    """A DAG run after which some group of the frozen plan does not have its files; the message names what
    failed, in one line."""


def parse_override(value: str | None) -> datetime | None:
    return parse_instant(value, "sequencing_time") if value else None


def read_folder(run_folder: str, output_dir: str | None = None) -> RunFolder:
    """The run folder as every reader of it must see it: instrument local times in the configured zone, the
    demultiplexed output in `output_dir` (absolute or relative to the run folder) when ops give one."""
    return read_run_folder(
        Path(run_folder),
        output_dir=Path(output_dir) if output_dir else None,
        local_tz=instrument_zone(),
    )


def register(run_folder: str, output_dir: str | None = None) -> dict[str, str]:
    """Read the run folder whole (any problem stops the run here) and register its run.

    Returns the run id and the output folder read, which `freeze` must read again (`expected_output`).
    """
    folder = read_folder(run_folder, output_dir)
    with app_sessions() as sessions, sessions.begin() as s:
        runs.register_run(s, folder)
    return {"run_id": folder.run_id, "output_dir": str(folder.output_dir)}


def freeze(
    run_folder: str,
    sequencing_time: str | None,
    actor: str,
    *,
    output_dir: str | None = None,
    expected_output: str | None = None,
) -> DeliveryPlan:
    """Freeze the snapshot and plan at the first run; later runs get the stored plan back unchanged.

    The folder is read as `register` read it: an output folder found since (a re-analysis written between
    the two tasks) stops the run rather than being planned unchecked.
    """
    folder = read_folder(run_folder, output_dir)
    if expected_output is not None and str(folder.output_dir) != expected_output:
        raise InvalidInput(
            f"{folder.root}: the demultiplexed output is now {folder.output_dir}, register_run read "
            f"{expected_output}; clear register_run with Downstream to read the folder again"
        )
    override = parse_override(sequencing_time)
    with app_sessions() as sessions, sessions.begin() as s:
        return runs.freeze_snapshot(s, folder, override=override, actor=actor, now=datetime.now(UTC))


def group_assignments(plan: DeliveryPlan) -> list[dict[str, Any]]:
    """One mapped task's arguments per receiving external group (empty: nothing to deliver)."""
    return [
        {"run_id": plan.run_id, "group": g.group, "files": len(g.files), "bytes": g.bytes}
        for g in plan.groups
    ]


def task_instance_holder(dag_id: str, run_id: str, task_id: str, map_index: int) -> str:
    """The lease holder's prefix naming one Airflow task instance, whatever its try (fits the 200
    characters of the lease's holder with room for the try and the process)."""
    name = f"{dag_id}/{run_id}/{task_id}[{map_index}]"
    if len(name) > 120:
        name = f"{name[:100]}~{hashlib.sha256(name.encode()).hexdigest()[:12]}"
    return f"{name} try "


def deliver(
    run_id: str,
    group: str,
    connect: Callable[[], Remote],
    log: Callable[[str], None] = print,
    *,
    task_instance: str | None = None,
    try_number: int = 1,
) -> GroupReport:
    """Deliver one group's files of the run, per the frozen plan.

    `task_instance` (from `task_instance_holder`) names the Airflow task instance delivering: a lease
    left by an earlier try of it (its worker was lost mid-transfer) is taken over by this try once it
    went unrenewed for LEASE_TAKEOVER_AFTER, so a retry on another worker resumes at once instead of
    waiting for the lease to go stale; an earlier try still alive keeps renewing it (ADR 8).
    """
    quiet_ssh_logs()
    parallel = parallel_connections()
    holder = f"{task_instance}{try_number} on " if task_instance else None
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
            holder=holder,
            takes_over=task_instance,
        )


def undelivered_groups(plan: DeliveryPlan, reports: list[dict[str, Any]]) -> list[str]:
    """The groups of the frozen plan without a report of all their files from this DAG run (their task
    failed, or never ran)."""
    complete = {
        (r["group"], r["files"])
        for r in reports
        if r["run_id"] == plan.run_id and r["sent"] + r["skipped"] == r["files"]
    }
    return sorted(g.group for g in plan.groups if (g.group, len(g.files)) not in complete)


def outcome_per_group(plan: DeliveryPlan, reports: list[dict[str, Any]], failed: list[str]) -> str:
    """The end of the report's log: each group of the frozen plan, delivered (sent, already there) or
    not, after the plan that said what each was to get."""
    if not plan.groups:
        return "Outcome per group: no external group receives this run; nothing to deliver."
    by_group = {r["group"]: r for r in reports if r["run_id"] == plan.run_id}
    lines = ["Outcome per group:"]
    for g in sorted(plan.groups, key=lambda g: g.group):
        r = by_group.get(g.group)
        if g.group in failed:
            got = f"{r['sent'] + r['skipped']} of {len(g.files)} files reported" if r else "no report"
            lines.append(f"  {g.group}: NOT DELIVERED ({got}); see its deliver task")
        else:
            lines.append(
                f"  {g.group}: delivered, {len(g.files)} files ({r['sent']} sent, {r['skipped']} already "
                f"there, {r.get('bytes_sent', 0):,} bytes sent) in {r.get('destination', g.ftp_dir)}/"
            )
    return "\n".join(lines)


def report(
    run_id: str | None,
    *,
    frozen: bool,
    planned: bool,
    reports: list[dict[str, Any]],
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """The DAG run's result: what each group got, what the ledger holds now.

    Raises RunNotDelivered unless every group of the frozen plan (the application database's, not the
    XComs') reported all its files in this DAG run: a failed register, freeze or plan delivers nothing, and
    ops must not see a green run then. A plan without groups (no external share) is a success.
    """
    if run_id is None:
        raise RunNotDelivered("the run was not registered: see register_run's log")
    with app_sessions() as sessions, sessions.begin() as s:
        plan = runs.stored_plan(s, run_id)
        rows = ledger.ledger(s, run_id)
    log(plan.render() if plan else f"run {run_id}: no frozen plan")
    log(f"ledger: {len(rows)} files, {sum(r.size for r in rows):,} bytes")
    if not frozen or plan is None:
        raise RunNotDelivered("the snapshot was not frozen: see freeze_snapshot's log")
    if not planned:
        raise RunNotDelivered("the deliveries were not planned: see plan_deliveries's log")
    failed = undelivered_groups(plan, reports)
    log(outcome_per_group(plan, reports, failed))  # last: what ops read first at the log's end
    if failed:  # ops must see which group's task to clear
        raise RunNotDelivered(f"delivery failed for {', '.join(failed)}; see their deliver tasks")
    return {
        "run_id": run_id,
        "groups": reports,
        "ledger_files": len(rows),
        "ledger_bytes": sum(r.size for r in rows),
        "plan": plan.render(),
    }
