"""What ops read in distribute_run's task logs (issue 11, "What ops read").

Real DAG runs (`dag.test()`, tasks in this process, their logs on its stdout), a real sshd, the application
database on SQLite:
- paramiko's per-connection INFO lines stay out of the deliver logs, unless `SEQSHARE_LOG_SSH=1`;
- record_and_report ends with the outcome per group, after the plan, labelled as such.
"""

from __future__ import annotations

import logging

import pytest

from seqshare import tasks
from seqshare.tasks import distribute
from tests.runs import EXPECTED, FTP_DIRS, POOLS, RUN_ID, build_run, load_scenario

DAG_ID = "distribute_run"
PARAMIKO_LINES = ("Connected (version 2.0", "Authentication (publickey) successful!")


@pytest.fixture
def paramiko_level():
    """paramiko's logger level is process-wide: restore it after each test."""
    logger = logging.getLogger("paramiko")
    saved = logger.level
    yield
    logger.setLevel(saved)


@pytest.mark.slow
@pytest.mark.parametrize("log_ssh", [None, "1"], ids=["by default", "SEQSHARE_LOG_SSH=1"])
def test_deliver_logs_say_what_was_delivered_without_paramiko_chatter_unless_asked(
    dag, app_sessions, sftp_connection, tmp_path, capfd, caplog, monkeypatch, paramiko_level, log_ssh
) -> None:
    if log_ssh:
        monkeypatch.setenv(tasks.LOG_SSH_ENV, log_ssh)
    built = build_run(tmp_path / "runs", POOLS)
    with app_sessions.begin() as s:
        load_scenario(s)

    run = dag.test(run_conf={"run_folder": str(built.path)}, logical_date=None)

    assert run.state == "success"
    out = capfd.readouterr().out
    for group in EXPECTED:
        assert f"{group}: " in out and f"in {FTP_DIRS[group]}/{RUN_ID}/" in out  # each group's report line
    ssh_lines = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("paramiko"))
    for line in PARAMIKO_LINES:
        assert (line in ssh_lines) == bool(log_ssh), line

    # The report's log: the plan, then the outcome per group, labelled, last.
    outcome_at = out.rindex("Outcome per group:")
    assert out.count("Outcome per group:") == 1
    assert out.rfind(f"run {RUN_ID}: snapshot at", 0, outcome_at) != -1  # the plan came first
    outcome = out[outcome_at:]
    for group, pools in EXPECTED.items():
        files = sum(len(built.files[p]) for p in pools)
        assert f"  {group}: delivered, {files} files ({files} sent, 0 already there" in outcome


def test_the_outcome_per_group_names_each_group_delivered_or_not(app_sessions, tmp_path) -> None:
    built = build_run(tmp_path / "runs", POOLS)
    with app_sessions.begin() as s:
        load_scenario(s)
    run = distribute.register(str(built.path))
    plan = distribute.freeze(str(built.path), None, actor="test", expected_output=run["output_dir"])
    reports = [
        {"run_id": RUN_ID, "group": g.group, "files": len(g.files), "sent": 1, "skipped": len(g.files) - 1}
        for g in plan.groups
        if g.group != "Special"
    ]
    lines: list[str] = []

    with pytest.raises(distribute.RunNotDelivered, match="delivery failed for Special"):
        distribute.report(RUN_ID, frozen=True, planned=True, reports=reports, log=lines.append)

    assert lines[0].startswith(f"run {RUN_ID}: snapshot at")
    outcome = lines[-1].splitlines()
    assert outcome[0] == "Outcome per group:"
    assert outcome[1:] == sorted(outcome[1:])  # one line per group, by name
    assert "  Special: NOT DELIVERED (no report); see its deliver task" in outcome
    ext_two = sum(len(built.files[p]) for p in EXPECTED["Ext Two"])
    assert any(
        line.startswith(f"  Ext Two: delivered, {ext_two} files (1 sent, {ext_two - 1} already there")
        for line in outcome
    )
