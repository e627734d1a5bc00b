"""Property: for any history of Set Sharing / Do Not Share, "shared at T" equals a replay of the history."""

from __future__ import annotations

from datetime import datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from seqshare.db.models import AuditEvent, Project, Share
from seqshare.delivery.snapshot import GroupShare, snapshot_pool
from seqshare.rules import GroupKind
from seqshare.services import sharing
from tests.world import WORLD, load_world

GROUPS = ["Other Lab", "Third Lab", "Ext Co", "Ext Two", "Special"]
KINDS = {g["name"]: GroupKind(g["kind"]) for g in WORLD["groups"]}
# Steps between changes: often none at all (same instant) or within one second.
STEPS = st.sampled_from(
    [
        timedelta(0),
        timedelta(microseconds=1),
        timedelta(milliseconds=500),
        timedelta(seconds=1),
        timedelta(hours=5),
        timedelta(days=3),
    ]
)
OPERATIONS = st.lists(st.tuples(STEPS, st.frozensets(st.sampled_from(GROUPS))), min_size=1, max_size=12)


def replay(history: list[tuple[datetime, frozenset[str]]], instant: datetime) -> set[str]:
    """Brute force: the set given by the last change made at or before the instant."""
    state: set[str] = set()
    for when, groups in history:
        if when <= instant:
            state = set(groups)
    return state


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=OPERATIONS, probes=st.lists(st.integers(min_value=0, max_value=10**6), max_size=6))
def test_shared_at_equals_a_replay_of_the_history(
    sessions: sessionmaker[Session],
    t0: datetime,
    operations: list[tuple[timedelta, frozenset[str]]],
    probes: list[int],
) -> None:
    with sessions.begin() as s:
        if s.scalar(select(func.count()).select_from(Project)) == 0:
            load_world(s)
        s.execute(delete(AuditEvent))
        s.execute(delete(Share))

    history: list[tuple[datetime, frozenset[str]]] = []
    when = t0
    for step, groups in operations:
        when += step
        with sessions.begin() as s:
            sharing.set_sharing(s, project="Int Project", groups=sorted(groups), actor="owner", now=when)
        history.append((when, groups))

    one_us = timedelta(microseconds=1)
    instants = {t0 - timedelta(days=1), when + timedelta(days=1)}
    for at, _ in history:
        instants |= {at - one_us, at, at + one_us}
    span = (when - t0) or one_us
    instants |= {t0 + span * p / 10**6 for p in probes}

    with sessions.begin() as s:
        records = sharing.history(s, "Int Project")
        shares = [GroupShare(r.group, KINDS[r.group], r.granted_at, r.revoked_at) for r in records]
        for instant in sorted(instants):
            expected = replay(history, instant)
            got = {g.name for g in sharing.shared_at(s, "Int Project", instant)}
            assert got == expected, f"at {instant.isoformat()}"
            # The rule deliveries use (delivery.snapshot) agrees: exactly the external groups shared then.
            delivered = set(snapshot_pool("SLX-1", "Int Project", shares, instant).groups)
            assert delivered == {g for g in expected if KINDS[g] is GroupKind.EXTERNAL}, (
                f"at {instant.isoformat()}"
            )
        # "now" agrees with the last change, and the history never has two open rows for one group.
        now_groups = [g.name for g in sharing.project_view(s, "Int Project").shared_with]
        assert sorted(now_groups) == sorted(history[-1][1])
        open_rows = [r.group for r in records if r.revoked_at is None]
        assert len(open_rows) == len(set(open_rows))
