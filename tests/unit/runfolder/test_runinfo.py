"""RunInfo.xml / RunParameters.xml of every instrument fixture, read in place: identity, lanes, reads, and
the run's start as precisely as each instrument writes it (never a guessed midnight); bounds on numbers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from seqshare.runfolder import RunFolderError, parse_run_info_xml, parse_run_parameters_xml, read_run_info
from seqshare.runfolder.models import StartPrecision
from seqshare.runfolder.runinfo import start_time

# Vendored real instrument files (origin and licence of each: tests/fixtures/illumina/SOURCES.md).
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "illumina"
NOVASEQ6000 = FIXTURES / "novaseq6000" / "231215_A01535_0435_BH23F5DSXC"
PDT = timezone(timedelta(hours=-7))
LA = ZoneInfo("America/Los_Angeles")
EXACT, LOCAL, DAY = StartPrecision.EXACT, StartPrecision.LOCAL, StartPrecision.DAY
US = timedelta(microseconds=1)


def whole_day(year: int, month: int, day: int, zone=UTC) -> tuple[datetime, datetime]:
    start = datetime(year, month, day, tzinfo=zone)
    return start, (start + timedelta(days=1)) - US


def at(value: datetime) -> tuple[datetime, datetime]:
    return value, value


# folder, flowcell, instrument, (earliest, latest), precision, lanes, reads, note
RUN_FOLDERS = [
    ("hiseq2500/190809_D00611_0709_AH3CKJBCX3_RKL0040_Feist_36-39_2", "H3CKJBCX3", "D00611",
     whole_day(2019, 8, 9), DAY, 2, 4,
     "RunParameters.xml RunStartDate 190809 and RunInfo.xml Date 190809 are dates only: "
     "the day 2019-08-09 in UTC"),
    ("hiseq4000/200320_K00180_0957_AHCYKKBBXY_PE150_Knight", "HCYKKBBXY", "K00180",
     whole_day(2020, 3, 20), DAY, 8, 3, "are dates only: the day 2020-03-20 in UTC"),
    ("iseq100/20220912_FS10001773_27_BSE39218-1017", "BSE39218-1017", "FS10001773",
     at(datetime(2022, 9, 12, 16, 32, 24, tzinfo=PDT)), EXACT, 1, 4,
     "RunParameters.xml RunStartDate 2022-09-12T16:32:24-07:00, with its time zone"),
    ("miseq/231108_M04586_0992_000000000-L7342", "000000000-L7342", "M04586",
     whole_day(2023, 11, 8), DAY, 1, 3, "are dates only: the day 2023-11-08 in UTC"),
    ("novaseq6000/231215_A01535_0435_BH23F5DSXC", "H23F5DSXC", "A01535",
     at(datetime(2023, 12, 15, 18, 0, 49, tzinfo=UTC)), LOCAL, 4, 4,
     "RunInfo.xml Date 12/15/2023 6:00:49 PM has no time zone: instrument-local time read in UTC"),
    ("novaseqx/231215_LH00444_0031_B222WHFLT4", "222WHFLT4", "LH00444",
     at(datetime(2023, 12, 16, 7, 36, 45, tzinfo=UTC)), EXACT, 8, 4,
     "RunInfo.xml Date 2023-12-16T07:36:45Z, with its time zone"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("folder", "flowcell", "instrument", "window", "precision", "lanes", "reads", "note"), RUN_FOLDERS
)
def test_fixture_run_folders(folder, flowcell, instrument, window, precision, lanes, reads, note):
    info = read_run_info(FIXTURES / folder)
    assert info.run_id == folder.split("/")[1]
    assert (info.flowcell, info.instrument) == (flowcell, instrument)
    assert info.start is not None
    assert (info.start.earliest, info.start.latest, info.start.precision) == (*window, precision)
    assert info.start.earliest.utcoffset() == window[0].utcoffset()
    assert note in info.start.note
    assert info.started_at == window[0] and info.started_at_note == info.start.note
    assert info.lanes == tuple(range(1, lanes + 1))
    assert len(info.reads) == reads


# RunInfo files that come without a RunParameters.xml: path, run id, flowcell, instrument, window, precision
RUN_INFOS = [
    ("hiseq2500/viral-ngs/RunInfo-hiseq.xml", "150821_SL-HDF_0700_AHVFF2ADXX", "HVFF2ADXX", "SL-HDF",
     whole_day(2015, 8, 21), DAY),
    ("hiseqx/150424_ST-E00214_0031_BH2WY7CCXX/RunInfo.xml", "150424_ST-E00214_0031_BH2WY7CCXX", "H2WY7CCXX",
     "ST-E00214", whole_day(2015, 4, 24), DAY),
    ("nextseq550/viral-ngs/RunInfo-nextseq550.xml", "210221_NB552060_0109_AHMTLKAFX2", "HMTLKAFX2",
     "NB552060", whole_day(2021, 2, 21), DAY),
    ("nextseq2000/viral-ngs/RunInfo-nextseq-1000-2000-p1.xml", "240927_VH01619_75_AAG27M7M5", "AAG27M7M5",
     "VH01619", at(datetime(2024, 9, 27, 14, 48, 52, tzinfo=UTC)), EXACT),
    ("nextseq2000/multiqc-issue_2290/RunInfo.xml", "240131_VH00384_146_AACCHKLHV", "AACCHKLHV", "VH00384",
     at(datetime(2024, 1, 31, 15, 30, 32, tzinfo=UTC)), EXACT),
    ("bclconvert_output/multiqc-3.6.3-Y28N123_I8N2_N10_Y91N60/Reports/RunInfo.xml",
     "201002_A01052_0023_BH5LWCDSXY", "H5LWCDSXY", "A01052", at(datetime(2020, 10, 2, 13, 32, 9, tzinfo=UTC)),
     LOCAL),
]  # fmt: skip


@pytest.mark.parametrize(("path", "run_id", "flowcell", "instrument", "window", "precision"), RUN_INFOS)
def test_fixture_run_info_files(path, run_id, flowcell, instrument, window, precision):
    info = parse_run_info_xml(FIXTURES / path)
    assert (info.run_id, info.flowcell, info.instrument) == (run_id, flowcell, instrument)
    start = start_time(info, None)
    assert start is not None
    assert (start.earliest, start.latest, start.precision) == (*window, precision)


def test_every_fixture_xml_is_covered():
    infos = {p.relative_to(FIXTURES).as_posix() for p in FIXTURES.rglob("RunInfo*.xml")}
    assert infos == {f"{r[0]}/RunInfo.xml" for r in RUN_FOLDERS} | {r[0] for r in RUN_INFOS}


def test_a_date_only_is_the_whole_day_in_the_instruments_zone_never_midnight():
    info = read_run_info(FIXTURES / RUN_FOLDERS[3][0], local_tz=LA)  # MiSeq 231108
    assert info.start is not None and info.start.precision is DAY
    assert (info.start.earliest, info.start.latest) == whole_day(2023, 11, 8, LA)
    assert info.start.note.endswith("the day 2023-11-08 in America/Los_Angeles")
    assert "midnight" not in info.start.note


def test_novaseq6000_run_parameters_without_run_info_give_a_day():
    params = parse_run_parameters_xml(
        FIXTURES / "novaseq6000/200624_A00834_0183_BHMTFYDRXX/RunParameters.xml"
    )
    assert (params.run_id, params.instrument, params.run_start) == (
        "200624_A00834_0183_BHMTFYDRXX",
        "A00834",
        "200624",
    )
    start = start_time(None, params)
    assert start is not None
    assert (start.earliest, start.latest, start.precision) == (*whole_day(2020, 6, 24), DAY)
    assert start.note == "RunParameters.xml RunStartDate 200624 is a date only: the day 2020-06-24 in UTC"


def test_hiseq_run_parameters_nest_fields_in_setup():
    params = parse_run_parameters_xml(
        FIXTURES / "hiseq2500/190809_D00611_0709_AH3CKJBCX3_RKL0040_Feist_36-39_2/runParameters.xml"
    )
    assert (params.instrument, params.run_start) == ("D00611", "190809")


def test_local_zone_applies_to_naive_times_only():
    info = read_run_info(FIXTURES / RUN_FOLDERS[4][0], local_tz=LA)
    assert info.start is not None and info.start.precision is LOCAL
    assert info.start.earliest == info.start.latest == datetime(2023, 12, 15, 18, 0, 49, tzinfo=LA)
    assert "instrument-local time read in America/Los_Angeles" in info.start.note
    exact = read_run_info(FIXTURES / RUN_FOLDERS[5][0], local_tz=LA)
    assert exact.start is not None and exact.start.precision is EXACT
    assert exact.start.earliest == datetime(2023, 12, 16, 7, 36, 45, tzinfo=UTC)


def run_folder(tmp_path: Path, info: str | None = None, params: str | None = None) -> Path:
    """A copy of the NovaSeq 6000 fixture's two files; RunInfo.xml's Date and RunParameters.xml replaced."""
    run = tmp_path / NOVASEQ6000.name
    run.mkdir()
    text = (NOVASEQ6000 / "RunInfo.xml").read_text()
    if info is not None:
        text = text.replace("<Date>12/15/2023 6:00:49 PM</Date>", info)
    (run / "RunInfo.xml").write_text(text)
    (run / "RunParameters.xml").write_text(params or (NOVASEQ6000 / "RunParameters.xml").read_text())
    return run


def test_a_local_time_the_clocks_passed_twice_is_both_instants(tmp_path):
    run = run_folder(tmp_path, "<Date>11/5/2023 1:30:00 AM</Date>")  # US summer time ends at 2:00
    start = read_run_info(run, local_tz=LA).start
    assert start is not None and start.precision is LOCAL
    assert (start.earliest, start.latest) == (
        datetime(2023, 11, 5, 8, 30, tzinfo=UTC),
        datetime(2023, 11, 5, 9, 30, tzinfo=UTC),
    )
    assert "occurred twice or never" in start.note


def test_a_run_info_without_date_takes_run_parameters_day(tmp_path):
    start = read_run_info(run_folder(tmp_path, "")).start  # NovaSeq 6000 RunParameters: 231215
    assert start is not None
    assert (start.earliest, start.latest, start.precision) == (*whole_day(2023, 12, 15), DAY)
    assert start.note.startswith("RunParameters.xml RunStartDate 231215 is a date only")


def test_two_dates_that_differ_give_both_days(tmp_path):
    start = read_run_info(run_folder(tmp_path, "<Date>231214</Date>")).start
    assert start is not None
    assert (start.earliest, start.latest) == (whole_day(2023, 12, 14)[0], whole_day(2023, 12, 15)[1])
    assert "are dates only and differ: any time from 2023-12-14 to 2023-12-15 in UTC" in start.note


def test_the_run_id_date_is_a_date_only_named_as_such(tmp_path):
    params = "<RunParameters><RunStartDate>x</RunStartDate></RunParameters>"
    start = read_run_info(run_folder(tmp_path, "<Date>soon</Date>", params)).start
    assert start is not None
    assert (start.earliest, start.latest, start.precision) == (*whole_day(2023, 12, 15), DAY)
    assert start.note.startswith("date from the run id (231215;")
    assert "RunInfo.xml Date 'soon' not understood" in start.note
    assert start.note.endswith("the day 2023-12-15 in UTC")


def test_no_start_time_at_all():
    info = parse_run_info_xml(FIXTURES / RUN_INFOS[0][0])
    bare = type(info)(info.path, "weird", "F", "I", None, (1,), ())
    assert start_time(bare, None) is None


def test_missing_run_info_and_run_parameters(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(RunFolderError, match=r"RunInfo\.xml: missing"):
        read_run_info(run)
    (run / "RunInfo.xml").write_bytes((NOVASEQ6000 / "RunInfo.xml").read_bytes())
    with pytest.raises(RunFolderError, match=r"RunParameters\.xml: missing"):
        read_run_info(run)


def test_malformed_run_info_names_file_and_line(tmp_path):
    run = run_folder(tmp_path)
    (run / "RunInfo.xml").write_text('<?xml version="1.0"?>\n<RunInfo>\n  <Run Id="x">\n</RunInfo>\n')
    with pytest.raises(RunFolderError) as caught:
        read_run_info(run)
    assert str(caught.value).startswith(f"{run / 'RunInfo.xml'}:4: malformed XML")


RUN = '<RunInfo><Run Id="r"><Flowcell>F</Flowcell><Instrument>I</Instrument>{}</Run></RunInfo>'
READ = '<Read Number="{}" NumCycles="{}" IsIndexedRead="N"/>'


@pytest.mark.parametrize(
    ("xml", "reason"),
    [
        ('<RunInfo><Run Id="r"><Instrument>I</Instrument></Run></RunInfo>', "no Flowcell"),
        ("<RunInfo/>", "not a RunInfo.xml"),
        ('<!DOCTYPE x [<!ENTITY a "b">]><RunInfo/>', "DTD"),
        (RUN.format(""), "LaneCount"),
        # Numbers are bounded: a huge lane count must not become a huge tuple (it exhausted memory).
        (RUN.format('<FlowcellLayout LaneCount="999999999"/>'), "FlowcellLayout LaneCount '999999999' is "),
        (RUN.format('<FlowcellLayout LaneCount="65"/>'), "LaneCount '65' is not a whole number from 1 to 64"),
        (RUN.format('<FlowcellLayout LaneCount="0"/>'), "LaneCount '0'"),
        (RUN.format('<FlowcellLayout LaneCount="\uff18"/>'), "LaneCount '\uff18'"),  # a full-width digit
        (RUN.format(f'<FlowcellLayout LaneCount="{"9" * 5000}"/>'), r"LaneCount '9999.*… \(5,000 char"),
        (RUN.format('<FlowcellLayout LaneCount="8"/><Reads>' + READ.format(1, 10**9) + "</Reads>"),
         "Read 1 NumCycles '1000000000' is not a whole number from 0 to 1000"),
        (RUN.format('<FlowcellLayout LaneCount="8"/><Reads>' + READ.format("1e3", 5) + "</Reads>"),
         "Read Number '1e3'"),
        (RUN.format('<FlowcellLayout LaneCount="8"/><Reads>' + READ.format(1, 5) * 17 + "</Reads>"),
         "more than 16 Reads/Read"),
        (RUN.format('<FlowcellLayout LaneCount="8"/><Reads><Read Number="1"/></Reads>'),
         "a Read without Number/NumCycles"),
    ],
)  # fmt: skip
def test_bad_run_info_content(tmp_path, xml, reason):
    path = tmp_path / "RunInfo.xml"
    path.write_text(xml)
    with pytest.raises(RunFolderError, match=reason) as caught:
        parse_run_info_xml(path)
    assert str(caught.value).startswith(str(path))
    assert "\n" not in str(caught.value) and len(str(caught.value)) < len(str(path)) + 200


def test_the_largest_flow_cell_and_longest_reads_pass(tmp_path):
    path = tmp_path / "RunInfo.xml"
    path.write_text(RUN.format('<FlowcellLayout LaneCount="64"/><Reads>' + READ.format(1, 1000) + "</Reads>"))
    info = parse_run_info_xml(path)
    assert (len(info.lanes), info.reads[0].cycles) == (64, 1000)


def test_run_ids_must_agree(tmp_path):
    run = run_folder(tmp_path)
    params = run / "RunParameters.xml"
    params.write_text(params.read_text().replace("<RunId>231215_A01535", "<RunId>991215_A01535"))
    with pytest.raises(RunFolderError, match=r"differs from RunInfo\.xml") as caught:
        read_run_info(run)
    assert caught.value.path == params
