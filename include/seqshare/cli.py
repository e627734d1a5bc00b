"""The `seqshare` admin CLI: parse arguments, call one service, print a table or JSON.

Errors are one line on stderr and a non-zero exit (1: refused or bad input; 2: unexpected). Set
SEQSHARE_DEBUG=1 to see a traceback for an unexpected error.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine, select
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from seqshare.db.engine import lost_race, make_engine, make_sessions, transaction
from seqshare.db.models import Run
from seqshare.db.revision import HEAD_REVISION, database_revision
from seqshare.errors import DatabaseNotReady, InvalidInput, SeqshareError, quote
from seqshare.instants import parse_instant
from seqshare.services import audit as audit_service
from seqshare.services import sharing
from seqshare.services.views import to_jsonable

app = typer.Typer(
    help=__doc__.splitlines()[0], no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False
)
db_app = typer.Typer(help="The application database.", no_args_is_help=True)
lims_app = typer.Typer(
    help="Import groups, users, projects, pools and runs from the LIMS.", no_args_is_help=True
)
share_app = typer.Typer(help="Show and change which groups a project is shared with.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(lims_app, name="lims")
run_app = typer.Typer(help="Runs: the delivery plan and the ledger.", no_args_is_help=True)
app.add_typer(share_app, name="share")
app.add_typer(run_app, name="run")

out = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
AsUser = Annotated[str, typer.Option("--as", help="Act as this user (the page's rules apply).")]


def now() -> datetime:
    return datetime.now(UTC)


def _engine() -> Engine:
    return make_engine()


@contextmanager
def app_sessions(*, check_schema: bool = True) -> Iterator[sessionmaker[Session]]:
    """Sessions on the application database, once its schema is known to be current."""
    engine = _engine()
    try:
        if check_schema:
            current, head = database_revision(engine), HEAD_REVISION
            if current != head:
                state = (
                    "has no seqshare schema" if current is None else f"is at revision {current}, not {head}"
                )
                raise DatabaseNotReady(
                    f"the database {engine.url.render_as_string()} {state}; run `seqshare db upgrade`"
                )
        yield make_sessions(engine)
    finally:
        engine.dispose()


@contextmanager
def unit_of_work(*, check_schema: bool = True) -> Iterator[Session]:
    with app_sessions(check_schema=check_schema) as sessions, transaction(sessions) as session:
        yield session


def emit(data: Any, as_json: bool, human: Callable[[], None]) -> None:
    if as_json:
        print(json.dumps(to_jsonable(data), indent=2, sort_keys=True))
    else:
        human()


def _t(when: datetime | None) -> str:
    return when.strftime("%Y-%m-%d %H:%M:%S %Z") if when else ""


def _state_text(state: Any) -> str:
    """An audit event's before/after: a list of groups, or the fields of a run's snapshot override."""
    if isinstance(state, dict):
        return ", ".join(f"{k}={v}" for k, v in state.items() if v is not None) or "-"
    return ", ".join(state) or "-"


def _groups_text(groups: Any) -> str:
    return ", ".join(g.name for g in groups) or "(not shared)"


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the schema to the newest revision."""
    from seqshare.db import migrate  # Alembic is slow to import; only this command needs it

    engine = _engine()
    try:
        migrate.upgrade(engine)
        out.print(
            f"database {engine.url.render_as_string()} is at revision {migrate.current_revision(engine)}"
        )
    finally:
        engine.dispose()


@lims_app.command("import")
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


@share_app.command("show")
def share_show(project: str, as_json: JsonOpt = False) -> None:
    """A project's owner, pools, current groups and share history."""
    with unit_of_work() as session:
        view = sharing.project_view(session, project)
        records = sharing.history(session, project)

    def human() -> None:
        out.print(f"project {view.name}  owner {view.owner} ({view.owner_group})")
        out.print(f"pools: {', '.join(view.pools) or '(none)'}")
        out.print(f"shared with: {_groups_text(view.shared_with)}")
        if records:
            table = Table("group", "granted at", "by", "revoked at", "by", title="history")
            for r in records:
                table.add_row(
                    r.group,
                    _t(r.granted_at),
                    r.granted_by,
                    _t(r.revoked_at),
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


@share_app.command("set")
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


@share_app.command("clear")
def share_clear(project: str, actor: AsUser, as_json: JsonOpt = False) -> None:
    """Do Not Share: stop sharing the project with any group."""
    with app_sessions() as sessions:
        change = sharing.set_sharing_now(sessions, project=project, groups=(), actor=actor, clock=now)
    _print_change(change, as_json)


@share_app.command("at")
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
        lambda: out.print(f"project {project} at {when.isoformat()}: {_groups_text(groups)}"),
    )


@share_app.command("list")
def share_list(actor: AsUser, as_json: JsonOpt = False) -> None:
    """The Data Sharing page's list: the projects of the user's group, their groups and pools."""
    with unit_of_work() as session:
        projects = sharing.visible_projects(session, actor)

    def human() -> None:
        table = Table("project", "owner", "shared with", "pools")
        for p in projects:
            table.add_row(p.name, p.owner, _groups_text(p.shared_with), ", ".join(p.pools))
        out.print(table)

    emit(projects, as_json, human)


@share_app.command("options")
def share_options(project: str, actor: AsUser, as_json: JsonOpt = False) -> None:
    """The groups a user may share a project with."""
    with unit_of_work() as session:
        groups = sharing.shareable_groups(session, actor, project)

    def human() -> None:
        for g in groups:
            out.print(f"{g.name}  ({g.kind.value}{', special' if g.is_special else ''})")

    emit(groups, as_json, human)


@app.command("audit")
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
                _t(e.at),
                e.actor,
                e.action,
                e.project or "",
                _state_text(e.before),
                _state_text(e.after),
                e.via,
            )
        out.print(table)

    emit(events, as_json, human)


@run_app.command("plan")
def run_plan(
    run: Annotated[str, typer.Argument(help="A run folder, or the id of a run already frozen.")],
    sequencing_time: Annotated[
        str | None, typer.Option("--sequencing-time", help="Preview with this override (not frozen).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """The delivery plan: per pool, the groups it goes to and those withheld, and why. Copies nothing.

    A run whose snapshot is frozen shows the frozen plan; otherwise a preview of what freezing would give now.
    """
    from seqshare.services import runs
    from seqshare.tasks.distribute import parse_override, read_folder

    folder = read_folder(run) if Path(run).is_dir() else None  # as the DAG reads it
    run_id = folder.run_id if folder else run
    with unit_of_work() as session:
        plan = None
        if session.scalar(select(Run.id).where(Run.run_id == run_id)) is not None:
            plan = runs.stored_plan(session, run_id)
        frozen = plan is not None
        if plan is None:
            if folder is None:
                raise InvalidInput(f"run {run_id} has no frozen plan; give its run folder to preview one")
            plan = runs.preview_plan(session, folder, parse_override(sequencing_time))
        elif sequencing_time:
            raise InvalidInput(f"run {run_id} is frozen; its sequencing time cannot be changed")

    def human() -> None:
        out.print(("frozen plan" if frozen else "preview (not frozen; the first DAG run freezes it)") + ":")
        out.print(plan.render())

    emit({"frozen": frozen, "plan": plan.to_dict()}, as_json, human)


@run_app.command("unlock")
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
            f"(taken {lease.acquired_at:%Y-%m-%d %H:%M:%S} UTC); clear the group's deliver task to resume"
        )


@run_app.command("ledger")
def run_ledger(run_id: str, as_json: JsonOpt = False) -> None:
    """Every file delivered for a run: group, size, md5, delivered at, expires at, state."""
    from seqshare.services import ledger

    with unit_of_work() as session:
        rows = ledger.ledger(session, run_id)

    def human() -> None:
        table = Table("group", "file", "bytes", "md5", "delivered", "expires", "state")
        for r in rows:
            table.add_row(
                r.group, r.remote_path, f"{r.size:,}", r.md5, _t(r.delivered_at), _t(r.expires_at), r.state
            )
        out.print(table)

    emit(rows, as_json, human)


@app.command("purge")
def purge(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would go, with sizes and ages.")
    ] = False,
    group: Annotated[list[str] | None, typer.Option("--group", help="Only this group (repeatable).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Purge expired files from the groups' FTP directories now (what the daily DAG does).

    The SFTP server is the Airflow Connection `seqshare_sftp` (e.g. AIRFLOW_CONN_SEQSHARE_SFTP).
    """
    import logging

    from seqshare.airflow_connection import sftp_config_from_connection
    from seqshare.services import purge as purge_ledger
    from seqshare.tasks import purge as tasks
    from seqshare.transfer import SftpRemote

    logging.getLogger("paramiko").setLevel(logging.WARNING)  # one line per group, not per connection

    with unit_of_work() as session:  # the same directories as the daily DAG: groups_to_purge
        targets = [
            {"group": t.group, "ftp_dir": t.directory}
            for t in purge_ledger.purge_targets(session)
            if not group or t.group in group
        ]
    unknown = sorted(set(group or []) - {t["group"] for t in targets})
    if unknown:
        raise InvalidInput(
            "no FTP directory to purge for "
            f"{', '.join(quote(g) for g in unknown)} (not an external group, and no delivered files)"
        )
    config = sftp_config_from_connection()
    lines: list[str] = []
    log = lines.append if as_json else out.print
    summaries = [
        tasks.purge(
            t["group"],
            t["ftp_dir"],
            connect=lambda guard: SftpRemote.connect(config, guard=guard),
            dry_run=dry_run,
            actor="cli",
            log=log,
        )
        for t in targets
    ]
    emit({"dry_run": dry_run, "groups": summaries}, as_json, lambda: None)


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else f"{line[:limit]}… ({len(line):,} characters)"


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app, turn every failure into one line and an exit code.

    Usage errors (an unknown option, a missing argument) are bad input: one line and exit 1, not Click's
    usage box and exit 2, which this CLI keeps for bugs. `seqshare` or a command group alone prints the
    help, and exits 1 since nothing was done.
    """
    try:
        code = app(args=argv, prog_name="seqshare", standalone_mode=False)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 0
    except typer.TyperException as exc:  # Click's usage errors (Typer vendors Click, and names them so)
        if type(exc).__name__ == "NoArgsIsHelpError":  # Typer printed the help when it was raised
            return 1
        ctx = getattr(exc, "ctx", None)
        where = f"{ctx.command_path}: " if ctx is not None else ""
        see = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        print(f"error: {where}{_one_line(exc.format_message())}{see}", file=sys.stderr)
        return 1
    except typer.Abort:
        print("error: aborted; nothing more was done", file=sys.stderr)
        return 1
    except SeqshareError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except SQLAlchemyError as exc:
        if os.environ.get("SEQSHARE_DEBUG"):
            raise
        race = lost_race(exc) if isinstance(exc, DBAPIError) else None
        if race:  # another command or task held the database: the user's to retry, not a bug
            print(f"error: {race}; nothing was changed, try again", file=sys.stderr)
            return 1
        first = str(exc.orig if getattr(exc, "orig", None) else exc).splitlines()[0]
        print(f"error: database: {first}", file=sys.stderr)
        return 1
    except Exception as exc:
        if os.environ.get("SEQSHARE_DEBUG"):
            raise
        print(
            f"error: unexpected {type(exc).__name__}: {exc} (SEQSHARE_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return 2
    return code if isinstance(code, int) else 0


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
