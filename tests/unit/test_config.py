"""Settings from the environment: defaults, and a clear error for a bad value."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from seqshare.config import instrument_zone, parallel_connections
from seqshare.errors import InvalidInput


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
