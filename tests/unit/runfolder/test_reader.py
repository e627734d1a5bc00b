"""Synthetic run folders per layout: exact pool -> files mapping, completeness, and every refusal."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from seqshare.runfolder import Layout, RunFolderError, is_complete, read_run_folder
from tests.unit.runfolder.builders import (
    HISEQ4000,
    MISEQ,
    NOVASEQX,
    fastqs,
    rel,
    run_folder,
    touch,
)

R_AND_I = ["R1", "R2", "I1", "I2"]
V2_SHEET = (
    "[Header]\r\nFileFormatVersion,2\r\n\r\n[BCLConvert_Data]\r\nLane,Sample_ID,index,Sample_Project\r\n"
    "1,A,AAAA,SLX-100\r\n2,A,AAAA,SLX-100\r\n1,B,CCCC,SLX-100\r\n1,C,GGGG,SLX-200\r\n2,C,GGGG,SLX-200\r\n"
)


def bclconvert_run(tmp_path: Path) -> tuple[Path, dict[str, set[str]], set[str]]:
    """NovaSeq 6000 folder, BCL Convert into <run>/BCLConvert with project subfolders and index reads."""
    run = run_folder(tmp_path)
    out = run / "BCLConvert"
    touch(out / "Reports" / "fastq_list.csv", "RGID,RGSM,RGLB,Lane,Read1File,Read2File\n")
    touch(out / "Reports" / "SampleSheet.csv", V2_SHEET)
    pools = {
        "SLX-100": fastqs(out / "SLX-100", "A", 1, [1, 2], R_AND_I)
        | fastqs(out / "SLX-100", "B", 2, [1], R_AND_I),
        "SLX-200": fastqs(out / "SLX-200", "C", 3, [1, 2], R_AND_I),
    }
    undetermined = fastqs(out, "Undetermined", 0, [1, 2], R_AND_I)
    return run, {k: rel(run, v) for k, v in pools.items()}, rel(run, undetermined)


def files_of(folder) -> dict[str, set[str]]:
    return {pool: {f.relative_path.as_posix() for f in files} for pool, files in folder.pool_files.items()}


def test_bclconvert_with_project_folders(tmp_path):
    run, pools, undetermined = bclconvert_run(tmp_path)
    folder = read_run_folder(run)
    assert files_of(folder) == pools
    assert len(pools["SLX-100"]) == 12 and len(pools["SLX-200"]) == 8
    assert {f.relative_path.as_posix() for f in folder.undetermined} == undetermined
    assert all(f.pool_id is None and f.sample_id is None for f in folder.undetermined)
    assert (folder.run_id, folder.flowcell, folder.instrument) == (run.name, "H23F5DSXC", "A01535")
    assert (folder.layout, folder.output_dir.as_posix(), folder.completion_marker) == (
        Layout.BCLCONVERT,
        "BCLConvert",
        "RTAComplete.txt",
    )
    assert folder.sample_sheet == run / "BCLConvert" / "Reports" / "SampleSheet.csv"
    assert [(s.sample_id, s.pool_id, s.lanes, s.line) for s in folder.samples] == [
        ("A", "SLX-100", (1, 2), 6),
        ("B", "SLX-100", (1,), 8),
        ("C", "SLX-200", (1, 2), 9),
    ]
    c_r2 = next(f for f in folder.pool_files["SLX-200"] if f.lane == 2 and f.read == "R2")
    assert (c_r2.sample_id, c_r2.size) == ("C", (run / c_r2.relative_path).stat().st_size)
    assert folder.pool_ids == ("SLX-100", "SLX-200")
    with pytest.raises(TypeError):
        folder.pool_files["SLX-300"] = ()  # type: ignore[index]
    assert is_complete(run)


def test_bclconvert_without_project_folder_and_lane_splitting(tmp_path):
    """MiSeq, v2 sheet whose pools come from [Cloud_Data] only, so BCL Convert wrote no project folder."""
    run = run_folder(tmp_path, MISEQ, marker="CopyComplete.txt")
    touch(
        run / "SampleSheet.csv",
        "\ufeff[Header]\nFileFormatVersion,2\n[BCLConvert_Data]\nSample_ID,Index,,\nP1,AC,,\nP2,GT,,\n"
        "[Cloud_Data]\nSample_ID,ProjectName\nP1,SLX-7\nP2,SLX-8\n",
    )
    out = run / "fastq"
    touch(out / "Logs" / "FastqComplete.txt")
    p1 = fastqs(out, "P1", 1, [None], ["R1", "R2"])
    p2 = fastqs(out, "P2", 2, [None], ["R1", "R2"])
    fastqs(out, "Undetermined", 0, [None], ["R1", "R2"])
    folder = read_run_folder(run)
    assert files_of(folder) == {"SLX-7": rel(run, p1), "SLX-8": rel(run, p2)}
    assert {f.lane for files in folder.pool_files.values() for f in files} == {None}
    assert len(folder.undetermined) == 2
    assert folder.completion_marker == "CopyComplete.txt"
    assert folder.sample_sheet == run / "SampleSheet.csv"


def bcl2fastq_run(tmp_path: Path) -> tuple[Path, dict[str, set[str]]]:
    """HiSeq 4000, bcl2fastq into BaseCalls: Sample_ID folder where Sample_Name differs."""
    run = run_folder(tmp_path, HISEQ4000)
    touch(
        run / "Plate7_SampleSheet.csv",
        "# exported from LIMS,,,\r\n[Header],,,,,\r\nIEMFileVersion,4,,,,\r\n,,,,,\r\n[Data],,,,,\r\n"
        "Lane,Sample_ID,Sample_Name,index,Sample_Project,Description\r\n"
        "1,ID1,Name1,AAAA,SLX-11,\r\n2,ID1,Name1,AAAA,SLX-11,\r\n1,ID2,ID2,CCCC,SLX-11,\r\n"
        "3,ID3,,GGGG,SLX-12,\r\n",
    )
    out = run / "Data" / "Intensities" / "BaseCalls"
    touch(out / "Stats" / "Stats.json", "{}")
    touch(out / "L001" / "C1.1" / "s_1_1101.bcl.gz", b"bcl")
    touch(out / "L001" / "C1.1" / "X_S1_L001_R1_001.fastq.gz", b"not a fastq of any sample, inside BCL tree")
    pools = {
        "SLX-11": fastqs(out / "SLX-11" / "ID1", "Name1", 1, [1, 2], ["R1", "R2"])
        | fastqs(out / "SLX-11", "ID2", 2, [1], ["R1", "R2"]),
        "SLX-12": fastqs(out / "SLX-12", "ID3", 3, [3], ["R1", "R2"]),
    }
    fastqs(out, "Undetermined", 0, [1, 2, 3], ["R1", "R2"])
    return run, {k: rel(run, v) for k, v in pools.items()}


def test_bcl2fastq_with_sample_id_folder(tmp_path):
    run, pools = bcl2fastq_run(tmp_path)
    folder = read_run_folder(run)
    assert files_of(folder) == pools
    assert folder.layout is Layout.BCL2FASTQ
    assert folder.output_dir.as_posix() == "Data/Intensities/BaseCalls"
    assert folder.sample_sheet.name == "Plate7_SampleSheet.csv"
    assert len(folder.undetermined) == 6
    assert folder.started_at is not None and folder.started_at.year == 2020


def novaseqx_run(tmp_path: Path) -> tuple[Path, dict[str, set[str]]]:
    run = run_folder(tmp_path, NOVASEQX, marker="CopyComplete.txt")
    touch(
        run / "RunCompletionStatus.xml",
        "<RunCompletionStatus><RunStatus>RunCompleted</RunStatus></RunCompletionStatus>",
    )
    old = run / "Analysis" / "1" / "Data" / "BCLConvert" / "fastq"
    fastqs(old, "OLD", 1, [1], ["R1", "R2"])
    analysis = run / "Analysis" / "2"
    touch(analysis / "CopyComplete.txt")
    touch(analysis / "Data" / "Secondary_Analysis_Complete.txt")
    touch(
        analysis / "Data" / "BCLConvert" / "SampleSheet.csv",
        "[Header],\nFileFormatVersion,2\n\n[BCLConvert_Data]\nSample_ID,Index,Sample_Project\n"
        "X1,AC,SLX-900\nX2,GT,SLX-901\n",
    )
    out = analysis / "Data" / "BCLConvert" / "fastq"
    touch(out / "Reports" / "fastq_list.csv", "RGID\n")
    lanes: list[int | None] = list(range(1, 9))
    pools = {
        "SLX-900": rel(run, fastqs(out, "X1", 1, lanes, ["R1", "R2"])),
        "SLX-901": rel(run, fastqs(out, "X2", 2, lanes, ["R1", "R2"])),
    }
    fastqs(out, "Undetermined", 0, lanes, ["R1", "R2"])
    return run, pools


def test_novaseqx_onboard_uses_highest_analysis(tmp_path):
    run, pools = novaseqx_run(tmp_path)
    folder = read_run_folder(run)
    assert files_of(folder) == pools
    assert len(pools["SLX-900"]) == 16
    assert folder.layout is Layout.NOVASEQX_ONBOARD
    assert folder.output_dir.as_posix() == "Analysis/2/Data/BCLConvert/fastq"
    assert folder.sample_sheet.relative_to(run).as_posix() == "Analysis/2/Data/BCLConvert/SampleSheet.csv"
    assert folder.lanes == tuple(range(1, 9))
    assert is_complete(run)


def test_novaseqx_waits_for_analysis_markers(tmp_path):
    run, _ = novaseqx_run(tmp_path)
    (run / "Analysis" / "2" / "Data" / "Secondary_Analysis_Complete.txt").unlink()
    assert not is_complete(run)
    with pytest.raises(RunFolderError, match=r"demultiplexing not finished.*Secondary_Analysis_Complete"):
        read_run_folder(run)


def test_newer_analysis_in_progress_blocks_the_run(tmp_path):
    run, _ = novaseqx_run(tmp_path)
    (run / "Analysis" / "3").mkdir()
    assert not is_complete(run)


def test_failed_run_status(tmp_path):
    run, _ = novaseqx_run(tmp_path)
    status = run / "RunCompletionStatus.xml"
    status.write_text("<RunCompletionStatus><RunStatus>RunErrored</RunStatus></RunCompletionStatus>")
    assert not is_complete(run)
    with pytest.raises(RunFolderError, match="RunErrored") as caught:
        read_run_folder(run)
    assert caught.value.path == status


def test_explicit_output_dir_resolves_ambiguity(tmp_path):
    run, pools, _ = bclconvert_run(tmp_path)
    touch(run / "Unaligned" / "Stats" / "Stats.json", "{}")
    with pytest.raises(RunFolderError, match=r"several demultiplexed outputs \(BCLConvert, Unaligned\)"):
        read_run_folder(run)
    assert not is_complete(run)
    assert files_of(read_run_folder(run, output_dir=Path("BCLConvert"))) == pools
    assert is_complete(run, output_dir=run / "BCLConvert")


def test_is_complete_follows_the_writers(tmp_path):
    assert not is_complete(tmp_path / "absent")
    run = run_folder(tmp_path, marker=None)
    assert not is_complete(run)  # still sequencing
    touch(run / "RTAComplete.txt", " ")
    assert not is_complete(run)  # no demultiplexed output yet
    out = run / "BCLConvert"
    fastqs(out / "SLX-1", "A", 1, [1], ["R1"])
    assert not is_complete(run)  # BCL Convert still writing: no Reports/Logs
    touch(out / "Reports" / "Demultiplex_Stats.csv", "Lane\n")
    assert not is_complete(run)  # reports started, fastq_list.csv / FastqComplete.txt not yet
    touch(out / "Logs" / "FastqComplete.txt")
    assert is_complete(run)
    (run / "RunParameters.xml").unlink()
    assert not is_complete(run)


# --- refusals: each names the file (and the sheet line) ---


def error_of(run: Path, **kwargs) -> RunFolderError:
    with pytest.raises(RunFolderError) as caught:
        read_run_folder(run, **kwargs)
    return caught.value


def set_sheet(run: Path, text: str) -> Path:
    return touch(run / "BCLConvert" / "Reports" / "SampleSheet.csv", text)


def test_project_not_a_pool_id(tmp_path):
    run, _, _ = bclconvert_run(tmp_path)
    sheet = set_sheet(run, V2_SHEET.replace("1,B,CCCC,SLX-100", "1,B,CCCC,Dawson"))
    error = error_of(run)
    assert str(error).startswith(f"{sheet}:8: project 'Dawson' of sample 'B' is not a pool id")


def test_sample_without_project(tmp_path):
    run, _, _ = bclconvert_run(tmp_path)
    sheet = set_sheet(run, V2_SHEET.replace("GGGG,SLX-200", "GGGG,"))
    assert str(error_of(run)).startswith(f"{sheet}:9: sample 'C' has no project")


def test_sample_with_no_files(tmp_path):
    run, _, _ = bclconvert_run(tmp_path)
    sheet = set_sheet(run, V2_SHEET + "1,D,TTTT,SLX-200\r\n")
    assert str(error_of(run)).startswith(f"{sheet}:11: sample 'D' has no fastq files")


def test_sample_missing_a_lane(tmp_path):
    run, _, _ = bclconvert_run(tmp_path)
    sheet = set_sheet(run, V2_SHEET + "2,B,CCCC,SLX-100\r\n")
    assert str(error_of(run)).startswith(f"{sheet}:8: sample 'B' has no fastq files for lane 2")


def test_sample_missing_a_read(tmp_path):
    run, _, _ = bclconvert_run(tmp_path)
    (run / "BCLConvert" / "SLX-200" / "C_S3_L002_R2_001.fastq.gz").unlink()
    sheet = run / "BCLConvert" / "Reports" / "SampleSheet.csv"
    assert str(error_of(run)).startswith(f"{sheet}:9: sample 'C' lane 2 lacks R2")


def test_lane_not_in_run(tmp_path):
    run, _, _ = bclconvert_run(tmp_path)
    sheet = set_sheet(run, V2_SHEET + "5,C,GGGG,SLX-200\r\n")
    assert str(error_of(run)).startswith(f"{sheet}:11: lane 5 is not a lane of this run")


def test_stray_fastq_matches_no_sample(tmp_path):
    run, _, _ = bclconvert_run(tmp_path)
    stray = fastqs(run / "BCLConvert" / "SLX-100", "Z", 9, [1], ["R1"]).pop()
    assert str(error_of(run)).startswith(f"{stray}: fastq file matches no sample of")


def test_stale_duplicate_output(tmp_path):
    run, _, _ = bclconvert_run(tmp_path)
    fastqs(run / "BCLConvert", "B", 2, [1], ["R1"])  # also at the top, as a run without projects would be
    error = error_of(run)
    assert "same sample, lane and read as" in str(error)
    assert error.path.name == "B_S2_L001_R1_001.fastq.gz"


def test_empty_fastq(tmp_path):
    run, _, _ = bclconvert_run(tmp_path)
    path = run / "BCLConvert" / "SLX-100" / "A_S1_L001_R1_001.fastq.gz"
    path.write_bytes(b"")
    assert str(error_of(run)) == f"{path}: empty fastq.gz file (still being written?)"


def test_symlink_outside_run_folder(tmp_path):
    run, _, _ = bclconvert_run(tmp_path)
    outside = touch(tmp_path / "elsewhere" / "secret.fastq.gz", b"x")
    link = run / "BCLConvert" / "SLX-100" / "A_S1_L001_R1_001.fastq.gz"
    link.unlink()
    link.symlink_to(outside)
    assert str(error_of(run)).startswith(f"{link}: symlink points outside the run folder")
    assert not is_complete(tmp_path / "nothing")


def test_symlinked_folder_outside_run_folder(tmp_path):
    run, _, _ = bclconvert_run(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", run / "BCLConvert" / "SLX-300")
    assert "symlink points outside the run folder" in str(error_of(run))


def test_symlink_to_the_same_file_moved_inside_run_folder_is_fine(tmp_path):
    """The file moved to another base (same pool folder, same name) is still that sample's own file."""
    run, pools, _ = bclconvert_run(tmp_path)
    target = run / "BCLConvert" / "SLX-100" / "A_S1_L001_R1_001.fastq.gz"
    (run / "moved" / "SLX-100").mkdir(parents=True)
    moved = target.rename(run / "moved" / "SLX-100" / target.name)
    target.symlink_to(os.path.relpath(moved, target.parent))
    assert files_of(read_run_folder(run)) == pools


def test_output_dir_outside_run_folder(tmp_path):
    run, _, _ = bclconvert_run(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    error = error_of(run, output_dir=Path("../elsewhere"))
    assert str(error).startswith(f"{run / '../elsewhere'}: output folder is outside the run folder")


def test_output_dir_symlinked_outside(tmp_path):
    run, _, _ = bclconvert_run(tmp_path)
    (run / "BCLConvert").rename(tmp_path / "real_output")
    (run / "BCLConvert").symlink_to(tmp_path / "real_output")
    assert "output folder is outside the run folder" in str(error_of(run))


def test_sheet_value_escaping_the_folder(tmp_path):
    run, _, _ = bclconvert_run(tmp_path)
    sheet = set_sheet(run, V2_SHEET.replace("1,B,CCCC,SLX-100", "1,..,CCCC,SLX-100"))
    assert str(error_of(run)).startswith(f"{sheet}:8: Sample_ID '..' is not a safe file name")


def test_malformed_sample_sheet(tmp_path):
    run, _, _ = bclconvert_run(tmp_path)
    sheet = set_sheet(run, "[Header]\nFileFormatVersion,2\n")
    assert str(error_of(run)) == f"{sheet}: no [Data] or [BCLConvert_Data] section"


def test_no_sample_sheet(tmp_path):
    run, _, _ = bclconvert_run(tmp_path)
    (run / "BCLConvert" / "Reports" / "SampleSheet.csv").unlink()
    assert str(error_of(run)) == f"{run / 'SampleSheet.csv'}: no sample sheet found"


def test_incomplete_run_folder(tmp_path):
    run, _, _ = bclconvert_run(tmp_path)
    (run / "RTAComplete.txt").unlink()
    assert str(error_of(run)).startswith(f"{run}: sequencing not finished")


def test_demultiplexing_not_finished(tmp_path):
    run, _, _ = bclconvert_run(tmp_path)
    (run / "BCLConvert" / "Reports" / "fastq_list.csv").unlink()
    touch(run / "BCLConvert" / "Reports" / "Demultiplex_Stats.csv", "Lane\n")
    assert str(error_of(run)).startswith(f"{run / 'BCLConvert'}: demultiplexing not finished")


def test_no_output_at_all(tmp_path):
    run = run_folder(tmp_path)
    assert "no demultiplexed output" in str(error_of(run))


def test_malformed_run_info_in_run_folder(tmp_path):
    run, _, _ = bclconvert_run(tmp_path)
    (run / "RunInfo.xml").write_text("<RunInfo>\n<Run>\n")
    assert str(error_of(run)).startswith(f"{run / 'RunInfo.xml'}:3: malformed XML")


def test_missing_run_folder(tmp_path):
    assert str(error_of(tmp_path / "nope")) == f"{tmp_path / 'nope'}: run folder does not exist"
