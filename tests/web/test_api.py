"""The internal API in-process (ASGI), on SQLite and PostgreSQL: who sees what, tokens, answers, paging."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, select
from sqlalchemy.orm import Session, sessionmaker

from seqshare.db.models import ApiToken, Project
from seqshare.errors import NotFound, SharingRefused
from seqshare.services import access, catalog, sharing, tokens
from seqshare.web.app import PUBLIC_PATHS
from tests import databases
from tests.web.conftest import Clock, bearer
from tests.web.world import FILES, MATRIX, MD5, MISSING, NO_ACCESS, PROJECT, RUN_ID, Tokens
from tests.world import load_world

ROUTES = ["/api/v1/projects/{p}", "/api/v1/projects/{p}/files"]


def get(client: TestClient, path: str, secret: str | None, **params: Any):
    return client.get(path, headers=bearer(secret) if secret else {}, params=params)


@pytest.mark.parametrize("role", list(MATRIX))
def test_the_visibility_matrix(client: TestClient, world: Tokens, role: str) -> None:
    user, sees = MATRIX[role]
    secret = world.by_user[user]
    listed = [p["name"] for p in get(client, "/api/v1/projects", secret).json()["projects"]]
    assert (PROJECT in listed) is sees
    for route in ROUTES:
        answer = get(client, route.format(p=PROJECT), secret)
        assert answer.status_code == (200 if sees else 404), (role, route, answer.text)


@pytest.mark.parametrize("route", ["/api/v1/projects", *[r.format(p=PROJECT) for r in ROUTES]])
@pytest.mark.parametrize("credential", ["none", "bad", "revoked", "expired", "not bearer"])
def test_no_bad_revoked_or_expired_token_is_refused_with_a_challenge(
    client: TestClient, world: Tokens, route: str, credential: str
) -> None:
    headers = {
        "none": {},
        "bad": bearer(tokens.new_secret()),  # well formed, never issued
        "revoked": bearer(world.revoked),
        "expired": bearer(world.expired),
        "not bearer": {"Authorization": "Basic bWVtYmVyOnB3"},
    }[credential]
    answer = client.get(route, headers=headers)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith('Bearer realm="seqshare"')
    assert list(answer.json()) == ["detail"] and "\n" not in answer.json()["detail"]
    assert PROJECT not in answer.text


def test_a_token_fails_on_the_first_request_after_its_expiry(client: TestClient, world: Tokens, clock: Clock):
    assert get(client, "/api/v1/me", world.expiring).json() == {"username": "member", "via": "token"}
    clock.now = world.expiry
    assert get(client, "/api/v1/me", world.expiring).status_code == 401


def test_a_revoked_token_fails_on_the_very_next_request(
    client: TestClient, world: Tokens, sessions: sessionmaker[Session], clock: Clock
) -> None:
    secret = world.by_user["other"]
    assert get(client, f"/api/v1/projects/{PROJECT}", secret).status_code == 200
    with sessions.begin() as session:
        token = session.scalar(select(ApiToken).where(ApiToken.secret_sha256 == tokens.digest(secret)))
        assert token is not None and token.last_used_at == clock.now  # recorded on use
        tokens.revoke_token(session, token_id=token.id, now=clock.now)
    assert get(client, f"/api/v1/projects/{PROJECT}", secret).status_code == 401


def test_grant_and_revoke_count_from_the_next_request(
    client: TestClient, world: Tokens, sessions: sessionmaker[Session], clock: Clock
) -> None:
    secret, path = world.by_user["loner"], f"/api/v1/projects/{PROJECT}"
    assert get(client, path, secret).status_code == 404
    with sessions.begin() as session:
        sharing.set_sharing(
            session, project=PROJECT, groups=["Other Lab", "Ext Co", "Lone Lab"], actor="owner", now=clock.now
        )
    assert get(client, path, secret).status_code == 200
    clock.now += timedelta(seconds=1)
    with sessions.begin() as session:
        sharing.set_sharing(session, project=PROJECT, groups=["Other Lab"], actor="owner", now=clock.now)
    assert get(client, path, secret).status_code == 404
    assert get(client, path, world.by_user["other"]).status_code == 200


def test_a_share_granted_for_a_later_instant_does_not_count_yet(
    client: TestClient, world: Tokens, sessions: sessionmaker[Session], clock: Clock
) -> None:
    with sessions.begin() as session:
        sharing.set_sharing(
            session, project=PROJECT, groups=["Lone Lab"], actor="owner", now=clock.now + timedelta(hours=1)
        )
    assert get(client, f"/api/v1/projects/{PROJECT}", world.by_user["loner"]).status_code == 404
    clock.now += timedelta(hours=1)
    assert get(client, f"/api/v1/projects/{PROJECT}", world.by_user["loner"]).status_code == 200


@pytest.mark.parametrize("user", NO_ACCESS)
@pytest.mark.parametrize("route", ROUTES)
def test_a_hidden_project_answers_exactly_like_a_missing_one(
    client: TestClient, world: Tokens, user: str, route: str
) -> None:
    hidden = get(client, route.format(p=PROJECT), world.by_user[user])
    missing = get(client, route.format(p=MISSING), world.by_user[user])
    assert hidden.status_code == missing.status_code == 404
    assert hidden.content == missing.content.replace(MISSING.encode(), PROJECT.encode())
    assert dict(hidden.headers) == dict(missing.headers)


def test_every_route_but_the_health_check_refuses_anonymous_callers(app: FastAPI, client: TestClient) -> None:
    assert {"/healthz"} == PUBLIC_PATHS
    assert client.get("/healthz").json() == {"status": "ok"}
    checked = 0
    for route in app.routes:
        path = route.path  # type: ignore[attr-defined]
        if path in PUBLIC_PATHS:
            continue
        url = path.replace("{", "").replace("}", "")  # every path parameter gets its own name as value
        for method in getattr(route, "methods", None) or {"GET"}:
            for headers in ({}, bearer("seqshare_pat_nonsense")):
                answer = client.request(method, url, headers=headers)
                assert answer.status_code == 401, (method, path, answer.status_code)
                assert "www-authenticate" in answer.headers
            checked += 1
        if isinstance(route, APIRoute):  # and statically: the actor is among its dependencies
            calls = {d.call for d in route.dependant.dependencies}
            from seqshare.web.actors import current_actor

            assert current_actor in calls, path
    assert checked >= 5


def test_a_project_shows_its_pools_samples_runs_and_files(client: TestClient, world: Tokens) -> None:
    secret = world.by_user["other"]
    detail = get(client, f"/api/v1/projects/{PROJECT}", secret).json()
    assert detail["access"] == "shared" and detail["owner_group"] == "Owner Lab"
    assert detail["pools"] == ["SLX-1", "SLX-2"]
    assert detail["samples"] == [
        {"name": "S1", "pool": "SLX-1", "index1": "ACGTACGT", "index2": "TTGGCCAA"},
        {"name": "S2", "pool": "SLX-1", "index1": "GGGGAAAA", "index2": None},
    ]
    assert [(r["run_id"], r["lanes"], r["pools"]) for r in detail["runs"]] == [
        (RUN_ID, [1], ["SLX-1", "SLX-2"])
    ]

    files = get(client, f"/api/v1/projects/{PROJECT}/files", secret).json()
    (first, second), md5s = FILES["SLX-1"], [MD5, None]
    assert files == [
        {
            "run_id": RUN_ID,
            "pool": "SLX-1",
            "files": [
                {"path": p, "size": s, "md5": m} for (p, s), m in zip((first, second), md5s, strict=True)
            ],
        },
        {"run_id": RUN_ID, "pool": "SLX-2", "files": None},  # the frozen plan does not list them
    ]
    assert get(client, f"/api/v1/projects/{PROJECT}/files", secret, run=RUN_ID).json() == files
    unknown = get(client, f"/api/v1/projects/{PROJECT}/files", secret, run="NO_SUCH_RUN")
    assert unknown.status_code == 404 and unknown.json() == {
        "detail": "project Int Project has no pool on run 'NO_SUCH_RUN'"
    }


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"limit": 0}, "query limit: Input should be greater than or equal to 1"),
        ({"limit": "many"}, "query limit: Input should be a valid integer"),
        ({"cursor": "!!"}, "cursor '!!' is not one this API gave; start without it"),
    ],
)
def test_bad_input_is_a_one_line_422(client: TestClient, world: Tokens, params: dict, message: str) -> None:
    answer = get(client, "/api/v1/projects", world.by_user["owner"], **params)
    assert answer.status_code == 422
    assert answer.json()["detail"].startswith(message)


def test_the_openapi_schema_is_served_to_token_holders_only(client: TestClient, world: Tokens) -> None:
    assert client.get("/api/v1/openapi.json").status_code == 401
    schema = get(client, "/api/v1/openapi.json", world.by_user["owner"]).json()
    assert {"/api/v1/projects", "/api/v1/projects/{project}", "/api/v1/projects/{project}/files"} <= set(
        schema["paths"]
    )
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert client.get(path).status_code in (401, 404)


def test_the_sql_rule_agrees_with_the_pure_rule_for_every_user_and_project(
    world: Tokens, sessions: sessionmaker[Session], clock: Clock
) -> None:
    with sessions.begin() as session:
        users = [u for u, _ in MATRIX.values()] + ["extmember"]
        projects = list(session.scalars(select(Project.name)))
        for user in users:
            page = catalog.list_projects(session, username=user, now=clock.now, limit=500)
            listed = {p.name for p in page.projects}
            who = access.caller(session, user)
            for project in projects:
                try:
                    access.check(session, who, access.Action.VIEW_PROJECT, project, clock.now)
                    seen = True
                except NotFound:
                    seen = False
                assert seen is (project in listed), (user, project)


@pytest.mark.parametrize(
    ("user", "outcome"),
    [("member", "ok"), ("other", "refused"), ("extowner", "hidden"), ("loner", "hidden")],
)
def test_the_permission_check_for_changing_sharing(
    world: Tokens, sessions: sessionmaker[Session], clock: Clock, user: str, outcome: str
) -> None:
    with sessions.begin() as session:
        who = access.caller(session, user)
        try:
            access.check(session, who, access.Action.CHANGE_SHARING, PROJECT, clock.now)
            got = "ok"
        except SharingRefused:
            got = "refused"
        except NotFound as exc:
            got = "hidden" if str(exc) == f"unknown project {PROJECT!r}" else str(exc)
    assert got == outcome


def _many_projects(count: int) -> dict[str, Any]:
    return {
        "groups": [{"name": "Big Lab", "kind": "internal"}, {"name": "Reader Lab", "kind": "internal"}],
        "users": [
            {"username": "big", "name": "B", "email": "b@lab.example", "group": "Big Lab"},
            {"username": "reader", "name": "R", "email": "r@lab.example", "group": "Reader Lab"},
        ],
        "projects": [{"name": f"P{i:04d}", "owner": "big"} for i in range(count)],
        "pools": [
            {"id": f"SLX-{i * 3 + k + 100}", "project": f"P{i:04d}"} for i in range(count) for k in range(3)
        ],
    }


def _walk(client: TestClient, secret: str, limit: int) -> tuple[list[str], list[int]]:
    """Every page in turn: the names, and the SQL statements each page's request ran."""
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    names: list[str] = []
    per_page: list[int] = []
    cursor = None
    event.listen(Engine, "before_cursor_execute", count)
    try:
        while True:
            statements.clear()
            params = {"limit": limit, **({"cursor": cursor} if cursor else {})}
            page = get(client, "/api/v1/projects", secret, **params).json()
            per_page.append(len(statements))
            names += [p["name"] for p in page["projects"]]
            assert all(len(p["pools"]) == 3 for p in page["projects"])
            cursor = page["next_cursor"]
            if cursor is None:
                return names, per_page
    finally:
        event.remove(Engine, "before_cursor_execute", count)


def test_long_lists_are_paged_with_a_fixed_number_of_queries(
    engine: Engine, sessions: sessionmaker[Session], clock: Clock
) -> None:
    from seqshare.web.app import create_app
    from tests.web.conftest import database_url

    counts = {}
    for size in (12, 60):
        with sessions.begin() as session:
            load_world(session, _many_projects(size))
            secret = tokens.create_token(
                session, username="reader", name="t", expires_at=None, now=clock.now - timedelta(days=1)
            ).secret
            big = session.scalar(select(Project.id).where(Project.name == "P0000"))
            assert big is not None
            for i in range(0, size, 2):  # half of them shared with the reader's group
                sharing.set_sharing(
                    session, project=f"P{i:04d}", groups=["Reader Lab"], actor="big", now=clock.now
                )
        app = create_app(database_url=database_url(engine), clock=clock)
        try:
            with TestClient(app) as client:
                assert (
                    get(client, "/api/v1/me", secret).status_code == 200
                )  # opens the database, uses the token
                for limit in (5, 25):
                    names, per_page = _walk(client, secret, limit=limit)
                    assert names == [f"P{i:04d}" for i in range(0, size, 2)]  # all, once, in order
                    counts[(size, limit)] = per_page
        finally:
            app.state.database.dispose()
        databases.wipe(engine)
    assert len({n for per_page in counts.values() for n in per_page}) == 1, counts
