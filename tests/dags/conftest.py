"""DAG tests: a temporary Airflow home and metadata database come from tests/airflow_env.py (a plugin);
the application database and the `seqshare_sftp` Connection the tasks use come from here."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from seqshare.db.engine import make_sessions
from tests import databases
from tests.airflow_env import DAGS


@pytest.fixture
def app_database(tmp_path, monkeypatch) -> Iterator[Callable[[str], sessionmaker[Session]]]:
    """app_database("sqlite" | "postgresql") → sessions on a fresh migrated database, which the DAG's tasks
    use through SEQSHARE_DATABASE_URL."""
    with ExitStack() as stack:

        def open_database(backend: str) -> sessionmaker[Session]:
            if backend == "sqlite":
                url = databases.scratch_sqlite(tmp_path)
            else:
                url = stack.enter_context(databases.scratch_postgres())
            engine = databases.migrated_engine(url)
            stack.callback(engine.dispose)
            monkeypatch.setenv("SEQSHARE_DATABASE_URL", url)
            return make_sessions(engine)

        yield open_database


@pytest.fixture
def sftp_connection(sshd_server, sftp_root, monkeypatch) -> Path:
    """The `seqshare_sftp` Airflow Connection pointing at the throwaway sshd; returns the FTP root."""
    monkeypatch.setenv("AIRFLOW_CONN_SEQSHARE_SFTP", json.dumps(sshd_server.connection(sftp_root)))
    return sftp_root


@pytest.fixture
def app_sessions(app_database) -> sessionmaker[Session]:
    """The application database the DAG's tasks use, on SQLite (a module may override it)."""
    return app_database("sqlite")


@pytest.fixture
def dag(airflow_db):
    """`distribute_run`, parsed from dags/ with no import error."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=DAGS / "distribute_run.py")
    assert not bag.import_errors
    return bag.dags["distribute_run"]
