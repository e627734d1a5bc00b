"""purge_expired_deliveries with dag.test(): one directory per mapped task; one group's error stops no other;
a group made internal is still purged where its live deliveries are."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.airflow_env import DAGS
from tests.runs import RUN_ID
from tests.world import WORLD, load_world

pytestmark = pytest.mark.slow
DAG_ID = "purge_expired_deliveries"


def old_file(path: Path, days: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"data")
    when = time.time() - days * 86400
    os.utime(path, (when, when))


@pytest.mark.parametrize("dry_run", [True, False])
def test_one_broken_group_fails_alone_and_the_others_are_purged(
    airflow_db, app_database, sftp_connection, dry_run
) -> None:
    from airflow.dag_processing.dagbag import DagBag

    from seqshare.services import ledger

    sessions = app_database("sqlite")
    former = f"oldcust/{RUN_ID}/SLX-1/old.fastq.gz"  # delivered while Old Customer was external
    with sessions.begin() as s:
        load_world(
            s,
            {
                **WORLD,
                "groups": [*WORLD["groups"], {"name": "Old Customer", "kind": "internal"}],
                "runs": [{"run_id": RUN_ID, "started_at": "2026-01-01T00:00:00Z"}],
            },
        )
        ledger.record_delivery(
            s,
            run_id=RUN_ID,
            group="Old Customer",
            pool="SLX-1",
            remote_path=former,
            size=4,
            md5="0" * 32,
            delivered_at=datetime.now(UTC) - timedelta(days=40),
        )
    old_file(sftp_connection / former, days=40)
    old_file(sftp_connection / "extco" / "RUN" / "SLX-1" / "old.fastq.gz", days=40)
    old_file(sftp_connection / "extco" / "RUN" / "SLX-1" / "new.fastq.gz", days=2)
    (sftp_connection / "exttwo").write_text("a file where the group's folder should be")  # this group's error

    dag = DagBag(dag_folder=DAGS / f"{DAG_ID}.py").dags[DAG_ID]
    run = dag.test(run_conf={"dry_run": dry_run}, logical_date=None)

    assert run.state == "failed"
    names = airflow_db.rendered_map_indexes(DAG_ID, run.run_id, "purge_group")
    states = airflow_db.task_states(DAG_ID, run.run_id)
    assert {names[i]: states[("purge_group", i)] for i in names} == {
        "Ext Co": "success",
        "Ext Two": "failed",
        "Special": "success",
        "Old Customer (former directory oldcust)": "success",
    }
    assert states[("report", -1)] == "failed"  # ran after all groups, and says which failed
    summary = airflow_db.xcom(
        DAG_ID, run.run_id, "purge_group", map_index=next(i for i in names if names[i] == "Ext Co")
    )
    assert (summary["files"], summary["bytes_freed"], summary["dry_run"]) == (1, 4, dry_run)
    assert (sftp_connection / "extco" / "RUN" / "SLX-1" / "old.fastq.gz").exists() is dry_run
    assert (sftp_connection / "extco" / "RUN" / "SLX-1" / "new.fastq.gz").exists()
    assert (sftp_connection / former).exists() is dry_run


def test_a_purge_whose_directories_cannot_be_listed_is_red_and_says_why(
    airflow_db, sftp_connection, tmp_path, monkeypatch, capfd
) -> None:
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("SEQSHARE_DATABASE_URL", f"sqlite:///{tmp_path / 'no-schema.db'}")  # never migrated
    dag = DagBag(dag_folder=DAGS / f"{DAG_ID}.py").dags[DAG_ID]
    run = dag.test(run_conf={"dry_run": True}, logical_date=None)

    states = airflow_db.task_states(DAG_ID, run.run_id)
    assert states[("directories_to_purge", -1)] == "failed"
    assert states[("report", -1)] == "failed"
    assert run.state == "failed"
    out = capfd.readouterr().out
    assert "the directories to purge were not listed: see directories_to_purge's log" in out
