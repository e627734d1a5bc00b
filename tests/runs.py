"""Build run folders for delivery tests: a NovaSeq 6000 run demultiplexed by BCL Convert, pools of the
test world (tests/world.py), fastq files of random bytes so byte-identity means something."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from seqshare.services import sharing
from tests.world import WORLD, load_world

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "illumina"
NOVASEQ6000 = FIXTURES / "novaseq6000" / "231215_A01535_0435_BH23F5DSXC"
RUN_ID = NOVASEQ6000.name
SEQUENCED = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)  # registered in the LIMS for RUN_ID
DAY = timedelta(days=1)


@dataclass(frozen=True)
class BuiltRun:
    path: Path
    files: dict[str, list[Path]]  # pool -> its fastq files


def build_run(
    parent: Path,
    pools: Mapping[str, Sequence[str]],
    *,
    lanes: Sequence[int] = (1, 2),
    size: int = 64 * 1024,
    complete: bool = True,
) -> BuiltRun:
    """`<parent>/<RUN_ID>/` with RunInfo/RunParameters of the fixture, a v2 sample sheet, BCL Convert output
    in `BCLConvert/<pool>/<sample>_S<n>_L00<lane>_R<1|2>_001.fastq.gz`, and Undetermined reads."""
    run = parent / RUN_ID
    run.mkdir(parents=True)
    for name in ("RunInfo.xml", "RunParameters.xml"):
        (run / name).write_bytes((NOVASEQ6000 / name).read_bytes())
    out = run / "BCLConvert"
    (out / "Reports").mkdir(parents=True)
    rows = ["[Header]", "FileFormatVersion,2", "", "[BCLConvert_Data]", "Lane,Sample_ID,index,Sample_Project"]
    files: dict[str, list[Path]] = {}
    number = 0
    for pool, samples in pools.items():
        (out / pool).mkdir()
        for sample in samples:
            number += 1
            for lane in lanes:
                rows.append(f"{lane},{sample},ACGTACGT,{pool}")
                for read in ("R1", "R2"):
                    path = out / pool / f"{sample}_S{number}_L00{lane}_{read}_001.fastq.gz"
                    path.write_bytes(os.urandom(size + number))
                    files.setdefault(pool, []).append(path)
    for lane in lanes:
        (out / f"Undetermined_S0_L00{lane}_R1_001.fastq.gz").write_bytes(os.urandom(1000))
    (out / "Reports" / "SampleSheet.csv").write_text("\r\n".join(rows) + "\r\n")
    (out / "Reports" / "fastq_list.csv").write_text("RGID,RGSM,RGLB,Lane,Read1File,Read2File\n")
    if complete:
        (run / "RTAComplete.txt").write_text(" ")
    return BuiltRun(run, files)


# The delivery scenario of the product issue, on the test world's projects and pools:
POOLS = {"SLX-1": ["S1", "S2"], "SLX-2": ["S3"], "SLX-3": ["S4"], "SLX-4": ["S5"], "SLX-5": ["S6"]}
EXPECTED = {  # group -> pools it must receive
    "Ext Co": {"SLX-1", "SLX-2", "SLX-5"},  # Int Project shared before sequencing; Ext Project, its own
    "Ext Two": {"SLX-1", "SLX-2"},
    "Special": {"SLX-3"},  # Member Project: revoked after sequencing, still delivered
}
FTP_DIRS = {g["name"]: g["ftp_dir"] for g in WORLD["groups"] if g.get("ftp_dir")}


def load_scenario(session: Session, *, run_folder: Path | None = None) -> None:
    """The test world, the run registered in the LIMS, and a share history around the sequencing time."""
    world: dict[str, Any] = {
        **WORLD,
        "runs": [
            {
                "run_id": RUN_ID,
                "started_at": SEQUENCED.isoformat(),
                "run_folder": str(run_folder) if run_folder else None,
            }
        ],
    }
    load_world(session, world)
    before, after = SEQUENCED - DAY, SEQUENCED + DAY
    sharing.set_sharing(
        session, project="Int Project", groups=["Ext Co", "Ext Two", "Other Lab"], actor="owner", now=before
    )
    sharing.set_sharing(session, project="Member Project", groups=["Special"], actor="member", now=before)
    sharing.clear_sharing(session, project="Member Project", actor="member", now=after)
    sharing.set_sharing(session, project="Other Project", groups=["Ext Co"], actor="other", now=after)
    sharing.set_sharing(session, project="Ext Project", groups=["Other Lab"], actor="extowner", now=before)
