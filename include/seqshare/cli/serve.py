"""`seqshare serve`: the internal API and the Data Sharing pages on their own, with uvicorn (for a facility
running them apart from Airflow)."""

from __future__ import annotations

import os
import secrets
from typing import Annotated

import typer

from seqshare.cli.common import app_sessions, out


def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on (local only by default).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to listen on.")] = 8000,
    dev: Annotated[
        bool,
        typer.Option(
            "--dev",
            help="Without SEQSHARE_SECRET_KEY, sign page sessions with a key made for this process only "
            "(sessions end when it stops). For a local trial, not for a shared server.",
        ),
    ] = False,
) -> None:
    """Serve the internal API (`/api/v1`, a bearer token on every request; `/healthz` is open) and, with a
    session key (SEQSHARE_SECRET_KEY, or --dev), the Data Sharing pages (`/projects`)."""
    import uvicorn  # the web stack is loaded only by this command

    from seqshare.web.app import create_app
    from seqshare.web.session import SECRET_ENV

    with app_sessions():  # refuse to start on a database without the current schema: one line, exit 1
        pass
    secret = os.environ.get(SECRET_ENV) or (secrets.token_urlsafe(48) if dev else None)
    app = create_app(secret=secret or None)
    out.print(f"seqshare API on http://{host}:{port}/api/v1/ (health: /healthz); Ctrl-C stops it")
    if app.state.sessions is not None:
        out.print(f"Data Sharing pages on http://{host}:{port}/projects (sign in with an API token)")
    else:
        out.print(f"Data Sharing pages off: set {SECRET_ENV} (32+ random characters), or use --dev locally")
    # proxy_headers off: the client address stays the direct peer's, so the SSO header's proxy check
    # cannot be passed by a caller claiming `X-Forwarded-For: <proxy>` (uvicorn trusts it from 127.0.0.1)
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=True, proxy_headers=False)
