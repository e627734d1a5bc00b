"""purge_expired_deliveries with dag.test(): one group per mapped task; one group's error stops no other."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.airflow_env import DAGS
from tests.world import load_world

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

    sessions = app_database("sqlite")
    with sessions.begin() as s:
        load_world(s)
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
    }
    assert states[("report", -1)] == "failed"  # ran after all groups, and says which failed
    summary = airflow_db.xcom(
        DAG_ID, run.run_id, "purge_group", map_index=next(i for i in names if names[i] == "Ext Co")
    )
    assert (summary["files"], summary["bytes_freed"], summary["dry_run"]) == (1, 4, dry_run)
    assert (sftp_connection / "extco" / "RUN" / "SLX-1" / "old.fastq.gz").exists() is dry_run
    assert (sftp_connection / "extco" / "RUN" / "SLX-1" / "new.fastq.gz").exists()
