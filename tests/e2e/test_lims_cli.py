"""`seqshare lims import` run as a process on hostile exports: one line on stderr, exit 1, nothing written."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from seqshare.db.engine import make_engine, make_sessions
from seqshare.db.models import Delivery, Group
from seqshare.services import ledger
from tests import databases
from tests.e2e.test_cli import EXAMPLE, ok, seqshare

RUN = "260301_A01234_0042_BHXYZ2DRX3"  # examples/lims.yaml's run; SLX-10003 is Acme's pool on it


@pytest.fixture(params=["sqlite", "postgresql"])
def delivered_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The example imported, and two files of SLX-10003 delivered to Acme Therapeutics (`acme/`)."""

    def prepare(url: str) -> str:
        ok(url, "db", "upgrade")
        ok(url, "lims", "import", str(EXAMPLE))
        engine = make_engine(url)
        try:
            with make_sessions(engine).begin() as s:
                for read in ("R1", "R2"):
                    ledger.record_delivery(
                        s,
                        run_id=RUN,
                        group="Acme Therapeutics",
                        pool="SLX-10003",
                        remote_path=f"acme/{RUN}/SLX-10003/CRISPR_A_{read}.fastq.gz",
                        size=100,
                        md5="0" * 32,
                        delivered_at=datetime(2026, 3, 2, 12, tzinfo=UTC),
                    )
        finally:
            engine.dispose()
        return url

    if request.param == "sqlite":
        yield prepare(databases.scratch_sqlite(tmp_path))
    else:
        with databases.scratch_postgres() as url:
            yield prepare(url)


def _state(url: str) -> tuple[dict[str, str | None], list[tuple[str, str, str]]]:
    engine = make_engine(url)
    try:
        with make_sessions(engine)() as s:
            dirs = {g.name: g.ftp_dir for g in s.scalars(select(Group))}
            rows = [(d.group.name, d.remote_path, d.state.value) for d in s.scalars(select(Delivery))]
        return dirs, sorted(rows)
    finally:
        engine.dispose()


def _one_line_refusal(url: str, path: Path) -> str:
    result = seqshare(url, "lims", "import", str(path))
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_a_file_handing_acmes_directory_to_a_new_group_is_refused(delivered_url: str, tmp_path: Path) -> None:
    before = _state(delivered_url)
    data = yaml.safe_load(EXAMPLE.read_text())
    acme = next(g for g in data["groups"] if g["name"] == "Acme Therapeutics")
    acme["ftp_dir"] = "acme2"
    data["groups"].append({"name": "Newcomer", "kind": "external", "ftp_dir": "acme"})
    path = tmp_path / "hostile.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))

    line = _one_line_refusal(delivered_url, path)
    assert "groups[3] (Acme Therapeutics).ftp_dir: cannot move group Acme Therapeutics's directory" in line
    assert "2 delivered file(s)" in line and "last expires 2026-04-01 12:00:00 UTC" in line
    assert _state(delivered_url) == before


@pytest.mark.parametrize(
    ("name", "text", "where"),
    [
        ("deep.yaml", "groups: " + "[" * 10_000 + "]" * 10_000 + "\n", "deep.yaml:1: nested more than 20"),
        ("deep.json", '{"groups": ' + "[" * 10_000 + "]" * 10_000 + "}", "deep.json:1: nested more than 20"),
        ("dup.yaml", "groups: []\ngroups: []\n", "dup.yaml:2: key 'groups' given twice"),
        (
            "dup.json",
            '{"groups": [{"name": "A", "name": "B"}]}',
            "dup.json:1: groups[0] (B): key 'name' given",
        ),
        ("nul.json", '{"groups": [{"name": "A\\u0000", "kind": "internal"}]}', "groups[0] ('A\\x00').name"),
    ],
)
def test_hostile_input_is_bad_input_not_a_bug(tmp_path: Path, name: str, text: str, where: str) -> None:
    """Read errors come before the database is opened: any URL will do."""
    path = tmp_path / name
    path.write_text(text)
    line = _one_line_refusal(databases.scratch_sqlite(tmp_path), path)
    assert where in line
