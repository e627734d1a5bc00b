"""The internal API over real HTTP: `seqshare serve` as a process on 127.0.0.1, on SQLite and PostgreSQL.

The whole visibility matrix, grant and revoke, a token revoked with the CLI, hidden equal to missing.
Every server a test starts, it stops.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from seqshare.services import sharing, tokens
from tests.e2e.test_cli import SEQSHARE
from tests.web.conftest import bearer, database_url
from tests.web.servers import free_port, serving
from tests.web.world import MATRIX, MISSING, NO_ACCESS, PROJECT, Tokens, load_api_world


@pytest.fixture
def real_world(sessions: sessionmaker[Session]) -> Tokens:
    with sessions.begin() as session:
        return load_api_world(session, now=datetime.now(UTC))


@pytest.fixture
def server(engine: Engine, real_world: Tokens) -> Iterator[str]:
    """`seqshare serve` on the test's database (API only: no session key); its base URL."""
    with serving(engine) as base:
        yield base


def test_the_visibility_matrix_over_real_http(
    server: str, real_world: Tokens, sessions: sessionmaker[Session]
) -> None:
    with httpx.Client(base_url=server, timeout=10) as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        for role, (user, sees) in MATRIX.items():
            headers = bearer(real_world.by_user[user])
            listed = [p["name"] for p in http.get("/api/v1/projects", headers=headers).json()["projects"]]
            assert (PROJECT in listed) is sees, role
            for path in (f"/api/v1/projects/{PROJECT}", f"/api/v1/projects/{PROJECT}/files"):
                assert http.get(path, headers=headers).status_code == (200 if sees else 404), (role, path)

        for headers in (
            {},
            bearer(tokens.new_secret()),
            bearer(real_world.revoked),
            bearer(real_world.expired),
        ):
            answer = http.get(f"/api/v1/projects/{PROJECT}", headers=headers)
            assert answer.status_code == 401
            assert answer.headers["www-authenticate"].startswith('Bearer realm="seqshare"')

        for user in NO_ACCESS:  # hidden answers exactly as missing (the Date header aside: it is the time)
            headers = bearer(real_world.by_user[user])
            hidden = http.get(f"/api/v1/projects/{PROJECT}", headers=headers)
            missing = http.get(f"/api/v1/projects/{MISSING}", headers=headers)
            assert (hidden.status_code, hidden.content) == (
                missing.status_code,
                missing.content.replace(MISSING.encode(), PROJECT.encode()),
            )
            assert {k: v for k, v in hidden.headers.items() if k != "date"} == {
                k: v for k, v in missing.headers.items() if k != "date"
            }

        loner = bearer(real_world.by_user["loner"])
        path = f"/api/v1/projects/{PROJECT}"
        assert http.get(path, headers=loner).status_code == 404
        sharing.set_sharing_now(
            sessions, project=PROJECT, groups=["Other Lab", "Ext Co", "Lone Lab"], actor="owner", clock=_now
        )
        assert http.get(path, headers=loner).status_code == 200
        sharing.set_sharing_now(sessions, project=PROJECT, groups=["Other Lab"], actor="owner", clock=_now)
        assert http.get(path, headers=loner).status_code == 404


def _now() -> datetime:
    return datetime.now(UTC)


def test_a_token_made_and_revoked_with_the_cli_works_then_fails_on_the_next_request(
    server: str, engine: Engine
) -> None:
    env = {**os.environ, "SEQSHARE_DATABASE_URL": database_url(engine)}
    env.pop("SEQSHARE_DEBUG", None)

    def cli(*args: str) -> str:
        done = subprocess.run([SEQSHARE, *args], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    secret = next(
        line for line in cli("token", "create", "other", "--name", "e2e").splitlines() if "_pat_" in line
    )
    with httpx.Client(base_url=server, timeout=10) as http:
        headers = bearer(secret.strip())
        assert http.get("/api/v1/me", headers=headers).json() == {"username": "other", "via": "token"}
        assert http.get(f"/api/v1/projects/{PROJECT}", headers=headers).status_code == 200
        listed = json.loads(cli("token", "list", "--user", "other", "--json"))
        (used,) = [t for t in listed if t["name"] == "e2e"]
        assert used["last_used_at"] is not None and secret.strip() not in json.dumps(listed)
        cli("token", "revoke", "--user", "other")
        assert http.get(f"/api/v1/projects/{PROJECT}", headers=headers).status_code == 401


def test_serve_refuses_a_database_without_the_schema_in_one_line(tmp_path) -> None:
    env = {**os.environ, "SEQSHARE_DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}"}
    env.pop("SEQSHARE_DEBUG", None)
    done = subprocess.run(
        [SEQSHARE, "serve", "--port", str(free_port())], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert done.stderr.startswith("error: the database sqlite:///") and done.stderr.count("\n") == 1
    assert "run `seqshare db upgrade`" in done.stderr
