"""Build small synthetic run folders in tmp_path from the vendored fixtures' XML contents."""

from __future__ import annotations

import gzip
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "illumina"  # vendored: tests/fixtures/README.md

NOVASEQ6000 = FIXTURES / "novaseq6000" / "231215_A01535_0435_BH23F5DSXC"  # 4 lanes
NOVASEQX = FIXTURES / "novaseqx" / "231215_LH00444_0031_B222WHFLT4"  # 8 lanes
HISEQ4000 = FIXTURES / "hiseq4000" / "200320_K00180_0957_AHCYKKBBXY_PE150_Knight"  # 8 lanes
MISEQ = FIXTURES / "miseq" / "231108_M04586_0992_000000000-L7342"  # 1 lane

FASTQ_GZ = gzip.compress(b"@r1\nACGT\n+\nIIII\n", mtime=0)


def run_folder(tmp_path: Path, source: Path = NOVASEQ6000, marker: str | None = "RTAComplete.txt") -> Path:
    """A run folder named like ``source`` holding copies of its RunInfo/RunParameters contents."""
    run = tmp_path / source.name
    run.mkdir()
    for name in ("RunInfo.xml", "RunParameters.xml", "runParameters.xml"):
        if (source / name).is_file():
            (run / name).write_bytes((source / name).read_bytes())
    if marker:
        (run / marker).write_text(" ")
    return run


def touch(path: Path, content: bytes | str = b"") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        path.write_text(content)
    else:
        path.write_bytes(content)
    return path


def fastqs(folder: Path, prefix: str, number: int, lanes: list[int | None], reads: list[str]) -> set[Path]:
    """Write ``<prefix>_S<number>_L00<lane>_<read>_001.fastq.gz`` files; return their paths."""
    written = set()
    for lane in lanes:
        lane_part = f"_L{lane:03d}" if lane is not None else ""
        for read in reads:
            written.add(touch(folder / f"{prefix}_S{number}{lane_part}_{read}_001.fastq.gz", FASTQ_GZ))
    return written


def rel(run: Path, paths: set[Path]) -> set[str]:
    return {p.relative_to(run).as_posix() for p in paths}
