"""Marker files that say the instrument and the demultiplexer have finished writing.

Scanners poll folders that are still being written; only these markers (never file ages) decide
that a folder may be read.

Sequencing: ``CopyComplete.txt`` (NovaSeq, NextSeq 2000, NovaSeq X: copy to the output folder done),
``RunCompletionStatus.xml`` with ``RunStatus`` ``RunCompleted`` (NovaSeq X, NextSeq 2000; any other
status means the run failed), or ``RTAComplete.txt`` (all RTA versions; its content varies, down to a
single space, and is not read).

Demultiplexing (see :mod:`seqshare.runfolder.layout` for where the output is):
BCL Convert ``<out>/Logs/FastqComplete.txt`` or ``<out>/Reports/fastq_list.csv``; bcl2fastq
``<out>/Stats/Stats.json``; NovaSeq X onboard ``Analysis/<n>/CopyComplete.txt`` and
``Analysis/<n>/Data/Secondary_Analysis_Complete.txt``. Output with fastq files but no finishing marker
yet (BCL Convert's ``Logs/`` or bcl2fastq's ``Stats/`` or ``BaseCalls``) waits for that marker.
"""

from __future__ import annotations

from pathlib import Path

from seqshare.runfolder.errors import RunFolderError
from seqshare.runfolder.instrument_xml import parse_xml

COPY_COMPLETE = "CopyComplete.txt"
RTA_COMPLETE = "RTAComplete.txt"
RUN_COMPLETION_STATUS = "RunCompletionStatus.xml"


def sequencing_marker(run_dir: Path) -> str | None:
    """Name of the strongest sequencing-complete marker present, or None while running.

    Raises RunFolderError if RunCompletionStatus.xml reports a failed run.
    """
    status_path = run_dir / RUN_COMPLETION_STATUS
    status_ok = False
    if status_path.is_file():
        try:
            status = (parse_xml(status_path).findtext("RunStatus") or "").strip()
        except RunFolderError:
            return None  # may be half written; look again later
        if status != "RunCompleted":
            raise RunFolderError(status_path, f"run did not complete: RunStatus is {status or 'empty'!r}")
        status_ok = True
    if (run_dir / COPY_COMPLETE).is_file():
        return COPY_COMPLETE
    if status_ok:
        return RUN_COMPLETION_STATUS
    if (run_dir / RTA_COMPLETE).is_file():
        return RTA_COMPLETE
    return None
