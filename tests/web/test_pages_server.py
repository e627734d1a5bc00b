"""The Data Sharing pages over real HTTP: `seqshare serve` as a process on 127.0.0.1 with a session key,
on SQLite and PostgreSQL. Sign in with a token, list, choose, Set Sharing, confirmation, Do Not Share; the
audit trail says "page". The same in Debian's chromium: test_browser.py."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from seqshare.db.models import AuditEvent
from seqshare.services import tokens
from tests.web import servers
from tests.web.test_api_server import real_world  # noqa: F401 (a fixture)
from tests.web.test_pages import SECRET, checkboxes, csrf_of, shares
from tests.web.world import MISSING, PROJECT, Tokens


@contextmanager
def serving(engine: Engine, *args: str, key: bool = True, **settings: str) -> Iterator[str]:
    """`seqshare serve` with the test's session key (unless `key` is False) and `settings`."""
    with servers.serving(
        engine, *args, **({"SEQSHARE_SECRET_KEY": SECRET} if key else {}), **settings
    ) as base:
        yield base


@pytest.fixture
def page_server(engine: Engine, real_world: Tokens) -> Iterator[str]:  # noqa: F811
    with serving(engine) as base:
        yield base


def test_sign_in_choose_set_confirm_and_clear_over_real_http(
    page_server: str,
    real_world: Tokens,  # noqa: F811
    sessions: sessionmaker[Session],
) -> None:
    with httpx.Client(base_url=page_server, follow_redirects=False, timeout=10) as browser:
        anonymous = browser.get("/projects")
        assert anonymous.status_code == 303 and anonymous.headers["location"] == f"{page_server}/signin"
        form = browser.get("/signin")
        signed = browser.post(
            "/signin", data={"token": real_world.by_user["owner"], "csrf_token": csrf_of(form.text)}
        )
        assert signed.status_code == 303
        cookie = signed.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie and "secure" not in cookie  # plain HTTP here

        listing = browser.get("/projects")
        assert listing.status_code == 200 and "Select Project" in listing.text
        page = browser.get(f"/projects/{PROJECT}")
        assert checkboxes(page.text)["Ext Co"] is True
        assert "Copies stay 30 days. Revoking removes nothing already sent." in page.text

        # CSRF: a form without its token is refused and changes nothing
        refused = browser.post(
            f"/projects/{PROJECT}", data={"shown": ["Ext Co", "Other Lab"], "action": "clear"}
        )
        assert refused.status_code == 403 and shares(sessions) == ["Ext Co", "Other Lab"]

        done = browser.post(
            f"/projects/{PROJECT}",
            data={
                "csrf_token": csrf_of(page.text),
                "shown": ["Ext Co", "Other Lab"],
                "groups": ["Third Lab", "Ext Two"],
                "action": "set",
            },
        )
        assert done.status_code == 303
        confirmation = browser.get(done.headers["location"])
        assert "Granted: Ext Two, Third Lab" in confirmation.text
        assert "Revoked: Ext Co, Other Lab" in confirmation.text
        assert shares(sessions) == ["Ext Two", "Third Lab"]
        with sessions.begin() as session:
            event = session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc())).first()
            assert event is not None and (event.actor, event.via) == ("owner", "page")

        page = browser.get(f"/projects/{PROJECT}")
        cleared = browser.post(
            f"/projects/{PROJECT}",
            data={"csrf_token": csrf_of(page.text), "shown": ["Ext Two", "Third Lab"], "action": "clear"},
        )
        assert cleared.status_code == 303
        assert "is now shared with:\nno group." in browser.get(cleared.headers["location"]).text
        assert shares(sessions) == []

        # a revoked token ends the session on the next request
        with sessions.begin() as session:
            tokens.revoke_user_tokens(session, username="owner", now=real_world.expiry)
        assert browser.get("/projects").status_code == 303


def test_another_groups_user_gets_the_missing_project_page_over_real_http(
    page_server: str,
    real_world: Tokens,  # noqa: F811
) -> None:
    with httpx.Client(base_url=page_server, follow_redirects=False, timeout=10) as browser:
        form = browser.get("/signin")
        browser.post(
            "/signin", data={"token": real_world.by_user["exttwo"], "csrf_token": csrf_of(form.text)}
        )
        hidden = browser.get(f"/projects/{PROJECT}")
        missing = browser.get(f"/projects/{MISSING}")
        assert hidden.status_code == missing.status_code == 404
        assert hidden.text == missing.text.replace(MISSING, PROJECT)


def test_the_sso_header_over_real_http_counts_from_the_proxy_only_and_forwarded_for_is_no_proxy(
    engine: Engine,
    real_world: Tokens,  # noqa: F811
) -> None:
    sso = {"X-Remote-User": "owner"}
    with serving(engine, SEQSHARE_SSO_HEADER="X-Remote-User", SEQSHARE_SSO_PROXIES="127.0.0.1") as base:
        honoured = httpx.get(f"{base}/projects", headers=sso, timeout=10)
        assert honoured.status_code == 200 and "Signed in as <strong>owner</strong>" in honoured.text
    with serving(engine, SEQSHARE_SSO_HEADER="X-Remote-User", SEQSHARE_SSO_PROXIES="10.9.9.9") as base:
        # the direct peer (127.0.0.1) is not the proxy; claiming to come through it changes nothing
        for claim in ({}, {"X-Forwarded-For": "10.9.9.9"}, {"Forwarded": "for=10.9.9.9"}):
            ignored = httpx.get(f"{base}/projects", headers={**sso, **claim}, timeout=10)
            assert ignored.status_code == 303, claim
            assert ignored.headers["location"] == f"{base}/signin"


def test_without_a_session_key_serve_has_no_pages_unless_dev(
    engine: Engine,
    real_world: Tokens,  # noqa: F811
) -> None:
    with serving(engine, key=False) as base:
        assert httpx.get(f"{base}/signin", timeout=10).status_code == 404
        assert httpx.get(f"{base}/api/v1/me", timeout=10).status_code == 401  # the API as before
    with serving(engine, "--dev", key=False) as base, httpx.Client(base_url=base, timeout=10) as browser:
        form = browser.get("/signin")
        assert form.status_code == 200
        browser.post("/signin", data={"token": real_world.by_user["owner"], "csrf_token": csrf_of(form.text)})
        assert "Signed in as <strong>owner</strong>" in browser.get("/projects").text
