"""`seqshare lims`: import groups, users, projects, pools and runs from the LIMS."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from seqshare.cli.common import (
    JsonOpt,
    emit,
    out,
    unit_of_work,
)

app = typer.Typer(help="Import groups, users, projects, pools and runs from the LIMS.", no_args_is_help=True)


@app.command("import")
def lims_import(
    file: Annotated[Path, typer.Argument(help="A LIMS export, JSON or YAML (see docs/lims-import.md).")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate and count; write nothing.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Upsert a LIMS export. Everything is validated first; bad input writes nothing."""
    from seqshare.services import lims  # pydantic models load only for this command

    export = lims.read_export(file)
    with unit_of_work() as session:
        report = lims.import_export(session, export)
        if dry_run:
            session.rollback()
    counts = report.as_dict()

    def human() -> None:
        table = Table(
            "records",
            "created",
            "updated",
            "unchanged",
            title=f"LIMS import of {file}" + (" (dry run: nothing written)" if dry_run else ""),
        )
        for kind, c in counts.items():
            table.add_row(kind, str(c["created"]), str(c["updated"]), str(c["unchanged"]))
        out.print(table)

    emit({"file": str(file), "dry_run": dry_run, "counts": counts}, as_json, human)
