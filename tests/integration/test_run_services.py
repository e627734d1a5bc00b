"""Registering a run folder, freezing its snapshot once, and the plan, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from seqshare.db.models import AuditEvent, Run, RunSnapshot, SnapshotEntry
from seqshare.delivery.snapshot import SnapshotSource
from seqshare.errors import InvalidInput
from seqshare.runfolder import read_run_folder
from seqshare.services import leases, ledger, runs, sharing
from tests.runs import DAY, EXPECTED, POOLS, RUN_ID, SEQUENCED, build_run, load_scenario

NOW = datetime(2026, 3, 5, tzinfo=UTC)
# Ext Co (external) owns Ext Project (SLX-5): it receives its own project's pool on every run.
EXPECTED_WITH_OWNER = {**EXPECTED, "Ext Co": EXPECTED["Ext Co"] | {"SLX-5"}}


@pytest.fixture
def run_path(tmp_path: Path) -> Path:
    return build_run(tmp_path, POOLS).path


def _freeze(sessions: sessionmaker[Session], run_path: Path, override: datetime | None = None):
    folder = read_run_folder(run_path)
    with sessions.begin() as s:
        runs.register_run(s, folder)
        return runs.freeze_snapshot(s, folder, override=override, actor="airflow:test", now=NOW)


def test_the_plan_follows_the_snapshot_rule(sessions, run_path) -> None:
    with sessions.begin() as s:
        load_scenario(s)
    plan = _freeze(sessions, run_path)
    assert (plan.instant, plan.source) == (SEQUENCED, SnapshotSource.LIMS)
    assert {g.group: set(g.pools) for g in plan.groups} == EXPECTED_WITH_OWNER
    withheld = {(p.pool, w.group, w.reason.value) for p in plan.pools for w in p.withheld}
    assert ("SLX-4", "Ext Co", "shared only after sequencing") in withheld
    assert ("SLX-5", "Other Lab", "internal group: access through the download tool, no copy") in withheld
    text = plan.render()
    assert "SLX-3 (project Member Project)" in text
    assert "delivered to: Special" in text


def test_the_snapshot_is_frozen_once_and_reused_after_sharing_changes(sessions, run_path) -> None:
    with sessions.begin() as s:
        load_scenario(s)
    first = _freeze(sessions, run_path)
    with sessions.begin() as s:  # sharing changes after the first DAG run...
        sharing.clear_sharing(s, project="Int Project", actor="owner", now=SEQUENCED + 3 * DAY)
        s.scalars(select(Run)).one().sequencing_started_at = SEQUENCED + 10 * DAY
    again = _freeze(sessions, run_path)  # ...do not change the re-run's plan
    assert again == first
    with sessions() as s:
        assert len(s.scalars(select(RunSnapshot)).all()) == 1
        entries = {(e.pool.name, e.group.name) for e in s.scalars(select(SnapshotEntry))}
    assert entries == {(p, g) for g, pools in EXPECTED_WITH_OWNER.items() for p in pools}


def test_an_override_is_used_and_audited_and_cannot_be_changed_later(sessions, run_path) -> None:
    with sessions.begin() as s:
        load_scenario(s)
    late = SEQUENCED + 2 * DAY  # after Member Project's revocation and Other Project's grant
    plan = _freeze(sessions, run_path, override=late)
    assert plan.source is SnapshotSource.OVERRIDE
    assert {g.group: set(g.pools) for g in plan.groups} == {
        "Ext Co": {"SLX-1", "SLX-2", "SLX-4", "SLX-5"},
        "Ext Two": {"SLX-1", "SLX-2"},
    }
    with sessions() as s:
        event = s.scalars(select(AuditEvent).where(AuditEvent.action == "run.snapshot_override")).one()
        assert (event.actor, event.after) == ("airflow:test", {"run": RUN_ID, "instant": late.isoformat()})
        assert event.before["lims"] == SEQUENCED.isoformat()
    with pytest.raises(InvalidInput, match="cannot be changed"):
        _freeze(sessions, run_path, override=late + DAY)
    assert _freeze(sessions, run_path, override=late) == plan


def test_without_a_lims_start_the_instruments_time_is_used(sessions, tmp_path) -> None:
    from tests.world import load_world

    with sessions.begin() as s:
        load_world(s)
    plan = _freeze(sessions, build_run(tmp_path, {"SLX-1": ["S1"]}).path)
    assert plan.source is SnapshotSource.INSTRUMENT
    assert plan.instant == datetime(2023, 12, 15, 18, 0, 49, tzinfo=UTC)  # RunInfo.xml Date, read as UTC


def test_a_sample_sheet_naming_an_unknown_pool_is_refused_with_file_and_line(sessions, tmp_path) -> None:
    with sessions.begin() as s:
        load_scenario(s)
    run = build_run(tmp_path, {"SLX-1": ["S1"], "SLX-999": ["S9"]}).path
    with pytest.raises(InvalidInput, match=r"SampleSheet\.csv:8: pool SLX-999 \(sample S9\) is not known"):
        _freeze(sessions, run)
    with sessions() as s:
        assert s.scalars(select(RunSnapshot)).all() == []


def test_the_ledger_records_once_and_refuses_a_different_file_under_the_same_name(sessions, run_path) -> None:
    with sessions.begin() as s:
        load_scenario(s)
    plan = _freeze(sessions, run_path)
    f = plan.group("Ext Co").files[0]
    args = {"run_id": RUN_ID, "group": "Ext Co", "pool": f.pool, "remote_path": f.remote_path, "size": f.size}
    with sessions.begin() as s:
        assert ledger.record_delivery(s, **args, md5="a" * 32, delivered_at=NOW) is True
        assert ledger.record_delivery(s, **args, md5="a" * 32, delivered_at=NOW + DAY) is False
        with pytest.raises(InvalidInput, match="ledger has md5"):
            ledger.record_delivery(s, **args, md5="b" * 32, delivered_at=NOW)
        (row,) = ledger.ledger(s, RUN_ID)
    assert (row.delivered_at, row.expires_at, row.state) == (NOW, NOW + 30 * DAY, "delivered")


def test_a_rerun_after_the_run_folder_changed_is_refused(sessions, run_path) -> None:
    with sessions.begin() as s:
        load_scenario(s)
    _freeze(sessions, run_path)
    fastq = next((run_path / "BCLConvert" / "SLX-1").glob("S1_*_L001_R1_001.fastq.gz"))
    fastq.write_bytes(fastq.read_bytes() + b"re-demultiplexed")
    with pytest.raises(
        InvalidInput, match=r"changed since its snapshot was frozen .*SLX-1:BCLConvert/SLX-1/S1_"
    ):
        _freeze(sessions, run_path)


def test_a_run_id_that_is_not_a_safe_folder_name_is_refused(sessions, tmp_path) -> None:
    with sessions.begin() as s:
        load_scenario(s)
    run = build_run(tmp_path, {"SLX-1": ["S1"]}).path
    for name in ("RunInfo.xml", "RunParameters.xml"):
        (run / name).write_text((run / name).read_text().replace(RUN_ID, "-x y"))
    with pytest.raises(InvalidInput, match="run id '-x y' is not a safe folder name"):
        _freeze(sessions, run)
    with sessions() as s:
        assert s.scalars(select(Run).where(Run.run_id == "-x y")).all() == []


def test_a_group_whose_ftp_directory_moved_after_freezing_receives_nothing(
    sessions, run_path, tmp_path
) -> None:
    from seqshare.services.delivery import deliver_group
    from seqshare.transfer import LocalRemote
    from tests.world import WORLD, load_world

    with sessions.begin() as s:
        load_scenario(s)
    plan = _freeze(sessions, run_path)
    moved = [{**g, "ftp_dir": "extco-new"} if g["name"] == "Ext Co" else g for g in WORLD["groups"]]
    with sessions.begin() as s:
        load_world(s, {"groups": moved})
    target = tmp_path / "ftp"
    target.mkdir()
    with pytest.raises(
        InvalidInput, match="its FTP directory is now 'extco-new', the frozen plan says 'extco'"
    ):
        deliver_group(
            plan, "Ext Co", connect=lambda: LocalRemote(target), sessions=sessions, delivered_at=NOW
        )
    assert list(target.iterdir()) == []


def test_one_delivery_per_run_and_group_at_a_time_and_a_stale_lease_is_taken_over(
    sessions, run_path, tmp_path
):
    from seqshare.db.models import DeliveryLease
    from seqshare.services.delivery import deliver_group
    from seqshare.transfer import LocalRemote

    with sessions.begin() as s:
        load_scenario(s)
    plan = _freeze(sessions, run_path)
    target = tmp_path / "ftp"
    target.mkdir()
    now = datetime.now(UTC)

    def deliver():
        return deliver_group(
            plan,
            "Ext Co",
            connect=lambda: LocalRemote(target),
            sessions=sessions,
            delivered_at=now,
            log=lambda _: None,
        )

    leases.acquire_lease(sessions, run_id=RUN_ID, group="Ext Co", holder="other-dag-run", now=now)
    with pytest.raises(leases.DeliveryBusy, match="being delivered to Ext Co by other-dag-run"):
        deliver()
    assert list(target.iterdir()) == []  # nothing written while the other delivery holds the lease

    with sessions.begin() as s:  # ops can break it at once (`seqshare run unlock`)...
        assert leases.break_lease(s, RUN_ID, "Ext Co").holder == "other-dag-run"
    with sessions.begin() as s:
        assert leases.break_lease(s, RUN_ID, "Ext Co") is None
    leases.acquire_lease(sessions, run_id=RUN_ID, group="Ext Co", holder="other-dag-run", now=now)
    with sessions.begin() as s:  # ...or the other delivery died 14 hours ago without releasing its lease
        s.scalars(select(DeliveryLease)).one().acquired_at = now - timedelta(hours=14)
    report = deliver()
    assert report.sent == len(plan.group("Ext Co").files)
    with sessions() as s:
        assert s.scalars(select(DeliveryLease)).all() == []  # released after the delivery
