"""`seqshare run`: a run's delivery plan, its ledger, and the lease a killed delivery left."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from seqshare.cli.common import (
    JsonOpt,
    emit,
    fmt_time,
    out,
    unit_of_work,
)
from seqshare.errors import InvalidInput, NotFound, quote

app = typer.Typer(help="Runs: the delivery plan and the ledger.", no_args_is_help=True)


@app.command("plan")
def run_plan(
    run: Annotated[str, typer.Argument(help="A run folder, or the id of a run already frozen.")],
    sequencing_time: Annotated[
        str | None, typer.Option("--sequencing-time", help="Preview with this override (not frozen).")
    ] = None,
    output_dir: Annotated[
        str | None,
        typer.Option(
            "--output-dir",
            help="The demultiplexed output, absolute or relative to the run folder (the DAG's output_dir).",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """The delivery plan: per pool, the groups it goes to and those withheld, and why. Copies nothing.

    A run whose snapshot is frozen shows the frozen plan; otherwise a preview of what freezing would give now.
    """
    from seqshare.services import runs
    from seqshare.tasks.distribute import parse_override, read_folder

    folder = read_folder(run, output_dir) if Path(run).is_dir() else None  # as the DAG reads it
    if folder is None and ("/" in run or run.startswith(".")):  # a path, not a run id: say so
        raise InvalidInput(f"{quote(run)}: no such run folder")
    if folder is None and output_dir:
        raise InvalidInput(f"--output-dir goes with a run folder, and {quote(run)} is not a folder")
    run_id = folder.run_id if folder else run
    with unit_of_work() as session:
        try:
            plan = runs.stored_plan(session, run_id)
        except NotFound:
            if folder is None:
                raise InvalidInput(
                    f"run {quote(run_id)} has no frozen plan; give its run folder to preview one"
                ) from None
            plan = None  # a run folder the LIMS and the DAG have not seen yet: preview it
        frozen = plan is not None
        if plan is None:
            if folder is None:
                raise InvalidInput(
                    f"run {quote(run_id)} has no frozen plan; give its run folder to preview one"
                )
            plan = runs.preview_plan(session, folder, parse_override(sequencing_time))
        elif sequencing_time:
            raise InvalidInput(f"run {quote(run_id)} is frozen; its sequencing time cannot be changed")

    def human() -> None:
        out.print(("frozen plan" if frozen else "preview (not frozen; the first DAG run freezes it)") + ":")
        out.print(plan.render())

    emit({"frozen": frozen, "plan": plan.to_dict()}, as_json, human)


@app.command("unlock")
def run_unlock(run_id: str, group: str) -> None:
    """Remove the lease of a delivery of RUN_ID to GROUP that was killed outright (OOM, a lost worker).

    Only when no delivery of that run to that group is running: check the Airflow UI first. Then clear
    the group's `deliver` task and it resumes.
    """
    from seqshare.services import leases

    with unit_of_work() as session:
        lease = leases.break_lease(session, run_id, group)
    if lease is None:
        out.print(f"run {run_id} to {group}: no lease held; nothing to do")
    else:
        out.print(
            f"run {run_id} to {group}: removed the lease of {lease.holder} "
            f"(last renewed {lease.acquired_at:%Y-%m-%d %H:%M:%S} UTC); "
            "clear the group's deliver task to resume"
        )


@app.command("ledger")
def run_ledger(run_id: str, as_json: JsonOpt = False) -> None:
    """Every file delivered for a run: group, size, md5, delivered at, expires at, state."""
    from seqshare.services import ledger

    with unit_of_work() as session:
        rows = ledger.ledger(session, run_id)

    def human() -> None:
        table = Table("group", "file", "bytes", "md5", "delivered", "expires", "state")
        for r in rows:
            table.add_row(
                r.group,
                r.remote_path,
                f"{r.size:,}",
                r.md5,
                fmt_time(r.delivered_at),
                fmt_time(r.expires_at),
                r.state,
            )
        out.print(table)

    emit(rows, as_json, human)
