"""`seqshare download`: a scientist fetches the files of a pool or project shared with their group, verified
and resumable, from the internal API (issue 10). The work is in `seqshare.download`; this module parses the
options, picks the output (a progress bar for people, JSON lines for scripts) and turns every failure into
one line on stderr and its documented exit code."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from seqshare.cli.edges import unexpected, usage_error
from seqshare.download.errors import EXIT_HELP, BadInput, DownloadError, Interrupted, from_os_error
from seqshare.errors import quote

if TYPE_CHECKING:
    from seqshare.download.progress import Summary

HELP = (
    "Download the files of a pool (SLX-12345) or a project shared with your group into "
    "DEST/<run>/<pool>/<file>, each checked against the server's md5 before it gets its name.\n\n"
    "An interrupted download resumes where it stopped when run again; files already here and verified are "
    "skipped. The server is SEQSHARE_URL (or `url` in the config file); your token is SEQSHARE_TOKEN or "
    "`token` in the config file, SEQSHARE_CONFIG or ~/.config/seqshare/config.toml, which must be readable "
    "by you only (chmod 600). A token is never taken from the command line.\n\n"
    f"{EXIT_HELP}"
)


def download(
    target: Annotated[
        str, typer.Argument(metavar="POOL_OR_PROJECT", help="A pool id (SLX-12345) or a project name.")
    ],
    run: Annotated[str | None, typer.Option("--run", help="Only the files of this run (its run id).")] = None,
    glob: Annotated[
        str | None,
        typer.Option(
            "--glob",
            help="Only files whose name matches this shell pattern (e.g. '*_R1_*.fastq.gz'); a pattern with "
            "a '/' matches the path <run>/<pool>/<file>.",
        ),
    ] = None,
    dest: Annotated[Path, typer.Option("--dest", help="The folder to download into.")] = Path("."),
    parallel: Annotated[
        int, typer.Option("--parallel", min=1, max=32, help="Files downloaded at the same time.")
    ] = 4,
    as_json: Annotated[
        bool, typer.Option("--json", help="JSON lines for scripts (also when stdout is not a terminal).")
    ] = False,
) -> None:
    from seqshare.download.fetch import Status
    from seqshare.download.progress import Events, JsonLines, RichBar
    from seqshare.download.runner import download as run_download
    from seqshare.download.settings import load_settings

    events: Events = JsonLines() if as_json or not sys.stdout.isatty() else RichBar()
    try:
        if not target.strip() or not target.isprintable():
            raise BadInput(f"not a pool or project name: {quote(target)}")
        summary = run_download(
            load_settings(),
            target=target,
            run=run,
            pattern=glob,
            dest=dest,
            parallel=parallel,
            events=events,
        )
    except KeyboardInterrupt:
        summary = _failed(Interrupted("interrupted: partial files stay; run the command again to resume"))
    except DownloadError as error:
        summary = _failed(error)
    except OSError as exc:  # the destination folder cannot be made or read
        summary = _failed(from_os_error(exc, getattr(exc, "filename", None) or dest))
    events.close(summary)
    if isinstance(events, JsonLines):  # the bar showed them; a script's log gets one line each
        for outcome in summary.outcomes:
            if outcome.status in (Status.CHANGED, Status.FAILED):
                print(f"error: {outcome.job.shown}: {outcome.message}", file=sys.stderr)
    if summary.error:
        print(f"error: {summary.error}", file=sys.stderr)
    raise typer.Exit(int(summary.exit))


def _failed(error: DownloadError) -> Summary:
    from seqshare.download.progress import Summary

    return Summary(error=str(error), exit=int(error.exit))


def run_alone(argv: list[str]) -> int:
    """`seqshare download ...` without loading the admin commands (SQLAlchemy, the models, FastAPI): a
    scientist's script may run it for every pool, and the admin CLI's imports cost half a second of CPU per
    start. The same rules as `seqshare.cli.main.main`: a usage error is one line and exit 1, an unexpected
    error one line and exit 2 (SEQSHARE_DEBUG=1 shows the traceback)."""

    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command("download", help=HELP)(download)
    try:
        code = app(args=argv, prog_name="seqshare download", standalone_mode=False)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 0
    except typer.TyperException as exc:  # Click's usage errors
        return usage_error(exc)
    except Exception as exc:
        return unexpected(exc)
    return code if isinstance(code, int) else 0
