"""Run metadata from RunInfo.xml and RunParameters.xml: identity, lanes, reads and start time.

The instrument's own start time is written differently per instrument family, so it is taken from
the most precise source present (first that parses wins within a rank):

1. a timestamp with a zone: RunParameters ``RunStartDate`` (iSeq 100: ``2022-09-12T16:32:24-07:00``)
   or RunInfo ``Date`` (NextSeq 1000/2000, NovaSeq X: ``2023-12-16T07:36:45Z``) - exact;
2. a timestamp without a zone: RunInfo ``Date`` on NovaSeq 6000 (``12/15/2023 6:00:49 PM``) -
   instrument-local time, read in ``local_tz`` (default UTC, noted);
3. a date only: RunInfo ``Date``/RunParameters ``RunStartDate`` ``YYMMDD`` (HiSeq 2500/3000/4000/X,
   MiSeq, NextSeq 500/550, iSeq RunInfo, NovaSeq 6000 RunParameters) - midnight in ``local_tz``;
4. the run id's leading ``YYMMDD``/``YYYYMMDD`` - midnight in ``local_tz``;
5. otherwise ``None``.

``started_at_note`` says which source was used and what was assumed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, tzinfo
from pathlib import Path

from seqshare.runfolder.errors import RunFolderError
from seqshare.runfolder.instrument_xml import parse_xml

RUN_INFO = "RunInfo.xml"
RUN_PARAMETERS = ("RunParameters.xml", "runParameters.xml")


@dataclass(frozen=True)
class ReadSpec:
    """One read of the run as planned in RunInfo.xml."""

    number: int
    cycles: int
    is_index: bool


@dataclass(frozen=True)
class RunInfoXml:
    """The parts of RunInfo.xml that identify the run."""

    path: Path
    run_id: str
    flowcell: str
    instrument: str
    date: str | None
    lanes: tuple[int, ...]
    reads: tuple[ReadSpec, ...]


@dataclass(frozen=True)
class RunParametersXml:
    """The few RunParameters.xml fields used; their tag names differ per instrument."""

    path: Path
    run_id: str | None
    instrument: str | None
    run_start: str | None


@dataclass(frozen=True)
class RunInfo:
    """Run metadata combined from both files."""

    run_id: str
    flowcell: str
    instrument: str
    started_at: datetime | None
    started_at_note: str
    lanes: tuple[int, ...]
    reads: tuple[ReadSpec, ...]
    run_info_path: Path
    run_parameters_path: Path


def parse_run_info_xml(path: Path) -> RunInfoXml:
    """Read RunInfo.xml; run id, flowcell and instrument are required."""
    root = parse_xml(path)
    run = root.find("Run")
    if root.tag != "RunInfo" or run is None:
        raise RunFolderError(path, "not a RunInfo.xml (no <RunInfo><Run>)")
    run_id = (run.get("Id") or "").strip()
    flowcell = (run.findtext("Flowcell") or "").strip()
    instrument = (run.findtext("Instrument") or "").strip()
    for what, value in (("Run Id", run_id), ("Flowcell", flowcell), ("Instrument", instrument)):
        if not value:
            raise RunFolderError(path, f"RunInfo.xml has no {what}")
    layout = run.find("FlowcellLayout")
    lane_count = layout.get("LaneCount") if layout is not None else None
    if lane_count is None or not lane_count.isdigit() or int(lane_count) < 1:
        raise RunFolderError(path, "RunInfo.xml has no valid FlowcellLayout LaneCount")
    reads = []
    for read in run.iterfind("Reads/Read"):
        number, cycles = read.get("Number", ""), read.get("NumCycles", "")
        if not number.isdigit() or not cycles.isdigit():
            raise RunFolderError(path, "RunInfo.xml has a Read without Number/NumCycles")
        reads.append(ReadSpec(int(number), int(cycles), read.get("IsIndexedRead", "N").upper() == "Y"))
    date_text = (run.findtext("Date") or "").strip() or None
    return RunInfoXml(
        path, run_id, flowcell, instrument, date_text, tuple(range(1, int(lane_count) + 1)), tuple(reads)
    )


def parse_run_parameters_xml(path: Path) -> RunParametersXml:
    """Read RunParameters.xml (HiSeq nests fields in <Setup>, so search the whole tree)."""
    root = parse_xml(path)
    if root.tag != "RunParameters":
        raise RunFolderError(path, "not a RunParameters.xml (root is not <RunParameters>)")

    def first(*tags: str) -> str | None:
        for tag in tags:
            for where in (tag, f"Setup/{tag}"):
                text = (root.findtext(where) or "").strip()
                if text:
                    return text
        return None

    return RunParametersXml(
        path=path,
        run_id=first("RunID", "RunId"),
        instrument=first("InstrumentName", "InstrumentSerialNumber", "InstrumentId", "ScannerID"),
        run_start=first("RunStartDate"),
    )


def find_run_parameters(run_dir: Path) -> Path | None:
    """RunParameters.xml (newer instruments) or runParameters.xml (HiSeq, MiSeq)."""
    return next((run_dir / n for n in RUN_PARAMETERS if (run_dir / n).is_file()), None)


def read_run_info(run_dir: Path, *, local_tz: tzinfo = UTC) -> RunInfo:
    """Combine RunInfo.xml and RunParameters.xml of ``run_dir``; both must exist and agree."""
    info_path = run_dir / RUN_INFO
    if not info_path.is_file():
        raise RunFolderError(info_path, "missing: not a run folder, or not yet written")
    params_path = find_run_parameters(run_dir)
    if params_path is None:
        raise RunFolderError(run_dir / RUN_PARAMETERS[0], "missing (nor runParameters.xml)")
    info = parse_run_info_xml(info_path)
    params = parse_run_parameters_xml(params_path)
    if params.run_id and params.run_id != info.run_id:
        raise RunFolderError(
            params_path, f"run id {params.run_id!r} differs from RunInfo.xml {info.run_id!r}"
        )
    started_at, note = start_time(info, params, local_tz=local_tz)
    return RunInfo(
        run_id=info.run_id,
        flowcell=info.flowcell,
        instrument=info.instrument,
        started_at=started_at,
        started_at_note=note,
        lanes=info.lanes,
        reads=info.reads,
        run_info_path=info_path,
        run_parameters_path=params_path,
    )


_EXACT, _LOCAL, _DATE = 3, 2, 1


def start_time(
    info: RunInfoXml | None, params: RunParametersXml | None, *, local_tz: tzinfo = UTC
) -> tuple[datetime | None, str]:
    """The instrument's run start and a note on its source and assumptions (see module doc)."""
    zone = getattr(local_tz, "key", None) or str(local_tz)
    sources = [
        ("RunParameters.xml RunStartDate", params.run_start if params else None),
        ("RunInfo.xml Date", info.date if info else None),
    ]
    best: tuple[int, datetime, str] | None = None
    for source, text in sources:
        parsed = _parse_time(text, local_tz) if text else None
        if parsed and (best is None or parsed[0] > best[0]):
            best = (parsed[0], parsed[1], source)
    if best is not None:
        rank, value, source = best
        if rank == _EXACT:
            return value, f"{source}, with its time zone"
        if rank == _LOCAL:
            return value, f"{source} has no time zone; instrument-local time taken as {zone}"
        return value, f"{source} is a date only; midnight {zone} assumed"
    run_id = info.run_id if info else params.run_id if params else None
    match = re.match(r"(\d{8}|\d{6})_", run_id or "")
    parsed = _parse_time(match[1], local_tz) if match else None
    if parsed:
        return parsed[1], f"date from the run id; midnight {zone} assumed"
    return None, "no start time in RunInfo.xml, RunParameters.xml or the run id"


def _parse_time(text: str, local_tz: tzinfo) -> tuple[int, datetime] | None:
    text = text.strip()
    try:
        if re.fullmatch(r"\d{6}", text):
            day = datetime.strptime(text, "%y%m%d").date()
            return _DATE, datetime.combine(day, time(), local_tz)
        if re.fullmatch(r"\d{8}|\d{4}-\d{2}-\d{2}", text):
            day = date.fromisoformat(text)
            return _DATE, datetime.combine(day, time(), local_tz)
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}T[\d:.]+(Z|[+-]\d{2}:?\d{2})?", text):
            value = datetime.fromisoformat(text)
        else:
            value = datetime.strptime(text, "%m/%d/%Y %I:%M:%S %p")
    except ValueError:
        return None
    if value.tzinfo is None:
        return _LOCAL, value.replace(tzinfo=local_tz)
    return _EXACT, value
