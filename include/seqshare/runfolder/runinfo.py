"""Run metadata from RunInfo.xml and RunParameters.xml: identity, lanes, reads and start time.

The instrument's own start time is written differently per instrument family (fields as found in the
facility fixtures, tests/fixtures/illumina), so it is taken from the most precise source present:

1. a timestamp with a zone - exact: RunParameters ``RunStartDate`` on iSeq 100
   (``2022-09-12T16:32:24-07:00``), RunInfo ``Date`` on NextSeq 1000/2000 and NovaSeq X
   (``2023-12-16T07:36:45Z``);
2. a timestamp without a zone - instrument-local time, read in ``local_tz`` (``SEQSHARE_INSTRUMENT_TZ``):
   RunInfo ``Date`` on NovaSeq 6000 (``12/15/2023 6:00:49 PM``); a time the clocks passed twice (or
   skipped) when changing to or from summer time is both instants;
3. a date only - the whole day in ``local_tz``: RunInfo ``Date``/RunParameters ``RunStartDate``
   ``YYMMDD`` (HiSeq 2500/3000/4000/X, MiSeq, NextSeq 500/550, iSeq RunInfo, NovaSeq 6000
   RunParameters); two such dates that differ give both days;
4. the run id's leading ``YYMMDD``/``YYYYMMDD``, named "date from the run id" - a date only, as 3;
5. otherwise nothing: the run needs a LIMS start or an override.

Nothing is assumed inside a day (no "midnight"): what a day means for the snapshot is decided by
:mod:`seqshare.delivery.instant`. The consumables' ``*StartDate`` fields of NovaSeq 6000 RunParameters
(``FlowCellStartDate`` ...) describe a reagent, not the run's start, and are not used.

Every number read (lane count, read numbers and cycles) is bounded: a hostile or corrupt file is a
RunFolderError naming file and field, never a huge allocation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from pathlib import Path

from seqshare.errors import quote
from seqshare.runfolder.errors import RunFolderError
from seqshare.runfolder.instrument_xml import parse_xml
from seqshare.runfolder.models import InstrumentStart, StartPrecision

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
    start: InstrumentStart | None
    lanes: tuple[int, ...]
    reads: tuple[ReadSpec, ...]
    run_info_path: Path
    run_parameters_path: Path

    @property
    def started_at(self) -> datetime | None:
        """The earliest possible start (for display; decisions use ``start``)."""
        return self.start.earliest if self.start else None

    @property
    def started_at_note(self) -> str:
        return self.start.note if self.start else NO_START


NO_START = "no start time in RunInfo.xml, RunParameters.xml or the run id"
# Bounds on what is read: the largest flow cell has 8 lanes (NovaSeq X 25B); 64 as the LIMS schema's lane
# bound. Runs have at most 4 reads (2 index reads); cycles stay below 1000 on every Illumina instrument.
MAX_LANES = 64
MAX_READS = 16
MAX_CYCLES = 1000


def _number(path: Path, field: str, text: str | None, low: int, high: int) -> int:
    """A whole number from an instrument file, in [low, high], or a RunFolderError naming file and field."""
    value = (text or "").strip()
    if not re.fullmatch(r"[0-9]{1,9}", value) or not low <= int(value) <= high:
        raise RunFolderError(path, f"{field} {quote(value, 40)} is not a whole number from {low} to {high}")
    return int(value)


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
    if layout is None or layout.get("LaneCount") is None:
        raise RunFolderError(path, "RunInfo.xml has no FlowcellLayout LaneCount")
    lane_count = _number(path, "FlowcellLayout LaneCount", layout.get("LaneCount"), 1, MAX_LANES)
    reads = []
    for read in run.iterfind("Reads/Read"):
        if len(reads) == MAX_READS:
            raise RunFolderError(path, f"RunInfo.xml has more than {MAX_READS} Reads/Read")
        if read.get("Number") is None or read.get("NumCycles") is None:
            raise RunFolderError(path, "RunInfo.xml has a Read without Number/NumCycles")
        number = _number(path, "Read Number", read.get("Number"), 1, MAX_READS)
        cycles = _number(path, f"Read {number} NumCycles", read.get("NumCycles"), 0, MAX_CYCLES)
        reads.append(ReadSpec(number, cycles, read.get("IsIndexedRead", "N").upper() == "Y"))
    date_text = (run.findtext("Date") or "").strip() or None
    return RunInfoXml(
        path, run_id, flowcell, instrument, date_text, tuple(range(1, lane_count + 1)), tuple(reads)
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
    return RunInfo(
        run_id=info.run_id,
        flowcell=info.flowcell,
        instrument=info.instrument,
        start=start_time(info, params, local_tz=local_tz),
        lanes=info.lanes,
        reads=info.reads,
        run_info_path=info_path,
        run_parameters_path=params_path,
    )


def start_time(
    info: RunInfoXml | None, params: RunParametersXml | None, *, local_tz: tzinfo = UTC
) -> InstrumentStart | None:
    """The instrument's run start, as precisely as its files give it (see the module doc); None if no
    file nor the run id holds a date."""
    zone = getattr(local_tz, "key", None) or str(local_tz)
    found: list[tuple[str, str, _Parsed]] = []
    unreadable: list[str] = []
    for source, text in (
        ("RunParameters.xml RunStartDate", params.run_start if params else None),
        ("RunInfo.xml Date", info.date if info else None),
    ):
        if text:
            parsed = _parse_time(text, local_tz)
            if parsed is None:
                unreadable.append(f"{source} {quote(text, 40)} not understood")
            else:
                found.append((source, text, parsed))
    aside = f" ({'; '.join(unreadable)})" if unreadable else ""
    if found:
        best = max(parsed.precision_rank for _, _, parsed in found)
        chosen = [f for f in found if f[2].precision_rank == best]
        source, text, parsed = chosen[0]
        if parsed.precision is StartPrecision.EXACT:
            note = f"{source} {text}, with its time zone{aside}"
            return InstrumentStart(parsed.earliest, parsed.latest, parsed.precision, note)
        if parsed.precision is StartPrecision.LOCAL:
            twice = parsed.earliest != parsed.latest
            how = f", a time that occurred twice or never there (clock change): {_span(parsed)}"
            return InstrumentStart(
                parsed.earliest,
                parsed.latest,
                parsed.precision,
                f"{source} {text} has no time zone: instrument-local time read in {zone}"
                f"{how if twice else ''}{aside}",
            )
        earliest = min((p.earliest for _, _, p in chosen), key=_utc)
        latest = max((p.latest for _, _, p in chosen), key=_utc)
        what = " and ".join(f"{s} {t}" for s, t, _ in chosen)
        days = sorted({p.day for _, _, p in chosen if p.day})
        only = "are dates only" if len(chosen) > 1 else "is a date only"
        if len(days) > 1:
            note = f"{what} {only} and differ: any time from {days[0]} to {days[-1]} in {zone}"
        else:
            note = f"{what} {only}: the day {days[0]} in {zone}"
        return InstrumentStart(earliest, latest, StartPrecision.DAY, note + aside)
    run_id = info.run_id if info else params.run_id if params else None
    match = re.match(r"(\d{8}|\d{6})_", run_id or "")
    parsed = _parse_time(match[1], local_tz) if match else None
    if parsed is None or parsed.day is None:
        return None
    return InstrumentStart(
        parsed.earliest,
        parsed.latest,
        StartPrecision.DAY,
        f"date from the run id ({match[1]}; no date in RunInfo.xml or RunParameters.xml{aside}): "
        f"the day {parsed.day} in {zone}",
    )


@dataclass(frozen=True)
class _Parsed:
    earliest: datetime
    latest: datetime
    precision: StartPrecision
    day: date | None = None

    @property
    def precision_rank(self) -> int:
        return {StartPrecision.EXACT: 3, StartPrecision.LOCAL: 2, StartPrecision.DAY: 1}[self.precision]


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _span(parsed: _Parsed) -> str:
    return f"{parsed.earliest.isoformat()} or {parsed.latest.isoformat()}"


def _local(naive: datetime, zone: tzinfo) -> tuple[datetime, datetime]:
    """Both readings of a local time (they differ only at a clock change), earliest first.

    Compared in UTC (aware datetimes of one zone compare by wall time, ignoring ``fold``), and returned
    with the fixed offset in force then: a datetime in a zone's repeated hour never compares equal to
    another zone's (PEP 495), which would make comparisons with share times treacherous."""
    readings = sorted(_utc(naive.replace(tzinfo=zone, fold=fold)) for fold in (0, 1))
    return _fixed(readings[0].astimezone(zone)), _fixed(readings[1].astimezone(zone))


def _fixed(value: datetime) -> datetime:
    offset = value.utcoffset()
    return value.astimezone(timezone(offset)) if offset is not None else value


def _whole_day(day: date, zone: tzinfo) -> _Parsed:
    """Every instant whose date in ``zone`` is ``day``: from its midnight to just before the next one (at a
    clock change at midnight, the window is widened to both readings, never narrowed)."""
    start = _local(datetime.combine(day, time()), zone)[0]
    end = _local(datetime.combine(day + timedelta(days=1), time()), zone)[1]
    return _Parsed(
        start, _fixed((_utc(end) - timedelta(microseconds=1)).astimezone(zone)), StartPrecision.DAY, day
    )


def _parse_time(text: str, local_tz: tzinfo) -> _Parsed | None:
    text = text.strip()
    try:
        if re.fullmatch(r"\d{6}", text):
            return _whole_day(datetime.strptime(text, "%y%m%d").date(), local_tz)
        if re.fullmatch(r"\d{8}|\d{4}-\d{2}-\d{2}", text):
            return _whole_day(date.fromisoformat(text), local_tz)
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}T[\d:.]{1,20}(Z|[+-]\d{2}:?\d{2})?", text):
            value = datetime.fromisoformat(text)
        else:
            value = datetime.strptime(text, "%m/%d/%Y %I:%M:%S %p")
    except ValueError:
        return None
    if value.tzinfo is None:
        earliest, latest = _local(value, local_tz)
        return _Parsed(earliest, latest, StartPrecision.LOCAL)
    return _Parsed(value, value, StartPrecision.EXACT)
