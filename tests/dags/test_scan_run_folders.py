"""The scanning DAG end to end with dag.test(): one distribute_run DAG run per complete run folder.

The triggered DAG runs are only queued (no scheduler runs here). The real scanner and the real
``dags/distribute_run.py`` are copied into a temporary DAGs folder that becomes the DAG bundle, because
``TriggerDagRunOperator`` needs its target serialised in the metadata database.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from seqshare.scanner import dag_run_id_for
from tests.airflow_env import DAGS, use_dags_folder
from tests.unit.runfolder.builders import HISEQ4000, MISEQ, NOVASEQ6000, run_folder, touch


def complete_run(root: Path, source: Path) -> Path:
    run = run_folder(root, source)
    touch(run / "BCLConvert" / "Reports" / "fastq_list.csv", "RGID\n")
    return run


@pytest.fixture
def dags_folder(tmp_path: Path, airflow_db):
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
    assert airflow_db.xcom("scan_run_folders", first.run_id, "find_complete_run_folders") == [
        {"trigger_run_id": run_id, "conf": conf} for run_id, conf in sorted(expected.items())
    ]
    shown = airflow_db.rendered_map_indexes("scan_run_folders", first.run_id, "trigger_distribute_run")
    assert sorted(shown.values()) == sorted(expected)  # the UI names each mapped instance by its run

    started = time.perf_counter()
    second = dag.test(logical_date=None)
    print(f"second scan {time.perf_counter() - started:.1f} s")

    assert second.state == "success"
    assert set(airflow_db.dag_runs("distribute_run")) == set(expected)
    assert airflow_db.task_states("scan_run_folders", second.run_id) == {
        ("find_complete_run_folders", -1): "success",
        ("trigger_distribute_run", 0): "skipped",
        ("trigger_distribute_run", 1): "skipped",
    }


@pytest.mark.slow
def test_a_scan_with_nothing_complete_succeeds_and_triggers_nothing(
    dags_folder, airflow_db, tmp_path, monkeypatch
):
    run_folder(tmp_path, NOVASEQ6000, marker=None)
    monkeypatch.setenv("SEQSHARE_RUN_ROOTS", str(tmp_path))

    scan = scanner_dag(dags_folder).test(logical_date=None)

    assert scan.state == "success"
    assert airflow_db.dag_runs("distribute_run") == {}
    assert (
        airflow_db.task_states("scan_run_folders", scan.run_id)[("trigger_distribute_run", -1)] == "skipped"
    )


def test_scanner_dag_settings():
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=DAGS / "scan_run_folders.py").dags["scan_run_folders"]
    trigger = dag.get_task("trigger_distribute_run")

    assert (dag.timetable.expression, dag.catchup, dag.max_active_runs) == ("*/5 * * * *", False, 1)
    checked = ("trigger_dag_id", "skip_when_already_exists", "wait_for_completion", "logical_date")
    assert {name: trigger.partial_kwargs[name] for name in checked} == {
        "trigger_dag_id": "distribute_run",
        "skip_when_already_exists": True,  # a repeat is skipped, not failed
        "wait_for_completion": False,
        "logical_date": None,  # no (dag_id, logical_date) clash between runs triggered together
    }
