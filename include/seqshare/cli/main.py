"""The `seqshare` admin CLI: parse arguments, call one service, print a table or JSON.

Errors are one line on stderr and a non-zero exit (1: refused, bad input or a usage error; 2: unexpected).
Set SEQSHARE_DEBUG=1 to see a traceback for an unexpected error. One module per noun beside this one.
"""

from __future__ import annotations

import os
import sys

import typer
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from seqshare.cli import audit, db, download, lims, purge, runs, serve, share, token
from seqshare.cli.edges import unexpected, usage_error
from seqshare.db.engine import lost_race
from seqshare.errors import SeqshareError

app = typer.Typer(
    help=__doc__.splitlines()[0], no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False
)
app.add_typer(db.app, name="db")
app.add_typer(lims.app, name="lims")
app.add_typer(share.app, name="share")
app.add_typer(audit.app, name="audit")
app.add_typer(runs.app, name="run")
app.command("purge")(purge.purge)
app.add_typer(token.app, name="token")
app.command("serve")(serve.serve)
app.command("download", help=download.HELP)(download.download)


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
        return usage_error(exc)
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
        return unexpected(exc)
    return code if isinstance(code, int) else 0


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
