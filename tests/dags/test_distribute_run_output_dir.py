"""distribute_run's `output_dir` param: the demultiplexed output where seqshare does not look by itself.

Real DAG runs (`dag.test()`), a real sshd, the application database on SQLite. The param is kept in the DAG
run's conf, so a cleared task reads the same folder; a new DAG run without it never delivers another output.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from seqshare.services import ledger
from tests.airflow_env import DAGS
from tests.dags.reruns import clear, resume
from tests.runs import EXPECTED, FTP_DIRS, POOLS, RUN_ID, build_run, load_scenario

pytestmark = pytest.mark.slow
DAG_ID = "distribute_run"
ELSEWHERE = "Demux/bcl-convert-v4"  # not a default place (Analysis/<n>, Unaligned*, BCLConvert*, fastq*)


def parsed_dag():
    """The DAG parsed afresh, as each task process of a deployment parses it: in this process, a DAG
    object keeps the last conf's values in its Params (Param.resolve stores them), so one object per run."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=DAGS / "distribute_run.py")
    assert not bag.import_errors
    return bag.dags[DAG_ID]


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_the_output_dir_param_reads_the_output_there_and_rereads_it_the_same_way(
    airflow_db, app_sessions, sftp_connection, tmp_path, capfd
) -> None:
    built = build_run(tmp_path / "runs", POOLS)
    moved = built.path / ELSEWHERE
    moved.parent.mkdir()
    (built.path / "BCLConvert").rename(moved)
    with app_sessions.begin() as s:
        load_scenario(s)
    conf = {"run_folder": str(built.path), "output_dir": ELSEWHERE}

    run = parsed_dag().test(run_conf=conf, logical_date=None)

    assert run.state == "success"
    assert run.conf["output_dir"] == ELSEWHERE  # recorded with the DAG run: cleared tasks read it again
    expected = {
        f"{FTP_DIRS[group]}/{RUN_ID}/{pool}/{f.name}": (moved / pool / f.name).read_bytes()
        for group, pools in EXPECTED.items()
        for pool in pools
        for f in built.files[pool]
    }
    delivered = tree(sftp_connection)
    assert {p: b for p, b in delivered.items() if p.endswith(".fastq.gz")} == expected
    with app_sessions.begin() as s:
        rows = ledger.ledger(s, RUN_ID)
    assert {r.remote_path for r in rows} == expected.keys()

    # Ops clear the whole run from register_run: every task reads the folder through the run's conf again.
    assert ("register_run", -1) in clear(DAG_ID, run.run_id, ["register_run"], downstream=True)
    assert resume(parsed_dag(), run.run_id) == "success"
    states = airflow_db.task_states(DAG_ID, run.run_id)
    assert {v for k, v in states.items()} == {"success"}
    assert tree(sftp_connection) == delivered
    capfd.readouterr()

    # A new DAG run without the param finds no output where seqshare looks, and says what to pass.
    bare = parsed_dag().test(run_conf={"run_folder": str(built.path)}, logical_date=None)
    assert bare.state == "failed"
    assert airflow_db.task_states(DAG_ID, bare.run_id)[("register_run", -1)] == "failed"
    assert "the distribute_run parameter output_dir" in capfd.readouterr().out

    # Nor does it deliver another output found in a default place (a re-demultiplexing, say): the frozen
    # plan's files are not there, so the run stops before anything is sent.
    other = built.path / "BCLConvert"
    (other / "Reports").mkdir(parents=True)
    for src in (moved / "Reports").iterdir():
        (other / "Reports" / src.name).write_bytes(src.read_bytes())
    for pool in POOLS:
        (other / pool).mkdir()
        for f in built.files[pool]:
            (other / pool / f.name).write_bytes(os.urandom(len((moved / pool / f.name).read_bytes())))
    again = parsed_dag().test(run_conf={"run_folder": str(built.path)}, logical_date=None)
    assert again.state == "failed"
    states = airflow_db.task_states(DAG_ID, again.run_id)
    assert states[("freeze_snapshot", -1)] == "failed"
    assert states[("record_and_report", -1)] == "failed"
    assert "changed since its snapshot was frozen" in capfd.readouterr().out
    assert tree(sftp_connection) == delivered
    with app_sessions.begin() as s:
        assert ledger.ledger(s, RUN_ID) == rows


def test_freeze_reads_the_output_register_read_or_stops(app_sessions, tmp_path) -> None:
    """Between register_run and freeze_snapshot the output seqshare finds by itself may change (a
    re-analysis written, a folder renamed): the snapshot is then not frozen from folders nobody checked."""
    from seqshare.errors import InvalidInput
    from seqshare.services import runs
    from seqshare.tasks import distribute as tasks

    built = build_run(tmp_path / "runs", POOLS)
    with app_sessions.begin() as s:
        load_scenario(s)
    run = tasks.register(str(built.path))
    assert run == {"run_id": RUN_ID, "output_dir": "BCLConvert"}
    (built.path / "BCLConvert").rename(built.path / "Unaligned")

    with pytest.raises(InvalidInput, match="output is now Unaligned, register_run read BCLConvert"):
        tasks.freeze(str(built.path), None, actor="test", expected_output=run["output_dir"])
    with app_sessions.begin() as s:
        assert runs.stored_plan(s, RUN_ID) is None
