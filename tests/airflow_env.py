"""Pytest plugin: a throw-away Airflow home and metadata database for DAG tests.

Importing this module sets Airflow's environment, so it must be imported **before anything imports
Airflow** — list it in the root ``tests/conftest.py``: ``pytest_plugins = ["tests.airflow_env", ...]``.
If Airflow was imported first, the import fails loudly rather than letting tests write into a real
``~/airflow``.

What it sets (``os.environ``, for this process and every subprocess it starts):

- ``AIRFLOW_HOME`` = a fresh temporary folder (removed at exit); its ``airflow.db`` is the SQLite
  metadata database;
- ``AIRFLOW__CORE__DAGS_FOLDER`` = ``<repo>/dags``, ``AIRFLOW__CORE__LOAD_EXAMPLES=False``,
  ``AIRFLOW__CORE__PARALLELISM=4``, and no default connections in the database.

Fixtures and helpers:

- ``airflow_db`` (session): creates the metadata database once (~2 s on SQLite) and returns an
  :class:`AirflowDb` with read helpers. ``dag.test()`` needs it.
- :func:`use_dags_folder` (context manager): point the DAG bundle at another folder, e.g. a temporary
  folder holding a DAG file and stand-ins for the DAGs it triggers. ``dag.test()`` serialises every DAG
  of the bundle into the database, which ``TriggerDagRunOperator`` needs for its target.

Writing a DAG test::

    from tests.airflow_env import DAGS

    @pytest.mark.slow
    def test_distribute_run_delivers(airflow_db, tmp_path):
        from airflow.dag_processing.dagbag import DagBag

        dag = DagBag(dag_folder=DAGS / "distribute_run.py").dags["distribute_run"]
        run = dag.test(run_conf={"run_folder": str(folder)}, logical_date=None)
        assert run.state == "success"
        states = airflow_db.task_states("distribute_run", run.run_id)   # {(task_id, map_index): state}
        assert airflow_db.xcom("distribute_run", run.run_id, "plan") == [...]

Cost: creating the database ~2 s (``initdb`` builds the tables from the ORM on an empty database,
then stamps the Alembic head); the first ``dag.test()`` in a process ~9 s more, nearly all of it
building the in-process execution API (FastAPI routes); later ``dag.test()`` calls ~1 s for a small
mapped DAG. Mark such tests ``@pytest.mark.slow``.

Notes: ``dag.test()`` runs every task in this process, one after the other (no executor, no
scheduler); it returns the DagRun (a detached ORM object: read ``state``/``run_id``/``conf``, use
the helpers for task instances). DAG runs it triggers through ``TriggerDagRunOperator`` are only
queued, never run. Inside tasks Airflow's own database is not reachable (Task SDK), but test code
can read it through these helpers. Environment variables a task needs (``AIRFLOW_CONN_*``, the
application's own settings) can be set with ``monkeypatch.setenv`` before ``dag.test()``: tasks run
in this process. The database is shared by the whole session, so filter by ``run_id`` or clean up
with :meth:`AirflowDb.forget_dags`.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
DAGS = REPO / "dags"

if "airflow" in sys.modules:  # pragma: no cover - a wiring mistake, not a test outcome
    raise RuntimeError(
        "tests.airflow_env must be imported before Airflow (list it first in pytest_plugins): "
        "Airflow reads AIRFLOW_HOME when it is imported"
    )

AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="seqshare-airflow-"))
atexit.register(shutil.rmtree, AIRFLOW_HOME, ignore_errors=True)

os.environ.update(
    {
        "AIRFLOW_HOME": str(AIRFLOW_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__LOAD_DEFAULT_CONNECTIONS": "False",
        "AIRFLOW__CORE__PARALLELISM": "4",
    }
)
for _name in [n for n in os.environ if n.startswith("AIRFLOW_CONN_") or n.startswith("AIRFLOW_VAR_")]:
    del os.environ[_name]  # a developer's shell must not leak connections into tests

BUNDLE_CONFIG_ENV = "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"


@dataclass
class AirflowDb:
    """Read access to the test metadata database (outside tasks, where Airflow allows it)."""

    home: Path
    migrate_seconds: float

    def dag_runs(self, dag_id: str) -> dict[str, Any]:
        """{run_id: DagRun} of ``dag_id`` (detached objects: read ``state``, ``conf``, ``run_type``)."""
        from airflow.models.dagrun import DagRun
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            runs = session.scalars(select(DagRun).where(DagRun.dag_id == dag_id)).all()
            session.expunge_all()
        return {run.run_id: run for run in runs}

    def task_states(self, dag_id: str, run_id: str) -> dict[tuple[str, int], str | None]:
        """{(task_id, map_index): state}; map_index is -1 for unmapped tasks."""
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session
        from sqlalchemy import select

        query = select(TaskInstance.task_id, TaskInstance.map_index, TaskInstance.state).where(
            TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id
        )
        with create_session() as session:
            return {(task, index): state for task, index, state in session.execute(query)}

    def rendered_map_indexes(self, dag_id: str, run_id: str, task_id: str) -> dict[int, str | None]:
        """{map_index: the name the UI shows for that mapped instance}."""
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session
        from sqlalchemy import select

        query = select(TaskInstance.map_index, TaskInstance.rendered_map_index).where(
            TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id, TaskInstance.task_id == task_id
        )
        with create_session() as session:
            return {index: name for index, name in session.execute(query)}

    def xcom(self, dag_id: str, run_id: str, task_id: str, *, key: str = "return_value", map_index: int = -1):
        """The deserialised XCom value, or None."""
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session
        from sqlalchemy import select

        query = select(XComModel.value).where(
            XComModel.dag_id == dag_id,
            XComModel.run_id == run_id,
            XComModel.task_id == task_id,
            XComModel.key == key,
            XComModel.map_index == map_index,
        )
        with create_session() as session:
            value = session.scalar(query)
        if value is None:
            return None
        return XComModel.deserialize_value(_Row(value))

    def forget_dags(self, *dag_ids: str) -> None:
        """Delete ``dag_ids`` from the database with all their runs, task instances, XComs and versions.

        Use it after a test with stand-in DAGs, so a later ``dag.test()`` syncs the real ones afresh.
        """
        from airflow.api.common.delete_dag import delete_dag
        from airflow.exceptions import DagNotFound

        for dag_id in dag_ids:
            with suppress(DagNotFound):
                delete_dag(dag_id, keep_records_in_log=False)


@dataclass
class _Row:
    value: Any


@pytest.fixture(scope="session")
def airflow_db() -> AirflowDb:
    """The metadata database, created once per test session (per xdist worker)."""
    from airflow.utils import db

    started = time.perf_counter()
    db.initdb()
    return AirflowDb(home=AIRFLOW_HOME, migrate_seconds=time.perf_counter() - started)


@contextmanager
def use_dags_folder(folder: Path, *, bundle_name: str = "dags-folder") -> Iterator[None]:
    """Point the DAG bundle (what ``dag.test()`` serialises) at ``folder`` for the block's duration.

    Use a different ``bundle_name`` than the default when ``folder`` holds stand-ins for real DAGs, so
    that their DAG records can be told apart.
    """
    config = [
        {
            "name": bundle_name,
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": str(folder), "refresh_interval": 0},
        }
    ]
    saved = {name: os.environ.get(name) for name in (BUNDLE_CONFIG_ENV, "AIRFLOW__CORE__DAGS_FOLDER")}
    os.environ[BUNDLE_CONFIG_ENV] = json.dumps(config)
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(folder)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
