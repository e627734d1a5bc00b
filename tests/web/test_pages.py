"""The Data Sharing pages in-process, on SQLite and PostgreSQL: sign-in, the three pages, refusals, CSRF,
the SSO header, anonymous callers, escaping. The same pages in Debian's chromium: test_browser.py."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import quote

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from seqshare.db.models import AuditEvent, Group, Project
from seqshare.errors import InvalidInput
from seqshare.services import sharing, sharing_page, tokens
from seqshare.web.app import PAGE_PUBLIC_PATHS, PUBLIC_PATHS, create_app
from seqshare.web.session import COOKIE
from tests.web.conftest import Clock, database_url
from tests.web.world import MISSING, PROJECT, RUN_ID, Tokens

SECRET = "test-secret-key-" + "x" * 32
PROXY = "10.1.2.3"


@pytest.fixture
def pages_app(engine: Engine, clock: Clock, world: Tokens) -> Iterator[FastAPI]:
    app = create_app(
        database_url=database_url(engine),
        clock=clock,
        secret=SECRET,
        sso_header="X-Remote-User",
        sso_proxies=f"{PROXY}/32, 192.0.2.0/24",
    )
    yield app
    app.state.database.dispose()


def browser(app: FastAPI, address: str = "127.0.0.1") -> TestClient:
    return TestClient(app, follow_redirects=False, client=(address, 50000))


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def sign_in(client: TestClient, secret: str) -> None:
    form = client.get("/signin")
    assert form.status_code == 200
    answer = client.post("/signin", data={"token": secret, "csrf_token": csrf_of(form.text)})
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"].endswith("/projects")


def checkboxes(html: str) -> dict[str, bool]:
    """group name → ticked, from the group checkboxes."""
    return {
        name: checked == " checked"
        for name, checked in re.findall(r'name="groups" value="([^"]+)"( checked)?', html)
    }


def shares(sessions: sessionmaker[Session], project: str = PROJECT) -> list[str]:
    with sessions.begin() as session:
        return [g.name for g in sharing.project_view(session, project).shared_with]


def audit_count(sessions: sessionmaker[Session]) -> int:
    with sessions.begin() as session:
        return len(list(session.scalars(select(AuditEvent))))


def test_an_internal_user_sets_one_internal_and_one_external_group_then_clears(
    pages_app: FastAPI, world: Tokens, sessions: sessionmaker[Session], clock: Clock
) -> None:
    client = browser(pages_app)
    sign_in(client, world.by_user["owner"])

    listing = client.get("/projects")
    assert listing.status_code == 200
    assert "Int Project" in listing.text and "Member Project" in listing.text  # a group member's project
    assert "Other Project" not in listing.text and "Ext Project" not in listing.text
    assert "SLX-1, SLX-2" in listing.text and "Ext Co" in listing.text and "Other Lab" in listing.text
    assert 'href="http://testserver/projects/Int%20Project"' in listing.text

    page = client.get(f"/projects/{PROJECT}")
    assert page.status_code == 200
    assert checkboxes(page.text) == {
        "Ext Co": True,
        "Ext Two": False,
        "Lone Lab": False,
        "Other Lab": True,
        "Special": False,
        "Third Lab": False,
    }
    assert 'Ext Two <span class="kind">(external)</span>' in page.text
    assert 'Lone Lab <span class="kind">(internal)</span>' in page.text
    # what a choice means today: both pools were sequenced on the run, named with its date; nothing sent
    assert f"SLX-1 (run {RUN_ID} of 2026-03-01)" in page.text
    assert "will <strong>not</strong> be sent" in page.text
    assert "Copies stay 30 days. Revoking removes nothing already sent." in page.text
    assert "Download and API access to this project's data, at once, until revoked." in page.text
    # delivery history from the ledger: Ext Co received SLX-1 on the run, until 30 days later
    assert re.search(
        rf"<td>{RUN_ID}</td><td>Ext Co</td><td>SLX-1</td><td>1</td>\s*<td>2026-03-01 09:30 UTC</td>"
        r"<td>2026-03-31 09:30 UTC</td>",
        page.text,
    )

    clock.now += timedelta(minutes=1)
    answer = client.post(
        f"/projects/{PROJECT}",
        data={
            "csrf_token": csrf_of(page.text),
            "shown": ["Ext Co", "Other Lab"],
            "groups": ["Third Lab", "Ext Two"],
            "action": "set",
        },
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "http://testserver/shared/Int%20Project"
    assert shares(sessions) == ["Ext Two", "Third Lab"]
    done = client.get(answer.headers["location"])
    assert done.status_code == 200
    assert "is now shared with:\nExt Two (external), Third Lab (internal)." in done.text
    assert "Granted: Ext Two, Third Lab" in done.text and "Revoked: Ext Co, Other Lab" in done.text
    again = client.get(answer.headers["location"])  # the change is told once; the state always
    assert "Granted:" not in again.text and "Ext Two (external), Third Lab (internal)" in again.text
    with sessions.begin() as session:
        event = session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc())).first()
        assert event is not None
        assert (event.actor, event.via, event.before, event.after) == (
            "owner",
            "page",
            ["Ext Co", "Other Lab"],
            ["Ext Two", "Third Lab"],
        )

    page = client.get(f"/projects/{PROJECT}")
    clock.now += timedelta(minutes=1)
    cleared = client.post(
        f"/projects/{PROJECT}",
        data={
            "csrf_token": csrf_of(page.text),
            "shown": ["Ext Two", "Third Lab"],
            "groups": ["Third Lab"],  # ticked boxes do not matter: Do Not Share clears all
            "action": "clear",
        },
    )
    assert cleared.status_code == 303
    assert shares(sessions) == []
    done = client.get(cleared.headers["location"])
    assert "is now shared with:\nno group." in done.text and "Revoked: Ext Two, Third Lab" in done.text
    with sessions.begin() as session:
        event = session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc())).first()
        assert event is not None and event.via == "page" and event.after == []


def test_not_yet_sequenced_pools_are_named_as_the_ones_an_external_group_will_receive(
    pages_app: FastAPI, world: Tokens
) -> None:
    client = browser(pages_app)
    sign_in(client, world.by_user["owner"])
    page = client.get("/projects/Member Project")
    assert page.status_code == 200
    assert "will be copied to Ext Co's FTP directory when their run is processed: SLX-3." in page.text
    assert "Nothing of this project was delivered to an external group yet." in page.text


def test_an_external_user_is_offered_only_internal_groups_and_the_special_group(
    pages_app: FastAPI, world: Tokens, sessions: sessionmaker[Session]
) -> None:
    client = browser(pages_app)
    sign_in(client, world.by_user["extowner"])
    page = client.get("/projects/Ext Project")
    assert page.status_code == 200
    assert checkboxes(page.text) == {
        "Lone Lab": False,
        "Other Lab": True,
        "Owner Lab": False,
        "Special": False,
        "Third Lab": False,
    }
    # a group not offered, posted anyway: refused, nothing changed
    before = audit_count(sessions)
    refused = client.post(
        "/projects/Ext Project",
        data={
            "csrf_token": csrf_of(page.text),
            "shown": ["Other Lab"],
            "groups": ["Ext Two"],
            "action": "set",
        },
    )
    assert refused.status_code == 403
    assert "You may not share Ext Project with Ext Two. Nothing was changed." in refused.text
    assert shares(sessions, "Ext Project") == ["Other Lab"] and audit_count(sessions) == before


def test_a_project_of_another_group_is_exactly_a_missing_project(
    pages_app: FastAPI, world: Tokens, sessions: sessionmaker[Session]
) -> None:
    client = browser(pages_app)
    sign_in(client, world.by_user["other"])  # Int Project is shared with Other Lab: seen, not changed
    for prefix in ("/projects/", "/shared/"):
        hidden = client.get(f"{prefix}{PROJECT}")
        missing = client.get(f"{prefix}{MISSING}")
        assert hidden.status_code == missing.status_code == 404
        assert hidden.text == missing.text.replace(MISSING, PROJECT)
        assert "unknown project" in hidden.text
    page = client.get("/projects")
    posted = client.post(
        f"/projects/{PROJECT}",
        data={"csrf_token": csrf_of(page.text), "shown": ["Ext Co", "Other Lab"], "action": "clear"},
    )
    posted_missing = client.post(
        f"/projects/{MISSING}",
        data={"csrf_token": csrf_of(page.text), "shown": ["Ext Co", "Other Lab"], "action": "clear"},
    )
    assert posted.status_code == posted_missing.status_code == 404
    assert posted.text == posted_missing.text.replace(MISSING, PROJECT)
    assert shares(sessions) == ["Ext Co", "Other Lab"]


@pytest.mark.parametrize("csrf", [None, "", "forged-value"])
def test_a_form_without_the_right_csrf_token_is_refused_and_changes_nothing(
    pages_app: FastAPI, world: Tokens, sessions: sessionmaker[Session], csrf: str | None
) -> None:
    client = browser(pages_app)
    sign_in(client, world.by_user["owner"])
    before = audit_count(sessions)
    data = {"shown": ["Ext Co", "Other Lab"], "action": "clear"}
    if csrf is not None:
        data["csrf_token"] = csrf
    refused = client.post(f"/projects/{PROJECT}", data=data)
    assert refused.status_code == 403
    assert "security token is missing or wrong" in refused.text and "Nothing was changed" in refused.text
    assert shares(sessions) == ["Ext Co", "Other Lab"] and audit_count(sessions) == before


def test_a_csrf_token_of_another_session_is_refused(
    pages_app: FastAPI, world: Tokens, sessions: sessionmaker[Session]
) -> None:
    victim, attacker = browser(pages_app), browser(pages_app)
    sign_in(victim, world.by_user["owner"])
    sign_in(attacker, world.by_user["member"])
    theirs = csrf_of(attacker.get("/projects").text)
    refused = victim.post(
        f"/projects/{PROJECT}",
        data={"csrf_token": theirs, "shown": ["Ext Co", "Other Lab"], "action": "clear"},
    )
    assert refused.status_code == 403
    assert shares(sessions) == ["Ext Co", "Other Lab"]
    # and sign-in itself is a protected form
    assert browser(pages_app).post("/signin", data={"token": world.by_user["owner"]}).status_code == 403


def test_a_stale_form_is_refused_and_changes_nothing(
    pages_app: FastAPI, world: Tokens, sessions: sessionmaker[Session], clock: Clock
) -> None:
    client = browser(pages_app)
    sign_in(client, world.by_user["owner"])
    page = client.get(f"/projects/{PROJECT}")
    clock.now += timedelta(minutes=1)
    with sessions.begin() as session:  # someone else changes the sharing meanwhile
        sharing.set_sharing(session, project=PROJECT, groups=["Other Lab"], actor="member", now=clock.now)
    before = audit_count(sessions)
    clock.now += timedelta(minutes=1)
    stale = client.post(
        f"/projects/{PROJECT}",
        data={
            "csrf_token": csrf_of(page.text),
            "shown": ["Ext Co", "Other Lab"],
            "groups": [],
            "action": "clear",
        },
    )
    assert stale.status_code == 409
    assert "changed since this form was shown (it is now shared with Other Lab)" in stale.text
    assert shares(sessions) == ["Other Lab"] and audit_count(sessions) == before


def test_the_sso_header_counts_only_from_a_configured_proxy(pages_app: FastAPI, world: Tokens) -> None:
    header = {"X-Remote-User": "owner"}
    from_proxy = browser(pages_app, PROXY).get("/projects", headers=header)
    assert from_proxy.status_code == 200 and "Signed in as <strong>owner</strong>" in from_proxy.text
    assert browser(pages_app, "192.0.2.77").get("/projects", headers=header).status_code == 200  # CIDR
    for address in ("10.1.2.4", "127.0.0.1", "203.0.113.9"):
        ignored = browser(pages_app, address).get("/projects", headers=header)
        assert ignored.status_code == 303 and ignored.headers["location"].endswith("/signin"), address
    # from the proxy, an unknown user is nobody
    unknown = browser(pages_app, PROXY).get("/projects", headers={"X-Remote-User": "mallory"})
    assert unknown.status_code == 303
    # and the API follows the same actor: the header from elsewhere is no credential
    assert browser(pages_app, "203.0.113.9").get("/api/v1/me", headers=header).status_code == 401
    assert browser(pages_app, PROXY).get("/api/v1/me", headers=header).json() == {
        "username": "owner",
        "via": "header",
    }


def test_the_sso_header_is_off_unless_configured(engine: Engine, clock: Clock, world: Tokens) -> None:
    app = create_app(database_url=database_url(engine), clock=clock, secret=SECRET, sso_header="")
    try:
        answer = browser(app, PROXY).get("/projects", headers={"X-Remote-User": "owner"})
        assert answer.status_code == 303
    finally:
        app.state.database.dispose()


def test_bad_settings_are_refused_in_one_line() -> None:
    with pytest.raises(InvalidInput, match="SEQSHARE_SECRET_KEY is too short"):
        create_app(secret="short")
    with pytest.raises(InvalidInput, match="SEQSHARE_SSO_PROXIES names no proxy address"):
        create_app(secret=SECRET, sso_header="X-Remote-User", sso_proxies="")
    with pytest.raises(InvalidInput, match="SEQSHARE_SSO_PROXIES"):
        create_app(secret=SECRET, sso_header="X-Remote-User", sso_proxies="proxy.example")


def test_without_a_session_key_there_are_no_pages(
    engine: Engine, clock: Clock, world: Tokens, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SEQSHARE_SECRET_KEY", raising=False)
    app = create_app(database_url=database_url(engine), clock=clock)
    try:
        assert app.state.sessions is None
        assert browser(app).get("/signin").status_code == 404
    finally:
        app.state.database.dispose()


def test_the_session_cookie_is_signed_httponly_samesite_and_ends_with_its_token(
    pages_app: FastAPI, world: Tokens, sessions: sessionmaker[Session], clock: Clock
) -> None:
    client = browser(pages_app)
    form = client.get("/signin")
    cookie = form.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "max-age=28800" in cookie
    assert world.by_user["owner"] not in form.headers["set-cookie"]
    bad = client.post("/signin", data={"token": "seqshare_pat_nonsense", "csrf_token": csrf_of(form.text)})
    assert bad.status_code == 401 and "That token is not valid" in bad.text
    sign_in(client, world.by_user["member"])
    assert client.get("/projects").status_code == 200
    # a forged cookie is no session
    forged = browser(pages_app)
    forged.cookies.set(COOKIE, client.cookies[COOKIE][:-3] + "abc")
    assert forged.get("/projects").status_code == 303
    # revoking the token ends the session on the next request
    with sessions.begin() as session:
        tokens.revoke_user_tokens(session, username="member", now=clock.now)
    ended = client.get("/projects")
    assert ended.status_code == 303 and ended.headers["location"].endswith("/signin")


def test_sign_out_ends_the_session(pages_app: FastAPI, world: Tokens) -> None:
    client = browser(pages_app)
    sign_in(client, world.by_user["owner"])
    page = client.get("/projects")
    assert client.post("/signout", data={}).status_code == 403  # a protected form too
    out = client.post("/signout", data={"csrf_token": csrf_of(page.text)})
    assert out.status_code == 303 and out.headers["location"].endswith("/signin")
    assert client.get("/projects").status_code == 303


def test_every_page_refuses_anonymous_callers(pages_app: FastAPI) -> None:
    """Enumerated from the app: a new route cannot slip through. Pages send to the sign-in page, the API
    answers 401; only the health check and the sign-in form answer."""
    assert {"/healthz"} == PUBLIC_PATHS and {"/signin"} == PAGE_PUBLIC_PATHS
    client = browser(pages_app)
    forged = browser(pages_app)
    forged.cookies.set(COOKIE, "eyJjc3JmIjoieCIsInRva2VuX2lkIjoxfQ.forged.signature")
    pages = 0
    for route in pages_app.routes:
        path = route.path  # type: ignore[attr-defined]
        if path in PUBLIC_PATHS | PAGE_PUBLIC_PATHS:
            continue
        url = path.replace("{", "").replace("}", "")
        for method in getattr(route, "methods", None) or {"GET"}:
            for caller in (client, forged):
                answer = caller.request(method, url, headers={"X-Remote-User": "owner"})
                if path.startswith("/api/"):
                    assert answer.status_code == 401, (method, path)
                else:
                    assert answer.status_code == 303, (method, path, answer.status_code)
                    assert answer.headers["location"] == "http://testserver/signin"
                    pages += 1
    assert pages >= 2 * 6


def test_html_in_names_is_escaped(
    pages_app: FastAPI, world: Tokens, sessions: sessionmaker[Session], clock: Clock
) -> None:
    evil_project, evil_group = "<script>alert(1)</script>P", 'Third <script>alert("g")</script>'
    with sessions.begin() as session:
        project = session.scalar(select(Project).where(Project.name == "Member Project"))
        group = session.scalar(select(Group).where(Group.name == "Third Lab"))
        assert project is not None and group is not None
        project.name, group.name = evil_project, evil_group
        session.flush()
        sharing.set_sharing(session, project=evil_project, groups=[evil_group], actor="owner", now=clock.now)
    client = browser(pages_app)
    sign_in(client, world.by_user["owner"])
    assert f'href="http://testserver/projects/{quote(evil_project, safe="")}"' in client.get("/projects").text
    for url in ("/projects", f"/projects/{quote(evil_project)}", f"/shared/{quote(evil_project)}"):
        page = client.get(url)
        assert page.status_code == 200, url
        assert "<script>" not in page.text, url
        assert "&lt;script&gt;alert(1)&lt;/script&gt;P" in page.text, url
        assert "Third &lt;script&gt;alert(&#34;g&#34;)&lt;/script&gt;" in page.text, url


def test_the_list_and_the_page_take_a_fixed_number_of_queries(
    sessions: sessionmaker[Session], engine: Engine, world: Tokens
) -> None:
    """The service reads a group's projects with the same number of queries for 2 projects or 542: past 500,
    where an IN-list loader (selectinload) would add a query per 500 rows."""
    from sqlalchemy import event

    from seqshare.db.models import Pool, User

    def count(call) -> int:
        seen: list[str] = []

        def record(*args: object) -> None:
            seen.append(str(args[2]))

        event.listen(engine, "before_cursor_execute", record)
        try:
            with sessions.begin() as session:
                call(session)
        finally:
            event.remove(engine, "before_cursor_execute", record)
        return len(seen)

    small = count(lambda s: sharing_page.group_projects(s, "owner"))
    small_page = count(lambda s: sharing_page.sharing_page(s, "owner", PROJECT))
    with sessions.begin() as session:
        owner = session.scalar(select(User).where(User.username == "owner"))
        assert owner is not None
        for i in range(540):
            project = Project(name=f"Bulk {i:03}", owner_id=owner.id)
            session.add(project)
            session.flush()
            session.add_all(Pool(name=f"SLX-9{i:03}{k}", project_id=project.id) for k in range(3))
            session.flush()
            sharing.set_sharing(
                session,
                project=project.name,
                groups=["Other Lab", "Ext Co"],
                actor="owner",
                now=world.expiry,
            )
    assert count(lambda s: sharing_page.group_projects(s, "owner")) == small
    assert count(lambda s: sharing_page.sharing_page(s, "owner", PROJECT)) == small_page
    with sessions.begin() as session:
        listed = sharing_page.group_projects(session, "owner")
    assert len(listed) == 542 and [g.name for g in listed[0].shared_with] == ["Ext Co", "Other Lab"]
