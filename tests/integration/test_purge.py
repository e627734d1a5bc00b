"""Purging a group's directory on a real sshd, with time moved by time-machine, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from sqlalchemy import select

from seqshare.db.models import Delivery
from seqshare.services import ledger
from seqshare.tasks import purge as tasks
from seqshare.transfer.sftp import SftpRemote
from tests.runs import RUN_ID, load_scenario

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
TTL = timedelta(days=30)
SECOND = timedelta(seconds=1)


@pytest.fixture
def world(sessions, sshd_server, sftp_root, monkeypatch, tmp_path):
    """Ext Co's directory with delivered, untracked, young and hostile entries; the ledger to match."""
    monkeypatch.setenv("SEQSHARE_DATABASE_URL", sessions.kw["bind"].url.render_as_string(hide_password=False))
    with sessions.begin() as s:
        load_scenario(s)

    def put(path: str, age: timedelta, data: bytes = b"x" * 100) -> Path:
        target = sftp_root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        when = (NOW - age).timestamp()
        os.utime(target, (when, when))
        return target

    def deliver(path: str, age: timedelta) -> None:
        put(path, age)
        with sessions.begin() as s:
            ledger.record_delivery(
                s,
                run_id=RUN_ID,
                group="Ext Co",
                pool="SLX-1",
                remote_path=path,
                size=100,
                md5="0" * 32,
                delivered_at=NOW - age,
            )

    base = f"extco/{RUN_ID}/SLX-1"
    deliver(f"{base}/expired.fastq.gz", TTL + SECOND)
    deliver(f"{base}/young.fastq.gz", TTL - timedelta(hours=1))
    put(f"extco/{RUN_ID}/README.txt", TTL + timedelta(days=1))  # ours, untracked: goes by mtime
    put("extco/old_system/legacy.txt", timedelta(days=40))  # put there by an older system: goes
    put("extco/unknown_new.txt", timedelta(days=1))  # untracked but young: stays, with a warning
    secret = tmp_path / "secret.txt"
    secret.write_text("outside every group directory")
    (sftp_root / "extco" / "link").symlink_to(secret)
    os.utime(sftp_root / "extco" / "link", ((NOW - 2 * TTL).timestamp(),) * 2, follow_symlinks=False)
    victim = put("exttwo/victim.txt", timedelta(days=90))
    with sessions.begin() as s:  # hostile ledger rows: a crafted path, and a file already gone
        ledger.record_delivery(
            s,
            run_id=RUN_ID,
            group="Ext Co",
            pool="SLX-1",
            remote_path="extco/../exttwo/victim.txt",
            size=100,
            md5="0" * 32,
            delivered_at=NOW - 2 * TTL,
        )
        ledger.record_delivery(
            s,
            run_id=RUN_ID,
            group="Ext Co",
            pool="SLX-1",
            remote_path=f"{base}/gone.fastq.gz",
            size=100,
            md5="0" * 32,
            delivered_at=NOW - 2 * TTL,
        )
    config = sshd_server.sftp_config(sftp_root)
    return {
        "root": sftp_root,
        "secret": secret,
        "victim": victim,
        "base": base,
        "connect": lambda guard: SftpRemote.connect(config, guard=guard),
    }


def files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() or p.is_symlink()}


def purge(world, *, dry_run: bool = False) -> dict:
    lines: list[str] = []
    with time_machine.travel(NOW, tick=False):
        summary = tasks.purge(
            "Ext Co", "extco", connect=world["connect"], dry_run=dry_run, actor="test-purge", log=lines.append
        )
    summary["lines"] = lines
    return summary


def test_expired_and_old_untracked_files_go_and_everything_else_stays(world, sessions) -> None:
    root, base = world["root"], world["base"]
    summary = purge(world)

    assert files(root) == {
        f"{base}/young.fastq.gz",
        "extco/unknown_new.txt",
        "extco/link",
        "exttwo/victim.txt",
    }
    assert not (root / "extco" / "old_system").exists()  # emptied folder removed
    assert (
        world["secret"].read_text() == "outside every group directory"
    )  # a symlink's target is never touched
    assert world["victim"].is_file()
    assert (summary["files"], summary["bytes_freed"]) == (3, 300)
    assert summary["untracked_kept"] == 1
    assert summary["untracked_purged"] == 2  # README.txt and the older system's file, reported as such
    refused = dict(summary["refused"])
    assert refused["extco/link"].startswith("symlink")
    assert refused["extco/../exttwo/victim.txt"].startswith("ledger path outside")
    with sessions.begin() as s:
        states = {
            d.remote_path: (d.state.value, d.purged_by, d.purged_at) for d in s.scalars(select(Delivery))
        }
    assert states == {  # the ledger says when and by whom (the DAG passes airflow:<run id>)
        f"{base}/expired.fastq.gz": ("purged", "test-purge", NOW),
        f"{base}/gone.fastq.gz": ("purged", "test-purge", NOW),  # already gone: recorded as such
        f"{base}/young.fastq.gz": ("delivered", None, None),
        "extco/../exttwo/victim.txt": ("delivered", None, None),  # refused, never acted on
    }
    # the task log: the summary per group, and the warning about files the ledger does not know
    assert summary["lines"][-1] == (
        "Ext Co (extco/): 3 files (2 not in the ledger), freed 300 bytes; 3 files remain "
        "(oldest 2026-04-02); 2 refused, 0 failed; WARNING: 1 files not in the ledger"
    )
    assert any("WARNING: 1 files not in the ledger" in line for line in summary["lines"])


def test_a_dry_run_lists_sizes_and_ages_and_deletes_nothing(world, sessions) -> None:
    before = files(world["root"])
    summary = purge(world, dry_run=True)
    assert files(world["root"]) == before
    assert summary["files"] == 3
    assert any(
        "expired.fastq.gz  100 bytes, 30 days old (delivered, expired)" in line for line in summary["lines"]
    )
    with sessions.begin() as s:
        assert {d.state.value for d in s.scalars(select(Delivery))} == {"delivered"}


def test_a_second_purge_the_same_day_does_nothing(world) -> None:
    purge(world)
    after_first = files(world["root"])
    again = purge(world)
    assert files(world["root"]) == after_first
    assert (again["files"], again["ledger_marked"], again["already_gone"]) == (0, 0, 0)


def test_a_group_with_its_own_ttl_purges_sooner(world, sessions) -> None:
    from tests.world import WORLD, load_world

    with sessions.begin() as s:
        load_world(
            s, {"groups": [{**g, "ttl_days": 1} if g["name"] == "Ext Co" else g for g in WORLD["groups"]]}
        )
    summary = purge(world)
    assert summary["ttl_days"] == 1
    assert "extco/unknown_new.txt" not in files(world["root"])  # one day old: past a one-day TTL


class SwapAfterListing:
    """A remote whose group swaps a folder for a symlink to another group's folder once the purge has
    listed its directory, just before the deletions (the window an attacker with write access has)."""

    def __init__(self, remote, swap) -> None:
        self._remote, self._swap = remote, swap

    def remove_many(self, *args, **kwargs):
        if self._swap is not None:
            self._swap()
            self._swap = None
        return self._remote.remove_many(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._remote, name)


@pytest.mark.parametrize("backend", ["sftp", "local"])
def test_a_folder_swapped_for_a_symlink_after_listing_deletes_nothing_of_another_group(
    world, sessions, backend
) -> None:
    from seqshare.transfer import LocalRemote

    root = world["root"]
    theirs = root / "exttwo" / RUN_ID / "SLX-1"
    theirs.mkdir(parents=True)
    (theirs / "expired.fastq.gz").write_bytes(b"Ext Two's fresh file")  # same name, delivered today
    (root / "exttwo" / RUN_ID / "empty").mkdir()  # an empty folder of theirs: never removed either

    def swap() -> None:  # Ext Co renames its run folder and puts a link to Ext Two's in its place
        (root / "extco" / RUN_ID).rename(root / "extco" / "moved")
        (root / "extco" / RUN_ID).symlink_to(root / "exttwo" / RUN_ID)

    def connect(guard):
        inner = world["connect"](guard) if backend == "sftp" else LocalRemote(root, guard=guard)
        return SwapAfterListing(inner, swap)

    (root / "extco" / RUN_ID / "empty").mkdir()  # listed as a folder to remove once empty
    summary = purge({**world, "connect": connect})

    assert (theirs / "expired.fastq.gz").read_bytes() == b"Ext Two's fresh file"
    assert (root / "exttwo" / RUN_ID / "empty").is_dir()
    refused = dict(summary["refused"])
    assert refused[f"{world['base']}/expired.fastq.gz"].startswith("a folder on its path is a symlink")
    assert summary["failed"] == []
    assert (root / "extco" / "moved" / "SLX-1" / "expired.fastq.gz").exists()  # refused: not deleted
    with sessions.begin() as s:
        row = s.scalars(select(Delivery).where(Delivery.remote_path == f"{world['base']}/expired.fastq.gz"))
        assert row.one().state.value == "delivered"  # not recorded as purged


def make_internal(sessions, group: str) -> None:
    """What a LIMS export making the group internal leaves behind (its FTP directory cleared)."""
    from seqshare.db.models import Group
    from seqshare.rules import GroupKind

    with sessions.begin() as s:
        grp = s.scalars(select(Group).where(Group.name == group)).one()
        grp.kind, grp.ftp_dir = GroupKind.INTERNAL, None


def test_a_group_made_internal_is_still_purged_in_the_directory_its_deliveries_are_under(
    world, sessions
) -> None:
    make_internal(sessions, "Ext Co")
    targets = tasks.groups_to_purge()
    assert {"group": "Ext Co", "ftp_dir": "extco", "label": "Ext Co (former directory extco)"} in targets
    assert {t["group"] for t in targets} == {"Ext Co", "Ext Two", "Special"}

    summary = purge(world)
    assert f"{world['base']}/expired.fastq.gz" not in files(world["root"])
    assert f"{world['base']}/young.fastq.gz" in files(world["root"])
    assert (summary["files"], summary["ledger_marked"]) == (3, 1)


def test_a_former_directory_is_visited_until_what_the_ledger_does_not_hold_has_gone_too(
    world, sessions
) -> None:
    """A manifest rewritten by a resumed delivery is younger than the last ledger file: the directory is
    still visited for a time to live after that file was purged, so the manifest and folders go too."""
    make_internal(sessions, "Ext Co")
    manifest = world["root"] / world["base"] / "md5sums.txt"
    manifest.write_text("rewritten by a delivery resumed long after the files were sent\n")
    os.utime(manifest, (NOW.timestamp(),) * 2)

    def purge_at(when: datetime) -> None:
        with time_machine.travel(when, tick=False):
            for target in tasks.groups_to_purge():
                if target["group"] == "Ext Co":
                    tasks.purge(
                        "Ext Co", target["ftp_dir"], connect=world["connect"], dry_run=False, actor="t"
                    )

    purge_at(NOW + timedelta(days=2))  # the last ledger file (young.fastq.gz) goes; the manifest stays
    assert manifest.exists()
    with sessions.begin() as s:
        assert {d.state.value for d in s.scalars(select(Delivery)) if "exttwo" not in d.remote_path} == {
            "purged"
        }
    purge_at(NOW + TTL + timedelta(days=1))
    assert not manifest.exists()
    assert not (world["root"] / "extco" / RUN_ID).exists()  # its folders, emptied, removed


def test_a_group_whose_directory_moved_is_purged_in_both_without_refusing_its_own_rows(
    world, sessions
) -> None:
    from seqshare.db.models import Group

    with sessions.begin() as s:
        s.scalars(select(Group).where(Group.name == "Ext Co")).one().ftp_dir = "extco2"
    (world["root"] / "extco2").mkdir()
    targets = [(t["group"], t["ftp_dir"], t["label"]) for t in tasks.groups_to_purge()]
    assert [t for t in targets if t[0] == "Ext Co"] == [
        ("Ext Co", "extco", "Ext Co (former directory extco)"),
        ("Ext Co", "extco2", "Ext Co"),
    ]
    old = purge(world)
    assert f"{world['base']}/expired.fastq.gz" not in files(world["root"])
    assert old["group_dir"] == "extco" and old["ledger_marked"] == 1
    lines: list[str] = []
    with time_machine.travel(NOW, tick=False):
        new = tasks.purge(
            "Ext Co", "extco2", connect=world["connect"], dry_run=False, actor="t", log=lines.append
        )
    assert new["refused"] == []  # its rows under extco are extco's purge's business, not "outside"
    assert new["files"] == 0


def test_a_directory_handed_to_another_group_keeps_the_former_groups_live_files(world, sessions) -> None:
    from seqshare.db.models import Group

    base, root = world["base"], world["root"]
    kept = f"{base}/long_ttl.fastq.gz"
    (root / kept).write_bytes(b"y" * 100)
    os.utime(root / kept, ((NOW - timedelta(days=40)).timestamp(),) * 2)
    with sessions.begin() as s:  # delivered 40 days ago to a group with a one-year time to live
        ledger.record_delivery(
            s,
            run_id=RUN_ID,
            group="Ext Co",
            pool="SLX-1",
            remote_path=kept,
            size=100,
            md5="0" * 32,
            delivered_at=NOW - timedelta(days=40),
        )
        s.scalars(select(Delivery).where(Delivery.remote_path == kept)).one().expires_at = NOW + timedelta(
            days=325
        )
    make_internal(sessions, "Ext Co")
    with sessions.begin() as s:  # old data: the LIMS import refuses this today
        s.scalars(select(Group).where(Group.name == "Ext Two")).one().ftp_dir = "extco"

    lines: list[str] = []
    with time_machine.travel(NOW, tick=False):
        two = tasks.purge(
            "Ext Two", "extco", connect=world["connect"], dry_run=False, actor="t", log=lines.append
        )
    assert kept in files(root) and f"{base}/expired.fastq.gz" in files(root)  # Ext Co's, not Ext Two's
    assert dict(two["refused"])[kept].startswith("another group's delivery")
    assert two["files"] == 2  # README.txt and the older system's file: nobody's, older than the TTL

    ext_co = purge(world)  # Ext Co's own purge of its former directory takes its expired file only
    assert f"{base}/expired.fastq.gz" not in files(root)
    assert kept in files(root)
    assert ext_co["ledger_marked"] == 1
