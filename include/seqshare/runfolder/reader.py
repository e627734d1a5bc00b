"""Read a finished run folder into pools and their files, or fail whole.

A pool's files are exactly the files of its samples (every lane, R1/R2 and any I1/I2); the sheet's
project column holds the pool id ``SLX-<digits>``. Undetermined reads belong to no pool. The file
names expected per layout:

- BCL Convert / NovaSeq X onboard: ``<out>/[<project>/]<Sample_ID>_S<n>[_L00<lane>]_<R|I><k>_001.fastq.gz``
- bcl2fastq: ``<out>/[<project>/][<Sample_ID>/]<Sample_Name or Sample_ID>_S<n>...``, with the
  ``<Sample_ID>`` folder when Sample_Name is set and differs from Sample_ID.

Anything doubtful raises RunFolderError: a fastq that matches no sample or two, a sample without
files, a lane of the sheet without files, a (sample, lane) lacking a read that others have, or the
same (sample, lane, read) twice (stale output next to new).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, tzinfo
from pathlib import Path, PurePosixPath
from types import MappingProxyType

from seqshare import config
from seqshare.runfolder.completion import sequencing_marker
from seqshare.runfolder.errors import RunFolderError
from seqshare.runfolder.files import FoundFastq, scan_fastqs
from seqshare.runfolder.instrument_xml import parse_xml
from seqshare.runfolder.layout import Layout, OutputSearch, find_output, find_sample_sheet, within
from seqshare.runfolder.models import RunFile, RunFolder, Sample
from seqshare.runfolder.runinfo import RUN_INFO, find_run_parameters, read_run_info
from seqshare.runfolder.samplesheet import SampleSheet, read_sample_sheet

POOL_ID = re.compile(r"SLX-\d+")
UNDETERMINED = "Undetermined"
_Key = tuple[tuple[str, ...], str]


def awaiting(
    run_dir: Path, *, output_dir: Path | None = None, search: OutputSearch | None = None
) -> str | None:
    """What ``run_dir`` still waits for (a marker, a file, the output folder), or None once the instrument
    and the demultiplexer have both finished writing it.

    Raises RunFolderError for a folder that cannot be judged as it is (a failed run, several outputs,
    malformed instrument files): an operator must look at it. ``search`` defaults to the settings
    (``seqshare.config.output_search``; a bad setting raises InvalidInput).
    """
    search = config.output_search() if search is None else search
    try:
        root = run_dir.resolve(strict=True)
    except OSError as exc:
        raise RunFolderError(run_dir, f"cannot open the run folder: {exc.strerror or exc}") from exc
    if not (root / RUN_INFO).is_file():
        return RUN_INFO
    if find_run_parameters(root) is None:
        return "RunParameters.xml"
    if sequencing_marker(root) is None:
        return "CopyComplete.txt, RTAComplete.txt or RunCompletionStatus.xml"
    needs_id = search.root is not None or (output_dir is not None and output_dir.is_absolute())
    run_id = _run_id(root) if needs_id else None
    return find_output(root, output_dir, search, run_id).missing


def is_complete(run_dir: Path, *, output_dir: Path | None = None, search: OutputSearch | None = None) -> bool:
    """True once the instrument and the demultiplexer have both finished writing ``run_dir``.

    Never raises for anything in the folder: a missing, half-written, failed, ambiguous or malformed
    folder is simply not complete (:func:`awaiting` says why). Reading it may still fail on its content
    (the sample sheet); that is read_run_folder's job. A bad setting raises InvalidInput.
    """
    search = config.output_search() if search is None else search
    try:
        return awaiting(run_dir, output_dir=output_dir, search=search) is None
    except Exception:  # any folder content, however hostile, only means "not complete"
        return False


def read_run_folder(
    run_dir: Path,
    *,
    output_dir: Path | None = None,
    sample_sheet: Path | None = None,
    local_tz: tzinfo = UTC,
    search: OutputSearch | None = None,
) -> RunFolder:
    """Read a complete run folder; ``output_dir``/``sample_sheet`` may be relative to it.

    ``output_dir`` (the ``distribute_run`` parameter) may also be absolute, anywhere; without it the
    output is looked for as ``search`` says (default: the settings, ``seqshare.config.output_search``).
    """
    search = config.output_search() if search is None else search
    try:
        root = run_dir.resolve(strict=True)
    except OSError as exc:
        raise RunFolderError(run_dir, "run folder does not exist") from exc
    info = read_run_info(root, local_tz=local_tz)
    marker = sequencing_marker(root)
    if marker is None:
        raise RunFolderError(
            root, "sequencing not finished: no CopyComplete.txt, RTAComplete.txt or RunCompletionStatus.xml"
        )
    output = find_output(root, output_dir, search, info.run_id)
    if output.missing is not None or output.layout is None:
        raise RunFolderError(output.path, f"demultiplexing not finished: waiting for {output.missing}")
    if sample_sheet is None:
        sheet_path = find_sample_sheet(root, output)
    elif sample_sheet.is_absolute():
        sheet_path = sample_sheet
    else:
        sheet_path = root / sample_sheet
        within((root, output.path), sheet_path, "sample sheet")
    sheet = read_sample_sheet(sheet_path)
    samples = _samples(sheet, info.lanes)
    found = scan_fastqs(root, output.path, _areas(root, output.path, search, info.run_id))
    owners, undetermined = _assign(sheet_path, samples, found, output.layout)
    _check_complete(sheet_path, samples, owners)
    by_pool: dict[str, list[RunFile]] = defaultdict(list)
    for sample in samples:
        by_pool[sample.pool_id] += (_run_file(f, sample) for f in owners[sample.sample_id])
    return RunFolder(
        run_id=info.run_id,
        flowcell=info.flowcell,
        instrument=info.instrument,
        started_at=info.started_at,
        started_at_note=info.started_at_note,
        start=info.start,
        lanes=info.lanes,
        completion_marker=marker,
        root=root,
        layout=output.layout,
        output_dir=_relative(root, output.path),
        sample_sheet=sheet_path,
        samples=samples,
        pool_files=MappingProxyType(
            {
                pool: tuple(sorted(files, key=lambda f: f.relative_path))
                for pool, files in sorted(by_pool.items())
            }
        ),
        undetermined=tuple(_run_file(f, None) for f in undetermined),
    )


def _run_id(root: Path) -> str:
    """The run id alone (RunInfo.xml ``Run/@Id``), to find the output keyed by it."""
    run = parse_xml(root / RUN_INFO).find("Run")
    run_id = run.get("Id") if run is not None else None
    if not run_id:
        raise RunFolderError(root / RUN_INFO, "RunInfo.xml has no Run Id")
    return run_id


def _areas(root: Path, out: Path, search: OutputSearch, run_id: str) -> tuple[Path, ...]:
    """Where a fastq symlink may point: the run folder, its output folder, and the run's folder under
    ``SEQSHARE_OUTPUT_ROOT`` (links from the run folder to a demultiplexing disk)."""
    keyed = search.root_for(run_id).resolve() if search.root is not None else None
    return (root, out) if keyed is None else (root, out, keyed)


def _relative(root: Path, path: Path) -> PurePosixPath:
    """``path`` relative to the run folder, or absolute when it lies outside (a separate output root)."""
    return PurePosixPath(*(path.relative_to(root).parts if path.is_relative_to(root) else path.parts))


def _samples(sheet: SampleSheet, run_lanes: tuple[int, ...]) -> tuple[Sample, ...]:
    rows_by_id: dict[str, list] = defaultdict(list)
    for row in sheet.rows:
        if row.project is None:
            raise RunFolderError(
                sheet.path, f"sample {row.sample_id!r} has no project (pool id)", line=row.line
            )
        if not POOL_ID.fullmatch(row.project):
            raise RunFolderError(
                sheet.path,
                f"project {row.project!r} of sample {row.sample_id!r} is not a pool id (SLX-<digits>)",
                line=row.line,
            )
        if row.lane is not None and row.lane not in run_lanes:
            raise RunFolderError(sheet.path, f"lane {row.lane} is not a lane of this run", line=row.line)
        if row.sample_id == UNDETERMINED:
            raise RunFolderError(sheet.path, "a sample may not be called Undetermined", line=row.line)
        rows_by_id[row.sample_id].append(row)
    if not rows_by_id:
        raise RunFolderError(sheet.path, "sample sheet has no samples")
    return tuple(
        Sample(
            sample_id=sample_id,
            sample_name=rows[0].sample_name,
            pool_id=rows[0].project,
            lanes=tuple(sorted({r.lane for r in rows if r.lane is not None})),
            line=rows[0].line,
        )
        for sample_id, rows in rows_by_id.items()
    )


def _keys(sample: Sample, layout: Layout) -> Iterable[_Key]:
    sid, name, pool = sample.sample_id, sample.sample_name, sample.pool_id
    if layout is not Layout.BCL2FASTQ:
        return [((), sid), ((pool,), sid)]
    if name and name != sid:
        return [((pool, sid), name), ((sid,), name)]
    return [((pool,), sid), ((), sid), ((pool, sid), sid)]


def _assign(
    sheet_path: Path, samples: tuple[Sample, ...], found: tuple[FoundFastq, ...], layout: Layout
) -> tuple[dict[str, list[FoundFastq]], list[FoundFastq]]:
    by_key: dict[_Key, set[str]] = defaultdict(set)
    for sample in samples:
        for key in _keys(sample, layout):
            by_key[key].add(sample.sample_id)
    owners: dict[str, list[FoundFastq]] = {s.sample_id: [] for s in samples}
    undetermined: list[FoundFastq] = []
    for fastq in found:
        if fastq.prefix == UNDETERMINED and not fastq.folders:
            undetermined.append(fastq)
            continue
        matches = by_key.get((fastq.folders, fastq.prefix), set())
        if not matches:
            raise RunFolderError(fastq.path, f"fastq file matches no sample of {sheet_path}")
        if len(matches) > 1:
            raise RunFolderError(fastq.path, f"fastq file matches samples {sorted(matches)}")
        owners[next(iter(matches))].append(fastq)
    return owners, undetermined


def _check_complete(
    sheet_path: Path, samples: tuple[Sample, ...], owners: dict[str, list[FoundFastq]]
) -> None:
    all_reads = {f.read for files in owners.values() for f in files}
    for sample in samples:
        files = owners[sample.sample_id]
        if not files:
            raise RunFolderError(
                sheet_path, f"sample {sample.sample_id!r} has no fastq files", line=sample.line
            )
        by_lane: dict[int | None, dict[str, FoundFastq]] = defaultdict(dict)
        for fastq in files:
            if fastq.lane is not None and sample.lanes and fastq.lane not in sample.lanes:
                raise RunFolderError(
                    fastq.path,
                    f"lane {fastq.lane} is not a lane of sample {sample.sample_id!r} in {sheet_path}",
                )
            other = by_lane[fastq.lane].setdefault(fastq.read, fastq)
            if other is not fastq:
                raise RunFolderError(fastq.path, f"same sample, lane and read as {other.relative_path}")
        split = None not in by_lane
        for lane in sample.lanes if split else ():
            if lane not in by_lane:
                raise RunFolderError(
                    sheet_path,
                    f"sample {sample.sample_id!r} has no fastq files for lane {lane}",
                    line=sample.line,
                )
        for lane, reads in by_lane.items():
            if missing := sorted(all_reads - reads.keys()):
                where = f" lane {lane}" if lane is not None else ""
                raise RunFolderError(
                    sheet_path,
                    f"sample {sample.sample_id!r}{where} lacks {', '.join(missing)}",
                    line=sample.line,
                )


def _run_file(fastq: FoundFastq, sample: Sample | None) -> RunFile:
    return RunFile(
        relative_path=fastq.relative_path,
        size=fastq.size,
        pool_id=sample.pool_id if sample else None,
        sample_id=sample.sample_id if sample else None,
        lane=fastq.lane,
        read=fastq.read,
    )
