"""Where the demultiplexed output is: settings, a separate root keyed by run id, and what a run waits for."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from seqshare.runfolder import OutputSearch, RunFolderError, awaiting, is_complete, read_run_folder, reader
from tests.unit.runfolder.builders import NOVASEQ6000, fastqs, run_folder, touch
from tests.unit.runfolder.test_reader import R_AND_I, V2_SHEET, bclconvert_run, files_of

RUN_ID = NOVASEQ6000.name


@pytest.fixture(autouse=True)
def no_output_settings(monkeypatch):
    monkeypatch.delenv("SEQSHARE_OUTPUT_PATTERNS", raising=False)
    monkeypatch.delenv("SEQSHARE_OUTPUT_ROOT", raising=False)


def refusal(run: Path, **kwargs) -> str:
    with pytest.raises(RunFolderError) as caught:
        read_run_folder(run, **kwargs)
    return str(caught.value)


def moved_output(tmp_path: Path, to: Path) -> tuple[Path, dict[str, set[str]]]:
    """A BCL Convert run whose output folder was moved to ``to`` (outside the run folder)."""
    run, pools, _ = bclconvert_run(tmp_path)
    to.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(run / "BCLConvert", to)
    moved = {
        pool: {str(to / Path(p).relative_to("BCLConvert")) for p in paths} for pool, paths in pools.items()
    }
    return run, moved


def test_patterns_setting_finds_an_output_folder_of_any_name(tmp_path, monkeypatch):
    run, pools, _ = bclconvert_run(tmp_path)
    (run / "BCLConvert").rename(run / "Demux_2026-03-01")
    assert "no demultiplexed output" in refusal(run)

    monkeypatch.setenv("SEQSHARE_OUTPUT_PATTERNS", "Demux_*")
    folder = read_run_folder(run)
    assert files_of(folder) == {
        p: {f.replace("BCLConvert/", "Demux_2026-03-01/", 1) for f in fs} for p, fs in pools.items()
    }
    assert folder.output_dir.as_posix() == "Demux_2026-03-01"
    assert is_complete(run)


def test_patterns_with_default_add_to_the_built_in_search_and_ambiguity_names_the_setting(tmp_path):
    run, _, _ = bclconvert_run(tmp_path)
    touch(run / "demux" / "Logs" / "Info.log", "started")
    search = OutputSearch(patterns=("default", "demux"))
    error = refusal(run, search=search)
    assert error == (
        f"{run}: several demultiplexed outputs (BCLConvert, demux); give the distribute_run parameter "
        "output_dir, or narrow SEQSHARE_OUTPUT_PATTERNS"
    )
    assert not is_complete(run, search=search)
    assert files_of(read_run_folder(run, output_dir=Path("BCLConvert"), search=search))


def test_no_output_names_the_settings_and_the_parameter(tmp_path):
    run = run_folder(tmp_path)
    error = refusal(run)
    assert error == (
        f"{run}: no demultiplexed output (searched Analysis/<n>, Unaligned*, BCLConvert*, fastq*, "
        "Data/Intensities/BaseCalls); set SEQSHARE_OUTPUT_PATTERNS or SEQSHARE_OUTPUT_ROOT, or give the "
        "distribute_run parameter output_dir"
    )
    assert "pass output_dir" not in error


def test_output_root_keyed_by_run_id_outside_the_run_folder(tmp_path, monkeypatch):
    demux = tmp_path / "demux"
    run, pools = moved_output(tmp_path, demux / RUN_ID)
    monkeypatch.setenv("SEQSHARE_OUTPUT_ROOT", str(demux))

    assert is_complete(run)
    folder = read_run_folder(run)
    assert files_of(folder) == pools
    assert folder.output_dir.as_posix() == str(demux / RUN_ID)
    assert folder.sample_sheet == demux / RUN_ID / "Reports" / "SampleSheet.csv"
    assert all(Path(f.relative_path).is_file() for fs in folder.pool_files.values() for f in fs)


def test_output_root_template_and_waiting_for_it(tmp_path):
    search = OutputSearch(root=str(tmp_path / "demux" / "{run_id}" / "fastq"))
    run, _, _ = bclconvert_run(tmp_path)
    assert awaiting(run, search=search) == f"{tmp_path / 'demux' / RUN_ID / 'fastq'} (SEQSHARE_OUTPUT_ROOT)"
    assert not is_complete(run, search=search)  # the run folder's own BCLConvert/ is not looked at
    assert refusal(run, search=search) == (
        f"{tmp_path / 'demux' / RUN_ID / 'fastq'}: demultiplexing not finished: waiting for "
        f"{tmp_path / 'demux' / RUN_ID / 'fastq'} (SEQSHARE_OUTPUT_ROOT)"
    )
    shutil.move(run / "BCLConvert", tmp_path / "demux" / RUN_ID / "fastq")
    assert is_complete(run, search=search)


def test_an_output_folder_of_another_run_is_refused(tmp_path):
    demux = tmp_path / "demux"
    run, _ = moved_output(tmp_path, demux / RUN_ID)
    copy = touch(
        demux / RUN_ID / "Reports" / "RunInfo.xml",
        '<RunInfo><Run Id="240101_A01535_0001_BOTHERRUN"/></RunInfo>',
    )
    error = refusal(run, search=OutputSearch(root=str(demux)))
    assert error == f"{copy}: output of run '240101_A01535_0001_BOTHERRUN', not of run {RUN_ID!r}"
    assert refusal(run, output_dir=demux / RUN_ID) == error


def test_explicit_absolute_output_dir_outside_the_run_folder_is_the_operators_word(tmp_path):
    run, pools = moved_output(tmp_path, tmp_path / "scratch" / "run7")
    assert is_complete(run, output_dir=tmp_path / "scratch" / "run7")
    assert files_of(read_run_folder(run, output_dir=tmp_path / "scratch" / "run7")) == pools
    with pytest.raises(RunFolderError, match="output folder is outside the run folder"):
        read_run_folder(run, output_dir=Path("../scratch/run7"))  # relative: inside the run folder only


def test_links_into_the_runs_output_root_are_the_runs_files(tmp_path):
    """A facility that keeps links in the run folder to its demultiplexing disk: the same name and pool
    folder under the run's folder in SEQSHARE_OUTPUT_ROOT is accepted, and nowhere else outside."""
    run, pools, _ = bclconvert_run(tmp_path)
    disk = tmp_path / "disk" / RUN_ID
    shutil.copytree(run / "BCLConvert", disk)
    for path in (run / "BCLConvert").rglob("*.fastq.gz"):
        path.unlink()
        path.symlink_to(disk / path.relative_to(run / "BCLConvert"))
    with pytest.raises(RunFolderError, match="symlink points outside the run folder"):
        read_run_folder(run, output_dir=Path("BCLConvert"))
    search = OutputSearch(root=str(tmp_path / "disk"))
    assert files_of(read_run_folder(run, output_dir=Path("BCLConvert"), search=search)) == pools


def test_bcl2fastq_in_basecalls_with_fastqs_waits_for_stats(tmp_path):
    run = run_folder(tmp_path)
    out = run / "Data" / "Intensities" / "BaseCalls"
    touch(out / "L001" / "C1.1" / "s_1_1101.bcl.gz", b"bcl")
    touch(run / "SampleSheet.csv", V2_SHEET)
    fastqs(out / "SLX-100", "A", 1, [1], R_AND_I)
    assert refusal(run) == f"{out}: demultiplexing not finished: waiting for Stats/Stats.json"
    assert awaiting(run) == "Stats/Stats.json"


def test_bcl_convert_running_waits_for_its_markers(tmp_path):
    run, _, _ = bclconvert_run(tmp_path)
    (run / "BCLConvert" / "Reports" / "fastq_list.csv").unlink()
    (run / "BCLConvert" / "Reports" / "SampleSheet.csv").rename(run / "SampleSheet.csv")
    (run / "BCLConvert" / "Reports").rmdir()
    touch(run / "BCLConvert" / "Logs" / "Info.log", "started")
    assert refusal(run) == (
        f"{run / 'BCLConvert'}: demultiplexing not finished: waiting for Logs/FastqComplete.txt or "
        "Reports/fastq_list.csv"
    )
    (run / "BCLConvert" / "Logs" / "Info.log").unlink()
    (run / "BCLConvert" / "Logs").rmdir()
    assert awaiting(run) == (
        "Logs/FastqComplete.txt or Reports/fastq_list.csv (BCL Convert), or Stats/Stats.json (bcl2fastq)"
    )


@pytest.mark.parametrize(
    ("patterns", "root"),
    [
        (("/abs",), None),
        (("../up",), None),
        (("",), None),
        ((".",), None),
        (("default",), "relative/demux"),
        ((), "/d/{x}"),
    ],
)
def test_a_bad_search_is_refused(patterns, root):
    with pytest.raises(ValueError, match=r"output (pattern|root)"):
        OutputSearch(patterns=patterns or ("default",), root=root)


def test_is_complete_never_raises_whatever_reading_the_folder_raises(tmp_path, monkeypatch):
    run, _, _ = bclconvert_run(tmp_path)
    assert is_complete(run)

    def hostile(*_args, **_kwargs):
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(reader, "find_output", hostile)
    assert is_complete(run) is False
    with pytest.raises(RecursionError):
        awaiting(run)  # the scanner's call: it logs the reason on one line and goes on
