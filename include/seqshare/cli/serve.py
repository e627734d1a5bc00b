"""`seqshare serve`: the internal API on its own, with uvicorn (for a facility running it apart from
Airflow)."""

from __future__ import annotations

from typing import Annotated

import typer

from seqshare.cli.common import app_sessions, out


def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on (local only by default).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to listen on.")] = 8000,
) -> None:
    """Serve the internal API (`/api/v1`, a bearer token on every request; `/healthz` is open)."""
    import uvicorn  # the web stack is loaded only by this command

    from seqshare.web.app import create_app

    with app_sessions():  # refuse to start on a database without the current schema: one line, exit 1
        pass
    out.print(f"seqshare API on http://{host}:{port}/api/v1/ (health: /healthz); Ctrl-C stops it")
    uvicorn.run(create_app(), host=host, port=port, log_level="info", access_log=True)
