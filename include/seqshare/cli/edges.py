"""What every `seqshare` command prints at its edge for a usage error or a bug: one line, never a traceback
(unless SEQSHARE_DEBUG=1). Light on purpose: `seqshare download` starts without the admin CLI's imports."""

from __future__ import annotations

import os
import sys

import typer

from seqshare.errors import one_line


def usage_error(exc: typer.TyperException) -> int:
    """Click's usage errors (Typer vendors Click, and names them so): one line, exit 1."""
    ctx = getattr(exc, "ctx", None)
    where = f"{ctx.command_path}: " if ctx is not None else ""
    see = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
    print(f"error: {where}{one_line(exc.format_message())}{see}", file=sys.stderr)
    return 1


def unexpected(exc: Exception) -> int:
    """A bug: one line and exit 2; SEQSHARE_DEBUG=1 re-raises it for the traceback."""
    if os.environ.get("SEQSHARE_DEBUG"):
        raise exc
    print(
        f"error: unexpected {type(exc).__name__}: {exc} (SEQSHARE_DEBUG=1 shows the traceback)",
        file=sys.stderr,
    )
    return 2
