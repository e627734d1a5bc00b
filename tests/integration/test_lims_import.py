"""LIMS import: idempotent upserts, and bad input that names the record and field and writes nothing."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from seqshare.db.models import Base, Group, Run, Sample
from seqshare.errors import InvalidInput
from seqshare.services import lims
from tests.world import WORLD

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "lims.yaml"


def _dump(s: Session) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, for before/after comparisons."""
    return {
        t.name: sorted(map(tuple, s.execute(select(t)).all()), key=repr) for t in Base.metadata.sorted_tables
    }


def _import(sessions: sessionmaker[Session], path: Path) -> lims.ImportReport:
    export = lims.read_export(path)
    with sessions.begin() as s:
        return lims.import_export(s, export)


def test_importing_the_example_twice_changes_nothing_the_second_time(sessions, tmp_path) -> None:
    first = _import(sessions, EXAMPLE)
    with sessions() as s:
        after_first = _dump(s)
    second = _import(sessions, EXAMPLE)
    with sessions() as s:
        after_second = _dump(s)
    assert first.as_dict()["groups"] == {"created": 6, "updated": 0, "unchanged": 0}
    assert first.as_dict()["samples"]["created"] == 5
    assert not second.changed
    assert all(c["created"] == c["updated"] == 0 for c in second.as_dict().values())
    assert after_second == after_first


def test_json_and_yaml_of_the_same_export_give_the_same_database(sessions, tmp_path) -> None:
    as_json = tmp_path / "export.json"
    as_json.write_text(json.dumps(yaml.safe_load(EXAMPLE.read_text())))
    _import(sessions, as_json)
    assert not _import(sessions, EXAMPLE).changed


def test_a_changed_record_is_updated_in_place(sessions, tmp_path) -> None:
    data = copy.deepcopy(WORLD)
    path = tmp_path / "world.yaml"
    path.write_text(yaml.safe_dump(data))
    _import(sessions, path)
    data["pools"][0]["samples"][0]["index"] = "tttt"  # lower case is normalised
    data["runs"] = [
        {
            "run_id": "RUN_1",
            "started_at": "2026-03-01T09:30:00+01:00",
            "lanes": [{"lane": 1, "pools": ["SLX-1", "SLX-2"]}],
        }
    ]
    path.write_text(yaml.safe_dump(data))
    report = _import(sessions, path).as_dict()
    assert report["samples"]["updated"] == 1 and report["runs"]["created"] == 1
    with sessions() as s:
        assert s.scalar(select(Sample.index1).where(Sample.name == "S1")) == "TTTT"
        run = s.scalar(select(Run))
        assert run.sequencing_started_at.isoformat() == "2026-03-01T08:30:00+00:00"
        assert [(ln.lane, ln.pool.name) for ln in run.lanes] == [(1, "SLX-1"), (1, "SLX-2")]


def _with(change: dict[str, Any]) -> dict[str, Any]:
    data = copy.deepcopy(WORLD)
    for dotted, value in change.items():
        node: Any = data
        *path, last = dotted.split(".")
        for step in path:
            node = node[int(step)] if step.isdigit() else node[step]
        node[int(last) if last.isdigit() else last] = value
    return data


BAD = [
    ({"pools.3.id": "SLX-abc"}, r"pools\[3\] \(SLX-abc\)\.id: String should match pattern"),
    ({"pools.0.samples.0.index": "ACGX"}, r"pools\[0\] \(SLX-1\)\.samples\[0\]\.index: .*'ACGX'"),
    ({"users.2.group": "No Such Lab"}, r"users\[2\] \(other\)\.group: unknown group 'No Such Lab'"),
    ({"projects.1.owner": "ghost"}, r"projects\[1\] \(Member Project\)\.owner: unknown user 'ghost'"),
    ({"pools.4.project": "Ghost Project"}, r"pools\[4\] \(SLX-5\)\.project: unknown project"),
    ({"groups.3.ftp_dir": "../etc"}, r"groups\[3\] \(Ext Co\)\.ftp_dir: .*without '\.\.'"),
    ({"groups.3.ftp_dir": "./exttwo"}, r"groups\[3\] \(Ext Co\)\.ftp_dir: .*without '\.\.', '\.'"),
    ({"groups.3.ftp_dir": "."}, r"groups\[3\] \(Ext Co\)\.ftp_dir: .*without '\.\.', '\.'"),
    ({"groups.3.ftp_dir": "a//b"}, r"groups\[3\] \(Ext Co\)\.ftp_dir: .*empty parts"),
    ({"groups.3.ftp_dir": None}, r"groups\[3\] \(Ext Co\)\.ftp_dir: an external group needs its directory"),
    ({"groups.0.special": True}, r"groups\[0\] \(Owner Lab\)\.special: only an external group"),
    ({"groups.4.special": True}, r"more than one special group"),
    (
        {"groups.4.ftp_dir": "extco"},
        r"groups\[4\] \(Ext Two\)\.ftp_dir: 'extco' is already the directory of group Ext Co",
    ),
    (
        {"groups.4.ftp_dir": "extco/two"},
        r"groups\[3\] \(Ext Co\)\.ftp_dir: 'extco' and 'extco/two' \(group Ext Two\) are nested",
    ),
    ({"users.1.username": "owner"}, r"users\[1\] \(owner\): appears more than once"),
    ({"users.0.email": "not-an-email"}, r"users\[0\] \(owner\)\.email"),
    (
        {"groups.1.kind": "partner"},
        r"groups\[1\] \(Other Lab\)\.kind: Input should be 'internal' or 'external'",
    ),
    ({"projects.0.colour": "red"}, r"projects\[0\] \(Int Project\)\.colour: Extra inputs are not permitted"),
    (
        {"runs": [{"run_id": "R1", "started_at": "2026-03-01T09:30:00"}]},
        r"runs\[0\] \(R1\)\.started_at: .*time zone",
    ),
    (
        {"runs": [{"run_id": "R1", "lanes": [{"lane": 1, "pools": ["SLX-99"]}]}]},
        r"runs\[0\] \(R1\)\.lanes\[0\]\.pools: unknown pool 'SLX-99'",
    ),
    ({"runs": [{"run_id": "../R1"}]}, r"runs\[0\] \(\.\./R1\)\.run_id"),
]


@pytest.mark.parametrize(("change", "message"), BAD, ids=[m for _, m in BAD])
def test_one_bad_record_writes_nothing_and_names_record_and_field(
    sessions, tmp_path, change, message
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(_with(change)))
    with pytest.raises(InvalidInput, match=message):
        _import(sessions, path)
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Group)) == 0


def test_a_bad_file_after_a_good_import_leaves_the_good_data_unchanged(sessions, tmp_path) -> None:
    _import(sessions, EXAMPLE)
    with sessions() as s:
        before = _dump(s)
    data = yaml.safe_load(EXAMPLE.read_text())
    data["users"][0]["name"] = "Changed Name"  # a valid change early in the file...
    data["pools"][-1]["samples"][-1]["index"] = "NOT-DNA"  # ...and a bad record late in it
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(InvalidInput, match=r"pools\[2\] \(SLX-10003\)\.samples\[1\]\.index"):
        _import(sessions, path)
    with sessions() as s:
        assert _dump(s) == before


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("broken.yaml", "groups:\n  - name: [unclosed\n", r"broken\.yaml:\d+: not valid YAML"),
        ("broken.json", '{"groups": [}', r"broken\.json:1: not valid JSON"),
        ("list.yaml", "- a\n- b\n", r"expected a mapping"),
    ],
)
def test_unparseable_files_say_where(tmp_path, name, text, message) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(InvalidInput, match=message):
        lims.read_export(path)


def test_a_missing_file_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(InvalidInput, match="no such file"):
        lims.read_export(tmp_path / "missing.yaml")
