"""`seqshare db`: the application database's schema."""

from __future__ import annotations

import typer

from seqshare.cli.common import open_engine, out

app = typer.Typer(help="The application database.", no_args_is_help=True)


@app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the schema to the newest revision."""
    from seqshare.db import migrate  # Alembic is slow to import; only this command needs it

    engine = open_engine()
    try:
        migrate.upgrade(engine)
        out.print(
            f"database {engine.url.render_as_string()} is at revision {migrate.current_revision(engine)}"
        )
    finally:
        engine.dispose()
