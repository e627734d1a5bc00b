"""`seqshare share`: what the Data Sharing page shows and does, under the same rules (`--as USER`)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from seqshare.cli.common import (
    AsUser,
    JsonOpt,
    app_sessions,
    emit,
    fmt_time,
    groups_text,
    now,
    out,
    unit_of_work,
)
from seqshare.instants import parse_instant
from seqshare.services import sharing
from seqshare.services.views import to_jsonable

app = typer.Typer(help="Show and change which groups a project is shared with.", no_args_is_help=True)


@app.command("show")
def share_show(project: str, as_json: JsonOpt = False) -> None:
    """A project's owner, pools, current groups and share history."""
    with unit_of_work() as session:
        view = sharing.project_view(session, project)
        records = sharing.history(session, project)

    def human() -> None:
        out.print(f"project {view.name}  owner {view.owner} ({view.owner_group})")
        out.print(f"pools: {', '.join(view.pools) or '(none)'}")
        out.print(f"shared with: {groups_text(view.shared_with)}")
        if records:
            table = Table("group", "granted at", "by", "revoked at", "by", title="history")
            for r in records:
                table.add_row(
                    r.group,
                    fmt_time(r.granted_at),
                    r.granted_by,
                    fmt_time(r.revoked_at),
                    r.revoked_by or "",
                )
            out.print(table)

    emit({"project": view, "history": records}, as_json, human)


def _print_change(change: sharing.SharingChange, as_json: bool) -> None:
    def human() -> None:
        if not change.changed:
            out.print(
                f"project {change.project}: unchanged, shared with {', '.join(change.after) or 'no group'}"
            )
            return
        out.print(f"project {change.project} is now shared with: {', '.join(change.after) or 'no group'}")
        if change.granted:
            out.print(f"  granted: {', '.join(change.granted)}")
        if change.revoked:
            out.print(f"  revoked: {', '.join(change.revoked)}")

    emit({**to_jsonable(change), "changed": change.changed}, as_json, human)


@app.command("set")
def share_set(
    project: str,
    groups: Annotated[list[str], typer.Argument(help="The groups to share with (replaces the current set).")],
    actor: AsUser,
    as_json: JsonOpt = False,
) -> None:
    """Set Sharing: share the project with exactly these groups."""
    with app_sessions() as sessions:  # its own transactions: it retries a change that lost a race
        change = sharing.set_sharing_now(sessions, project=project, groups=groups, actor=actor, clock=now)
    _print_change(change, as_json)


@app.command("clear")
def share_clear(project: str, actor: AsUser, as_json: JsonOpt = False) -> None:
    """Do Not Share: stop sharing the project with any group."""
    with app_sessions() as sessions:
        change = sharing.set_sharing_now(sessions, project=project, groups=(), actor=actor, clock=now)
    _print_change(change, as_json)


@app.command("at")
def share_at(
    project: str,
    instant: Annotated[str, typer.Argument(help="ISO 8601 with a time zone, e.g. 2026-03-01T09:30:00Z.")],
    as_json: JsonOpt = False,
) -> None:
    """The groups the project was shared with at an instant (the snapshot deliveries use)."""
    when = parse_instant(instant)
    with unit_of_work() as session:
        groups = sharing.shared_at(session, project, when)
    emit(
        {"project": project, "at": when, "groups": groups},
        as_json,
        lambda: out.print(f"project {project} at {when.isoformat()}: {groups_text(groups)}"),
    )


@app.command("list")
def share_list(actor: AsUser, as_json: JsonOpt = False) -> None:
    """The Data Sharing page's list: the projects of the user's group, their groups and pools."""
    with unit_of_work() as session:
        projects = sharing.visible_projects(session, actor)

    def human() -> None:
        table = Table("project", "owner", "shared with", "pools")
        for p in projects:
            table.add_row(p.name, p.owner, groups_text(p.shared_with), ", ".join(p.pools))
        out.print(table)

    emit(projects, as_json, human)


@app.command("options")
def share_options(project: str, actor: AsUser, as_json: JsonOpt = False) -> None:
    """The groups a user may share a project with."""
    with unit_of_work() as session:
        groups = sharing.shareable_groups(session, actor, project)

    def human() -> None:
        for g in groups:
            out.print(f"{g.name}  ({g.kind.value}{', special' if g.is_special else ''})")

    emit(groups, as_json, human)
