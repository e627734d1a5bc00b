"""A file delivered as pool P is P's own file: symlinks and hard links may not alias another sample's data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from seqshare.runfolder import RunFolderError, read_run_folder
from tests.unit.runfolder.builders import touch
from tests.unit.runfolder.test_reader import bclconvert_run, files_of

A_R1 = Path("BCLConvert", "SLX-100", "A_S1_L001_R1_001.fastq.gz")
C_R1 = Path("BCLConvert", "SLX-200", "C_S3_L001_R1_001.fastq.gz")


def relink(run: Path, link: Path, target: Path) -> Path:
    """Replace the file ``run/link`` with a relative symlink to ``target`` (inside the run folder)."""
    path = run / link
    path.unlink()
    path.symlink_to(os.path.relpath(target, path.parent))
    return path


def refusal(run: Path) -> str:
    with pytest.raises(RunFolderError) as caught:
        read_run_folder(run)
    return str(caught.value)


def test_a_link_to_another_pools_fastq_is_refused(tmp_path):
    run, _, _ = bclconvert_run(tmp_path)
    link = relink(run, A_R1, run / C_R1)
    error = refusal(run)
    assert error.startswith(f"{link}: symlink to {run / C_R1}, not to this sample's file")
    assert "\n" not in error


def test_a_link_to_undetermined_is_refused(tmp_path):
    run, _, _ = bclconvert_run(tmp_path)
    link = relink(run, A_R1, run / "BCLConvert" / "Undetermined_S0_L001_R1_001.fastq.gz")
    assert refusal(run).startswith(f"{link}: symlink to ")


def test_a_link_to_another_lane_of_the_same_sample_is_refused(tmp_path):
    run, _, _ = bclconvert_run(tmp_path)
    link = relink(run, A_R1, run / "BCLConvert" / "SLX-100" / "A_S1_L002_R1_001.fastq.gz")
    assert refusal(run).startswith(f"{link}: symlink to ")


@pytest.mark.parametrize(
    "target",
    [
        Path("Data", "Intensities", "BaseCalls", "L001", "C1.1", "s_1_1101.bcl.gz"),
        Path("BCLConvert", "Reports", "SampleSheet.csv"),
        Path("RunInfo.xml"),
    ],
)
def test_a_link_to_a_file_that_is_no_sample_file_is_refused(tmp_path, target):
    run, _, _ = bclconvert_run(tmp_path)
    if not (run / target).exists():
        touch(run / target, b"not reads")
    link = relink(run, A_R1, run / target)
    assert refusal(run).startswith(f"{link}: symlink to {run / target}")


def test_a_same_named_file_in_another_pools_folder_is_refused(tmp_path):
    """Same name, but under SLX-200: a link must keep the pool folder too."""
    run, _, _ = bclconvert_run(tmp_path)
    elsewhere = touch(run / "stash" / "SLX-200" / A_R1.name, b"reads of someone else")
    link = relink(run, A_R1, elsewhere)
    assert refusal(run).startswith(f"{link}: symlink to {elsewhere}")


def test_a_hard_link_to_another_pools_fastq_is_refused(tmp_path):
    run, _, _ = bclconvert_run(tmp_path)
    (run / A_R1).unlink()
    os.link(run / C_R1, run / A_R1)
    error = refusal(run)
    assert error == (
        f"{run / A_R1}: same file as {C_R1.as_posix()} (symlink or hard link); a file is one sample's"
    )


def test_a_hard_link_to_a_file_outside_the_output_is_accepted(tmp_path):
    """st_nlink > 1 alone is a backup or a deduplicated copy, not a second sample's name for the file."""
    run, pools, _ = bclconvert_run(tmp_path)
    os.link(run / A_R1, tmp_path / "backup.fastq.gz")
    assert (run / A_R1).stat().st_nlink == 2
    assert files_of(read_run_folder(run)) == pools


def test_a_sample_sheet_linked_out_of_the_run_folder_is_refused(tmp_path):
    run, _, _ = bclconvert_run(tmp_path)
    sheet = run / "BCLConvert" / "Reports" / "SampleSheet.csv"
    outside = touch(tmp_path / "elsewhere" / "SampleSheet.csv", sheet.read_text())
    sheet.unlink()
    sheet.symlink_to(outside)
    assert refusal(run) == f"{sheet}: sample sheet is a symlink leaving {run}, to {outside}"


def test_a_sample_sheet_linked_inside_the_run_folder_is_read(tmp_path):
    run, pools, _ = bclconvert_run(tmp_path)
    sheet = run / "BCLConvert" / "Reports" / "SampleSheet.csv"
    kept = sheet.rename(run / "SampleSheet_used.csv")
    sheet.symlink_to(kept)
    assert files_of(read_run_folder(run)) == pools


def test_in_a_flat_output_a_link_to_a_same_named_file_in_another_folder_is_refused(tmp_path):
    run, _, _ = bclconvert_run(tmp_path)
    out = run / "BCLConvert"
    for pool in ("SLX-100", "SLX-200"):  # BCL Convert without project subfolders: every fastq at the top
        for f in (out / pool).iterdir():
            f.rename(out / f.name)
        (out / pool).rmdir()
    decoy = run / "Elsewhere" / "SLX-200" / "A_S1_L001_R1_001.fastq.gz"  # same name, another folder
    touch(decoy, "other reads")
    link = relink(run, Path("BCLConvert", "A_S1_L001_R1_001.fastq.gz"), decoy)

    assert refusal(run).startswith(f"{link}: symlink to {decoy}, not to this sample's file")
