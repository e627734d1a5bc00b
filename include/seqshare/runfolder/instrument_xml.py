"""Parse the instrument's small XML files (RunInfo.xml, RunParameters.xml, RunCompletionStatus.xml) safely.

They come from instrument PCs and file shares, so they are untrusted input. Before ElementTree builds
a tree, one expat pass over the same bytes refuses what no instrument writes:

- a DTD (``<!DOCTYPE``, hence any entity declaration and its expansion: billion laughs), seen by
  expat's own handlers after it has decoded the document, so in every encoding it reads (UTF-8 with or
  without BOM, UTF-16 LE/BE with or without BOM, Latin-1, a declared 8-bit codec); encodings expat
  cannot read (UTF-32) are malformed XML;
- elements nested deeper than ``MAX_DEPTH`` (real files nest about 8 levels; a hostile one 10,000);
- a file larger than ``MAX_BYTES`` (a NovaSeq X 25B RunInfo.xml with every tile is about 160 kB).

Every problem is a RunFolderError naming the file (and line when expat gives one).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from xml.parsers import expat

from seqshare.runfolder.errors import RunFolderError

MAX_BYTES = 16 * 1024 * 1024
MAX_DEPTH = 100


class _Refused(Exception):
    """Raised from an expat handler to stop parsing at the first refused construct."""


def parse_xml(path: Path) -> ET.Element:
    """Parse a small instrument XML file; refuse DTDs, deep nesting and huge files, naming the file."""
    raw = _read(path)
    _check(path, raw)
    try:
        return ET.fromstring(raw)  # noqa: S314 - _check refused any DTD, so no entity expansion
    except ET.ParseError as exc:
        raise RunFolderError(path, f"malformed XML: {exc}", line=exc.position[0]) from exc


def _read(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise RunFolderError(path, f"cannot read: {exc.strerror or exc}") from exc
    if len(raw) > MAX_BYTES:
        raise RunFolderError(path, f"larger than {MAX_BYTES // (1024 * 1024)} MiB; not an instrument file")
    return raw


def _check(path: Path, raw: bytes) -> None:
    """One expat pass: DTDs and nesting are judged on the decoded document, whatever its encoding."""
    parser = expat.ParserCreate()
    depth = 0

    def refuse_dtd(*_args: object) -> None:
        raise _Refused("XML with a DTD is not accepted")

    def start(_name: str, _attrs: dict[str, str]) -> None:
        nonlocal depth
        depth += 1
        if depth > MAX_DEPTH:
            raise _Refused(f"elements nested more than {MAX_DEPTH} levels deep")

    def end(_name: str) -> None:
        nonlocal depth
        depth -= 1

    parser.StartDoctypeDeclHandler = refuse_dtd
    parser.EntityDeclHandler = refuse_dtd
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    try:
        parser.Parse(raw, True)
    except _Refused as exc:
        raise RunFolderError(path, str(exc), line=parser.CurrentLineNumber) from None
    except expat.ExpatError as exc:
        raise RunFolderError(
            path, f"malformed XML: {expat.errors.messages[exc.code]}", line=exc.lineno
        ) from exc
