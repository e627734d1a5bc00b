"""The scanning DAG end to end with dag.test(): one distribute_run DAG run per new complete run folder.

The triggered DAG runs are only queued (no scheduler runs here). The real scanner and the real
``dags/distribute_run.py`` are copied into a temporary DAGs folder that becomes the DAG bundle, because
``TriggerDagRunOperator`` needs its target serialised in the metadata database. Runs "already triggered"
at a facility's scale are written straight into Airflow's ``dag_run`` table (as earlier scans left them).
"""

from __future__ import annotations

import logging
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

import seqshare.scanner
from seqshare.scanner import dag_run_id_for
from seqshare.scanner import folders as scanner_folders
from tests.airflow_env import DAGS, use_dags_folder
from tests.unit.runfolder.builders import HISEQ4000, MISEQ, NOVASEQ6000, run_folder, touch
from tests.unit.scanner_farm import completed_run, farm, farm_run_id

FIND = "find_new_run_folders"
TRIGGER = "trigger_distribute_run"


def complete_run(root: Path, source: Path) -> Path:
    run = run_folder(root, source)
    touch(run / "BCLConvert" / "Reports" / "fastq_list.csv", "RGID\n")
    return run


@pytest.fixture
def dags_folder(tmp_path: Path, airflow_db, app_sessions):
    folder = tmp_path / "dags"
    folder.mkdir()
    shutil.copy(DAGS / "scan_run_folders.py", folder)
    shutil.copy(DAGS / "distribute_run.py", folder)
    airflow_db.forget_dags("scan_run_folders", "distribute_run")  # runs left by other tests
    with use_dags_folder(folder, bundle_name="scanner-test"):
        yield folder
    airflow_db.forget_dags("scan_run_folders", "distribute_run")  # a later dag.test() syncs the real ones


def scanner_dag(folder: Path):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=folder / "scan_run_folders.py").dags["scan_run_folders"]


def already_triggered(run_folders: dict[str, str]) -> None:
    """distribute_run DAG runs ``run__<run id>`` as earlier scans left them: {run id: run folder}."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    now = datetime.now(UTC)
    rows = [
        {
            "dag_id": "distribute_run",
            "run_id": dag_run_id_for(run_id),
            "run_type": "operator_triggered",
            "state": "success",
            "conf": {"run_folder": folder},
            "run_after": now,
            "data_interval_start": None,
            "data_interval_end": None,
            "logical_date": None,
        }
        for run_id, folder in run_folders.items()
    ]
    with create_session() as session:
        session.execute(DagRun.__table__.insert(), rows)  # Core: one executemany


def count_calls(monkeypatch, module, name: str) -> list:
    """Record the first argument of every call to ``module.name`` (still calling the real one)."""
    calls: list = []
    real = getattr(module, name)

    def recording(first, *args, **kwargs):
        calls.append(first)
        return real(first, *args, **kwargs)

    monkeypatch.setattr(module, name, recording)
    return calls


@pytest.mark.slow
def test_each_complete_run_folder_gets_one_distribute_run_and_a_rescan_adds_none(
    dags_folder, airflow_db, tmp_path, monkeypatch
):
    root = tmp_path / "runs"
    root.mkdir()
    novaseq = complete_run(root, NOVASEQ6000)
    miseq = complete_run(root, MISEQ)
    run_folder(root, HISEQ4000, marker=None)  # still sequencing
    monkeypatch.setenv("SEQSHARE_RUN_ROOTS", str(root))
    dag = scanner_dag(dags_folder)
    expected = {
        dag_run_id_for(NOVASEQ6000.name): {"run_folder": str(novaseq)},
        dag_run_id_for(MISEQ.name): {"run_folder": str(miseq)},
    }

    started = time.perf_counter()
    first = dag.test(logical_date=None)
    print(
        f"db created in {airflow_db.migrate_seconds:.1f} s; first scan {time.perf_counter() - started:.1f} s"
    )

    assert first.state == "success"
    runs = airflow_db.dag_runs("distribute_run")
    assert {run_id: run.conf for run_id, run in runs.items()} == expected
    assert {(run.state, run.run_type, run.logical_date) for run in runs.values()} == {
        ("queued", "operator_triggered", None)
    }
    assert set(airflow_db.task_states("scan_run_folders", first.run_id).values()) == {"success"}
    assert airflow_db.xcom("scan_run_folders", first.run_id, FIND) == [
        {"trigger_run_id": run_id, "conf": conf} for run_id, conf in sorted(expected.items())
    ]
    shown = airflow_db.rendered_map_indexes("scan_run_folders", first.run_id, TRIGGER)
    assert sorted(shown.values()) == sorted(expected)  # the UI names each mapped instance by its run

    second = dag.test(logical_date=None)

    assert second.state == "success"
    assert set(airflow_db.dag_runs("distribute_run")) == set(expected)
    assert airflow_db.task_states("scan_run_folders", second.run_id) == {
        (FIND, -1): "success",
        (TRIGGER, -1): "skipped",  # mapped over nothing: no instance per folder at all
    }


def test_a_run_processed_before_whose_dag_run_was_cleaned_away_is_not_triggered_again(
    dags_folder, airflow_db, app_sessions, tmp_path, monkeypatch, caplog
):
    """`airflow db clean` removing old distribute_run DAG runs must not make scans re-send purged runs."""
    from seqshare.db.models import Run, RunSnapshot, SnapshotSource

    root = tmp_path / "runs"
    root.mkdir()
    old = complete_run(root, NOVASEQ6000)
    new = complete_run(root, MISEQ)
    with app_sessions.begin() as session:
        run = Run(run_id=NOVASEQ6000.name, run_folder=str(old))
        session.add(run)
        session.flush()
        frozen_at = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
        session.add(
            RunSnapshot(
                run_id=run.id,
                instant=frozen_at,
                source=SnapshotSource.INSTRUMENT,
                frozen_at=frozen_at,
                frozen_by="distribute_run",
                plan=None,
            )
        )
    monkeypatch.setenv("SEQSHARE_RUN_ROOTS", str(root))

    with caplog.at_level(logging.INFO, logger="seqshare.scanner"):
        scanned = scanner_dag(dags_folder).test(logical_date=None)

    assert scanned.state == "success"
    assert {run_id: run.conf for run_id, run in airflow_db.dag_runs("distribute_run").items()} == {
        dag_run_id_for(MISEQ.name): {"run_folder": str(new)}
    }
    assert (
        f'  {dag_run_id_for(NOVASEQ6000.name)}: snapshot frozen 2026-03-01 10:00 UTC; conf {{"run_folder": '
        f'"{old}"}}' in caplog.messages
    )


@pytest.mark.slow
def test_a_root_of_5000_run_folders_costs_one_instance_per_new_run_and_reads_only_those(
    dags_folder, airflow_db, tmp_path, monkeypatch, caplog, capfd
):
    root = tmp_path / "runs"
    known = farm(root, 5000)
    already_triggered({run_id: str(root / run_id) for run_id in known})
    new = [completed_run(root, farm_run_id(n)) for n in (7001, 7002)]
    waiting = completed_run(root, farm_run_id(7003), demultiplexed=False)
    touch(waiting / "BCLConvert" / "Logs" / "Info.log", "started")
    unreadable = completed_run(root, farm_run_id(7004))
    (unreadable / "RunInfo.xml").write_text("<RunInfo><Run")
    monkeypatch.setenv("SEQSHARE_RUN_ROOTS", str(root))
    judged = count_calls(monkeypatch, scanner_folders, "awaiting")
    parsed = count_calls(monkeypatch, scanner_folders, "read_run_info")
    dag = scanner_dag(dags_folder)

    with caplog.at_level(logging.INFO, logger="seqshare.scanner"):
        first = dag.test(logical_date=None)

    assert first.state == "success"
    assert airflow_db.task_states("scan_run_folders", first.run_id) == {
        (FIND, -1): "success",
        (TRIGGER, 0): "success",
        (TRIGGER, 1): "success",
    }
    new_ids = {dag_run_id_for(farm_run_id(n)) for n in (7001, 7002)}
    runs = airflow_db.dag_runs("distribute_run")
    assert len(runs) == 5002
    assert {run_id: runs[run_id].conf for run_id in new_ids} == {
        dag_run_id_for(farm_run_id(n)): {"run_folder": str(folder)}
        for n, folder in zip((7001, 7002), new, strict=True)
    }
    assert sorted(judged) == sorted([*new, waiting, unreadable])  # no known folder is even looked into
    assert sorted(parsed) == sorted([*new, unreadable])  # RunInfo.xml read only where not known
    log = caplog.messages
    assert (
        "5,004 run folders: 5,000 already triggered, 2 new, 0 processed before, 1 waiting, 1 unreadable, "
        "0 runs in several folders (4 folders read)" in log
    )
    assert f"  {waiting}: waits for demultiplexing: Logs/FastqComplete.txt or Reports/fastq_list.csv" in log
    assert [m for m in log if m.startswith(f"  {unreadable}: ")] == [
        f"  {unreadable}: {unreadable / 'RunInfo.xml'}:1: malformed XML: unclosed token"
    ]

    judged.clear()
    parsed.clear()
    capfd.readouterr()
    second = dag.test(logical_date=None)
    airflow_log = capfd.readouterr().out

    assert second.state == "success"
    assert airflow_db.task_states("scan_run_folders", second.run_id) == {
        (FIND, -1): "success",
        (TRIGGER, -1): "skipped",
    }
    assert len(airflow_db.dag_runs("distribute_run")) == 5002  # the new runs were triggered exactly once
    assert sorted(judged) == sorted([waiting, unreadable])
    assert parsed == [unreadable]  # reported again on every scan until fixed
    assert "Dag Run already exists" not in airflow_log  # no trigger instance for a known run ...
    assert "XCom not found" not in airflow_log  # ... so no error line for its missing trigger_run_id


@pytest.mark.slow
def test_overlapping_scans_trigger_a_new_folder_once(dags_folder, airflow_db, tmp_path, monkeypatch, capfd):
    """A second scan that selected the folder before the first one's trigger landed: Airflow refuses the
    repeated run id and that trigger instance is skipped, not failed."""
    root = tmp_path / "runs"
    folder = completed_run(root.mkdir() or root, farm_run_id(1))
    monkeypatch.setenv("SEQSHARE_RUN_ROOTS", str(root))
    dag = scanner_dag(dags_folder)
    assert dag.test(logical_date=None).state == "success"

    monkeypatch.setattr(seqshare.scanner, "existing_runs", lambda ids, count: set())  # saw nothing yet
    capfd.readouterr()
    late = dag.test(logical_date=None)
    airflow_log = capfd.readouterr().out

    assert late.state == "success"
    assert airflow_db.task_states("scan_run_folders", late.run_id) == {
        (FIND, -1): "success",
        (TRIGGER, 0): "skipped",
    }
    runs = airflow_db.dag_runs("distribute_run")
    assert {run_id: run.conf for run_id, run in runs.items()} == {
        dag_run_id_for(farm_run_id(1)): {"run_folder": str(folder)}
    }
    # Airflow's own lines for a skipped trigger, which a scan of known runs must never produce:
    assert "Dag Run already exists" in airflow_log and "XCom not found" in airflow_log


@pytest.mark.slow
def test_more_new_folders_than_max_map_length_trigger_one_batch_and_the_scan_stays_green(
    dags_folder, airflow_db, tmp_path, monkeypatch, caplog
):
    root = tmp_path / "runs"
    ids = farm(root, 1100)
    monkeypatch.setenv("SEQSHARE_RUN_ROOTS", str(root))
    monkeypatch.setenv("SEQSHARE_SCAN_BATCH", "5")  # a small batch keeps the test short; 1,100 > 1,024
    dag = scanner_dag(dags_folder)

    with caplog.at_level(logging.INFO, logger="seqshare.scanner"):
        first = dag.test(logical_date=None)

    assert first.state == "success"
    assert set(airflow_db.dag_runs("distribute_run")) == {dag_run_id_for(i) for i in ids[:5]}
    assert len(airflow_db.task_states("scan_run_folders", first.run_id)) == 1 + 5
    assert (
        "1,100 new runs exceed this scan's limit of 5 (SEQSHARE_SCAN_BATCH): 1,095 left for the next "
        f"scans, first {ids[5]}"
    ) in caplog.messages

    second = dag.test(logical_date=None)

    assert second.state == "success"
    assert set(airflow_db.dag_runs("distribute_run")) == {dag_run_id_for(i) for i in ids[:10]}


def test_scanner_dag_settings():
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=DAGS / "scan_run_folders.py").dags["scan_run_folders"]
    trigger = dag.get_task(TRIGGER)

    assert (dag.timetable.expression, dag.catchup, dag.max_active_runs) == ("*/5 * * * *", False, 1)
    checked = ("trigger_dag_id", "skip_when_already_exists", "wait_for_completion", "logical_date")
    assert {name: trigger.partial_kwargs[name] for name in checked} == {
        "trigger_dag_id": "distribute_run",
        "skip_when_already_exists": True,  # a repeat is skipped, not failed
        "wait_for_completion": False,
        "logical_date": None,  # no (dag_id, logical_date) clash between runs triggered together
    }
