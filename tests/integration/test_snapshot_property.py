"""Property: for any history of Set Sharing / Do Not Share, "shared at T" equals a replay of the history; the
snapshot rule delivers to exactly the external groups of that replay plus an external owner (when its switches
are on); and a window of possible instants (a date only) is judged certain exactly when a brute-force replay
gives the same deliveries at every instant of it."""

from __future__ import annotations

from datetime import datetime, timedelta

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from seqshare.db.models import AuditEvent, Project, Share
from seqshare.delivery.instant import Precision, SequencingInstant, settle
from seqshare.delivery.snapshot import GroupShare, ProjectOwner, SnapshotSource, snapshot_pool
from seqshare.errors import InvalidInput
from seqshare.rules import GroupKind
from seqshare.services import sharing
from tests.world import WORLD, load_world

GROUPS = ["Other Lab", "Third Lab", "Ext Co", "Ext Two", "Special"]
KINDS = {g["name"]: GroupKind(g["kind"]) for g in WORLD["groups"]}
# The owner's group, for the snapshot rule: any group of the history, or one outside it (internal or not).
OWNERS = st.sampled_from([None, "Owner Lab", *GROUPS])
# Steps between changes: often none at all (same instant) or within one second.
STEPS_LIST = (
    timedelta(0),
    timedelta(microseconds=1),
    timedelta(milliseconds=500),
    timedelta(seconds=1),
    timedelta(hours=5),
    timedelta(days=3),
)
STEPS = st.sampled_from(STEPS_LIST)
# A window of possible instants: from just before (or at) one of the changes, for a microsecond to days.
WINDOWS = st.tuples(
    st.integers(min_value=0, max_value=11),
    st.sampled_from([-timedelta(microseconds=1), timedelta(0)]),
    st.sampled_from([timedelta(microseconds=1), timedelta(seconds=1), timedelta(hours=5), timedelta(days=1)]),
)
OPERATIONS = st.lists(st.tuples(STEPS, st.frozensets(st.sampled_from(GROUPS))), min_size=1, max_size=12)


def delivered_by_replay(
    history: list[tuple[datetime, frozenset[str]]], instant: datetime, owner: str | None, owner_on: bool
) -> set[str]:
    """Brute force: the external groups shared at the instant, and the owner's group if external and on."""
    groups = {g for g in replay(history, instant) if KINDS[g] is GroupKind.EXTERNAL}
    if owner is not None and KINDS[owner] is GroupKind.EXTERNAL and owner_on:
        groups.add(owner)
    return groups


def replay(history: list[tuple[datetime, frozenset[str]]], instant: datetime) -> set[str]:
    """Brute force: the set given by the last change made at or before the instant."""
    state: set[str] = set()
    for when, groups in history:
        if when <= instant:
            state = set(groups)
    return state


@example(  # Do Not Share then Set Sharing again at one instant: the same groups all day, so certain
    operations=[
        (timedelta(0), frozenset({"Ext Co"})),
        (timedelta(hours=5), frozenset()),
        (timedelta(0), frozenset({"Ext Co"})),
    ],
    probes=[],
    owner=None,
    group_switch=True,
    installation_switch=True,
    window=(1, -timedelta(hours=1), timedelta(days=1)),
)
@example(  # the owner's own share changes within the window: as owner it receives throughout, so certain
    operations=[
        (timedelta(0), frozenset({"Ext Co", "Ext Two"})),
        (timedelta(hours=5), frozenset({"Ext Two"})),
    ],
    probes=[],
    owner="Ext Co",
    group_switch=True,
    installation_switch=True,
    window=(1, -timedelta(hours=1), timedelta(days=1)),
)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    operations=OPERATIONS,
    probes=st.lists(st.integers(min_value=0, max_value=10**6), max_size=6),
    owner=OWNERS,
    group_switch=st.booleans(),
    installation_switch=st.booleans(),
    window=WINDOWS,
)
def test_shared_at_equals_a_replay_of_the_history(
    sessions: sessionmaker[Session],
    t0: datetime,
    operations: list[tuple[timedelta, frozenset[str]]],
    probes: list[int],
    owner: str | None,
    group_switch: bool,
    installation_switch: bool,
    window: tuple[int, timedelta, timedelta],
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

    project_owner = ProjectOwner(owner, KINDS[owner], group_switch) if owner else None
    owner_on = group_switch and installation_switch
    with sessions.begin() as s:
        records = sharing.history(s, "Int Project")
        shares = [GroupShare(r.group, KINDS[r.group], r.granted_at, r.revoked_at) for r in records]
        for instant in sorted(instants):
            expected = replay(history, instant)
            got = {g.name for g in sharing.shared_at(s, "Int Project", instant)}
            assert got == expected, f"at {instant.isoformat()}"
            # The rule deliveries use (delivery.snapshot) agrees: exactly the external groups shared then,
            # and the external owner's group when switched on (for itself and the installation).
            pool = snapshot_pool(
                "SLX-1", "Int Project", shares, instant, project_owner, owners_receive=installation_switch
            )
            assert set(pool.groups) == delivered_by_replay(history, instant, owner, owner_on), (
                f"at {instant.isoformat()}"
            )
            if owner is not None and KINDS[owner] is GroupKind.EXTERNAL and not owner_on:
                assert owner in pool.groups or [w.reason.name for w in pool.withheld if w.group == owner] == [
                    "OWNER_OFF_INSTALLATION" if not installation_switch else "OWNER_OFF_GROUP"
                ]
        # "now" agrees with the last change, and the history never has two open rows for one group.
        now_groups = [g.name for g in sharing.project_view(s, "Int Project").shared_with]
        assert sorted(now_groups) == sorted(history[-1][1])
        open_rows = [r.group for r in records if r.revoked_at is None]
        assert len(open_rows) == len(set(open_rows))

    # A window of possible instants (e.g. a date only) starting at or around a change: `settle` lets the run
    # go on exactly when every instant of the window gives the same deliveries (brute force at the window's
    # ends and around every change inside it).
    index, offset, length = window
    earliest = history[index % len(history)][0] + offset
    latest = earliest + length
    candidates = {earliest, latest} | {
        t for at, _ in history for t in (at - one_us, at, at + one_us) if earliest <= t <= latest
    }
    first = delivered_by_replay(history, earliest, owner, owner_on)
    constant = all(delivered_by_replay(history, t, owner, owner_on) == first for t in candidates)
    when = SequencingInstant(earliest, SnapshotSource.INSTRUMENT, Precision.DAY, "a window", latest)
    always = (
        {("Int Project", owner)} if project_owner and project_owner.receives(installation_switch) else set()
    )
    try:
        settled = settle("RUN", when, {"Int Project": shares}, always_entitled=always)
    except InvalidInput:
        assert not constant, f"refused, yet the same groups from {earliest} to {latest}"
    else:
        assert constant, f"accepted, yet the groups change between {earliest} and {latest}"
        assert settled.instant == earliest
