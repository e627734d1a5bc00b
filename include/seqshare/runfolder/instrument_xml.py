"""Parse the instrument's small XML files (RunInfo.xml, RunParameters.xml, RunCompletionStatus.xml) safely.

They come from instrument PCs and file shares, so they are untrusted input: no DTD (entity expansion),
and every problem is a RunFolderError naming the file.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from seqshare.runfolder.errors import RunFolderError


def parse_xml(path: Path) -> ET.Element:
    """Parse a small instrument XML file; refuse DTDs (entity expansion) and name the file on error."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise RunFolderError(path, f"cannot read: {exc.strerror or exc}") from exc
    if b"<!DOCTYPE" in raw or b"<!ENTITY" in raw:
        raise RunFolderError(path, "XML with a DTD is not accepted")
    try:
        return ET.fromstring(raw)  # noqa: S314 - no DTD, so no entity expansion
    except ET.ParseError as exc:
        raise RunFolderError(path, f"malformed XML: {exc}", line=exc.position[0]) from exc
