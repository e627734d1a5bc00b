"""Instrument XML is untrusted: a DTD is refused in every encoding; deep nesting, huge files are bad input."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from seqshare.runfolder import RunFolderError, is_complete, read_run_info
from seqshare.runfolder.instrument_xml import parse_xml
from tests.unit.runfolder.builders import FIXTURES, NOVASEQ6000, run_folder


def _laugh(i: int) -> str:
    inner = ("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10
    return f'<!ENTITY lol{i} "{inner}">\n'


LAUGHS = (
    '<?xml version="1.0" encoding="{enc}"?>\n<!DOCTYPE lolz [\n<!ENTITY lol "lol">\n'
    + "".join(_laugh(i) for i in range(1, 10))
    + "]>\n<RunInfo><Run Id='&lol9;'/></RunInfo>\n"
)
SMALL_DTD = '<?xml version="1.0" encoding="{enc}"?><!DOCTYPE r [<!ENTITY a "x">]><RunStatus>&a;</RunStatus>'

# (codec, BOM written or not, declared encoding)
ENCODINGS = [
    ("utf-16-le", codecs.BOM_UTF16_LE, "UTF-16"),
    ("utf-16-be", codecs.BOM_UTF16_BE, "UTF-16"),
    ("utf-16-le", b"", "UTF-16"),
    ("utf-16-be", b"", "UTF-16"),
    ("utf-8", codecs.BOM_UTF8, "UTF-8"),
    ("utf-32-le", codecs.BOM_UTF32_LE, "UTF-32"),
]


def write(tmp_path: Path, raw: bytes, name: str = "RunInfo.xml") -> Path:
    path = tmp_path / name
    path.write_bytes(raw)
    return path


@pytest.mark.parametrize(("codec", "bom", "declared"), ENCODINGS)
def test_a_dtd_is_refused_in_every_encoding(tmp_path, codec, bom, declared):
    path = write(tmp_path, bom + SMALL_DTD.format(enc=declared).encode(codec))
    with pytest.raises(RunFolderError) as caught:
        parse_xml(path)
    assert str(caught.value).startswith(f"{path}:1: ")
    assert "DTD" in str(caught.value) or (declared == "UTF-32" and "malformed XML" in str(caught.value))


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_billion_laughs_in_utf16_is_refused_before_any_expansion(tmp_path, codec):
    path = write(tmp_path, LAUGHS.format(enc="UTF-16").encode(codec))
    with pytest.raises(RunFolderError, match="DTD is not accepted"):
        parse_xml(path)


def test_utf8_with_bom_and_spaces_before_the_dtd_is_refused(tmp_path):
    raw = codecs.BOM_UTF8 + b'<?xml version="1.0"?>\n   \n<!DOCTYPE\tr SYSTEM "http://example.org/r.dtd"><r/>'
    with pytest.raises(RunFolderError, match="DTD is not accepted"):
        parse_xml(write(tmp_path, raw))


@pytest.mark.parametrize(("codec", "bom"), [("utf-16-le", codecs.BOM_UTF16_LE), ("utf-16-be", b"")])
def test_real_run_info_in_utf16_still_reads(tmp_path, codec, bom):
    text = (NOVASEQ6000 / "RunInfo.xml").read_text("utf-8").replace('encoding="utf-8"', 'encoding="UTF-16"')
    if "encoding=" not in text.split("\n", 1)[0]:
        text = '<?xml version="1.0" encoding="UTF-16"?>\n' + text.split("?>", 1)[-1].lstrip()
    root = parse_xml(write(tmp_path, bom + text.encode(codec)))
    assert root.find("Run").get("Id") == NOVASEQ6000.name


def test_every_vendored_instrument_file_parses():
    for path in sorted(FIXTURES.rglob("*.xml")):
        assert parse_xml(path).tag


def test_input_nested_10000_levels_is_bad_input_naming_the_file(tmp_path):
    path = write(tmp_path, b"<RunInfo>" + b"<Run>" * 10_000 + b"</Run>" * 10_000 + b"</RunInfo>")
    with pytest.raises(RunFolderError, match="nested more than 100 levels deep") as caught:
        parse_xml(path)
    assert str(caught.value).startswith(f"{path}:1: ")


def test_a_huge_file_is_refused_without_reading_it_all(tmp_path):
    path = tmp_path / "RunParameters.xml"
    with path.open("wb") as handle:
        handle.write(b"<RunParameters>")
        handle.truncate(16 * 1024 * 1024 + 10)
    with pytest.raises(RunFolderError, match="larger than 16 MiB"):
        parse_xml(path)


def test_deep_nesting_in_a_run_folder_fails_reading_and_is_never_complete(tmp_path):
    run = run_folder(tmp_path)
    (run / "RunCompletionStatus.xml").write_bytes(
        b"<RunCompletionStatus>" + b"<a>" * 10_000 + b"</a>" * 10_000 + b"</RunCompletionStatus>"
    )
    assert is_complete(run) is False
    (run / "RunInfo.xml").write_bytes(b"<RunInfo>" + b"<Run>" * 10_000 + b"</Run>" * 10_000 + b"</RunInfo>")
    with pytest.raises(RunFolderError, match=r"RunInfo\.xml:1: elements nested more than"):
        read_run_info(run)
