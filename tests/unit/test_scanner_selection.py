"""What a scan triggers, what it leaves, and what it says: the selection on fakes, judging on tiny folders."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from seqshare.runfolder import OutputSearch
from seqshare.scanner import (
    FoundRun,
    Listing,
    Stage,
    Unreadable,
    Waiting,
    dag_run_id_for,
    describe,
    existing_runs,
    judge,
    scan,
    scan_batch,
    select,
)
from seqshare.scanner import folders as scanner_folders
from tests.unit.runfolder.builders import MISEQ, run_folder, touch
from tests.unit.scanner_farm import completed_run, farm, farm_run_id


class FakeAirflow:
    """DAG runs that exist, and every count asked for (as Airflow's get_dr_count answers it)."""

    def __init__(self, existing: set[str]):
        self.existing = existing
        self.asked: list[list[str]] = []

    def count(self, ids: list[str]) -> int:
        self.asked.append(ids)
        return len(self.existing & set(ids)) if ids else len(self.existing)

    def triggered(self, ids) -> set[str]:
        return existing_runs(ids, self.count)


class FakeFolders:
    """judge() answers from a table and records which folders were read."""

    def __init__(self, answers: dict[str, object]):
        self.answers = answers
        self.read: list[str] = []

    def __call__(self, folder: str):
        self.read.append(folder)
        return self.answers[folder]


def listing(*names: str) -> Listing:
    return Listing(tuple(f"/runs/{n}" for n in names), ())


# -- which DAG runs exist ----------------------------------------------------------------------------


@pytest.mark.parametrize("known", [0, 1, 7, 250])
def test_existing_runs_are_found_from_counts_in_chunks_never_with_no_ids(known):
    ids = [f"run__{n:04d}" for n in range(250)]
    airflow = FakeAirflow(set(ids[:known]) | {"run__other"})

    assert existing_runs(ids, airflow.count) == set(ids[:known])
    assert all(0 < len(asked) <= 100 for asked in airflow.asked)


def test_all_known_or_none_known_costs_one_count_per_hundred_ids():
    ids = [f"run__{n:04d}" for n in range(5000)]
    for existing in (set(ids), set()):
        airflow = FakeAirflow(existing)
        existing_runs(ids, airflow.count)
        assert len(airflow.asked) == 50


# -- the selection -------------------------------------------------------------------------------------


def test_a_folder_named_after_a_triggered_run_is_not_read():
    airflow = FakeAirflow({"run__A", "run__B"})
    folders = FakeFolders({"/runs/C": FoundRun("/runs/C", "C")})

    result = select(listing("A", "B", "C"), triggered=airflow.triggered, judge=folders, batch=10)

    assert folders.read == ["/runs/C"]
    assert (result.listed, result.already, result.judged) == (3, 2, 1)
    assert result.new == (FoundRun("/runs/C", "C"),)


def test_a_renamed_folder_of_a_triggered_run_is_read_and_not_triggered_again():
    airflow = FakeAirflow({"run__A"})
    folders = FakeFolders({"/runs/A_PE150_Knight": FoundRun("/runs/A_PE150_Knight", "A")})

    result = select(listing("A_PE150_Knight"), triggered=airflow.triggered, judge=folders, batch=10)

    assert (result.already, result.new, result.deferred) == (1, (), ())


def test_a_new_folder_is_asked_about_once():
    airflow = FakeAirflow(set())
    folders = FakeFolders({"/runs/N": FoundRun("/runs/N", "N")})

    result = select(listing("N"), triggered=airflow.triggered, judge=folders, batch=10)

    assert result.new == (FoundRun("/runs/N", "N"),)
    assert airflow.asked == [["run__N"]]


def test_waiting_unreadable_and_duplicated_folders_are_reported_and_never_triggered():
    waiting = Waiting("/runs/W", Stage.DEMULTIPLEXING, "BCLConvert/Logs/FastqComplete.txt")
    unreadable = Unreadable("/runs/U", "RunInfo.xml:1: malformed XML")
    folders = FakeFolders(
        {
            "/runs/W": waiting,
            "/runs/U": unreadable,
            "/runs/D1": FoundRun("/runs/D1", "D"),
            "/runs/D2": FoundRun("/runs/D2", "D"),
        }
    )
    bad_root = Unreadable("/gone", "cannot list run root: No such file or directory")
    found = Listing(("/runs/D1", "/runs/D2", "/runs/U", "/runs/W"), (bad_root,))

    result = select(found, triggered=FakeAirflow(set()).triggered, judge=folders, batch=10)

    assert result.new == ()
    assert result.waiting == (waiting,)
    assert result.unreadable == (bad_root, unreadable)
    assert result.duplicates == (("D", ("/runs/D1", "/runs/D2")),)


def test_more_new_runs_than_the_batch_triggers_the_oldest_and_leaves_the_rest():
    names = [f"2311{day:02d}_M1_0001_FC{day}" for day in range(9, 0, -1)]
    folders = FakeFolders({f"/runs/{n}": FoundRun(f"/runs/{n}", n) for n in names})

    result = select(listing(*names), triggered=FakeAirflow(set()).triggered, judge=folders, batch=3)

    assert [r.run_id for r in result.new] == sorted(names)[:3]
    assert [r.run_id for r in result.deferred] == sorted(names)[3:]


def test_a_batch_below_one_is_refused():
    with pytest.raises(ValueError, match="at least one run"):
        select(listing(), triggered=FakeAirflow(set()).triggered, judge=FakeFolders({}), batch=0)


# -- how many runs one scan may start ----------------------------------------------------------------


def test_the_batch_is_the_setting_capped_by_airflows_max_map_length():
    assert scan_batch(1024, {}) == (256, "SEQSHARE_SCAN_BATCH default")
    assert scan_batch(1024, {"SEQSHARE_SCAN_BATCH": "10"}) == (10, "SEQSHARE_SCAN_BATCH")
    assert scan_batch(1024, {"SEQSHARE_SCAN_BATCH": "5000"}) == (1024, "Airflow's [core] max_map_length")
    assert scan_batch(100, {}) == (100, "Airflow's [core] max_map_length")


@pytest.mark.parametrize("value", ["0", "-3", "ten", "1.5"])
def test_a_bad_batch_setting_is_refused_naming_it(value):
    with pytest.raises(ValueError, match=f"^SEQSHARE_SCAN_BATCH='{value}': give a whole number"):
        scan_batch(1024, {"SEQSHARE_SCAN_BATCH": value})


# -- judging one real folder ---------------------------------------------------------------------------


def test_what_a_folder_waits_for_is_told_by_stage(tmp_path):
    search = OutputSearch()
    empty = tmp_path / "empty"
    empty.mkdir()
    sequencing = run_folder(tmp_path, MISEQ, marker=None)
    (tmp_path / "b").mkdir()
    undemultiplexed = run_folder(tmp_path / "b", MISEQ)
    (tmp_path / "c").mkdir()
    converting = run_folder(tmp_path / "c", MISEQ)
    touch(converting / "BCLConvert" / "Logs" / "Info.log", "started")

    assert judge(str(empty), search) == Waiting(str(empty), Stage.INSTRUMENT_FILES, "RunInfo.xml")
    assert judge(str(sequencing), search).stage is Stage.SEQUENCING
    assert "RTAComplete.txt" in judge(str(sequencing), search).what
    assert judge(str(converting), search) == Waiting(
        str(converting),
        Stage.DEMULTIPLEXING,
        "Logs/FastqComplete.txt or Reports/fastq_list.csv",
    )
    assert isinstance(judge(str(undemultiplexed), search), Unreadable)  # no output at all: ops must look


def test_a_complete_folder_is_judged_with_its_run_id_from_run_info(tmp_path):
    folder = completed_run(tmp_path, farm_run_id(7), name="renamed_by_hand")

    assert judge(str(folder), OutputSearch()) == FoundRun(str(folder), farm_run_id(7))


# -- the whole scan on a real root ---------------------------------------------------------------------


def test_a_scan_reads_no_run_info_of_folders_already_triggered(tmp_path, monkeypatch):
    ids = farm(tmp_path, 60)
    new = completed_run(tmp_path, farm_run_id(999))
    renamed = completed_run(tmp_path, farm_run_id(998), name=farm_run_id(998) + "_PE150")
    airflow = FakeAirflow({dag_run_id_for(i) for i in ids} | {dag_run_id_for(farm_run_id(998))})
    parsed: list[Path] = []
    real = scanner_folders.read_run_info

    def read_run_info(path: Path):
        parsed.append(path)
        return real(path)

    monkeypatch.setattr(scanner_folders, "read_run_info", read_run_info)
    result = scan([tmp_path], count=airflow.count, batch=5, search=OutputSearch())

    assert sorted(parsed) == [renamed, new]
    assert result.new == (FoundRun(str(new), farm_run_id(999)),)
    assert (result.listed, result.already) == (62, 61)


# -- what the log says ---------------------------------------------------------------------------------


def test_the_log_lists_every_waiting_and_unreadable_folder_with_counts_and_the_limit():
    waits = [
        Waiting("/runs/W1", Stage.SEQUENCING, "CopyComplete.txt, RTAComplete.txt or RunCompletionStatus.xml"),
        Waiting("/runs/W2", Stage.DEMULTIPLEXING, "Stats/Stats.json"),
    ]
    answers: dict[str, object] = {w.run_folder: w for w in waits}
    answers["/runs/U"] = Unreadable("/runs/U", "RunInfo.xml:1: malformed XML")
    answers.update({f"/runs/N{n}": FoundRun(f"/runs/N{n}", f"N{n}") for n in range(5)})
    found = Listing((*sorted(answers), "/runs/K"), ())

    result = select(
        found,
        triggered=FakeAirflow({"run__K"}).triggered,
        judge=FakeFolders(answers),
        batch=2,
        batch_source="SEQSHARE_SCAN_BATCH",
    )
    lines = describe(result)
    text = [line for _, line in lines]

    assert text[0] == (
        "9 run folders: 1 already triggered, 5 new, 0 processed before, 2 waiting, 1 unreadable, "
        "0 runs in several folders "
        "(8 folders read)"
    )
    assert "  run__N0: /runs/N0" in text and "  run__N1: /runs/N1" in text
    assert (
        logging.WARNING,
        "5 new runs exceed this scan's limit of 2 (SEQSHARE_SCAN_BATCH): 3 left for the next scans, first N2",
    ) in lines
    assert "waiting (2):" in text
    assert (
        "  /runs/W1: waits for completion marker: CopyComplete.txt, RTAComplete.txt or "
        "RunCompletionStatus.xml" in text
    )
    assert "  /runs/W2: waits for demultiplexing: Stats/Stats.json" in text
    assert "unreadable, skipped until fixed (1):" in text
    assert "  /runs/U: RunInfo.xml:1: malformed XML" in text
    assert all("\n" not in line for line in text)


def test_a_run_processed_before_whose_dag_run_is_gone_is_not_triggered_again_and_the_log_says_how_to():
    """`airflow db clean` (or a deleted DAG run) must not make the scan send a purged run's files again."""
    answers = {
        "/runs/OLD": FoundRun("/runs/OLD", "OLD"),
        "/runs/NEW": FoundRun("/runs/NEW", "NEW"),
        "/runs/OLD_renamed": FoundRun("/runs/OLD_renamed", "OLD2"),
    }
    frozen = {"OLD": "2026-03-01 10:00 UTC", "OLD2": "2026-03-02 10:00 UTC"}
    asked: list[set[str]] = []

    def processed(run_ids) -> dict[str, str]:
        asked.append(set(run_ids))
        return {run_id: frozen[run_id] for run_id in run_ids if run_id in frozen}

    folders = FakeFolders(answers)
    result = select(
        Listing(tuple(sorted(answers)), ()),
        triggered=FakeAirflow(set()).triggered,
        judge=folders,
        batch=10,
        processed=processed,
    )
    text = [line for _, line in describe(result)]

    assert [run.run_id for run in result.new] == ["NEW"]
    assert sorted((run.run_id, when) for run, when in result.processed) == sorted(frozen.items())
    assert sorted(folders.read) == ["/runs/NEW", "/runs/OLD_renamed"]  # OLD known by its name, not read
    assert asked == [{"OLD", "NEW", "OLD_renamed"}, {"NEW", "OLD2"}]
    assert text[0].startswith("3 run folders: 0 already triggered, 1 new, 2 processed before,")
    assert '  run__OLD: snapshot frozen 2026-03-01 10:00 UTC; conf {"run_folder": "/runs/OLD"}' in text
    assert (
        '  run__OLD2: snapshot frozen 2026-03-02 10:00 UTC; conf {"run_folder": "/runs/OLD_renamed"}' in text
    )


def test_a_cleaned_history_of_5000_runs_costs_one_question_and_a_short_log():
    names = [f"R{n:04}" for n in range(5000)]
    asked: list[int] = []

    def processed(run_ids) -> dict[str, str]:
        asked.append(len(run_ids))
        return {run_id: "2026-01-01 00:00 UTC" for run_id in run_ids}

    folders = FakeFolders({})
    result = select(
        listing(*names), triggered=FakeAirflow(set()).triggered, judge=folders, batch=10, processed=processed
    )
    lines = describe(result)

    assert folders.read == [] and asked == [5000] and result.new == ()
    assert len(result.processed) == 5000 and result.judged == 0
    assert len(lines) == 1 + 1 + 5  # the counts, the heading, the first five
    assert lines[1][1].endswith("(the first 5 of them):")


def test_no_new_run_asks_the_database_nothing():
    calls: list[object] = []
    select(
        listing("K"),
        triggered=FakeAirflow({"run__K"}).triggered,
        judge=FakeFolders({}),
        batch=10,
        processed=lambda ids: calls.append(ids) or {},
    )
    assert calls == []
