"""Hostile LIMS exports (issue 8 items 6, 10, 11, 12): duplicate keys, deep nesting, huge files and values,
non-ASCII digits, control characters. Each is one InvalidInput naming the file and where, and writes nothing
(on SQLite and PostgreSQL); none is a RecursionError or a raw database error."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from seqshare.db.models import Group
from seqshare.errors import InvalidInput
from seqshare.services import lims
from seqshare.services.lims_read import MAX_BYTES
from tests.world import WORLD


def _refused(path: Path, message: str) -> str:
    with pytest.raises(InvalidInput, match=message) as caught:
        lims.read_export(path)
    text = str(caught.value)
    assert "\n" not in text and len(text) < 600, text
    return text


# --- item 11: duplicate keys -------------------------------------------------------------------------

DUPLICATE_YAML = [
    (
        "groups:\n  - {name: A, kind: internal}\nusers: []\ngroups:\n  - {name: B, kind: internal}\n",
        r"^.*dup\.yaml:4: key 'groups' given twice in one mapping \(first on line 1\)$",
    ),
    (
        "groups:\n  - name: Ext\n    kind: external\n    ftp_dir: ext\n    ttl_days: 7\n    ttl_days: 3650\n",
        r"dup\.yaml:6: key 'ttl_days' given twice in one mapping \(first on line 5\)",
    ),
    ("groups: [{name: A, kind: internal, name: B}]\n", r"dup\.yaml:1: key 'name' given twice"),
    ('groups: [{name: A, kind: internal, "kind": external}]\n', r"dup\.yaml:1: key 'kind' given twice"),
]


@pytest.mark.parametrize(("text", "message"), DUPLICATE_YAML)
def test_a_key_given_twice_in_yaml_is_refused_with_its_line(tmp_path, text, message) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text(text)
    _refused(path, message)


def test_a_yaml_merge_key_may_still_be_overridden(tmp_path) -> None:
    """`<<: *defaults` then a key of its own is what a merge is for, not a duplicate."""
    path = tmp_path / "merge.yaml"
    path.write_text(
        "groups:\n"
        "  - &ext {name: A, kind: external, ftp_dir: a, ttl_days: 7}\n"
        "  - <<: *ext\n    name: B\n    ftp_dir: b\n"
    )
    export = lims.read_export(path)
    assert [(g.name, g.ftp_dir, g.ttl_days) for g in export.groups] == [("A", "a", 7), ("B", "b", 7)]


DUPLICATE_JSON = [
    ('{"groups": [], "users": [], "groups": []}', r"^.*dup\.json:1: key 'groups' given twice in one object$"),
    (
        '{"groups": [{"name": "Owner Lab", "kind": "internal"},\n {"name": "Ext", "kind": "external",\n'
        '  "ftp_dir": "ext", "ttl_days": 7,\n  "ttl_days": 3650}]}',
        r"dup\.json:4: groups\[1\] \(Ext\): key 'ttl_days' given twice in one object",
    ),
    (
        '{"pools": [{"id": "SLX-1", "project": "P",\n"samples": [{"name": "S", "name": "T"}]}]}',
        r"dup\.json:2: pools\[0\] \(SLX-1\)\.samples\[0\]: key 'name' given twice",
    ),
    (  # the same key in sibling objects, and a value equal to a key, are no duplicates before the real one
        '{"groups": [{"name": "name", "kind": "internal"}, {"name": "B", "kind": "internal"}],\n'
        ' "users": [], "users": []}',
        r"dup\.json:2: key 'users' given twice in one object",
    ),
]


@pytest.mark.parametrize(("text", "message"), DUPLICATE_JSON)
def test_a_key_given_twice_in_json_is_refused_with_its_line_and_path(tmp_path, text, message) -> None:
    path = tmp_path / "dup.json"
    path.write_text(text)
    _refused(path, message)


# --- item 10: bounded reading ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("deep.yaml", "groups: " + "[" * 10_000 + "]" * 10_000 + "\n", r"deep\.yaml:1: nested more than 20"),
        ("deep.yaml", "a:\n" + "".join(" " * i + "b:\n" for i in range(1, 200)), r"deep\.yaml:20: nested"),
        (
            "deep.json",
            '{"groups": ' + "[" * 10_000 + "]" * 10_000 + "}",
            r"deep\.json:1: nested more than 20",
        ),
        ("deep.json", '{"a":\n' + '{"b":\n' * 5_000 + "1" + "}" * 5_001, r"deep\.json:21: nested more than"),
        ("big.json", '{"groups": ' + "1" * 5_000 + "}", r"big\.json: not valid JSON: 'Exceeds the limit"),
        (
            "date.yaml",
            "runs:\n  - {run_id: R1, started_at: 2026-02-30}\n",
            r"date\.yaml: not valid YAML: .*day",
        ),
        ("latin1.yaml", "groups:\n  - {name: Caf\xe9, kind: internal}\n", r"latin1\.yaml:2: not UTF-8 text"),
    ],
)
def test_input_that_crashed_the_parser_is_bad_input_naming_the_file(tmp_path, name, text, message) -> None:
    path = tmp_path / name
    path.write_bytes(text.encode("latin-1" if name.startswith("latin1") else "utf-8"))
    _refused(path, message)


def test_a_brackets_inside_a_json_string_are_not_nesting(tmp_path) -> None:
    path = tmp_path / "ok.json"
    data = {"groups": [{"name": "[" * 50 + ' "{' * 30, "kind": "internal"}]}
    path.write_text(json.dumps(data))
    assert lims.read_export(path).groups[0].name.startswith("[[[")


def test_a_file_larger_than_the_bound_is_refused_before_it_is_parsed(tmp_path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("wb") as f:
        f.truncate(MAX_BYTES + 1)  # sparse: costs no disk
    _refused(path, r"huge\.yaml: larger than 32 MiB")


def test_a_device_that_never_ends_is_refused(tmp_path) -> None:
    _refused(Path("/dev/zero"), r"/dev/zero: larger than 32 MiB")


def test_a_million_bad_records_give_one_error_not_a_million(tmp_path) -> None:
    """Validation stops at the first bad record of a list (it used to build every error: gigabytes)."""
    path = tmp_path / "flood.json"
    path.write_text(json.dumps({"groups": [1] * 100_000, "users": [1] * 100_000}))
    text = _refused(path, r"flood\.json: groups\[0\]: Input should be a valid dictionary")
    assert "more error" not in text or "and 1 more error(s)" in text


def test_a_yaml_alias_bomb_is_refused_with_a_summary_not_its_expansion(tmp_path) -> None:
    """Nine lines of aliases are 9**9 strings; the error shows the shape, never builds the whole repr."""
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join([*lines, "groups: *a8", ""]))
    text = _refused(
        path, r"bomb\.yaml: groups\[0\]: Input should be a valid dictionary .*\(got \[\[\[\.\.\.\], "
    )
    assert len(text) - len(str(path)) < 400


# --- item 12: ASCII ids, printable names, bounded quotes, refused on both backends -------------------


def _with(change: dict[str, Any]) -> dict[str, Any]:
    data = copy.deepcopy(WORLD)
    for dotted, value in change.items():
        node: Any = data
        *path, last = dotted.split(".")
        for step in path:
            node = node[int(step)] if step.isdigit() else node[step]
        node[int(last) if last.isdigit() else last] = value
    return data


def _load(sessions: sessionmaker[Session], path: Path) -> None:
    export = lims.read_export(path)
    with sessions.begin() as s:
        lims.import_export(s, export)


RUN = {"run_id": "RUN_1", "lanes": [{"lane": 1, "pools": ["SLX-1"]}]}
CONTROL = r"must not contain control characters, line breaks or bidirectional controls"
BAD = [
    ({"pools.4.id": "SLX-\u0661\u0662\u0663"}, r"pools\[4\] \(SLX-١٢٣\)\.id: String should match pattern"),
    ({"pools.4.id": "SLX-\uff11"}, r"pools\[4\] \(SLX-１\)\.id: String should match pattern"),
    ({"pools.4.id": "SLX-" + "1" * 60}, r"pools\[4\] .*\.id: String should have at most 50 characters"),
    ({"users.0.username": "own\u0663r"}, r"users\[0\] \(own٣r\)\.username: String should match"),
    (
        {"groups.2.name": "Third\x00Lab"},
        rf"groups\[2\] \('Third\\x00Lab'\)\.name: .*{CONTROL}: a control character \('\\x00' at position 5\)",
    ),
    ({"groups.2.name": "Third\nLab"}, rf"groups\[2\] \('Third\\nLab'\)\.name: .*{CONTROL}"),
    ({"groups.2.name": "Third\u202eLab"}, rf"groups\[2\] \('Third\\u202eLab'\)\.name: .*{CONTROL}"),
    ({"projects.1.name": "Member\tProject"}, rf"projects\[1\] \('Member\\tProject'\)\.name: .*{CONTROL}"),
    ({"users.1.name": "Max\x1b[31mMember"}, rf"users\[1\] \(member\)\.name: .*{CONTROL}"),
    ({"users.1.email": "max\x00@lab.example"}, rf"users\[1\] \(member\)\.email: .*{CONTROL}"),
    ({"pools.0.samples.0.name": "S\u20281"}, rf"pools\[0\] \(SLX-1\)\.samples\[0\]\.name: .*{CONTROL}"),
    ({"runs": [{**RUN, "run_folder": "/data/runs/R\x00"}]}, rf"runs\[0\] \(RUN_1\)\.run_folder: .*{CONTROL}"),
    ({"runs": [{**RUN, "flowcell": "H\u0663"}]}, r"runs\[0\] \(RUN_1\)\.flowcell: String should match"),
    ({"groups.3.ftp_dir": "x" * 300}, r"groups\[3\] \(Ext Co\)\.ftp_dir: String should have at most 255"),
    (
        {"groups.1.receives_own_projects": False},
        r"groups\[1\] \(Other Lab\)\.receives_own_projects: applies to external groups only",
    ),
]


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
@pytest.mark.parametrize(("change", "message"), BAD, ids=[m[:60] for _, m in BAD])
def test_a_bad_name_writes_nothing_and_names_the_record(
    sessions: sessionmaker[Session], tmp_path, change, message, suffix
) -> None:
    path = tmp_path / f"bad{suffix}"
    data = _with(change)
    path.write_text(json.dumps(data) if suffix == ".json" else yaml.safe_dump(data, allow_unicode=True))
    with pytest.raises(InvalidInput, match=message) as caught:
        _load(sessions, path)
    assert "\n" not in str(caught.value)
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Group)) == 0


def test_an_error_line_quotes_at_most_about_200_characters_of_a_value(tmp_path) -> None:
    path = tmp_path / "long.yaml"
    path.write_text(yaml.safe_dump(_with({"users.0.email": "x" * 1_000_000})))
    text = _refused(path, r"users\[0\] \(owner\)\.email: .* \(got 'xxxx.*… \(1,000,000 characters\)\)$")
    assert len(text) - len(str(path)) < 400


def test_a_long_record_name_is_cut_in_its_label(tmp_path) -> None:
    path = tmp_path / "long.yaml"
    path.write_text(yaml.safe_dump(_with({"groups.2.name": "L" * 5_000})))
    text = _refused(path, r"groups\[2\] \('LLL.*… \(5,000 characters\)\)\.name: String should have at most")
    assert len(text) - len(str(path)) < 400


# --- item 6: receives_own_projects -------------------------------------------------------------------


def test_receives_own_projects_is_imported_and_defaults_to_true(sessions, tmp_path) -> None:
    path = tmp_path / "world.yaml"
    path.write_text(yaml.safe_dump(_with({"groups.3.receives_own_projects": False})))
    with sessions.begin() as s:
        lims.import_export(s, lims.read_export(path))
    with sessions() as s:
        flags = {g.name: g.receives_own_projects for g in s.scalars(select(Group))}
    assert flags == {g["name"]: g["name"] != "Ext Co" for g in WORLD["groups"]}
    path.write_text(yaml.safe_dump(WORLD))  # omitted: back to the default
    with sessions.begin() as s:
        report = lims.import_export(s, lims.read_export(path))
    assert report.as_dict()["groups"]["updated"] == 1
    with sessions() as s:
        assert s.scalar(select(Group.receives_own_projects).where(Group.name == "Ext Co")) is True
