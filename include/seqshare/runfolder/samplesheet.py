"""A tolerant reader for Illumina sample sheets (v1 ``[Data]`` and v2 ``[BCLConvert_Data]``).

Written here rather than taken from PyPI: ``sample-sheet`` 0.13.0 fails on every v2 sheet, on ``#``
comment lines and on ``SampleID``/``Project`` headers; ``samplesheet-parser`` 2.5.2 silently drops a
row that has more trailing commas than the header and gives no line numbers. Both are tested against
the fixtures under shared/fixtures/illumina.

What this reader tolerates, because real sheets have it: a UTF-8 BOM, UTF-16 or Windows-1252 text,
CRLF/CR line ends, Excel's trailing commas (also past the header width), blank lines, ``#`` comment
lines, NUL bytes (iSeq Local Run Manager writes them into empty index columns), case and ``_``/space
differences in section and column names, ``SampleID``/``SampleName``/``Project`` for ``Sample_ID``/
``Sample_Name``/``Sample_Project``, and a v2 project that is only given as ``ProjectName`` in
``[Cloud_Data]``.

What it refuses, with file and line: no data section or no Sample_ID column, a value under an unnamed
or missing column, a bad lane, one sample given two projects or names, and sample ids, names or
projects that are not a single safe path component (they become directory and file names).
"""

from __future__ import annotations

import codecs
import csv
import re
from dataclasses import dataclass
from pathlib import Path

from seqshare.runfolder.errors import RunFolderError

_LINE_END = re.compile(r"\r\n|\r|\n")
_SECTION = re.compile(r"\[(?P<name>[^\[\]]+)\]")
_ROLES: dict[str, tuple[str, ...]] = {
    "sample_id": ("sampleid",),
    "sample_name": ("samplename",),
    "project": ("sampleproject", "project"),
    "lane": ("lane",),
}


@dataclass(frozen=True)
class SheetRow:
    """One data row; ``line`` is 1-based in the file so errors can point at it."""

    line: int
    sample_id: str
    sample_name: str | None
    project: str | None
    lane: int | None


@dataclass(frozen=True)
class SampleSheet:
    """The rows that decide which fastq files belong to which sample and project."""

    path: Path
    version: int
    rows: tuple[SheetRow, ...]
    project_column: str | None

    @property
    def sample_ids(self) -> tuple[str, ...]:
        """Distinct sample ids in sheet order (a sample may span lanes or index rows)."""
        return tuple(dict.fromkeys(row.sample_id for row in self.rows))


@dataclass(frozen=True)
class _Table:
    header_line: int
    columns: dict[str, tuple[int, str]]  # role -> (cell index, header text as written)
    rows: tuple[tuple[int, list[str]], ...]


def read_sample_sheet(path: Path) -> SampleSheet:
    """Parse ``path``; raise :class:`RunFolderError` naming the file (and line) if it is unusable."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise RunFolderError(path, f"cannot read sample sheet: {exc.strerror or exc}") from exc
    sections, starts = _sections(path, _decode(path, raw))
    if "bclconvertdata" in sections and "data" in sections:
        raise RunFolderError(path, "has both [Data] and [BCLConvert_Data]", line=starts["data"])
    version = 2 if "bclconvertdata" in sections else 1
    name = "bclconvertdata" if version == 2 else "data"
    if name not in sections:
        raise RunFolderError(path, "no [Data] or [BCLConvert_Data] section")
    table = _table(path, sections[name], starts[name])
    if "sample_id" not in table.columns:
        raise RunFolderError(path, "data header has no Sample_ID column", line=table.header_line)
    cloud = _cloud_projects(path, sections) if version == 2 else {}
    rows = tuple(_row(path, table, cells, line, cloud) for line, cells in table.rows)
    _check_consistent(path, rows)
    project_column = table.columns["project"][1] if "project" in table.columns else None
    if project_column is None and any(row.project for row in rows):
        project_column = "ProjectName"  # only [Cloud_Data] can have given the projects
    return SampleSheet(path=path, version=version, rows=rows, project_column=project_column)


def _decode(path: Path, raw: bytes) -> str:
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise RunFolderError(path, "broken UTF-16 text") from exc
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:  # Excel on Windows saves "CSV (Comma delimited)" in the ANSI code page
        return raw.decode("cp1252")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise RunFolderError(path, "neither UTF-8 nor Windows-1252 text", line=line) from exc


def _cells(line: str) -> list[str]:
    cells = [cell.strip() for cell in next(csv.reader([line.replace("\x00", "")]), [])]
    while cells and not cells[-1]:
        cells.pop()
    return cells


def _sections(path: Path, text: str) -> tuple[dict[str, list[tuple[int, list[str]]]], dict[str, int]]:
    sections: dict[str, list[tuple[int, list[str]]]] = {}
    starts: dict[str, int] = {}
    current: str | None = None
    for number, line in enumerate(_LINE_END.split(text), start=1):
        try:
            cells = _cells(line)
        except csv.Error as exc:
            raise RunFolderError(path, f"unreadable CSV: {exc}", line=number) from exc
        if not cells or cells[0].startswith("#"):
            continue
        match = _SECTION.fullmatch(cells[0])
        if match and len(cells) == 1:
            current = _norm(match["name"])
            if current in sections:
                raise RunFolderError(path, f"section [{match['name']}] appears twice", line=number)
            sections[current], starts[current] = [], number
        elif current is None:
            raise RunFolderError(path, "text before the first [Section]; not a sample sheet", line=number)
        else:
            sections[current].append((number, cells))
    return sections, starts


def _norm(name: str) -> str:
    return re.sub(r"[\s_\-]", "", name.lower())


def _table(path: Path, lines: list[tuple[int, list[str]]], start: int) -> _Table:
    if not lines:
        raise RunFolderError(path, "data section has no header row", line=start)
    header_line, header = lines[0]
    columns: dict[str, tuple[int, str]] = {}
    for index, text in enumerate(header):
        role = next((r for r, names in _ROLES.items() if _norm(text) in names), None)
        if role is None:
            continue
        if role in columns:
            raise RunFolderError(
                path, f"columns {columns[role][1]!r} and {text!r} both give the {role}", line=header_line
            )
        columns[role] = (index, text)
    for line, cells in lines[1:]:
        for index, cell in enumerate(cells):
            if cell and (index >= len(header) or not header[index]):
                raise RunFolderError(path, f"value {cell!r} in a column with no header", line=line)
    return _Table(header_line=header_line, columns=columns, rows=tuple(lines[1:]))


def _cell(table: _Table, cells: list[str], role: str) -> str | None:
    if role not in table.columns:
        return None
    index = table.columns[role][0]
    return (cells[index] if index < len(cells) else "") or None


def _row(path: Path, table: _Table, cells: list[str], line: int, cloud: dict[str, str]) -> SheetRow:
    sample_id = _cell(table, cells, "sample_id")
    if sample_id is None:
        raise RunFolderError(path, "row has no Sample_ID", line=line)
    name = _cell(table, cells, "sample_name")
    project = _cell(table, cells, "project")
    cloud_project = cloud.get(sample_id)
    if project and cloud_project and project != cloud_project:
        raise RunFolderError(
            path,
            f"sample {sample_id!r} has project {project!r} here but {cloud_project!r} in [Cloud_Data]",
            line=line,
        )
    project = project or cloud_project
    for column, value in (("Sample_ID", sample_id), ("Sample_Name", name), ("project", project)):
        if value is not None:
            _check_component(path, line, column, value)
    lane_text = _cell(table, cells, "lane")
    lane = None
    if lane_text is not None:
        if not lane_text.isdigit() or int(lane_text) < 1:
            raise RunFolderError(path, f"lane {lane_text!r} is not a lane number", line=line)
        lane = int(lane_text)
    return SheetRow(line=line, sample_id=sample_id, sample_name=name, project=project, lane=lane)


def _check_component(path: Path, line: int, column: str, value: str) -> None:
    """Sample ids, names and projects become path parts; refuse any that could leave the folder."""
    if value in {".", ".."} or any(ch in value for ch in "/\\:") or not value.isprintable():
        raise RunFolderError(path, f"{column} {value!r} is not a safe file name", line=line)


def _cloud_projects(path: Path, sections: dict[str, list[tuple[int, list[str]]]]) -> dict[str, str]:
    if "clouddata" not in sections:
        return {}
    lines = sections["clouddata"]
    if not lines:
        return {}
    header = lines[0][1]
    names = [_norm(h) for h in header]
    if "sampleid" not in names or "projectname" not in names:
        return {}
    id_at, project_at = names.index("sampleid"), names.index("projectname")
    projects: dict[str, str] = {}
    for line, cells in lines[1:]:
        sample_id = cells[id_at] if id_at < len(cells) else ""
        project = cells[project_at] if project_at < len(cells) else ""
        if not sample_id or not project:
            continue
        if projects.setdefault(sample_id, project) != project:
            raise RunFolderError(
                path, f"sample {sample_id!r} has two ProjectNames in [Cloud_Data]", line=line
            )
    return projects


def _check_consistent(path: Path, rows: tuple[SheetRow, ...]) -> None:
    first: dict[str, SheetRow] = {}
    for row in rows:
        seen = first.setdefault(row.sample_id, row)
        for field in ("project", "sample_name"):
            if getattr(row, field) != getattr(seen, field):
                raise RunFolderError(
                    path,
                    f"sample {row.sample_id!r} has {field} {getattr(row, field)!r} here but "
                    f"{getattr(seen, field)!r} on line {seen.line}",
                    line=row.line,
                )
