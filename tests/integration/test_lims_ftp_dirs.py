"""A LIMS import never separates a group's delivered files from its directory, nor hands them to another
group (issue 8 item 2), on SQLite and PostgreSQL, with deliveries recorded through the real ledger."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from seqshare.db.models import Delivery, DeliveryState, Group
from seqshare.errors import InvalidInput
from seqshare.services import leases, ledger, lims, purge
from tests.integration.test_lims_import import _dump
from tests.runs import RUN_ID, load_scenario
from tests.world import WORLD

DELIVERED = datetime(2026, 3, 2, 12, tzinfo=UTC)  # Ext Co's TTL is the default 30 days
FILES = [f"extco/{RUN_ID}/SLX-1/S1_R1.fastq.gz", f"extco/{RUN_ID}/SLX-1/S1_R2.fastq.gz"]


def _groups(**changes: dict[str, Any]) -> dict[str, Any]:
    """WORLD's groups with some changed (by name) and others added."""
    data = {"groups": copy.deepcopy(WORLD["groups"])}
    for g in data["groups"]:
        g.update(changes.pop(g["name"], {}))
    data["groups"] += [{"name": name, **fields} for name, fields in changes.items()]
    return data


def _import(sessions: sessionmaker[Session], tmp_path: Path, data: dict[str, Any]) -> lims.ImportReport:
    path = tmp_path / "export.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    export = lims.read_export(path)
    with sessions.begin() as s:
        return lims.import_export(s, export)


def _refused(sessions: sessionmaker[Session], tmp_path: Path, data: dict[str, Any], message: str) -> None:
    """The import is refused with `message` and the database is exactly as before."""
    with sessions() as s:
        before = _dump(s)
    with pytest.raises(InvalidInput, match=message) as caught:
        _import(sessions, tmp_path, data)
    assert "\n" not in str(caught.value)
    with sessions() as s:
        assert _dump(s) == before


def _dirs(sessions: sessionmaker[Session]) -> dict[str, str | None]:
    with sessions() as s:
        return {g.name: g.ftp_dir for g in s.scalars(select(Group)) if g.ftp_dir}


@pytest.fixture
def delivered(sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    """The test world and its run, with two files delivered to Ext Co (in `extco/`) and not yet purged."""
    with sessions.begin() as s:
        load_scenario(s)
        for path in FILES:
            ledger.record_delivery(
                s,
                run_id=RUN_ID,
                group="Ext Co",
                pool="SLX-1",
                remote_path=path,
                size=100,
                md5="0" * 32,
                delivered_at=DELIVERED,
            )
    return sessions


def test_moving_a_group_and_giving_its_directory_to_a_new_group_is_refused(delivered, tmp_path) -> None:
    """The issue's file: Ext Co to `extco2`, a new group B gets `extco`, where Ext Co's files are."""
    hostile = _groups(**{"Ext Co": {"ftp_dir": "extco2"}, "B": {"kind": "external", "ftp_dir": "extco"}})
    _refused(
        delivered,
        tmp_path,
        hostile,
        r"^groups\[3\] \(Ext Co\)\.ftp_dir: cannot move group Ext Co's directory from 'extco' to 'extco2': "
        r"2 delivered file\(s\) of the group, not yet purged, would be left outside its directory "
        r"\(the last expires 2026-04-01 12:00:00 UTC\); wait until they are purged .*seqshare purge "
        r"--group 'Ext Co'",
    )
    assert _dirs(delivered)["Ext Co"] == "extco"


@pytest.mark.parametrize("new_dir", ["extco2", "extco/inner", "elsewhere"])
def test_a_group_with_live_files_keeps_its_directory(delivered, tmp_path, new_dir) -> None:
    _refused(
        delivered,
        tmp_path,
        _groups(**{"Ext Co": {"ftp_dir": new_dir}}),
        rf"groups\[3\] \(Ext Co\)\.ftp_dir: cannot move .* to '{new_dir}': 2 delivered file\(s\)",
    )


def test_a_group_with_live_files_cannot_become_internal(delivered, tmp_path) -> None:
    _refused(
        delivered,
        tmp_path,
        _groups(**{"Ext Co": {"kind": "internal", "ftp_dir": None}}),
        r"groups\[3\] \(Ext Co\)\.kind: group Ext Co cannot become internal \(its directory 'extco' would "
        r"be forgotten\): 2 delivered file\(s\)",
    )


def test_once_its_files_are_purged_the_group_may_move_and_its_old_directory_be_reused(
    delivered, tmp_path
) -> None:
    with delivered.begin() as s:
        ids = [d.id for d in s.scalars(select(Delivery))]
        purge.mark_purged(s, ids, at=DELIVERED + timedelta(days=31), by="test")
    _import(
        delivered,
        tmp_path,
        _groups(**{"Ext Co": {"ftp_dir": "extco2"}, "B": {"kind": "external", "ftp_dir": "extco"}}),
    )
    assert _dirs(delivered) == {"Ext Co": "extco2", "B": "extco", "Ext Two": "exttwo", "Special": "special"}


def _legacy_move(sessions: sessionmaker[Session]) -> None:
    """The state an import made before this rule: Ext Co moved to `extco2`, its live files left in `extco`."""
    with sessions.begin() as s:
        s.execute(update(Group).where(Group.name == "Ext Co").values(ftp_dir="extco2"))


@pytest.mark.parametrize("taken", ["extco", f"extco/{RUN_ID}"])
def test_a_directory_holding_another_groups_live_files_is_not_given_away(delivered, tmp_path, taken) -> None:
    _legacy_move(delivered)
    data = _groups(**{"Ext Co": {"ftp_dir": "extco2"}, "B": {"kind": "external", "ftp_dir": taken}})
    _refused(
        delivered,
        tmp_path,
        data,
        rf"^groups\[6\] \(B\)\.ftp_dir: '{taken}' holds 2 delivered file\(s\) of group Ext Co \(the last "
        r"expires 2026-04-01 12:00:00 UTC\); it can be given to another group only after they are purged$",
    )


def test_moving_a_group_back_to_its_files_is_allowed(delivered, tmp_path) -> None:
    """The way out of the legacy state: the group's directory becomes again the one holding its files."""
    _legacy_move(delivered)
    report = _import(delivered, tmp_path, _groups())
    assert report.as_dict()["groups"]["updated"] == 1
    assert _dirs(delivered)["Ext Co"] == "extco"


def test_a_directory_name_with_like_wildcards_matches_only_itself(delivered, tmp_path) -> None:
    """`_` and `%` in a directory are literal: `ext_o` is not `extco`."""
    _legacy_move(delivered)
    _import(
        delivered,
        tmp_path,
        _groups(**{"Ext Co": {"ftp_dir": "extco2"}, "B": {"kind": "external", "ftp_dir": "ext_o"}}),
    )
    assert _dirs(delivered)["B"] == "ext_o"


def test_swapping_two_groups_directories_without_live_files_is_done(sessions, tmp_path) -> None:
    _import(sessions, tmp_path, _groups())
    report = _import(
        sessions, tmp_path, _groups(**{"Ext Co": {"ftp_dir": "exttwo"}, "Ext Two": {"ftp_dir": "extco"}})
    )
    assert report.as_dict()["groups"]["updated"] == 2
    assert _dirs(sessions) == {"Ext Co": "exttwo", "Ext Two": "extco", "Special": "special"}


def test_swapping_with_live_files_is_refused_in_one_line(delivered, tmp_path) -> None:
    _refused(
        delivered,
        tmp_path,
        _groups(**{"Ext Co": {"ftp_dir": "exttwo"}, "Ext Two": {"ftp_dir": "extco"}}),
        r"^groups\[3\] \(Ext Co\)\.ftp_dir: cannot move group Ext Co's directory from 'extco' to 'exttwo'",
    )


def test_a_group_being_delivered_to_keeps_its_directory(delivered, tmp_path) -> None:
    leases.acquire_lease(delivered, run_id=RUN_ID, group="Ext Two", holder="dag-run-1", now=DELIVERED)
    _refused(
        delivered,
        tmp_path,
        _groups(**{"Ext Two": {"ftp_dir": "two"}}),
        rf"groups\[4\] \(Ext Two\)\.ftp_dir: cannot move .* while run {RUN_ID} is being delivered to it "
        r"\(lease renewed 2026-03-02 12:00:00 UTC\)",
    )


def test_unchanged_directories_import_whatever_the_ledger_holds(delivered, tmp_path) -> None:
    report = _import(delivered, tmp_path, _groups())
    assert report.as_dict()["groups"] == {"created": 0, "updated": 0, "unchanged": 6}
    with delivered() as s:
        assert {d.state for d in s.scalars(select(Delivery))} == {DeliveryState.DELIVERED}
