"""Scratch application databases for tests: a SQLite file and a PostgreSQL database made per test run.

PostgreSQL is required, never silently skipped: the admin URL comes from SEQSHARE_TEST_PG_ADMIN_URL
(default: user postgres with trust auth at 127.0.0.1:5432, as `scripts/test` sets up).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from seqshare.db import migrate
from seqshare.db.engine import make_engine
from seqshare.db.models import Base

PG_ADMIN_URL = os.environ.get(
    "SEQSHARE_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


@contextmanager
def scratch_postgres() -> Iterator[str]:
    """Create an empty database on the test server, yield its URL, drop it afterwards."""
    name = f"seqshare_test_{os.getpid()}_{secrets.token_hex(4)}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        admin.dispose()
        raise RuntimeError(
            f"PostgreSQL is needed for the tests and is not reachable at {PG_ADMIN_URL}: {exc}. "
            "Run the tests through scripts/test, which starts it."
        ) from exc
    try:
        yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def scratch_sqlite(folder: Path) -> str:
    return f"sqlite:///{folder / 'seqshare-test.db'}"


def migrated_engine(url: str) -> Engine:
    engine = make_engine(url)
    migrate.upgrade(engine)
    return engine


def wipe(engine: Engine) -> None:
    """Delete every row, children first, keeping the schema (much faster than migrating per test)."""
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())
