"""Shared fixtures: the application database on SQLite and on PostgreSQL, and a world of groups and users."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from seqshare.db.engine import make_sessions
from tests import databases

# tests.airflow_env first: it sets AIRFLOW_HOME & co. before anything imports Airflow.
pytest_plugins = ["tests.airflow_env", "tests.sshd", "tests.standalone"]

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with databases.scratch_postgres() as url:
        yield url


@pytest.fixture(scope="session", params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """A migrated application database, once per backend per test run."""
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
    else:
        url = databases.scratch_sqlite(tmp_path_factory.mktemp("sqlite"))
    engine = databases.migrated_engine(url)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> Iterator[sessionmaker[Session]]:
    """A session factory on an empty database; every row is deleted after the test."""
    databases.wipe(engine)
    yield make_sessions(engine)
    databases.wipe(engine)


@pytest.fixture
def t0() -> datetime:
    return datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
