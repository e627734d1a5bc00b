"""Alembic's revisions build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from seqshare.db import migrate
from seqshare.db.engine import make_engine
from seqshare.db.models import Base
from seqshare.db.revision import HEAD_REVISION, database_revision
from tests import databases


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield databases.scratch_sqlite(tmp_path)
    else:
        with databases.scratch_postgres() as url:
            yield url


def test_upgrade_from_empty_matches_the_models_and_downgrade_removes_everything(empty_url: str) -> None:
    engine = make_engine(empty_url)
    try:
        assert migrate.current_revision(engine) is None
        migrate.upgrade(engine)
        assert migrate.current_revision(engine) == migrate.head_revision(engine)
        with engine.connect() as conn:
            diffs = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
            )
        assert diffs == []
        assert set(inspect(engine).get_table_names()) >= {t.name for t in Base.metadata.sorted_tables}

        migrate.upgrade(engine)  # a second upgrade is a no-op
        migrate.downgrade(engine, "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    finally:
        engine.dispose()


def test_the_revision_the_cli_expects_is_the_newest_migration(tmp_path) -> None:
    engine = make_engine(databases.scratch_sqlite(tmp_path))
    try:
        assert migrate.head_revision(engine) == HEAD_REVISION
        assert database_revision(engine) is None
        migrate.upgrade(engine)
        assert database_revision(engine) == HEAD_REVISION
    finally:
        engine.dispose()
