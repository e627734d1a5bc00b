"""Which run folders the scanner picks up, and the DAG run ids it gives them."""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path

import pytest

from seqshare.errors import InvalidInput
from seqshare.scanner import FoundRun, dag_run_id_for, find_completed_runs, run_roots_from_env
from seqshare.scanner import folders as scanner
from tests.unit.runfolder.builders import HISEQ4000, MISEQ, NOVASEQ6000, NOVASEQX, run_folder, touch

AIRFLOW_RUN_ID = re.compile(r"^[A-Za-z0-9_.~:+-]{1,250}$")  # Airflow's default allowed_run_id_pattern


def complete_run(root: Path, source: Path = NOVASEQ6000, *, name: str | None = None) -> Path:
    run = run_folder(root, source)
    touch(run / "BCLConvert" / "Reports" / "fastq_list.csv", "RGID\n")
    if name is not None:
        run = run.rename(run.with_name(name))
    return run


def test_complete_folders_are_found_with_their_run_ids(tmp_path):
    novaseq = complete_run(tmp_path, NOVASEQ6000)
    miseq = complete_run(tmp_path, MISEQ)

    assert find_completed_runs([tmp_path]) == [
        FoundRun(run_folder=str(miseq), run_id=MISEQ.name),
        FoundRun(run_folder=str(novaseq), run_id=NOVASEQ6000.name),
    ]


def test_half_written_folders_are_not_picked_up(tmp_path):
    run_folder(tmp_path, NOVASEQ6000, marker=None)  # still sequencing
    run_folder(tmp_path, MISEQ)  # sequenced, not demultiplexed
    (tmp_path / "new_run").mkdir()  # nothing written yet

    assert find_completed_runs([tmp_path]) == []


def test_run_id_comes_from_run_info_not_the_folder_name(tmp_path):
    renamed = complete_run(tmp_path, NOVASEQ6000, name=NOVASEQ6000.name + "_PE150_Knight")

    assert find_completed_runs([tmp_path]) == [FoundRun(str(renamed), NOVASEQ6000.name)]


def test_folder_with_unreadable_run_info_is_skipped_with_a_warning(tmp_path, caplog):
    broken = complete_run(tmp_path, NOVASEQ6000)
    (broken / "RunInfo.xml").write_text("<RunInfo><Run")
    good = complete_run(tmp_path, MISEQ)

    with caplog.at_level(logging.WARNING, logger="seqshare.scanner"):
        found = find_completed_runs([tmp_path])

    assert found == [FoundRun(str(good), MISEQ.name)]
    assert str(broken) in caplog.text and "malformed XML" in caplog.text


def test_unreadable_folder_is_skipped_not_a_crash(tmp_path, monkeypatch, caplog):
    locked = complete_run(tmp_path, NOVASEQ6000)
    good = complete_run(tmp_path, MISEQ)
    real_read_run_info = scanner.read_run_info

    def read_run_info(run_dir: Path):  # chmod 0 does not stop root, who runs CI containers
        if run_dir == locked:
            raise PermissionError(13, "Permission denied", str(run_dir / "RunInfo.xml"))
        return real_read_run_info(run_dir)

    monkeypatch.setattr(scanner, "read_run_info", read_run_info)
    with caplog.at_level(logging.WARNING, logger="seqshare.scanner"):
        found = find_completed_runs([tmp_path])

    assert found == [FoundRun(str(good), MISEQ.name)]
    assert "Permission denied" in caplog.text


def test_missing_or_unlistable_root_is_logged_and_the_others_still_scanned(tmp_path, caplog):
    (tmp_path / "b").mkdir()
    good = complete_run(tmp_path / "b", MISEQ)
    not_a_dir = touch(tmp_path / "file")

    with caplog.at_level(logging.WARNING, logger="seqshare.scanner"):
        found = find_completed_runs([tmp_path / "missing", not_a_dir, tmp_path / "b"])

    assert found == [FoundRun(str(good), MISEQ.name)]
    assert "missing" in caplog.text


def test_files_and_hidden_folders_in_a_root_are_ignored(tmp_path):
    touch(tmp_path / "notes.txt", "x")
    hidden = complete_run(tmp_path, NOVASEQ6000)
    hidden.rename(tmp_path / ".rsync-tmp")

    assert find_completed_runs([tmp_path]) == []


def test_the_same_run_in_two_places_is_delivered_from_neither(tmp_path, caplog):
    for root in ("a", "b"):
        (tmp_path / root).mkdir()
        complete_run(tmp_path / root, NOVASEQ6000)
    other = complete_run(tmp_path / "b", MISEQ)

    with caplog.at_level(logging.ERROR, logger="seqshare.scanner"):
        found = find_completed_runs([tmp_path / "a", tmp_path / "b"])

    assert found == [FoundRun(str(other), MISEQ.name)]
    assert f"run {NOVASEQ6000.name} is in 2 folders" in caplog.text


def test_symlinked_run_folder_keeps_its_path_under_the_root(tmp_path):
    storage = tmp_path / "storage"
    storage.mkdir()
    real = complete_run(storage, HISEQ4000)
    root = tmp_path / "root"
    root.mkdir()
    (root / real.name).symlink_to(real)

    assert find_completed_runs([root]) == [FoundRun(str(root / real.name), HISEQ4000.name)]


def test_roots_may_be_given_as_strings_and_relative_paths_become_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = complete_run(tmp_path, NOVASEQX)
    shutil.rmtree(run / "BCLConvert")  # NovaSeq X runs go through the onboard Analysis folder instead
    touch(run / "BCLConvert" / "Reports" / "fastq_list.csv", "RGID\n")

    assert find_completed_runs(["."]) == [FoundRun(str(run), NOVASEQX.name)]


def test_a_folder_that_raises_anything_is_logged_on_one_line_and_the_others_still_found(
    tmp_path, monkeypatch, caplog
):
    """LaneCount="999999999" once exhausted memory while reading RunInfo.xml, and stopped every scan."""
    hostile = complete_run(tmp_path, NOVASEQ6000)
    good = complete_run(tmp_path, MISEQ)
    real_read_run_info = scanner.read_run_info

    def read_run_info(run_dir: Path):
        if run_dir == hostile:
            raise MemoryError("LaneCount 999999999")
        return real_read_run_info(run_dir)

    monkeypatch.setattr(scanner, "read_run_info", read_run_info)
    with caplog.at_level(logging.WARNING, logger="seqshare.scanner"):
        found = find_completed_runs([tmp_path])

    assert found == [FoundRun(str(good), MISEQ.name)]
    (line,) = [r.getMessage() for r in caplog.records if str(hostile) in r.getMessage()]
    assert line == f"skipping run folder {hostile}: cannot judge it: MemoryError: LaneCount 999999999"


def test_a_failed_or_ambiguous_folder_is_reported_on_every_scan_not_silently_ignored(tmp_path, caplog):
    failed = complete_run(tmp_path, NOVASEQX)
    touch(
        failed / "RunCompletionStatus.xml",
        "<RunCompletionStatus><RunStatus>RunErrored</RunStatus></RunCompletionStatus>",
    )
    ambiguous = complete_run(tmp_path, NOVASEQ6000)
    touch(ambiguous / "Unaligned" / "Stats" / "Stats.json", "{}")
    good = complete_run(tmp_path, MISEQ)

    with caplog.at_level(logging.WARNING, logger="seqshare.scanner"):
        found = find_completed_runs([tmp_path])

    assert found == [FoundRun(str(good), MISEQ.name)]
    messages = [r.getMessage() for r in caplog.records]
    assert (
        f"skipping run folder {failed}: {failed / 'RunCompletionStatus.xml'}: run did not complete: "
        "RunStatus is 'RunErrored'" in messages
    )
    assert any(
        m.startswith(f"skipping run folder {ambiguous}: {ambiguous}: several demultiplexed") for m in messages
    )
    assert all("\n" not in m for m in messages)


def test_instrument_xml_nested_10000_deep_is_skipped_with_the_file_named(tmp_path, caplog):
    deep = complete_run(tmp_path, NOVASEQ6000)
    (deep / "RunInfo.xml").write_bytes(b"<RunInfo>" + b"<Run>" * 10_000 + b"</Run>" * 10_000 + b"</RunInfo>")
    good = complete_run(tmp_path, MISEQ)

    with caplog.at_level(logging.WARNING, logger="seqshare.scanner"):
        assert find_completed_runs([tmp_path]) == [FoundRun(str(good), MISEQ.name)]
    assert f"{deep / 'RunInfo.xml'}:1: elements nested more than 100 levels deep" in caplog.text


def test_the_output_root_setting_is_used_and_a_bad_one_fails_the_scan(tmp_path, monkeypatch):
    runs, demux = tmp_path / "runs", tmp_path / "demux"
    runs.mkdir()
    demux.mkdir()
    run = complete_run(runs, NOVASEQ6000)
    shutil.move(run / "BCLConvert", demux / NOVASEQ6000.name)
    assert find_completed_runs([runs]) == []

    monkeypatch.setenv("SEQSHARE_OUTPUT_ROOT", str(demux))
    assert find_completed_runs([runs]) == [FoundRun(str(run), NOVASEQ6000.name)]

    monkeypatch.setenv("SEQSHARE_OUTPUT_ROOT", "demux")
    with pytest.raises(
        InvalidInput, match=r"^SEQSHARE_OUTPUT_ROOT='demux': output root 'demux' must be an absolute path"
    ):
        find_completed_runs([runs])


# -- DAG run ids ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "run_id",
    [NOVASEQ6000.name, MISEQ.name, NOVASEQX.name, "20220912_FS10001773_27_BSE39218-1017"],
)
def test_illumina_run_ids_become_readable_dag_run_ids(run_id):
    assert dag_run_id_for(run_id) == "run__" + run_id
    assert AIRFLOW_RUN_ID.fullmatch(dag_run_id_for(run_id))


@pytest.mark.parametrize("run_id", ["run 1/2", "ü" * 300, "a" * 201, "x;rm -rf", "~"])
def test_other_run_ids_become_safe_deterministic_and_distinct(run_id):
    dag_run_id = dag_run_id_for(run_id)

    assert AIRFLOW_RUN_ID.fullmatch(dag_run_id)
    assert dag_run_id == dag_run_id_for(run_id)
    assert "~" in dag_run_id  # plain ids never contain "~": the two forms cannot collide


def test_run_ids_differing_only_in_unsafe_characters_get_different_dag_run_ids():
    assert dag_run_id_for("run 1") != dag_run_id_for("run/1")
    assert dag_run_id_for("run 1") != dag_run_id_for("run-1")


def test_empty_run_id_is_refused():
    with pytest.raises(ValueError, match="empty"):
        dag_run_id_for("")


# -- configuration ----------------------------------------------------------------------------------


def test_run_roots_are_pathsep_separated():
    value = os.pathsep.join(["/data/runs", "", " /mnt/novaseq "])

    assert run_roots_from_env({"SEQSHARE_RUN_ROOTS": value}) == [Path("/data/runs"), Path("/mnt/novaseq")]


@pytest.mark.parametrize("environ", [{}, {"SEQSHARE_RUN_ROOTS": ""}, {"SEQSHARE_RUN_ROOTS": os.pathsep}])
def test_unset_run_roots_fail_loudly(environ):
    with pytest.raises(ValueError, match="SEQSHARE_RUN_ROOTS is not set"):
        run_roots_from_env(environ)


def test_run_roots_are_read_from_the_process_environment(monkeypatch):
    monkeypatch.setenv("SEQSHARE_RUN_ROOTS", "/data/runs")

    assert run_roots_from_env() == [Path("/data/runs")]
