"""`seqshare audit`: every recorded change, who, when, from what, to what."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from seqshare.cli.common import (
    JsonOpt,
    emit,
    fmt_time,
    out,
    state_text,
    unit_of_work,
)
from seqshare.services import audit as audit_service


def audit(
    project: Annotated[str | None, typer.Option("--project", help="Only this project's changes.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Every recorded change: who, when, from which groups, to which groups."""
    with unit_of_work() as session:
        events = audit_service.audit_events(session, project=project)

    def human() -> None:
        table = Table("at", "who", "action", "project", "from", "to", "via")
        for e in events:
            table.add_row(
                fmt_time(e.at),
                e.actor,
                e.action,
                e.project or "",
                state_text(e.before),
                state_text(e.after),
                e.via,
            )
        out.print(table)

    emit(events, as_json, human)
