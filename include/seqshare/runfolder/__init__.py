"""Read Illumina run folders: run metadata, the sample sheet, and each pool's fastq files.

Pure Python and free of Airflow and the database, so scanners, DAGs and the CLI can all use it.

    from seqshare.runfolder import is_complete, read_run_folder
    if is_complete(run_dir):
        run = read_run_folder(run_dir)          # raises RunFolderError, never a half result
        for pool_id, files in run.pool_files.items(): ...

``awaiting(run_dir)`` says what an incomplete folder waits for. Where output and sheet are looked for
(settings ``SEQSHARE_OUTPUT_PATTERNS`` / ``SEQSHARE_OUTPUT_ROOT``, the ``output_dir`` argument):
:mod:`seqshare.runfolder.layout`; which links are accepted: :mod:`seqshare.runfolder.files`; completion
markers: :mod:`seqshare.runfolder.completion`; start-time precedence: :mod:`seqshare.runfolder.runinfo`.
"""

from seqshare.runfolder.errors import RunFolderError
from seqshare.runfolder.layout import Layout, OutputSearch
from seqshare.runfolder.models import RunFile, RunFolder, Sample
from seqshare.runfolder.reader import POOL_ID, awaiting, is_complete, read_run_folder
from seqshare.runfolder.runinfo import (
    ReadSpec,
    RunInfo,
    parse_run_info_xml,
    parse_run_parameters_xml,
    read_run_info,
)
from seqshare.runfolder.samplesheet import SampleSheet, SheetRow, read_sample_sheet

__all__ = [
    "POOL_ID",
    "Layout",
    "OutputSearch",
    "ReadSpec",
    "RunFile",
    "RunFolder",
    "RunFolderError",
    "RunInfo",
    "Sample",
    "SampleSheet",
    "SheetRow",
    "awaiting",
    "is_complete",
    "parse_run_info_xml",
    "parse_run_parameters_xml",
    "read_run_folder",
    "read_run_info",
    "read_sample_sheet",
]
