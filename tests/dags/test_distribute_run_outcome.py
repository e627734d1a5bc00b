"""distribute_run is green only when every group of the frozen plan got its files (issue 8, item 9).

Real DAG runs (`dag.test()`), a real sshd, the application database on SQLite. A failed freeze, a failed plan
or a failed group fails `record_and_report` and so the DAG run, with one line naming what failed; a run with
nothing to deliver stays green; clearing the failed group's task with "Downstream" (as the runbook says)
turns the run green again.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from seqshare.services import ledger
from tests.dags.reruns import clear, resume
from tests.runs import EXPECTED, FTP_DIRS, POOLS, RUN_ID, SEQUENCED, build_run, load_scenario

pytestmark = pytest.mark.slow
DAG_ID = "distribute_run"


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_an_override_without_a_time_zone_fails_the_dag_run(
    dag, airflow_db, app_sessions, sftp_connection, tmp_path, capfd
) -> None:
    built = build_run(tmp_path / "runs", POOLS)
    with app_sessions.begin() as s:
        load_scenario(s)

    run = dag.test(
        run_conf={"run_folder": str(built.path), "sequencing_time": "2026-03-01T09:30:00"}, logical_date=None
    )

    assert run.state == "failed"  # was green: the report saw no assignments and succeeded
    states = airflow_db.task_states(DAG_ID, run.run_id)
    assert states[("freeze_snapshot", -1)] == "failed"
    assert states[("record_and_report", -1)] == "failed"
    out = capfd.readouterr().out
    assert "has no time zone" in out
    assert "the snapshot was not frozen: see freeze_snapshot's log" in out
    assert tree(sftp_connection) == {}


def test_a_refused_rerun_override_fails_the_dag_run(
    dag, airflow_db, app_sessions, sftp_connection, tmp_path, capfd
) -> None:
    built = build_run(tmp_path / "runs", POOLS)
    with app_sessions.begin() as s:
        load_scenario(s)
    first = dag.test(run_conf={"run_folder": str(built.path)}, logical_date=None)
    assert first.state == "success"
    delivered = tree(sftp_connection)
    capfd.readouterr()

    override = (SEQUENCED + timedelta(days=2)).isoformat()
    again = dag.test(run_conf={"run_folder": str(built.path), "sequencing_time": override}, logical_date=None)

    states = airflow_db.task_states(DAG_ID, again.run_id)
    assert states[("freeze_snapshot", -1)] == "failed"
    assert states[("record_and_report", -1)] == "failed"
    assert again.state == "failed"  # the frozen plan exists (first run), but this run delivered nothing
    out = capfd.readouterr().out
    assert "cannot be changed" in out
    assert "the snapshot was not frozen: see freeze_snapshot's log" in out
    assert tree(sftp_connection) == delivered


def test_a_plan_that_cannot_be_mapped_fails_the_dag_run(
    dag, airflow_db, app_sessions, sftp_connection, tmp_path, monkeypatch, capfd
) -> None:
    """plan_deliveries fails (more groups than [core] max_map_length): deliver is upstream_failed, no group
    gets anything, and the report says so instead of seeing "no reports, no assignments"."""
    monkeypatch.setenv("AIRFLOW__CORE__MAX_MAP_LENGTH", "2")  # the plan has 3 groups
    built = build_run(tmp_path / "runs", POOLS)
    with app_sessions.begin() as s:
        load_scenario(s)

    run = dag.test(run_conf={"run_folder": str(built.path)}, logical_date=None)

    states = airflow_db.task_states(DAG_ID, run.run_id)
    assert states[("plan_deliveries", -1)] == "failed"
    assert states[("deliver", -1)] == "upstream_failed"
    assert states[("record_and_report", -1)] == "failed"
    assert run.state == "failed"
    assert "the deliveries were not planned: see plan_deliveries's log" in capfd.readouterr().out
    assert tree(sftp_connection) == {}


def test_a_run_with_nothing_to_deliver_stays_green(
    dag, airflow_db, app_sessions, sftp_connection, tmp_path
) -> None:
    built = build_run(tmp_path / "runs", {"SLX-4": ["S5"]})  # shared only after sequencing
    with app_sessions.begin() as s:
        load_scenario(s)

    run = dag.test(run_conf={"run_folder": str(built.path)}, logical_date=None)

    states = airflow_db.task_states(DAG_ID, run.run_id)
    assert states[("deliver", -1)] == "skipped"  # mapped over an empty plan
    assert states[("record_and_report", -1)] == "success"
    assert run.state == "success"
    assert tree(sftp_connection) == {}


@pytest.mark.parametrize("downstream", [True, False], ids=["with Downstream", "then the report"])
def test_a_failed_group_cleared_and_rerun_turns_the_run_green(
    dag, airflow_db, app_sessions, sftp_connection, tmp_path, capfd, downstream
) -> None:
    built = build_run(tmp_path / "runs", POOLS)
    with app_sessions.begin() as s:
        load_scenario(s)
    squatter = sftp_connection / FTP_DIRS["Special"] / RUN_ID / "SLX-3" / built.files["SLX-3"][0].name
    squatter.parent.mkdir(parents=True)
    squatter.write_bytes(b"not the delivered file")  # Special's delivery fails on this conflict

    failed = dag.test(run_conf={"run_folder": str(built.path)}, logical_date=None)
    assert failed.state == "failed"
    index = {name: i for i, name in airflow_db.rendered_map_indexes(DAG_ID, failed.run_id, "deliver").items()}
    assert airflow_db.task_states(DAG_ID, failed.run_id)[("deliver", index["Special"])] == "failed"
    assert "delivery failed for Special; see their deliver tasks" in capfd.readouterr().out

    squatter.unlink()  # ops remove the cause, then clear Special's task
    cleared = clear(DAG_ID, failed.run_id, [("deliver", index["Special"])], downstream=downstream)
    if downstream:  # the runbook's way: the report runs again with the group's task
        assert cleared == [("deliver", index["Special"]), ("record_and_report", -1)]
        assert resume(dag, failed.run_id) == "success"
    else:  # the group's task alone: delivered, but the run stays red until the report runs again
        assert cleared == [("deliver", index["Special"])]
        assert resume(dag, failed.run_id) == "failed"
        assert airflow_db.task_states(DAG_ID, failed.run_id)[("deliver", index["Special"])] == "success"
        assert clear(DAG_ID, failed.run_id, ["record_and_report"], downstream=False)
        assert resume(dag, failed.run_id) == "success"

    states = airflow_db.task_states(DAG_ID, failed.run_id)
    assert {name: states[("deliver", i)] for name, i in index.items()} == dict.fromkeys(EXPECTED, "success")
    assert states[("record_and_report", -1)] == "success"
    summary = airflow_db.xcom(DAG_ID, failed.run_id, "record_and_report")
    assert sorted(r["group"] for r in summary["groups"]) == sorted(EXPECTED)
    for f in built.files["SLX-3"]:
        assert (squatter.parent / f.name).read_bytes() == f.read_bytes()
    with app_sessions.begin() as s:
        rows = ledger.ledger(s, RUN_ID)
    assert (
        len(rows)
        == len({r.remote_path for r in rows})
        == sum(len(built.files[p]) for pools in EXPECTED.values() for p in pools)
    )


@pytest.mark.parametrize(
    "missing", ["no report", "a partial report", "fewer files than planned", "another run's report"]
)
def test_the_report_checks_every_group_of_the_plan_frozen_in_the_database(
    app_sessions, tmp_path, missing
) -> None:
    """The groups come from `runs.stored_plan`, not from the XComs of this DAG run: a group whose
    delivery reported nothing, or not all its files, fails the report."""
    from seqshare.tasks import distribute as tasks

    built = build_run(tmp_path / "runs", POOLS)
    with app_sessions.begin() as s:
        load_scenario(s)
    run = tasks.register(str(built.path))
    plan = tasks.freeze(str(built.path), None, actor="test", expected_output=run["output_dir"])
    reports = [
        {"run_id": RUN_ID, "group": g.group, "files": len(g.files), "sent": len(g.files) - 1, "skipped": 1}
        for g in plan.groups
    ]
    lines: list[str] = []
    summary = tasks.report(RUN_ID, frozen=True, planned=True, reports=reports, log=lines.append)
    assert summary["groups"] == reports
    assert "group Special" in lines[0]

    special = next(r for r in reports if r["group"] == "Special")
    if missing == "no report":
        reports.remove(special)
    elif missing == "a partial report":
        special["sent"] -= 1
    elif missing == "fewer files than planned":
        special["files"] -= 1
        special["sent"] -= 1
    else:
        special["run_id"] = "another_run"
    with pytest.raises(
        tasks.RunNotDelivered, match=r"^delivery failed for Special; see their deliver tasks$"
    ):
        tasks.report(RUN_ID, frozen=True, planned=True, reports=reports, log=lines.append)
