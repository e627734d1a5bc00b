"""purge_expired_deliveries with dag.test(): one group per mapped task; one group's error stops no other."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests import databases
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
    airflow_db, sshd_server, sftp_root, tmp_path, monkeypatch, dry_run
) -> None:
    from airflow.dag_processing.dagbag import DagBag

    url = databases.scratch_sqlite(tmp_path)
    engine = databases.migrated_engine(url)
    with engine.begin() as conn:
        from sqlalchemy.orm import Session

        with Session(conn) as s:
            load_world(s)
            s.commit()
    engine.dispose()
    monkeypatch.setenv("SEQSHARE_DATABASE_URL", url)
    monkeypatch.setenv(
        "AIRFLOW_CONN_SEQSHARE_SFTP",
        json.dumps(
            {
                "conn_type": "sftp",
                "host": sshd_server.host,
                "port": sshd_server.port,
                "login": sshd_server.username,
                "extra": {
                    "host_key": sshd_server.host_key_line,
                    "key_file": str(sshd_server.client_key_path),
                    "root": str(sftp_root),
                },
            }
        ),
    )
    old_file(sftp_root / "extco" / "RUN" / "SLX-1" / "old.fastq.gz", days=40)
    old_file(sftp_root / "extco" / "RUN" / "SLX-1" / "new.fastq.gz", days=2)
    (sftp_root / "exttwo").write_text("a file where the group's folder should be")  # this group's error

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
    assert (sftp_root / "extco" / "RUN" / "SLX-1" / "old.fastq.gz").exists() is dry_run
    assert (sftp_root / "extco" / "RUN" / "SLX-1" / "new.fastq.gz").exists()
