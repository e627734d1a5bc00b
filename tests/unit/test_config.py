"""Settings from the environment: defaults, and a clear error for a bad value."""

from __future__ import annotations

import re
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from seqshare.config import instrument_zone, output_search, parallel_connections
from seqshare.errors import InvalidInput
from seqshare.runfolder import OutputSearch


def test_parallel_connections_default_and_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEQSHARE_PARALLEL_FILES", raising=False)
    assert parallel_connections() == 2
    monkeypatch.setenv("SEQSHARE_PARALLEL_FILES", "4")
    assert parallel_connections() == 4


@pytest.mark.parametrize("bad", ["0", "-1", "two", "1.5"])
def test_a_bad_parallel_setting_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    monkeypatch.setenv("SEQSHARE_PARALLEL_FILES", bad)
    with pytest.raises(InvalidInput, match="SEQSHARE_PARALLEL_FILES"):
        parallel_connections()


def test_instrument_zone_default_override_and_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEQSHARE_INSTRUMENT_TZ", raising=False)
    assert instrument_zone() == ZoneInfo("UTC")
    monkeypatch.setenv("SEQSHARE_INSTRUMENT_TZ", "Europe/London")
    assert instrument_zone() == ZoneInfo("Europe/London")
    monkeypatch.setenv("SEQSHARE_INSTRUMENT_TZ", "Mars/Olympus_Mons")
    with pytest.raises(InvalidInput, match="is not a time zone"):
        instrument_zone()


def test_output_search_default_patterns_and_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEQSHARE_OUTPUT_PATTERNS", raising=False)
    monkeypatch.delenv("SEQSHARE_OUTPUT_ROOT", raising=False)
    assert output_search() == OutputSearch(patterns=("default",), root=None)
    monkeypatch.setenv("SEQSHARE_OUTPUT_PATTERNS", " default, Demux_*:analysis/*/fastq ,")
    monkeypatch.setenv("SEQSHARE_OUTPUT_ROOT", "/demux/{run_id}/BCLConvert")
    search = output_search()
    assert search.patterns == ("default", "Demux_*", "analysis/*/fastq")
    assert search.root_for("RUN1") == Path("/demux/RUN1/BCLConvert")
    monkeypatch.setenv("SEQSHARE_OUTPUT_ROOT", "/demux/")
    assert output_search().root_for("RUN1") == Path("/demux/RUN1")


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("SEQSHARE_OUTPUT_PATTERNS", "/abs/out", "must name folders relative to the run folder"),
        ("SEQSHARE_OUTPUT_PATTERNS", "Unaligned,../other_run/Unaligned", "without .."),
        ("SEQSHARE_OUTPUT_ROOT", "demux", "must be an absolute path"),
        ("SEQSHARE_OUTPUT_ROOT", "/demux/{flowcell}", "only {run_id} is replaced"),
    ],
)
def test_a_bad_output_setting_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.delenv("SEQSHARE_OUTPUT_PATTERNS", raising=False)
    monkeypatch.delenv("SEQSHARE_OUTPUT_ROOT", raising=False)
    monkeypatch.setenv(name, value)
    with pytest.raises(InvalidInput, match=rf"^{name}=.*{re.escape(message)}"):
        output_search()
