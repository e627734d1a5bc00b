"""Every file in dags/ parses cleanly, cheaply and without secrets, and follows the house rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.airflow_env import DAGS

DAG_FILES = sorted(p for p in DAGS.glob("*.py") if not p.name.startswith("_"))


class ConnectionAskedAtParseTime(AssertionError):
    pass


@pytest.fixture
def no_connections(monkeypatch):
    """Make every Connection lookup fail (Task SDK and airflow-core paths) and record who asked."""
    asked: list[str] = []

    def refuse(conn_id, *args, **kwargs):
        asked.append(conn_id)
        raise ConnectionAskedAtParseTime(f"Connection {conn_id!r} asked for while the DAG file is parsed")

    async def refuse_async(conn_id, *args, **kwargs):
        refuse(conn_id)

    monkeypatch.setattr("airflow.sdk.execution_time.context._get_connection", refuse)
    monkeypatch.setattr("airflow.sdk.execution_time.context._async_get_connection", refuse_async)
    monkeypatch.setattr(
        "airflow.models.connection.Connection.get_connection_from_secrets",
        classmethod(lambda cls, c: refuse(c)),
    )
    return asked


def test_there_are_dag_files():
    assert DAG_FILES, f"no DAG files in {DAGS}"


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_dag_file_imports_without_errors_or_connections(path: Path, no_connections):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=path)

    assert bag.import_errors == {}
    assert no_connections == []
    assert list(bag.dags) == [path.stem], "one DAG per file, its dag_id the file name"


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_dag_has_owner_retries_and_docs(path: Path):
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=path).dags[path.stem]  # not get_dag(): that reads the metadata database

    assert {"owner", "retries"} <= set(dag.default_args), "set owner and retries in default_args"
    assert all(task.owner != "airflow" for task in dag.tasks), "every task has the project's owner"
    assert dag.doc_md, "doc_md=__doc__: the module docstring says what the DAG is for"
