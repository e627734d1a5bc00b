"""The sequencing instant when only a day (a window) is known: certain if no deciding share changed within
it, else the run stops naming the change(s). Pure, on plain values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from seqshare.delivery.instant import Precision, SequencingInstant, changes_within, settle
from seqshare.delivery.snapshot import GroupShare, SnapshotSource
from seqshare.errors import InvalidInput
from seqshare.rules import GroupKind

EXT, INT = GroupKind.EXTERNAL, GroupKind.INTERNAL
DAY_START = datetime(2026, 3, 1, tzinfo=UTC)
DAY_END = DAY_START + timedelta(days=1) - timedelta(microseconds=1)  # the last instant of the day
H = timedelta(hours=1)
THE_DAY = SequencingInstant(
    DAY_START, SnapshotSource.INSTRUMENT, Precision.DAY, "RunInfo.xml Date 260301 is a date only", DAY_END
)


def _settle(histories, **kwargs) -> SequencingInstant:
    return settle("RUN1", THE_DAY, histories, **kwargs)


def test_a_day_without_a_change_is_certain_and_frozen_at_its_start() -> None:
    histories = {
        "P": [
            GroupShare("Ext Co", EXT, DAY_START - 3 * H, None),  # before the day: applies all day
            GroupShare("Gone Co", EXT, DAY_START - 9 * H, DAY_START - H),
            GroupShare("Later Co", EXT, DAY_END + timedelta(microseconds=1), None),  # the next day
        ]
    }
    when = _settle(histories)
    assert (when.instant, when.source, when.precision) == (
        DAY_START,
        SnapshotSource.INSTRUMENT,
        Precision.DAY,
    )
    assert when.note.startswith("RunInfo.xml Date 260301 is a date only; certain: no share")
    assert "taken at its start" in when.note


def test_a_revocation_within_the_day_stops_the_run_naming_it() -> None:
    # The first run: started at 12:00, only its date known; Ext Co revoked at 10:00.
    histories = {"Int Project": [GroupShare("Ext Co", EXT, DAY_START - 24 * H, DAY_START + 10 * H)]}
    with pytest.raises(InvalidInput) as caught:
        _settle(histories)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("run RUN1: the sequencing time is not known precisely enough (RunInfo.xml Date")
    assert "project 'Int Project': Ext Co revoked at 2026-03-01T10:00:00+00:00" in message
    assert "nothing was sent" in message and "sequencing_time override" in message


def test_a_grant_within_the_day_stops_the_run_naming_it() -> None:
    # The second run: started at 11:17:02; Ext Two granted at 11:16:59.
    granted = DAY_START + timedelta(hours=11, minutes=16, seconds=59)
    with pytest.raises(InvalidInput, match=r"project 'P': Ext Two granted at 2026-03-01T11:16:59\+00:00"):
        _settle({"P": [GroupShare("Ext Two", EXT, granted, None)]})


def test_only_changes_strictly_inside_the_window_count() -> None:
    at_start = GroupShare("A Co", EXT, DAY_START, None)  # applies to every instant of the day
    next_day = GroupShare("B Co", EXT, DAY_START - H, DAY_END + timedelta(microseconds=1))
    last_instant = GroupShare("C Co", EXT, DAY_END, None)  # granted at the day's very last microsecond
    assert changes_within(DAY_START, DAY_END, {"P": [at_start, next_day]}) == ()
    (change,) = changes_within(DAY_START, DAY_END, {"P": [at_start, next_day, last_instant]})
    assert (change.group, change.granted, change.at) == ("C Co", True, DAY_END)


def test_internal_groups_never_matter() -> None:
    histories = {"P": [GroupShare("Int Lab", INT, DAY_START + H, DAY_START + 2 * H)]}
    assert _settle(histories).instant == DAY_START


def test_an_owner_receiving_as_owner_does_not_matter_but_a_switched_off_owner_does() -> None:
    histories = {"P": [GroupShare("Acme", EXT, DAY_START + H, None)]}
    assert _settle(histories, always_entitled={("P", "Acme")}).instant == DAY_START
    with pytest.raises(InvalidInput, match="Acme granted"):
        _settle(histories, always_entitled={("Other Project", "Acme")})


def test_many_changes_are_named_up_to_five_on_one_line() -> None:
    history = [GroupShare(f"G{i}", EXT, DAY_START + (i + 1) * H, None) for i in range(8)]
    with pytest.raises(InvalidInput) as caught:
        _settle({"P": history})
    message = str(caught.value)
    assert "G4 granted" in message and "G5 granted" not in message
    assert "; and 3 more)" in message and "\n" not in message


@pytest.mark.parametrize("source", [SnapshotSource.OVERRIDE, SnapshotSource.LIMS, SnapshotSource.INSTRUMENT])
def test_an_exact_instant_is_never_questioned(source) -> None:
    exact = SequencingInstant(DAY_START + 12 * H, source, Precision.EXACT, "exact")
    histories = {"P": [GroupShare("Ext Co", EXT, DAY_START + 12 * H, None)]}
    assert settle("RUN1", exact, histories) == exact


def test_a_local_time_the_clocks_passed_twice_is_a_window_too() -> None:
    first, second = DAY_START + H, DAY_START + 2 * H
    twice = SequencingInstant(first, SnapshotSource.INSTRUMENT, Precision.LOCAL, "01:30 local, twice", second)
    assert settle("RUN1", twice, {"P": [GroupShare("X", EXT, second + H, None)]}).instant == first
    with pytest.raises(InvalidInput, match="X granted"):
        settle("RUN1", twice, {"P": [GroupShare("X", EXT, first + timedelta(minutes=30), None)]})


def test_a_share_revoked_and_granted_again_at_one_instant_changes_nothing() -> None:
    # Set Sharing twice at one instant (Do Not Share, then Set Sharing again): the group is shared at every
    # instant of the day, so the day is certain.
    history = [
        GroupShare("Ext Co", EXT, DAY_START - H, DAY_START + 5 * H),
        GroupShare("Ext Co", EXT, DAY_START + 5 * H, None),
    ]
    assert changes_within(DAY_START, DAY_END, {"P": history}) == ()
    assert _settle({"P": history}).instant == DAY_START
