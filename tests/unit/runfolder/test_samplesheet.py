"""Sample sheets: every shared fixture read in place, plus the real-world quirks and the bad cases."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from seqshare.runfolder import RunFolderError, read_sample_sheet
from tests.unit.runfolder.builders import FIXTURES

# path, version, rows, distinct samples, project column, projects, first sample (line, id, name, lane)
CASES = [
    ("bclconvert_output/multiqc-3.6.3-Y28N123_I8N2_N10_Y91N60/Reports/SampleSheet.csv",
     2, 8, 2, "Sample_Project", {"Dawson"}, (20, "PRJ200438_LPRJ200438", None, 4)),
    ("bclconvert_output/multiqc-3.9.3/SampleSheet.csv",
     1, 4, 1, "Sample_Project", {None}, (7, "S34863_GBC_Multiplex", None, 3)),
    ("hiseq4000/200320_K00180_0957_AHCYKKBBXY_PE150_Knight/"
     "2020-03-17_Knight_Mayo_Fecal_Stability_2_RERUN3_SampleSheet.csv",
     1, 8, 7, "Sample_Project", {None}, (24, "MFSII_1_1-2_3", None, 1)),
    ("hiseqx/150424_ST-E00214_0031_BH2WY7CCXX/SampleSheet.csv",
     1, 8, 8, "Project", {"J_Lundeberg_14_24"}, (7, "Sample_P1775_147", "P1775_147", 1)),
    ("iseq100/20220912_FS10001773_27_BSE39218-1017/SampleSheet.csv",
     1, 1, 1, "Sample_Project", {None},
     (16, "20220912_RNA_pilot_II_metaT_2_3_14606", "20220912_RNA_pilot_II_metaT_2_3_14606", None)),
    ("miseq/231108_M04586_0992_000000000-L7342/SampleSheet.csv",
     1, 1, 1, "Sample_Project", {None}, (23, "Cedars_Creeping_Fat_EVP", None, None)),
    ("miseq/viral-ngs/SampleSheet-miseq-1.csv",
     1, 20, 20, "Sample_Project", {None}, (21, "mebv.0.6", None, None)),
    ("nextseq2000/nf-core-test-datasets/SampleSheet.csv",
     2, 16, 16, "ProjectName", {"SingleCell-RNA_P3_2"}, (25, "SingleCell-RNA-P3-2-SI-TT-A5", None, None)),
    ("novaseq6000/200624_A00834_0183_BHMTFYDRXX/SampleSheet.csv",
     1, 4, 4, None, {None}, (14, "Sample1", None, 1)),
    ("novaseqx/nf-core-demultiplex/expected_SampleSheet_1.csv",
     2, 11, 11, None, {None}, (19, "PhiX1A", None, 1)),
    ("samplesheets_v1/mg-scripts/good-sample-sheet.csv",
     1, 783, 783, "Sample_Project", {"Feist_11661", "Gerwick_6123", "NYU_BMS_Melanoma_13059"},
     (23, "CDPH-SAL__Salmonella__Typhi__MDL-143", "CDPH-SAL..Salmonella..Typhi..MDL-143", 1)),
]  # fmt: skip


@pytest.mark.parametrize(("relpath", "version", "rows", "samples", "column", "projects", "first"), CASES)
def test_fixture_sample_sheets(relpath, version, rows, samples, column, projects, first):
    sheet = read_sample_sheet(FIXTURES / relpath)
    assert (sheet.version, len(sheet.rows), len(sheet.sample_ids)) == (version, rows, samples)
    assert sheet.project_column == column
    assert {row.project for row in sheet.rows} == projects
    row = sheet.rows[0]
    assert (row.line, row.sample_id, row.sample_name, row.lane) == first


def test_every_fixture_sheet_is_covered():
    found = {p.relative_to(FIXTURES).as_posix() for p in FIXTURES.rglob("*.csv") if "heet" in p.name}
    assert found == {case[0] for case in CASES}


def test_hiseq4000_sample_in_two_lanes_and_comment_lines():
    sheet = read_sample_sheet(FIXTURES / CASES[2][0])
    assert [r.lane for r in sheet.rows if r.sample_id == "MFSII_1_1-2_3"] == [1, 8]


def test_iseq_nul_bytes_in_index_columns_are_ignored():
    sheet = read_sample_sheet(FIXTURES / CASES[4][0])
    assert b"\x00" in sheet.path.read_bytes()
    assert sheet.rows[0].project is None


def test_good_sheet_row_with_trailing_commas_past_header_is_kept():
    sheet = read_sample_sheet(FIXTURES / CASES[-1][0])
    last = sheet.rows[-1]
    assert (last.line, last.sample_id, last.project) == (805, "EP479894B04", "NYU_BMS_Melanoma_13059")
    counts = {p: sum(r.project == p for r in sheet.rows) for p in CASES[-1][5]}
    assert counts == {"Feist_11661": 390, "Gerwick_6123": 9, "NYU_BMS_Melanoma_13059": 384}


def test_novaseqx_cloud_data_ids_do_not_match_bclconvert_ids():
    sheet = read_sample_sheet(FIXTURES / CASES[9][0])
    assert sheet.sample_ids[:2] == ("PhiX1A", "PhiX1C")
    assert all(row.project is None for row in sheet.rows)


def write(tmp_path: Path, text: str, encoding: str = "utf-8", bom: bytes = b"") -> Path:
    path = tmp_path / "SampleSheet.csv"
    path.write_bytes(bom + text.encode(encoding))
    return path


V1_EXCEL = (
    "[header],,,,\r\nIEMFileVersion,4,,,\r\n,,,,\r\n[data],,,,\r\n"
    "lane,sample_id,sample_name,index,sample_project\r\n"
    "1,A1,,ACGT,SLX-1\r\n2,A1,,ACGT,SLX-1\r\n,,,,\r\n1,B2,Bee,TTTT,SLX-2,,,\r\n"
)


def test_excel_quirks_bom_crlf_lowercase_trailing_commas(tmp_path):
    sheet = read_sample_sheet(write(tmp_path, V1_EXCEL, bom=codecs.BOM_UTF8))
    got = [(r.line, r.sample_id, r.sample_name, r.project, r.lane) for r in sheet.rows]
    assert got == [(6, "A1", None, "SLX-1", 1), (7, "A1", None, "SLX-1", 2), (9, "B2", "Bee", "SLX-2", 1)]


def test_windows_1252_and_utf16_text(tmp_path):
    text = "[Data]\nSample_ID,Description,Sample_Project\nA1,Müller café,SLX-7\n"
    assert read_sample_sheet(write(tmp_path, text, "cp1252")).rows[0].project == "SLX-7"
    utf16 = write(tmp_path, text, "utf-16-le", bom=codecs.BOM_UTF16_LE)
    assert read_sample_sheet(utf16).rows[0].sample_id == "A1"


def test_old_line_endings_and_project_header(tmp_path):
    sheet = read_sample_sheet(write(tmp_path, "[Data]\rSampleID,SampleName,Project\rX,Y,SLX-3\r"))
    assert (sheet.rows[0].sample_id, sheet.rows[0].sample_name, sheet.project_column) == ("X", "Y", "Project")


def test_v2_cloud_project_fills_missing_sample_project(tmp_path):
    text = (
        "[Header]\nFileFormatVersion,2\n[BCLConvert_Data]\nLane,Sample_ID,Index\n1,S1,AC\n2,S1,AC\n"
        "[Cloud_Data]\nSample_ID,ProjectName,LibraryName\nS1,SLX-42,L1\n"
    )
    sheet = read_sample_sheet(write(tmp_path, text))
    assert [(r.project, r.lane) for r in sheet.rows] == [("SLX-42", 1), ("SLX-42", 2)]
    assert sheet.project_column == "ProjectName"


BAD = [
    ("[Header]\nA,b\n", None, "no [Data] or [BCLConvert_Data] section"),
    ("[Data]\nLane,index\n1,AC\n", 2, "no Sample_ID column"),
    ("[Data]\nSample_ID,Sample_Project,,\nA,SLX-1,oops\n", 3, "no header"),
    ("[Data]\nSample_ID,Sample_Project\nA,SLX-1,extra\n", 3, "no header"),
    ("[Data]\nLane,Sample_ID\nx,A\n", 3, "not a lane number"),
    ("[Data]\nLane,Sample_ID\n1,\n", 3, "no Sample_ID"),
    ("[Data]\nSample_ID,Sample_Project\nA,SLX-1\nB,SLX-1\nA,SLX-2\n", 5, "line 3"),
    ("[Data]\nSample_ID,Sample_Project\n..,SLX-1\n", 3, "not a safe file name"),
    ("[Data]\nSample_ID,Sample_Project\nA,/etc\n", 3, "not a safe file name"),
    ("[Data]\nSample_ID,Sample_Name,Sample_Project\nA,../../x,SLX-1\n", 3, "not a safe file name"),
    ("[Data]\nSample_ID,Sample_Project,Project\nA,SLX-1,SLX-1\n", 2, "both give the project"),
    ("IEMFileVersion,4\n[Data]\nSample_ID\nA\n", 1, "before the first [Section]"),
    ("[Data]\nSample_ID\nA\n[BCLConvert_Data]\nSample_ID\nA\n", 1, "both [Data] and [BCLConvert_Data]"),
    ("[Data]\nSample_ID\n[Reads]\n1\n[Data]\nSample_ID\n", 5, "appears twice"),
    (
        "[BCLConvert_Data]\nSample_ID,Sample_Project\nA,SLX-1\n[Cloud_Data]\nSample_ID,ProjectName\nA,SLX-2\n",
        3,
        "in [Cloud_Data]",
    ),
]


@pytest.mark.parametrize(("text", "line", "reason"), BAD)
def test_bad_sheets_name_file_and_line(tmp_path, text, line, reason):
    path = write(tmp_path, text)
    with pytest.raises(RunFolderError) as caught:
        read_sample_sheet(path)
    where = f"{path}:{line}: " if line else f"{path}: "
    assert str(caught.value).startswith(where)
    assert reason in str(caught.value)
    assert caught.value.path == path and caught.value.line == line


def test_missing_and_undecodable_sheet(tmp_path):
    with pytest.raises(RunFolderError, match="cannot read sample sheet"):
        read_sample_sheet(tmp_path / "nope.csv")
    path = tmp_path / "bad.csv"
    path.write_bytes(b"[Data]\nSample_ID\nA\x81\n")
    with pytest.raises(RunFolderError, match=r"bad\.csv:3: neither UTF-8"):
        read_sample_sheet(path)
