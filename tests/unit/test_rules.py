"""The sharing rules on plain values: milliseconds, no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from seqshare.rules import (
    GroupKind,
    GroupRef,
    ShareInterval,
    refusal_to_change,
    refusal_to_share,
    shareable,
    shared_at,
)

INT_A = GroupRef("A Lab", GroupKind.INTERNAL)
INT_B = GroupRef("B Lab", GroupKind.INTERNAL)
EXT_X = GroupRef("X Co", GroupKind.EXTERNAL)
EXT_Y = GroupRef("Y Co", GroupKind.EXTERNAL)
FGC = GroupRef("FGC", GroupKind.EXTERNAL, is_special=True)
ALL = [INT_A, INT_B, EXT_X, EXT_Y, FGC]


def test_internal_users_may_share_with_every_other_group() -> None:
    assert [g.name for g in shareable(INT_A, INT_A, ALL)] == ["B Lab", "FGC", "X Co", "Y Co"]


def test_external_users_may_share_with_internal_groups_and_the_special_group_only() -> None:
    assert [g.name for g in shareable(EXT_X, EXT_X, ALL)] == ["A Lab", "B Lab", "FGC"]


def test_sharing_with_the_projects_own_group_is_refused_with_a_reason() -> None:
    reason = refusal_to_share(INT_A, INT_A, INT_A)
    assert reason is not None and "own group" in reason


def test_external_to_external_refusal_names_both_groups() -> None:
    reason = refusal_to_share(EXT_X, EXT_X, EXT_Y)
    assert reason is not None and "X Co" in reason and "Y Co" in reason


@pytest.mark.parametrize(("actor_group", "allowed"), [("A Lab", True), ("B Lab", False)])
def test_only_the_owners_group_may_change_a_project(actor_group: str, allowed: bool) -> None:
    assert (refusal_to_change("u", actor_group, "A Lab", "P") is None) is allowed


def test_a_share_counts_from_its_grant_inclusive_to_its_revocation_exclusive() -> None:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    one_us = timedelta(microseconds=1)
    intervals = [ShareInterval("X Co", t, t + timedelta(days=1))]
    assert shared_at(intervals, t - one_us) == set()
    assert shared_at(intervals, t) == {"X Co"}
    assert shared_at(intervals, t + timedelta(days=1) - one_us) == {"X Co"}
    assert shared_at(intervals, t + timedelta(days=1)) == set()


def test_an_empty_interval_from_same_instant_grant_and_revoke_shares_nothing() -> None:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    assert shared_at([ShareInterval("X Co", t, t)], t) == set()
