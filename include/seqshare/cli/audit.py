"""`seqshare audit`: every recorded change, who, when, from what, to what; `seqshare audit downloads`: every
file request of the download API."""

from __future__ import annotations

import re
from datetime import UTC, datetime
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
from seqshare.errors import InvalidInput, quote
from seqshare.instants import parse_instant
from seqshare.services import audit as audit_service
from seqshare.services import downloads as downloads_service

app = typer.Typer(help="The audit trail: sharing changes, and (`downloads`) file downloads.")


@app.callback(invoke_without_command=True)
def audit(
    ctx: typer.Context,
    project: Annotated[str | None, typer.Option("--project", help="Only this project's changes.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Every recorded change: who, when, from which groups, to which groups."""
    if ctx.invoked_subcommand is not None:
        return
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


def _since(text: str) -> datetime:
    """A date (`2026-11-30`, from its start in UTC) or an instant with a time zone."""
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text.strip()):
        try:
            return datetime.fromisoformat(text.strip()).replace(tzinfo=UTC)
        except ValueError:
            raise InvalidInput(f"--since {quote(text)} is not a date (e.g. 2026-11-30)") from None
    return parse_instant(text, "--since")


@app.command("downloads")
def downloads(
    user: Annotated[str | None, typer.Option("--user", help="Only this user's requests.")] = None,
    project: Annotated[str | None, typer.Option("--project", help="Only this project's files.")] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="From this date (UTC) or ISO 8601 instant with a zone.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Every file request of the download API, oldest first: who, which file, status, range, bytes sent."""
    start = _since(since) if since is not None else None
    with unit_of_work() as session:
        records = downloads_service.download_records(session, user=user, project=project, since=start)

    def human() -> None:
        table = Table(
            "at", "user", "group", "project", "file", "status", "from byte", "bytes sent", "complete"
        )
        for r in records:
            table.add_row(
                fmt_time(r.at),
                r.user,
                r.group,
                r.project or "",
                f"{r.run_id}/{r.pool}/{r.path}",
                f"{r.method} {r.status}",
                "" if r.range_start is None else f"{r.range_start:,}",
                f"{r.bytes_sent:,}",
                "yes" if r.completed else "no",
            )
        out.print(table)

    emit(records, as_json, human)
