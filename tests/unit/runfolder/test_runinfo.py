"""RunInfo.xml / RunParameters.xml of every instrument fixture, read in place, and start-time rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from seqshare.runfolder import RunFolderError, parse_run_info_xml, parse_run_parameters_xml, read_run_info
from seqshare.runfolder.runinfo import start_time
from tests.unit.runfolder.builders import FIXTURES, NOVASEQ6000, run_folder

PDT = timezone(timedelta(hours=-7))

# folder, flowcell, instrument, start, lanes, reads, note fragment
RUN_FOLDERS = [
    ("hiseq2500/190809_D00611_0709_AH3CKJBCX3_RKL0040_Feist_36-39_2", "H3CKJBCX3", "D00611",
     datetime(2019, 8, 9, tzinfo=UTC), 2, 4, "date only"),
    ("hiseq4000/200320_K00180_0957_AHCYKKBBXY_PE150_Knight", "HCYKKBBXY", "K00180",
     datetime(2020, 3, 20, tzinfo=UTC), 8, 3, "date only"),
    ("iseq100/20220912_FS10001773_27_BSE39218-1017", "BSE39218-1017", "FS10001773",
     datetime(2022, 9, 12, 16, 32, 24, tzinfo=PDT), 1, 4,
     "RunParameters.xml RunStartDate, with its time zone"),
    ("miseq/231108_M04586_0992_000000000-L7342", "000000000-L7342", "M04586",
     datetime(2023, 11, 8, tzinfo=UTC), 1, 3, "date only"),
    ("novaseq6000/231215_A01535_0435_BH23F5DSXC", "H23F5DSXC", "A01535",
     datetime(2023, 12, 15, 18, 0, 49, tzinfo=UTC), 4, 4, "no time zone"),
    ("novaseqx/231215_LH00444_0031_B222WHFLT4", "222WHFLT4", "LH00444",
     datetime(2023, 12, 16, 7, 36, 45, tzinfo=UTC), 8, 4, "RunInfo.xml Date, with its time zone"),
]  # fmt: skip


@pytest.mark.parametrize(("folder", "flowcell", "instrument", "start", "lanes", "reads", "note"), RUN_FOLDERS)
def test_fixture_run_folders(folder, flowcell, instrument, start, lanes, reads, note):
    info = read_run_info(FIXTURES / folder)
    assert info.run_id == folder.split("/")[1]
    assert (info.flowcell, info.instrument) == (flowcell, instrument)
    assert info.started_at == start and info.started_at.utcoffset() == start.utcoffset()
    assert note in info.started_at_note
    assert info.lanes == tuple(range(1, lanes + 1))
    assert len(info.reads) == reads


# RunInfo files that come without a RunParameters.xml
# path, run id, flowcell, instrument, start
RUN_INFOS = [
    ("hiseq2500/viral-ngs/RunInfo-hiseq.xml", "150821_SL-HDF_0700_AHVFF2ADXX", "HVFF2ADXX", "SL-HDF",
     datetime(2015, 8, 21, tzinfo=UTC)),
    ("hiseqx/150424_ST-E00214_0031_BH2WY7CCXX/RunInfo.xml", "150424_ST-E00214_0031_BH2WY7CCXX", "H2WY7CCXX",
     "ST-E00214", datetime(2015, 4, 24, tzinfo=UTC)),
    ("nextseq550/viral-ngs/RunInfo-nextseq550.xml", "210221_NB552060_0109_AHMTLKAFX2", "HMTLKAFX2",
     "NB552060", datetime(2021, 2, 21, tzinfo=UTC)),
    ("nextseq2000/viral-ngs/RunInfo-nextseq-1000-2000-p1.xml", "240927_VH01619_75_AAG27M7M5", "AAG27M7M5",
     "VH01619", datetime(2024, 9, 27, 14, 48, 52, tzinfo=UTC)),
    ("nextseq2000/multiqc-issue_2290/RunInfo.xml", "240131_VH00384_146_AACCHKLHV", "AACCHKLHV", "VH00384",
     datetime(2024, 1, 31, 15, 30, 32, tzinfo=UTC)),
    ("bclconvert_output/multiqc-3.6.3-Y28N123_I8N2_N10_Y91N60/Reports/RunInfo.xml",
     "201002_A01052_0023_BH5LWCDSXY", "H5LWCDSXY", "A01052", datetime(2020, 10, 2, 13, 32, 9, tzinfo=UTC)),
]  # fmt: skip


@pytest.mark.parametrize(("path", "run_id", "flowcell", "instrument", "start"), RUN_INFOS)
def test_fixture_run_info_files(path, run_id, flowcell, instrument, start):
    info = parse_run_info_xml(FIXTURES / path)
    assert (info.run_id, info.flowcell, info.instrument) == (run_id, flowcell, instrument)
    assert start_time(info, None)[0] == start


def test_every_fixture_xml_is_covered():
    infos = {p.relative_to(FIXTURES).as_posix() for p in FIXTURES.rglob("RunInfo*.xml")}
    assert infos == {f"{r[0]}/RunInfo.xml" for r in RUN_FOLDERS} | {r[0] for r in RUN_INFOS}


def test_novaseq6000_run_parameters_without_run_info():
    params = parse_run_parameters_xml(
        FIXTURES / "novaseq6000/200624_A00834_0183_BHMTFYDRXX/RunParameters.xml"
    )
    assert (params.run_id, params.instrument, params.run_start) == (
        "200624_A00834_0183_BHMTFYDRXX",
        "A00834",
        "200624",
    )
    assert start_time(None, params) == (
        datetime(2020, 6, 24, tzinfo=UTC),
        "RunParameters.xml RunStartDate is a date only; midnight UTC assumed",
    )


def test_hiseq_run_parameters_nest_fields_in_setup():
    params = parse_run_parameters_xml(
        FIXTURES / "hiseq2500/190809_D00611_0709_AH3CKJBCX3_RKL0040_Feist_36-39_2/runParameters.xml"
    )
    assert (params.instrument, params.run_start) == ("D00611", "190809")


def test_local_zone_applies_to_naive_times_only():
    la = ZoneInfo("America/Los_Angeles")
    info = read_run_info(FIXTURES / RUN_FOLDERS[4][0], local_tz=la)
    assert info.started_at == datetime(2023, 12, 15, 18, 0, 49, tzinfo=la)
    assert "America/Los_Angeles" in info.started_at_note
    exact = read_run_info(FIXTURES / RUN_FOLDERS[5][0], local_tz=la)
    assert exact.started_at == datetime(2023, 12, 16, 7, 36, 45, tzinfo=UTC)


def test_run_id_date_is_the_last_resort(tmp_path):
    run = run_folder(tmp_path)
    text = (
        (run / "RunInfo.xml").read_text().replace("<Date>12/15/2023 6:00:49 PM</Date>", "<Date>soon</Date>")
    )
    (run / "RunInfo.xml").write_text(text)
    (run / "RunParameters.xml").write_text("<RunParameters><RunStartDate>x</RunStartDate></RunParameters>")
    info = read_run_info(run)
    assert info.started_at == datetime(2023, 12, 15, tzinfo=UTC)
    assert info.started_at_note == "date from the run id; midnight UTC assumed"


def test_no_start_time_at_all():
    info = parse_run_info_xml(FIXTURES / RUN_INFOS[0][0])
    bare = type(info)(info.path, "weird", "F", "I", None, (1,), ())
    assert start_time(bare, None) == (None, "no start time in RunInfo.xml, RunParameters.xml or the run id")


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


@pytest.mark.parametrize(
    ("xml", "reason"),
    [
        ('<RunInfo><Run Id="r"><Instrument>I</Instrument></Run></RunInfo>', "no Flowcell"),
        ("<RunInfo/>", "not a RunInfo.xml"),
        ('<!DOCTYPE x [<!ENTITY a "b">]><RunInfo/>', "DTD"),
        (
            '<RunInfo><Run Id="r"><Flowcell>F</Flowcell><Instrument>I</Instrument></Run></RunInfo>',
            "LaneCount",
        ),
    ],
)
def test_bad_run_info_content(tmp_path, xml, reason):
    path = tmp_path / "RunInfo.xml"
    path.write_text(xml)
    with pytest.raises(RunFolderError, match=reason) as caught:
        parse_run_info_xml(path)
    assert str(caught.value).startswith(str(path))


def test_run_ids_must_agree(tmp_path):
    run = run_folder(tmp_path)
    params = run / "RunParameters.xml"
    params.write_text(params.read_text().replace("<RunId>231215_A01535", "<RunId>991215_A01535"))
    with pytest.raises(RunFolderError, match=r"differs from RunInfo\.xml") as caught:
        read_run_info(run)
    assert caught.value.path == params
