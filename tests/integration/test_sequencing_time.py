"""The issue's runs with date-only instrument files (no LIMS start), and the owner rule, through the services
on SQLite and PostgreSQL: nothing is decided on a guessed time, and an external owner receives its own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from seqshare.config import OWNER_DELIVERY_ENV
from seqshare.db.models import Group, Project, RunSnapshot, Share, SnapshotEntry
from seqshare.delivery.instant import Precision
from seqshare.delivery.snapshot import SnapshotSource
from seqshare.errors import InvalidInput
from seqshare.runfolder import read_run_folder
from seqshare.services import runs, sharing
from tests.runs import RUN_ID, build_run
from tests.world import load_world

NOW = datetime(2026, 3, 5, tzinfo=UTC)
DAY = datetime(2026, 3, 1, tzinfo=UTC)  # the day the instrument's files give ("260301")
H = timedelta(hours=1)


def date_only_run(parent: Path, day: str | None = "260301", run_id: str = RUN_ID) -> Path:
    """The NovaSeq 6000 run with its start as a MiSeq/HiSeq writes it: RunInfo.xml and RunParameters.xml
    hold only the date (or nothing, with ``day=None``)."""
    run = build_run(parent, {"SLX-1": ["S1"], "SLX-5": ["S2"]}).path
    for name, old, new in (
        ("RunInfo.xml", "<Date>12/15/2023 6:00:49 PM</Date>", f"<Date>{day}</Date>" if day else ""),
        (
            "RunParameters.xml",
            "<RunStartDate>231215</RunStartDate>",
            f"<RunStartDate>{day or ''}</RunStartDate>",
        ),
    ):
        text = (run / name).read_text()
        assert old in text
        (run / name).write_text(text.replace(old, new).replace(RUN_ID, run_id))
    return run


def freeze(sessions: sessionmaker[Session], run: Path, override: datetime | None = None):
    folder = read_run_folder(run)
    with sessions.begin() as s:
        runs.register_run(s, folder)
    with sessions.begin() as s:
        return runs.freeze_snapshot(s, folder, override=override, actor="airflow:test", now=NOW)


def receivers(plan) -> dict[str, set[str]]:
    return {g.group: set(g.pools) for g in plan.groups}


def nothing_frozen(sessions: sessionmaker[Session]) -> bool:
    with sessions() as s:
        return s.scalars(select(RunSnapshot)).all() == []


def test_a_group_revoked_at_10_is_not_sent_a_run_started_at_noon_the_run_stops_naming_it(
    sessions, tmp_path
) -> None:
    with sessions.begin() as s:
        load_world(s)
        sharing.set_sharing(
            s, project="Int Project", groups=["Ext Co", "Ext Two"], actor="owner", now=DAY - H
        )
        sharing.set_sharing(s, project="Int Project", groups=["Ext Two"], actor="owner", now=DAY + 10 * H)
    run = date_only_run(tmp_path)
    with pytest.raises(InvalidInput) as caught:
        freeze(sessions, run)  # before: frozen at midnight, Ext Co received the run
    message = str(caught.value)
    assert "\n" not in message
    assert "RunParameters.xml RunStartDate 260301 and RunInfo.xml Date 260301 are dates only" in message
    assert "project 'Int Project': Ext Co revoked at 2026-03-01T10:00:00+00:00" in message
    assert "sequencing_time override" in message
    assert nothing_frozen(sessions)
    plan = freeze(sessions, run, override=DAY + 12 * H)  # ops give the time: Ext Co is not sent the run
    assert receivers(plan) == {"Ext Two": {"SLX-1"}, "Ext Co": {"SLX-5"}}  # Ext Co only as SLX-5's owner
    assert (plan.source, plan.precision) == (SnapshotSource.OVERRIDE, Precision.EXACT)


def test_a_group_granted_at_11_16_59_of_a_run_started_at_11_17_02_the_run_stops_naming_it(
    sessions, tmp_path
) -> None:
    granted = DAY + timedelta(hours=11, minutes=16, seconds=59)
    with sessions.begin() as s:
        load_world(s)
        sharing.set_sharing(s, project="Int Project", groups=["Ext Two"], actor="owner", now=granted)
    run = date_only_run(tmp_path)
    with pytest.raises(
        InvalidInput, match=r"project 'Int Project': Ext Two granted at 2026-03-01T11:16:59\+00:00"
    ):
        freeze(sessions, run)  # before: frozen at midnight, Ext Two missed the run
    assert nothing_frozen(sessions)
    plan = freeze(sessions, run, override=DAY + timedelta(hours=11, minutes=17, seconds=2))
    assert receivers(plan)["Ext Two"] == {"SLX-1"}


def test_a_day_without_a_change_goes_on_frozen_at_the_days_start_and_says_why(sessions, tmp_path) -> None:
    with sessions.begin() as s:
        load_world(s)
        sharing.set_sharing(
            s, project="Int Project", groups=["Ext Two", "Other Lab"], actor="owner", now=DAY - H
        )
        # changes that cannot alter a delivery: an internal group, the next day
        sharing.set_sharing(s, project="Int Project", groups=["Ext Two"], actor="owner", now=DAY + 9 * H)
        sharing.set_sharing(
            s, project="Int Project", groups=["Ext Two", "Ext Co"], actor="owner", now=DAY + 24 * H
        )
    plan = freeze(sessions, date_only_run(tmp_path))
    assert receivers(plan) == {"Ext Two": {"SLX-1"}, "Ext Co": {"SLX-5"}}
    assert (plan.instant, plan.source, plan.precision) == (DAY, SnapshotSource.INSTRUMENT, Precision.DAY)
    assert plan.instant_note is not None
    assert "the day 2026-03-01 in UTC; certain: no share of this run's projects changed" in plan.instant_note
    assert "sequencing time: RunParameters.xml RunStartDate 260301" in plan.render()
    with sessions() as s:
        frozen = s.scalars(select(RunSnapshot)).one()
        assert (frozen.instant, frozen.source) == (DAY, SnapshotSource.INSTRUMENT)
        assert frozen.plan["precision"] == "day" and frozen.plan["instant_note"] == plan.instant_note


def test_the_run_ids_date_is_a_day_named_as_such_and_no_date_at_all_asks_for_an_override(
    sessions, tmp_path
) -> None:
    with sessions.begin() as s:
        load_world(s)
    plan = freeze(sessions, date_only_run(tmp_path / "a", day=None))
    assert plan.precision is Precision.DAY and plan.instant == datetime(2023, 12, 15, tzinfo=UTC)
    assert plan.instant_note is not None and plan.instant_note.startswith("date from the run id (231215;")
    undated = date_only_run(tmp_path / "b", day=None, run_id="A01535_0435_BH23F5DSXC")
    with pytest.raises(
        InvalidInput, match=r"no sequencing start time .* trigger it with a sequencing_time override"
    ):
        freeze(sessions, undated)


def owner_entries(sessions: sessionmaker[Session]) -> set[tuple[str, str]]:
    with sessions() as s:
        return {(e.pool.name, e.group.name) for e in s.scalars(select(SnapshotEntry))}


def test_an_external_owner_receives_its_own_project_and_is_frozen_in_the_snapshot(sessions, tmp_path) -> None:
    with sessions.begin() as s:
        load_world(s)  # nothing shared at all: Ext Co owns Ext Project (SLX-5)
    plan = freeze(sessions, date_only_run(tmp_path))
    (slx5,) = [p for p in plan.pools if p.pool == "SLX-5"]
    assert (slx5.groups, slx5.owner, slx5.reason("Ext Co")) == (("Ext Co",), "Ext Co", "owner")
    assert "delivered to: Ext Co (owner)" in plan.render()
    assert receivers(plan) == {"Ext Co": {"SLX-5"}}
    assert owner_entries(sessions) == {("SLX-5", "Ext Co")}


def test_the_owner_rule_switched_off_for_the_group(sessions, tmp_path) -> None:
    with sessions.begin() as s:
        load_world(s)
        s.scalars(select(Group).where(Group.name == "Ext Co")).one().receives_own_projects = False
    plan = freeze(sessions, date_only_run(tmp_path))
    assert plan.groups == ()
    assert "withheld from Ext Co: owner's group: switched off for this group" in plan.render()
    assert owner_entries(sessions) == set()


def test_the_owner_rule_switched_off_for_the_installation(sessions, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(OWNER_DELIVERY_ENV, "off")
    with sessions.begin() as s:
        load_world(s)
    plan = freeze(sessions, date_only_run(tmp_path))
    assert plan.groups == ()
    assert "withheld from Ext Co: owner's group: switched off for this installation" in plan.render()
    assert owner_entries(sessions) == set()


@pytest.mark.parametrize("receives_own", [True, False])
def test_an_owners_own_share_changing_that_day_matters_only_when_it_is_switched_off(
    sessions, tmp_path, receives_own
) -> None:
    # Ext Co's share of its own project, revoked at 08:00 that day (recorded while another group owned the
    # project, say): as owner it receives SLX-5 at every instant, so the change cannot matter; switched off,
    # whether it receives depends on the hour, so the run stops.
    with sessions.begin() as s:
        load_world(s)
        ext_co = s.scalars(select(Group).where(Group.name == "Ext Co")).one()
        ext_co.receives_own_projects = receives_own
        project = s.scalars(select(Project).where(Project.name == "Ext Project")).one()
        s.add(
            Share(
                project=project,
                group=ext_co,
                granted_at=DAY - 24 * H,
                granted_by=project.owner,
                revoked_at=DAY + 8 * H,
                revoked_by=project.owner,
            )
        )
    run = date_only_run(tmp_path)
    if receives_own:
        assert receivers(freeze(sessions, run)) == {"Ext Co": {"SLX-5"}}
    else:
        with pytest.raises(
            InvalidInput, match="project 'Ext Project': Ext Co revoked at 2026-03-01T08:00:00"
        ):
            freeze(sessions, run)
