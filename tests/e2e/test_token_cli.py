"""`seqshare token` as real processes on SQLite and PostgreSQL: the secret is shown once, stored hashed."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from seqshare.services import tokens
from tests import databases
from tests.e2e.test_cli import EXAMPLE, ok, seqshare


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database with the example LIMS export imported, by the CLI."""
    with ExitStack() as stack:
        if request.param == "sqlite":
            db = databases.scratch_sqlite(tmp_path)
        else:
            db = stack.enter_context(databases.scratch_postgres())
        ok(db, "db", "upgrade")
        ok(db, "lims", "import", str(EXAMPLE))
        yield db


def _rows(url: str) -> list[dict]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(text("SELECT * FROM api_token ORDER BY id"))]
    finally:
        engine.dispose()


def test_create_shows_the_secret_once_list_never_and_the_database_holds_only_its_hash(url: str) -> None:
    shown = ok(url, "token", "create", "bcore", "--name", "pipeline on hpc1", "--expires", "90d")
    secret = next(word for word in shown.split() if word.startswith(tokens.PREFIX))
    assert tokens.well_formed(secret) and "shown only this once" in shown

    created = json.loads(ok(url, "token", "create", "gcore", "--json"))
    assert tokens.well_formed(created["secret"]) and created["token"]["user"] == "gcore"

    listed = ok(url, "token", "list")
    listed_json = ok(url, "token", "list", "--json")
    for out in (listed, listed_json):
        assert secret not in out and created["secret"] not in out
        assert secret[len(tokens.PREFIX) : len(tokens.PREFIX) + 8] not in out  # not even most of it
    rows = json.loads(listed_json)
    assert [(r["user"], r["name"], r["state"]) for r in rows] == [
        ("bcore", "pipeline on hpc1", "active"),
        ("gcore", "api", "active"),
    ]
    assert rows[0]["expires_at"] is not None and rows[1]["expires_at"] is None

    stored = _rows(url)
    assert [r["secret_sha256"] for r in stored] == [
        hashlib.sha256(s.encode()).hexdigest() for s in (secret, created["secret"])
    ]
    for row in stored:
        for value in row.values():
            assert secret not in str(value) and created["secret"] not in str(value)


def test_revoke_by_id_or_by_user(url: str) -> None:
    first = json.loads(ok(url, "token", "create", "bcore", "--json"))["token"]["id"]
    json.loads(ok(url, "token", "create", "bcore", "--json"))
    revoked = json.loads(ok(url, "token", "revoke", str(first), "--json"))
    assert revoked[0]["state"] == "revoked"
    assert [t["id"] for t in json.loads(ok(url, "token", "list", "--json"))] == [first + 1]
    everything = json.loads(ok(url, "token", "list", "--all", "--json"))
    assert [t["state"] for t in everything] == ["revoked", "active"]
    assert len(json.loads(ok(url, "token", "revoke", "--user", "bcore", "--json"))) == 1
    assert json.loads(ok(url, "token", "list", "--json")) == []
    assert all(r["revoked_at"] is not None for r in _rows(url))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["create", "nobody"], "error: unknown user 'nobody'"),
        (
            ["create", "bcore", "--expires", "soon"],
            "error: expiry 'soon': give days from now (90d), an ISO 8601",
        ),
        (
            ["create", "bcore", "--expires", "2020-01-01T00:00:00Z"],
            "error: expiry '2020-01-01T00:00:00Z' is not in",
        ),
        (
            ["create", "bcore", "--expires", "2030-01-01T00:00:00"],
            "error: expiry '2030-01-01T00:00:00' has no time",
        ),
        (["create", "bcore", "--name", ""], "error: token name '': give 1 to 100 characters"),
        (["revoke", "999"], "error: unknown token 999"),
        (["revoke"], "error: give a token id or --user USER, not both"),
        (["list", "--user", "nobody"], "error: unknown user 'nobody'"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(url: str, args: list[str], message: str) -> None:
    result = seqshare(url, "token", *args)
    assert result.returncode == 1, result
    assert result.stderr.startswith(message) and result.stderr.count("\n") == 1
    assert _rows(url) == []
