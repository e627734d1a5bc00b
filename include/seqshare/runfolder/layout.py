"""Where the demultiplexed output of a run folder is, which tool wrote it, and which sheet it used.

Default search (an explicit ``output_dir`` replaces it; it must lie inside the run folder):

1. ``Analysis/<n>/Data/BCLConvert/fastq`` for the highest numeric ``<n>`` (NovaSeq X onboard; a
   re-analysis gets a higher number). If that analysis has no such folder yet, the run is not ready.
2. Folders at the run root whose name starts with ``Unaligned``, ``BCLConvert`` or ``fastq``
   (any case), e.g. ``Unaligned``, ``Unaligned_L1``, ``BCLConvert``, ``fastq``, ``Fastq``.
3. ``Data/Intensities/BaseCalls`` (bcl2fastq's default output) if it holds ``Stats/`` or ``Reports/``
   (it always holds the BCL files, so its existence alone means nothing).

Exactly one candidate must be found; several are an error (pass ``output_dir``), never a guess.

The tool is told by its own files: BCL Convert writes ``Reports/fastq_list.csv`` /
``Reports/Demultiplex_Stats.csv`` / ``Logs/FastqComplete.txt``, bcl2fastq writes ``Stats/``.

Sample sheet, first found: ``<out>/Reports/SampleSheet.csv`` (BCL Convert's copy of the sheet it
actually used), ``Analysis/<n>/Data/BCLConvert/SampleSheet.csv`` (NovaSeq X onboard),
``<run>/SampleSheet.csv``, then the only ``<run>/*SampleSheet*.csv`` (any case).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from seqshare.runfolder.completion import COPY_COMPLETE
from seqshare.runfolder.errors import RunFolderError

_ROOT_PREFIXES = ("unaligned", "bclconvert", "fastq")
_BASECALLS = Path("Data", "Intensities", "BaseCalls")
_ONBOARD_FASTQ = Path("Data", "BCLConvert", "fastq")
_BCLCONVERT_MARKERS = ("Reports/fastq_list.csv", "Reports/Demultiplex_Stats.csv", "Logs/FastqComplete.txt")
_BCLCONVERT_DONE = ("Logs/FastqComplete.txt", "Reports/fastq_list.csv")
_BCL2FASTQ_DONE = "Stats/Stats.json"
_ANALYSIS_DONE = "Data/Secondary_Analysis_Complete.txt"


class Layout(StrEnum):
    """Which demultiplexer wrote the output, which decides the fastq paths."""

    BCLCONVERT = "bclconvert"
    BCL2FASTQ = "bcl2fastq"
    NOVASEQX_ONBOARD = "novaseqx_onboard"


@dataclass(frozen=True)
class Output:
    """The demultiplexed output folder; ``missing`` names what is awaited, None when finished."""

    path: Path
    layout: Layout | None
    missing: str | None


def find_output(root: Path, output_dir: Path | None = None) -> Output:
    """Locate and classify the output of the run folder ``root`` (already resolved)."""
    if output_dir is not None:
        path = output_dir if output_dir.is_absolute() else root / output_dir
        return classify(root, inside(root, path, "output folder"))
    analysis = latest_analysis(root)
    candidates: list[Path] = []
    if analysis is not None:
        if not (analysis / _ONBOARD_FASTQ).is_dir():
            return Output(analysis / _ONBOARD_FASTQ, Layout.NOVASEQX_ONBOARD, "the analysis's fastq folder")
        candidates.append(analysis / _ONBOARD_FASTQ)
    candidates += sorted(
        p for p in root.iterdir() if p.is_dir() and p.name.lower().startswith(_ROOT_PREFIXES)
    )
    basecalls = root / _BASECALLS
    if (basecalls / "Stats").is_dir() or (basecalls / "Reports").is_dir():
        candidates.append(basecalls)
    if not candidates:
        raise RunFolderError(
            root,
            "no demultiplexed output (Analysis/<n>, Unaligned*, BCLConvert*, fastq*, "
            "Data/Intensities/BaseCalls); pass output_dir",
        )
    if len(candidates) > 1:
        names = ", ".join(str(c.relative_to(root)) for c in candidates)
        raise RunFolderError(root, f"several demultiplexed outputs ({names}); pass output_dir")
    return classify(root, inside(root, candidates[0], "output folder"))


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
    rel = out.relative_to(root).parts
    if len(rel) == 5 and rel[0] == "Analysis" and rel[1].isdigit() and Path(*rel[2:]) == _ONBOARD_FASTQ:
        analysis = root / "Analysis" / rel[1]
        awaited = [m for m in (COPY_COMPLETE, _ANALYSIS_DONE) if not (analysis / m).is_file()]
        missing = " and ".join(f"Analysis/{rel[1]}/{m}" for m in awaited) or None
        return Output(out, Layout.NOVASEQX_ONBOARD, missing)
    is_bclconvert = any((out / m).is_file() for m in _BCLCONVERT_MARKERS)
    is_bcl2fastq = (out / "Stats").is_dir()
    if is_bclconvert and is_bcl2fastq:
        raise RunFolderError(out, "holds both BCL Convert Reports/Logs and bcl2fastq Stats/")
    if is_bclconvert:
        done = any((out / m).is_file() for m in _BCLCONVERT_DONE)
        return Output(out, Layout.BCLCONVERT, None if done else " or ".join(_BCLCONVERT_DONE))
    if is_bcl2fastq:
        done = (out / _BCL2FASTQ_DONE).is_file()
        return Output(out, Layout.BCL2FASTQ, None if done else _BCL2FASTQ_DONE)
    return Output(out, None, "a BCL Convert Reports/ or Logs/, or a bcl2fastq Stats/")


def inside(root: Path, path: Path, what: str) -> Path:
    """``path`` resolved, provided it stays inside ``root`` (after following symlinks)."""
    resolved = path.resolve()
    if not resolved.is_relative_to(root):
        raise RunFolderError(path, f"{what} is outside the run folder {root}")
    return resolved


def find_sample_sheet(root: Path, output: Output) -> Path:
    """The sample sheet that drove the demultiplexing (see module doc for the order)."""
    ordered = [output.path / "Reports" / "SampleSheet.csv"]
    if output.layout is Layout.NOVASEQX_ONBOARD:
        ordered.append(output.path.parent / "SampleSheet.csv")
    ordered.append(root / "SampleSheet.csv")
    for path in ordered:
        if path.is_file():
            return path
    named = sorted(p for p in root.glob("*.csv") if re.search("samplesheet", p.name, re.IGNORECASE))
    if len(named) == 1:
        return named[0]
    if named:
        raise RunFolderError(
            root, f"several sample sheets ({', '.join(p.name for p in named)}); pass sample_sheet"
        )
    raise RunFolderError(root / "SampleSheet.csv", "no sample sheet found")
