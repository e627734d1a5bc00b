"""Where the demultiplexed output of a run folder is, which tool wrote it, and which sheet it used.

Where the output folder is, first that applies (one place decides: :func:`find_output`):

1. the explicit ``output_dir`` (the ``distribute_run`` DAG parameter): relative to the run folder (and
   then inside it), or absolute, anywhere: the operator named it;
2. ``SEQSHARE_OUTPUT_ROOT`` (:class:`OutputSearch` ``root``), a folder keyed by run id outside the run
   folder: ``/demux`` means ``/demux/<run id>``, ``/demux/{run_id}/BCLConvert`` is taken as written. When
   set it is the only place looked at; until it exists the run is not finished;
3. ``SEQSHARE_OUTPUT_PATTERNS`` (``patterns``): glob patterns relative to the run folder, each match a
   candidate; the word ``default`` stands for the built-in search, which is also the default:

   a. ``Analysis/<n>/Data/BCLConvert/fastq`` for the highest numeric ``<n>`` (NovaSeq X onboard; a
      re-analysis gets a higher number). If that analysis has no such folder yet, the run is not ready.
   b. Folders at the run root whose name starts with ``Unaligned``, ``BCLConvert`` or ``fastq``
      (any case), e.g. ``Unaligned``, ``Unaligned_L1``, ``BCLConvert``, ``fastq``, ``Fastq``.
   c. ``Data/Intensities/BaseCalls`` (bcl2fastq's default output) once it holds ``Stats/``, ``Reports/``
      or fastq files (it always holds the BCL files, so its existence alone means nothing).

   Exactly one candidate must be found, inside the run folder; several are an error, never a guess.

An output folder outside the run folder whose ``Reports/RunInfo.xml`` (BCL Convert's copy) names another
run is refused: a wrong root or parameter must not deliver another run's files under this run's name.

The tool is told by its own files: BCL Convert writes ``Logs/`` when it starts and ``Reports/fastq_list.csv``
/ ``Reports/Demultiplex_Stats.csv`` / ``Logs/FastqComplete.txt`` when it ends; bcl2fastq writes ``Stats/``
(``Stats/Stats.json`` last). Output with fastq files and no finishing marker waits for that marker.

Sample sheet, first found: ``<out>/Reports/SampleSheet.csv`` (BCL Convert's copy of the sheet it
actually used), ``Analysis/<n>/Data/BCLConvert/SampleSheet.csv`` (NovaSeq X onboard),
``<run>/SampleSheet.csv``, then the only ``<run>/*SampleSheet*.csv`` (any case). A sheet that is a
symlink leaving the run folder and its output folder is refused.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from seqshare.config import OUTPUT_PATTERNS_ENV, OUTPUT_ROOT_ENV
from seqshare.runfolder.completion import COPY_COMPLETE
from seqshare.runfolder.errors import RunFolderError
from seqshare.runfolder.instrument_xml import parse_xml

DEFAULT_SEARCH = "default"
_ROOT_PREFIXES = ("unaligned", "bclconvert", "fastq")
_BASECALLS = Path("Data", "Intensities", "BaseCalls")
_ONBOARD_FASTQ = Path("Data", "BCLConvert", "fastq")
_BCLCONVERT_MARKERS = ("Reports/fastq_list.csv", "Reports/Demultiplex_Stats.csv", "Logs/FastqComplete.txt")
_BCLCONVERT_DONE = ("Logs/FastqComplete.txt", "Reports/fastq_list.csv")
_BCL2FASTQ_DONE = "Stats/Stats.json"
_ANALYSIS_DONE = "Data/Secondary_Analysis_Complete.txt"
_SAFE_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
_LANE_FOLDER = re.compile(r"L\d{3}")
_PARAMETER = "the distribute_run parameter output_dir"
_DEFAULT_DESCRIPTION = "Analysis/<n>, Unaligned*, BCLConvert*, fastq*, Data/Intensities/BaseCalls"
RUN_INFO_NAME = "RunInfo.xml"


class Layout(StrEnum):
    """Which demultiplexer wrote the output, which decides the fastq paths."""

    BCLCONVERT = "bclconvert"
    BCL2FASTQ = "bcl2fastq"
    NOVASEQX_ONBOARD = "novaseqx_onboard"


@dataclass(frozen=True)
class OutputSearch:
    """Where to look for a run's output when no ``output_dir`` is given (``seqshare.config.output_search``).

    ``patterns`` are glob patterns relative to the run folder (``default``: the built-in search);
    ``root`` is a template with ``{run_id}`` for output kept outside the run folder.
    """

    patterns: tuple[str, ...] = (DEFAULT_SEARCH,)
    root: str | None = None

    def __post_init__(self) -> None:
        for pattern in self.patterns:
            parts = Path(pattern).parts
            if not parts or Path(pattern).is_absolute() or ".." in parts:
                raise ValueError(
                    f"output pattern {pattern!r} must name folders relative to the run folder, without .."
                )
        if self.root is not None:
            fields = {f for _, f, _, _ in string.Formatter().parse(self.root) if f is not None}
            if not Path(self.root).is_absolute() or fields - {"run_id"}:
                raise ValueError(
                    f"output root {self.root!r} must be an absolute path; only {{run_id}} is replaced"
                )

    def root_for(self, run_id: str) -> Path:
        """The run's output folder under ``root`` (which must be set)."""
        if self.root is None:
            raise ValueError("no output root is set")
        template = self.root if "{run_id}" in self.root else self.root.rstrip("/") + "/{run_id}"
        return Path(template.format(run_id=run_id))

    def describe(self) -> str:
        """What was searched, in the words of the settings, for error messages."""
        if self.root is not None:
            return f"{OUTPUT_ROOT_ENV}={self.root}"
        shown = [_DEFAULT_DESCRIPTION if p == DEFAULT_SEARCH else p for p in self.patterns]
        return ", ".join(shown)


@dataclass(frozen=True)
class Output:
    """The demultiplexed output folder; ``missing`` names what is awaited, None when finished."""

    path: Path
    layout: Layout | None
    missing: str | None


def find_output(
    root: Path,
    output_dir: Path | None = None,
    search: OutputSearch = OutputSearch(),  # frozen: one shared default is safe
    run_id: str | None = None,
) -> Output:
    """Locate and classify the output of the run folder ``root`` (already resolved).

    ``run_id`` is needed only when ``search.root`` is set; it also checks an output folder outside the
    run folder against BCL Convert's copy of RunInfo.xml.
    """
    if output_dir is not None:
        if output_dir.is_absolute():
            return _outside_checked(root, output_dir.resolve(), run_id)
        return classify(root, inside(root, root / output_dir, "output folder"))
    if search.root is not None:
        if run_id is None or not _SAFE_RUN_ID.fullmatch(run_id):
            raise RunFolderError(
                root / RUN_INFO_NAME, f"run id {run_id!r} cannot name a folder under {OUTPUT_ROOT_ENV}"
            )
        keyed = search.root_for(run_id)
        if not keyed.is_dir():
            return Output(keyed, None, f"{keyed} ({OUTPUT_ROOT_ENV})")
        return _outside_checked(root, keyed.resolve(), run_id)
    candidates: list[Path] = []
    for pattern in search.patterns:
        if pattern != DEFAULT_SEARCH:
            candidates += sorted(p for p in root.glob(pattern) if p.is_dir())
            continue
        analysis = latest_analysis(root)
        if analysis is not None:
            if not (analysis / _ONBOARD_FASTQ).is_dir():
                return Output(
                    analysis / _ONBOARD_FASTQ, Layout.NOVASEQX_ONBOARD, "the analysis's fastq folder"
                )
            candidates.append(analysis / _ONBOARD_FASTQ)
        candidates += sorted(
            p for p in root.iterdir() if p.is_dir() and p.name.lower().startswith(_ROOT_PREFIXES)
        )
        if _basecalls_used(root / _BASECALLS):
            candidates.append(root / _BASECALLS)
    unique = list(dict.fromkeys(inside(root, c, "output folder") for c in candidates))
    if not unique:
        raise RunFolderError(
            root,
            f"no demultiplexed output (searched {search.describe()}); set {OUTPUT_PATTERNS_ENV} or "
            f"{OUTPUT_ROOT_ENV}, or give {_PARAMETER}",
        )
    if len(unique) > 1:
        names = ", ".join(str(c.relative_to(root)) for c in unique)
        raise RunFolderError(
            root,
            f"several demultiplexed outputs ({names}); give {_PARAMETER}, or narrow {OUTPUT_PATTERNS_ENV}",
        )
    return classify(root, unique[0])


def _basecalls_used(basecalls: Path) -> bool:
    """bcl2fastq writes into BaseCalls: Stats/ or Reports/ at the end, fastq files (and project folders)
    while it runs; the lane folders ``L00<n>`` hold the BCL files and are not looked into."""
    if (basecalls / "Stats").is_dir() or (basecalls / "Reports").is_dir():
        return True
    if not basecalls.is_dir():
        return False
    if any(basecalls.glob("*.fastq.gz")):
        return True
    return any(
        any(sub.glob("*.fastq.gz"))
        for sub in basecalls.iterdir()
        if sub.is_dir() and not sub.is_symlink() and not _LANE_FOLDER.fullmatch(sub.name)
    )


def _outside_checked(root: Path, out: Path, run_id: str | None) -> Output:
    """An output folder named explicitly or by the output root: BCL Convert's copy of RunInfo.xml, when
    there, must name this run (a wrong root or parameter would deliver another run's files)."""
    copy = out / "Reports" / RUN_INFO_NAME
    if run_id is not None and copy.is_file():
        run = parse_xml(copy).find("Run")
        other = run.get("Id") if run is not None else None
        if other != run_id:
            raise RunFolderError(copy, f"output of run {other!r}, not of run {run_id!r}")
    return classify(root, out)


def latest_analysis(root: Path) -> Path | None:
    """``Analysis/<n>`` with the highest number, or None."""
    base = root / "Analysis"
    if not base.is_dir():
        return None
    numbered = [p for p in base.iterdir() if p.is_dir() and p.name.isdigit()]
    return max(numbered, key=lambda p: int(p.name), default=None)


def classify(root: Path, out: Path) -> Output:
    """Tell the layout of ``out`` and whether its writer has finished."""
    if not out.is_dir():
        raise RunFolderError(out, "output folder does not exist")
    rel = out.relative_to(root).parts if out.is_relative_to(root) else ()
    if len(rel) == 5 and rel[0] == "Analysis" and rel[1].isdigit() and Path(*rel[2:]) == _ONBOARD_FASTQ:
        analysis = root / "Analysis" / rel[1]
        awaited = [m for m in (COPY_COMPLETE, _ANALYSIS_DONE) if not (analysis / m).is_file()]
        missing = " and ".join(f"Analysis/{rel[1]}/{m}" for m in awaited) or None
        return Output(out, Layout.NOVASEQX_ONBOARD, missing)
    is_bclconvert = any((out / m).is_file() for m in _BCLCONVERT_MARKERS)
    is_bcl2fastq = (out / "Stats").is_dir()
    bclconvert_done = " or ".join(_BCLCONVERT_DONE)
    if is_bclconvert and is_bcl2fastq:
        raise RunFolderError(out, "holds both BCL Convert Reports/Logs and bcl2fastq Stats/")
    if is_bclconvert:
        done = any((out / m).is_file() for m in _BCLCONVERT_DONE)
        return Output(out, Layout.BCLCONVERT, None if done else bclconvert_done)
    if is_bcl2fastq:
        done = (out / _BCL2FASTQ_DONE).is_file()
        return Output(out, Layout.BCL2FASTQ, None if done else _BCL2FASTQ_DONE)
    if (out / "Logs").is_dir():  # BCL Convert creates Logs/ when it starts
        return Output(out, Layout.BCLCONVERT, bclconvert_done)
    if out == root / _BASECALLS:  # bcl2fastq's own default; it writes Stats/ last
        return Output(out, Layout.BCL2FASTQ, _BCL2FASTQ_DONE)
    return Output(out, None, f"{bclconvert_done} (BCL Convert), or {_BCL2FASTQ_DONE} (bcl2fastq)")


def inside(root: Path, path: Path, what: str) -> Path:
    """``path`` resolved, provided it stays inside ``root`` (after following symlinks)."""
    resolved = path.resolve()
    if not resolved.is_relative_to(root):
        raise RunFolderError(path, f"{what} is outside the run folder {root}")
    return resolved


def within(areas: tuple[Path, ...], path: Path, what: str) -> Path:
    """``path`` resolved, provided it stays inside one of ``areas`` (the run folder and its output
    folder, both resolved), after following every symlink."""
    resolved = path.resolve()
    if not any(resolved.is_relative_to(area) for area in areas):
        outer = [a for a in dict.fromkeys(areas) if not any(a != b and a.is_relative_to(b) for b in areas)]
        where = " or ".join(str(a) for a in outer)
        raise RunFolderError(path, f"{what} is a symlink leaving {where}, to {resolved}")
    return resolved


def find_sample_sheet(root: Path, output: Output) -> Path:
    """The sample sheet that drove the demultiplexing (see module doc for the order); a sheet that is a
    symlink out of the run folder and its output folder is refused, never read."""
    ordered = [output.path / "Reports" / "SampleSheet.csv"]
    if output.layout is Layout.NOVASEQX_ONBOARD:
        ordered.append(output.path.parent / "SampleSheet.csv")
    ordered.append(root / "SampleSheet.csv")
    areas = (root, output.path)
    for path in ordered:
        if path.is_file() or path.is_symlink():
            within(areas, path, "sample sheet")
            return path
    named = sorted(p for p in root.glob("*.csv") if re.search("samplesheet", p.name, re.IGNORECASE))
    if len(named) == 1:
        within(areas, named[0], "sample sheet")
        return named[0]
    if named:
        raise RunFolderError(
            root,
            f"several sample sheets ({', '.join(p.name for p in named)}); keep only the one used to "
            "demultiplex, or its copy in <output>/Reports/SampleSheet.csv",
        )
    raise RunFolderError(root / "SampleSheet.csv", "no sample sheet found")
