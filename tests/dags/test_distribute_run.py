"""distribute_run end to end: dag.test() against a real sshd and a real application database.

The scenario (tests/runs.py): a run with pools of several projects; groups granted before sequencing
receive their pools' files byte-identical, a group granted after receives nothing, a group revoked after
sequencing still receives, internal shares produce no transfer, two groups of one project both receive.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from seqshare.services import ledger
from tests.airflow_env import DAGS
from tests.runs import EXPECTED, FTP_DIRS, POOLS, RUN_ID, build_run, load_scenario

pytestmark = pytest.mark.slow
DAG_ID = "distribute_run"


@pytest.fixture(params=["sqlite", "postgresql"])
def app_sessions(request, app_database) -> sessionmaker[Session]:
    """The application database the DAG's tasks use, on both backends."""
    return app_database(request.param)


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def test_a_run_reaches_exactly_the_groups_entitled_at_sequencing_time(
    dag, airflow_db, app_sessions, sftp_connection, tmp_path
) -> None:
    built = build_run(tmp_path / "runs", POOLS)
    with app_sessions.begin() as s:
        load_scenario(s)

    run = dag.test(run_conf={"run_folder": str(built.path)}, logical_date=None)

    assert run.state == "success"
    states = airflow_db.task_states(DAG_ID, run.run_id)
    assert {k: v for k, v in states.items() if k[0] == "deliver"} == {
        ("deliver", i): "success" for i in range(3)
    }
    assert set(airflow_db.rendered_map_indexes(DAG_ID, run.run_id, "deliver").values()) == set(EXPECTED)

    remote = tree(sftp_connection)
    expected_files = {}
    for group, pools in EXPECTED.items():
        for pool in pools:
            for f in built.files[pool]:
                expected_files[f"{FTP_DIRS[group]}/{RUN_ID}/{pool}/{f.name}"] = f.read_bytes()
    data_files = {p: b for p, b in remote.items() if p.endswith(".fastq.gz")}
    assert data_files.keys() == expected_files.keys()  # nothing more, nothing less, no .partial
    assert all(data_files[p] == expected_files[p] for p in expected_files)  # byte-identical
    assert not any("partial" in p for p in remote)
    assert not (sftp_connection / FTP_DIRS["Ext Co"] / RUN_ID / "SLX-4").exists()  # granted after sequencing

    for group, pools in EXPECTED.items():
        for pool in pools:
            folder = sftp_connection / FTP_DIRS[group] / RUN_ID / pool
            check = subprocess.run(
                ["md5sum", "-c", "md5sums.txt"], cwd=folder, capture_output=True, text=True
            )
            assert check.returncode == 0, check.stdout + check.stderr
            assert check.stdout.count(": OK") == len(built.files[pool])
        readme = (sftp_connection / FTP_DIRS[group] / RUN_ID / "README.txt").read_text()
        assert RUN_ID in readme
        assert "DELETED from this server on" in readme

    with app_sessions.begin() as s:
        rows = ledger.ledger(s, RUN_ID)
    assert len(rows) == len(expected_files)
    assert {(r.remote_path, r.md5) for r in rows} == {(p, md5(b)) for p, b in expected_files.items()}
    assert all((r.expires_at - r.delivered_at).days == 30 for r in rows)

    summary = airflow_db.xcom(DAG_ID, run.run_id, "record_and_report")
    assert summary["ledger_files"] == len(expected_files)
    assert "withheld from Ext Co: shared only after sequencing" in summary["plan"]

    # Re-running the whole DAG (a new DAG run of the same folder) changes nothing remote, duplicates nothing.
    mtimes = {p: q.stat().st_mtime_ns for p, q in ((p, sftp_connection / p) for p in remote)}
    again = dag.test(run_conf={"run_folder": str(built.path)}, logical_date=None)
    assert again.state == "success"
    assert tree(sftp_connection) == remote
    assert {p: (sftp_connection / p).stat().st_mtime_ns for p in remote} == mtimes
    with app_sessions.begin() as s:
        assert ledger.ledger(s, RUN_ID) == rows
    reports = [airflow_db.xcom(DAG_ID, again.run_id, "deliver", map_index=i) for i in range(3)]
    assert {r["group"]: (r["sent"], r["skipped"]) for r in reports} == {
        g: (0, sum(len(built.files[p]) for p in pools)) for g, pools in EXPECTED.items()
    }


def test_a_run_with_no_external_share_finishes_green_with_nothing_to_do(
    dag, airflow_db, app_sessions, sftp_connection, tmp_path
) -> None:
    built = build_run(tmp_path / "runs", {"SLX-4": ["S5"]})  # Other Project: shared only after sequencing
    with app_sessions.begin() as s:
        load_scenario(s)
    run = dag.test(run_conf={"run_folder": str(built.path)}, logical_date=None)
    assert run.state == "success"
    states = airflow_db.task_states(DAG_ID, run.run_id)
    assert states[("record_and_report", -1)] == "success"
    assert tree(sftp_connection) == {}


def rerun_task(run_id: str, task_id: str, map_index: int, conf: dict) -> subprocess.CompletedProcess[str]:
    """Run one task instance of an existing DAG run again, as ops do after clearing it in the UI."""
    airflow = str(Path(sys.executable).parent / "airflow")
    cmd = [
        airflow,
        "tasks",
        "test",
        DAG_ID,
        task_id,
        run_id,
        "--map-index",
        str(map_index),
        "--task-params",
        json.dumps(conf),
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.parametrize("app_sessions", ["sqlite"], indirect=True)  # the airflow CLI is slow to start
def test_one_groups_failure_fails_only_its_task_and_rerunning_tasks_resumes_without_duplicates(
    dag, airflow_db, app_sessions, sftp_connection, tmp_path, capfd
) -> None:
    built = build_run(tmp_path / "runs", POOLS)
    with app_sessions.begin() as s:
        load_scenario(s)
    # Someone left a different file under a name Special is about to receive: never silently replaced.
    squatter = sftp_connection / FTP_DIRS["Special"] / RUN_ID / "SLX-3" / built.files["SLX-3"][0].name
    squatter.parent.mkdir(parents=True)
    squatter.write_bytes(b"not the delivered file")

    failed = dag.test(run_conf={"run_folder": str(built.path)}, logical_date=None)
    assert failed.state == "failed"
    names = airflow_db.rendered_map_indexes(DAG_ID, failed.run_id, "deliver")
    index = {name: i for i, name in names.items()}
    states = airflow_db.task_states(DAG_ID, failed.run_id)
    assert {name: states[("deliver", i)] for name, i in index.items()} == {
        "Ext Co": "success",
        "Ext Two": "success",
        "Special": "failed",
    }
    assert states[("record_and_report", -1)] == "failed"  # ran all the same, and names the group
    assert "delivery failed for Special" in capfd.readouterr().out
    assert squatter.read_bytes() == b"not the delivered file"

    # Re-running a group that succeeded changes nothing remote and adds nothing to the ledger.
    before = tree(sftp_connection)
    with app_sessions.begin() as s:
        ledger_before = ledger.ledger(s, RUN_ID)
    again = rerun_task(failed.run_id, "deliver", index["Ext Co"], {"run_folder": str(built.path)})
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert tree(sftp_connection) == before
    with app_sessions.begin() as s:
        assert ledger.ledger(s, RUN_ID) == ledger_before

    squatter.unlink()  # ops remove the cause, then re-run the failed group's task
    resumed = rerun_task(failed.run_id, "deliver", index["Special"], {"run_folder": str(built.path)})
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    for f in built.files["SLX-3"]:
        assert (squatter.parent / f.name).read_bytes() == f.read_bytes()
    assert (squatter.parent / "md5sums.txt").is_file()
    with app_sessions.begin() as s:
        paths = [r.remote_path for r in ledger.ledger(s, RUN_ID)]
    assert len(paths) == len(set(paths)) == sum(len(built.files[p]) for ps in EXPECTED.values() for p in ps)


def test_an_unknown_host_key_refuses_to_connect_and_sends_nothing(
    dag, airflow_db, app_sessions, sftp_connection, tmp_path, monkeypatch
) -> None:
    import os

    conn = json.loads(os.environ["AIRFLOW_CONN_SEQSHARE_SFTP"])
    other = tmp_path / "other_host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    conn["extra"]["host_key"] = (tmp_path / "other_host_key.pub").read_text().strip()
    monkeypatch.setenv("AIRFLOW_CONN_SEQSHARE_SFTP", json.dumps(conn))
    built = build_run(tmp_path / "runs", POOLS)
    with app_sessions.begin() as s:
        load_scenario(s)

    run = dag.test(run_conf={"run_folder": str(built.path)}, logical_date=None)

    assert run.state == "failed"
    states = airflow_db.task_states(DAG_ID, run.run_id)
    assert {v for k, v in states.items() if k[0] == "deliver"} == {"failed"}
    assert tree(sftp_connection) == {}
    with app_sessions.begin() as s:
        assert ledger.ledger(s, RUN_ID) == []


@pytest.mark.parametrize("app_sessions", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        ("unknown_pool", "pool SLX-999 (sample S9) is not known"),
        ("missing_marker", "sequencing not finished"),
        ("escaping_symlink", "outside"),
    ],
)
def test_a_bad_run_folder_fails_at_registration_and_delivers_nothing(
    dag, airflow_db, app_sessions, sftp_connection, tmp_path, breakage, message, capfd
) -> None:
    pools = {**POOLS, "SLX-999": ["S9"]} if breakage == "unknown_pool" else POOLS
    built = build_run(tmp_path / "runs", pools, complete=breakage != "missing_marker")
    if breakage == "escaping_symlink":
        target = built.files["SLX-1"][0]
        secret = tmp_path / "secret.fastq.gz"
        secret.write_bytes(b"outside the run folder")
        target.unlink()
        target.symlink_to(secret)
    with app_sessions.begin() as s:
        load_scenario(s)

    run = dag.test(run_conf={"run_folder": str(built.path)}, logical_date=None)

    assert run.state == "failed"
    states = airflow_db.task_states(DAG_ID, run.run_id)
    assert states[("register_run", -1)] == "failed"
    assert states[("freeze_snapshot", -1)] == "upstream_failed"
    assert tree(sftp_connection) == {}
    out, err = capfd.readouterr()
    assert message in out + err  # the task log names the problem in one line


def test_each_group_delivery_takes_one_sftp_pool_slot_per_connection(airflow_db, monkeypatch) -> None:
    from airflow.dag_processing.dagbag import DagBag

    for connections in ("2", "3"):
        monkeypatch.setenv("SEQSHARE_PARALLEL_FILES", connections)
        bag = DagBag(dag_folder=DAGS / "distribute_run.py")
        assert not bag.import_errors
        deliver = bag.dags[DAG_ID].get_task("deliver")
        assert (deliver.pool, deliver.pool_slots) == ("sftp_sessions", int(connections))


def test_a_sequencing_time_override_given_at_trigger_decides_the_groups_and_is_audited(
    dag, app_sessions, sftp_connection, tmp_path
) -> None:
    from datetime import timedelta

    from sqlalchemy import select

    from seqshare.db.models import AuditAction, AuditEvent
    from tests.runs import SEQUENCED

    built = build_run(tmp_path / "runs", POOLS)
    with app_sessions.begin() as s:
        load_scenario(s)
    override = SEQUENCED + timedelta(days=2)  # after Ext Co got Other Project and Special lost its share

    run = dag.test(
        run_conf={"run_folder": str(built.path), "sequencing_time": override.isoformat()}, logical_date=None
    )

    assert run.state == "success"
    ext_co = sftp_connection / FTP_DIRS["Ext Co"] / RUN_ID
    assert sorted(p.name for p in ext_co.iterdir() if p.is_dir()) == ["SLX-1", "SLX-2", "SLX-4", "SLX-5"]
    assert not (sftp_connection / FTP_DIRS["Special"] / RUN_ID).exists()
    with app_sessions.begin() as s:
        events = s.scalars(
            select(AuditEvent).where(AuditEvent.action == AuditAction.RUN_SNAPSHOT_OVERRIDE)
        ).all()
        assert [(e.actor.startswith("airflow:"), e.after) for e in events] == [
            (True, {"run": RUN_ID, "instant": override.isoformat()})
        ]
