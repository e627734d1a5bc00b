"""The sharing services on a real database: what a user sees, Set Sharing semantics, history and audit."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session, sessionmaker

from seqshare.db.engine import make_engine, make_sessions
from seqshare.db.models import AuditEvent, Share
from seqshare.errors import ConcurrentChange, InvalidInput, NotFound, SharingRefused
from seqshare.services import audit, sharing
from tests import databases
from tests.world import load_world


@pytest.fixture
def world(sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    with sessions.begin() as s:
        load_world(s)
    return sessions


def _counts(s: Session) -> tuple[int, int]:
    return s.scalar(select(func.count()).select_from(Share)), s.scalar(
        select(func.count()).select_from(AuditEvent)
    )


def test_a_user_sees_the_projects_of_their_whole_group_with_groups_and_pools(world, t0) -> None:
    with world.begin() as s:
        sharing.set_sharing(
            s, project="Member Project", groups=["Ext Two", "Other Lab"], actor="member", now=t0
        )
        projects = sharing.visible_projects(s, "owner")
    assert [(p.name, p.owner, [g.name for g in p.shared_with], list(p.pools)) for p in projects] == [
        ("Int Project", "owner", [], ["SLX-1", "SLX-2"]),
        ("Member Project", "member", ["Ext Two", "Other Lab"], ["SLX-3"]),
    ]


def test_the_owner_group_member_may_change_a_colleagues_project(world, t0) -> None:
    with world.begin() as s:
        change = sharing.set_sharing(s, project="Int Project", groups=["Other Lab"], actor="member", now=t0)
    assert change.after == ("Other Lab",)


def test_groups_offered_to_an_external_user_are_internal_groups_and_the_special_group(world) -> None:
    with world.begin() as s:
        offered = [g.name for g in sharing.shareable_groups(s, "extowner", "Ext Project")]
    assert offered == ["Other Lab", "Owner Lab", "Special", "Third Lab"]


def test_groups_offered_to_an_internal_user_are_all_but_the_projects_own(world) -> None:
    with world.begin() as s:
        offered = [g.name for g in sharing.shareable_groups(s, "owner", "Int Project")]
    assert offered == ["Ext Co", "Ext Two", "Other Lab", "Special", "Third Lab"]


def test_set_sharing_replaces_the_set_and_keeps_the_interval_of_a_group_kept(world, t0) -> None:
    t1 = t0 + timedelta(days=1)
    with world.begin() as s:
        sharing.set_sharing(s, project="Int Project", groups=["Other Lab", "Ext Co"], actor="owner", now=t0)
    with world.begin() as s:
        change = sharing.set_sharing(
            s, project="Int Project", groups=["Ext Co", "Special"], actor="owner", now=t1
        )
        records = sharing.history(s, "Int Project")
    assert (change.granted, change.revoked) == (("Special",), ("Other Lab",))
    assert [(r.group, r.granted_at, r.revoked_at) for r in records] == [
        ("Ext Co", t0, None),
        ("Other Lab", t0, t1),
        ("Special", t1, None),
    ]


def test_setting_the_same_groups_again_changes_nothing_and_records_nothing(world, t0) -> None:
    with world.begin() as s:
        sharing.set_sharing(s, project="Int Project", groups=["Ext Co"], actor="owner", now=t0)
    with world.begin() as s:
        before = _counts(s)
        change = sharing.set_sharing(
            s, project="Int Project", groups=["Ext Co"], actor="owner", now=t0 + timedelta(hours=1)
        )
        assert not change.changed
        assert _counts(s) == before


def test_every_change_is_audited_with_who_when_from_and_to(world, t0) -> None:
    t1 = t0 + timedelta(minutes=5)
    with world.begin() as s:
        sharing.set_sharing(s, project="Int Project", groups=["Ext Co"], actor="owner", now=t0, via="web")
        sharing.clear_sharing(s, project="Int Project", actor="member", now=t1)
        events = audit.audit_events(s, project="Int Project")
    assert [(e.at, e.actor, e.action, e.before, e.after, e.via) for e in events] == [
        (t0, "owner", "share.set", [], ["Ext Co"], "web"),
        (t1, "member", "share.clear", ["Ext Co"], [], "cli"),
    ]


def test_one_refused_group_refuses_the_whole_change(world, t0) -> None:
    with world() as s:
        with pytest.raises(SharingRefused, match="Ext Two"):
            sharing.set_sharing(
                s, project="Ext Project", groups=["Other Lab", "Ext Two"], actor="extowner", now=t0
            )
        s.rollback()
        assert _counts(s) == (0, 0)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"project": "Nope", "groups": ["Ext Co"], "actor": "owner"}, NotFound, "unknown project 'Nope'"),
        ({"project": "Int Project", "groups": ["Nope"], "actor": "owner"}, NotFound, "unknown group 'Nope'"),
        (
            {"project": "Int Project", "groups": ["Ext Co"], "actor": "nobody"},
            NotFound,
            "unknown user 'nobody'",
        ),
    ],
)
def test_unknown_names_are_clear_errors_and_change_nothing(world, t0, kwargs, error, message) -> None:
    with world() as s:
        with pytest.raises(error, match=message):
            sharing.set_sharing(s, **kwargs, now=t0)
        s.rollback()
        assert _counts(s) == (0, 0)


def test_a_change_dated_before_the_last_one_is_refused(world, t0) -> None:
    with world.begin() as s:
        sharing.set_sharing(s, project="Int Project", groups=["Ext Co"], actor="owner", now=t0)
    with world() as s, pytest.raises(InvalidInput, match="history cannot be rewritten"):
        sharing.clear_sharing(s, project="Int Project", actor="owner", now=t0 - timedelta(seconds=1))


def test_naive_instants_are_refused(world, t0) -> None:
    with world() as s, pytest.raises(InvalidInput, match="no time zone"):
        sharing.shared_at(s, "Int Project", t0.replace(tzinfo=None))


def test_a_share_kept_after_the_special_flag_moved_stays_but_cannot_be_regranted(world, t0) -> None:
    """Only added groups are checked: a share allowed when granted may be kept by a later Set Sharing."""
    moved = {
        "groups": [
            {"name": "Special", "kind": "external", "ftp_dir": "special", "special": False},
            {"name": "Ext Two", "kind": "external", "ftp_dir": "exttwo", "special": True},
        ]
    }
    with world.begin() as s:
        sharing.set_sharing(s, project="Ext Project", groups=["Special"], actor="extowner", now=t0)
        load_world(s, moved)
    with world.begin() as s:
        kept = sharing.set_sharing(
            s,
            project="Ext Project",
            groups=["Special", "Other Lab"],
            actor="extowner",
            now=t0 + timedelta(hours=1),
        )
        assert kept.after == ("Other Lab", "Special")
        sharing.clear_sharing(s, project="Ext Project", actor="extowner", now=t0 + timedelta(hours=2))
    with world() as s, pytest.raises(SharingRefused):
        sharing.set_sharing(
            s, project="Ext Project", groups=["Special"], actor="extowner", now=t0 + timedelta(hours=3)
        )


def test_snapshot_keeps_a_group_revoked_after_the_instant(world, t0: datetime) -> None:
    sequenced = t0 + timedelta(days=1)
    with world.begin() as s:
        sharing.set_sharing(s, project="Int Project", groups=["Ext Co"], actor="owner", now=t0)
        sharing.set_sharing(
            s, project="Int Project", groups=["Ext Two"], actor="owner", now=sequenced + timedelta(hours=2)
        )
        at_sequencing = [g.name for g in sharing.shared_at(s, "Int Project", sequenced)]
    assert at_sequencing == ["Ext Co"]


@pytest.mark.parametrize("bad", ["\x00", "\n", "\x1b", "\udcff"])
def test_a_name_that_is_not_text_is_bad_input_before_any_query(world, t0, bad: str) -> None:
    """A NUL reached PostgreSQL as a raw driver error; none of these can be any record's name."""
    calls = {
        "project": lambda s: sharing.project_view(s, f"Int{bad}Project"),
        "group": lambda s: sharing.set_sharing(
            s, project="Int Project", groups=[f"Ext{bad}Co"], actor="owner", now=t0
        ),
        "user": lambda s: sharing.visible_projects(s, f"own{bad}er"),
    }
    with world() as s:
        for kind, call in calls.items():
            with pytest.raises(InvalidInput, match=f"^{kind} .*: a name cannot hold an? "):
                call(s)
        assert _counts(s) == (0, 0)  # the transaction is still usable: nothing reached the database


def test_set_sharing_now_reads_the_clock_once_the_project_is_locked(world, t0) -> None:
    reads: list[datetime] = []

    def clock() -> datetime:
        reads.append(t0 + timedelta(minutes=len(reads)))
        return reads[-1]

    change = sharing.set_sharing_now(
        world, project="Int Project", groups=["Ext Co"], actor="owner", clock=clock
    )
    assert (change.at, change.after, reads) == (t0, ("Ext Co",), [t0])
    with world.begin() as s:
        assert [(e.at, e.after) for e in audit.audit_events(s, project="Int Project")] == [(t0, ["Ext Co"])]


def test_a_clock_behind_the_last_change_is_waited_out_then_refused_clearly(world, t0) -> None:
    with world.begin() as s:
        sharing.set_sharing(s, project="Int Project", groups=["Ext Co"], actor="owner", now=t0)
    waits: list[float] = []
    behind = iter([t0 - timedelta(seconds=2), t0 - timedelta(milliseconds=300), t0 + timedelta(seconds=1)])
    change = sharing.set_sharing_now(
        world, project="Int Project", groups=[], actor="owner", clock=lambda: next(behind), sleep=waits.append
    )
    assert (change.at, change.after, waits) == (t0 + timedelta(seconds=1), (), [1.0, 0.3])

    with pytest.raises(ConcurrentChange) as refused:
        sharing.set_sharing_now(
            world,
            project="Int Project",
            groups=["Ext Two"],
            actor="owner",
            clock=lambda: t0,
            sleep=waits.append,
        )
    assert str(refused.value) == (
        "the sharing of Int Project was not changed after 3 attempts "
        "(its last change is later than this host's clock, by 0:00:01); try again"
    )
    with world.begin() as s:
        assert len(audit.audit_events(s, project="Int Project")) == 2  # nothing more was written


def test_a_change_that_lost_the_race_for_the_sqlite_write_lock_is_retried(tmp_path, t0) -> None:
    """Another writer holds SQLite's write lock: the change waits (50 ms here, not 30 s), retries, goes on."""
    url = databases.scratch_sqlite(tmp_path)
    databases.migrated_engine(url).dispose()
    engine = make_engine(url)
    event.listen(engine, "connect", lambda conn, _: conn.execute("PRAGMA busy_timeout=50"))
    sessions = make_sessions(engine)
    with sessions.begin() as s:
        load_world(s)
    other = engine.connect()
    other.begin()  # BEGIN IMMEDIATE: this connection holds the write lock
    try:
        with pytest.raises(ConcurrentChange, match=r"after 2 attempts \(the database stayed locked"):
            sharing.set_sharing_now(
                sessions,
                project="Int Project",
                groups=["Ext Co"],
                actor="owner",
                clock=lambda: t0,
                attempts=2,
            )
        change = sharing.set_sharing_now(
            sessions,
            project="Int Project",
            groups=["Ext Co"],
            actor="owner",
            clock=lambda: t0,
            sleep=lambda _: other.rollback(),  # the other writer finishes while this one waits to retry
        )
        assert change.after == ("Ext Co",)
    finally:
        other.close()
        engine.dispose()


def test_a_change_decided_from_a_form_shown_before_another_change_is_refused_under_the_lock(
    world, t0
) -> None:
    """A page shows the groups, someone else changes them, then the page's change arrives: it must not
    silently undo the other change (the check runs under the project's lock, in the change's transaction)."""
    from seqshare.errors import StaleChange

    shown: list[str] = []  # the page was rendered while the project was shared with no group
    with world.begin() as s:  # another member shares it meanwhile
        sharing.set_sharing(s, project="Int Project", groups=["Ext Co"], actor="member", now=t0)

    with pytest.raises(
        StaleChange, match=r"changed since the form was shown \(it is now shared with Ext Co\)"
    ):
        sharing.set_sharing_now(
            world,
            project="Int Project",
            groups=["Ext Two"],
            actor="owner",
            clock=lambda: t0 + timedelta(minutes=1),
            expected_before=shown,
        )
    with world.begin() as s:
        assert [g.name for g in sharing.project_view(s, "Int Project").shared_with] == ["Ext Co"]
        assert len(audit.audit_events(s, project="Int Project")) == 1
    change = sharing.set_sharing_now(  # from the current state, it goes through
        world,
        project="Int Project",
        groups=["Ext Two"],
        actor="owner",
        clock=lambda: t0 + timedelta(minutes=2),
        expected_before=["Ext Co"],
    )
    assert change.after == ("Ext Two",)
