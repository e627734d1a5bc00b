"""The schema revision this code expects, checked cheaply on every command (no Alembic import).

Keep equal to the newest file in `seqshare/migrations/versions/`; a test enforces it.
"""

from __future__ import annotations

from sqlalchemy import Engine, inspect, text

HEAD_REVISION = "0006"


def database_revision(engine: Engine) -> str | None:
    """The revision recorded in the database, or None when it has no seqshare schema."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
