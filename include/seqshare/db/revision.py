"""The schema revision this code expects, checked cheaply on every command (no Alembic import).

Keep equal to the newest file in `seqshare/migrations/versions/`; a test enforces it.
"""

from __future__ import annotations

from sqlalchemy import Engine, inspect, text

HEAD_REVISION = "0007"


def database_revision(engine: Engine) -> str | None:
    """The revision recorded in the database, or None when it has no seqshare schema."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def require_current(engine: Engine) -> None:
    """Refuse, in one line, a database without seqshare's schema or at another revision: a command or a
    task on an old schema would otherwise fail later with a raw SQL error about a missing column."""
    from seqshare.errors import DatabaseNotReady

    current = database_revision(engine)
    if current != HEAD_REVISION:
        state = (
            "has no seqshare schema" if current is None else f"is at revision {current}, not {HEAD_REVISION}"
        )
        raise DatabaseNotReady(
            f"the database {engine.url.render_as_string()} {state}; run `seqshare db upgrade`"
        )
