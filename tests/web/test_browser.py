"""The Data Sharing pages in a real browser: Debian's Chromium (Playwright) against `seqshare serve` on
127.0.0.1, on SQLite and PostgreSQL, signed in the documented way (a personal token pasted once; the
session cookie after that). What a scientist does and sees: choose groups, read what each choice means,
confirm, clear; what an external user is offered; what another group's user gets. Every page visited is
screenshotted under `test-artifacts/screenshots/<test>/` (see tests/web/browser.py)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from urllib.parse import quote

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from seqshare.db.models import AuditEvent, Pool, Project
from seqshare.web.session import COOKIE
from tests.web import browser as browser_fixtures
from tests.web import servers
from tests.web.browser import Shots, chromium, new_page, shots  # noqa: F401 (fixtures)
from tests.web.test_api_server import real_world  # noqa: F401 (a fixture)
from tests.web.test_pages import SECRET, shares
from tests.web.world import MISSING, PROJECT, RUN_ID, Tokens

WAITING = "SLX-6"  # a pool of PROJECT not sequenced yet, added for these tests
NewPage = Callable[[str], Page]


@pytest.fixture
def site(engine: Engine, real_world: Tokens, sessions: sessionmaker[Session]) -> Iterator[str]:  # noqa: F811
    """`seqshare serve` with a session key on the test world, PROJECT holding one pool not yet sequenced
    (so its page says all three things an external group may be told); its base URL."""
    with sessions.begin() as session:
        project = session.scalar(select(Project).where(Project.name == PROJECT))
        assert project is not None
        session.add(Pool(name=WAITING, project_id=project.id))
    with servers.serving(engine, SEQSHARE_SECRET_KEY=SECRET) as base:
        yield base


def sign_in(page: Page, shots: Shots, secret: str) -> None:  # noqa: F811
    """The documented sign-in: any page sends an anonymous visitor to the form; the token is typed once."""
    page.goto("/projects")
    expect(page).to_have_url(re.compile(r"/signin$"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    shots.take(page, "signin")
    page.get_by_label("Your personal API token").fill(secret)
    page.get_by_label("Your personal API token").press("Enter")  # the keyboard submits the form
    expect(page).to_have_url(re.compile(r"/projects$"))
    cookie = next(c for c in page.context.cookies() if c["name"] == COOKIE)
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    assert secret not in cookie["value"]  # the cookie holds the token's id, never the token


def checkbox_labels(page: Page) -> dict[str, bool]:
    """Every checkbox's label text → ticked. Fails if a checkbox has no label or more than one."""
    found: dict[str, bool] = {}
    for box in page.get_by_role("checkbox").all():
        labels = box.evaluate("e => Array.from(e.labels).map(l => l.innerText.trim())")
        assert len(labels) == 1, f"a checkbox without exactly one label: {labels}"
        expect(page.get_by_label(labels[0], exact=True)).to_have_count(1)  # the label names it alone
        found[labels[0]] = box.is_checked()
    return found


def means(page: Page, label: str, *parts: str) -> None:
    """The checkbox `label` is described (aria-describedby, read by screen readers) by each of `parts`."""
    box = page.get_by_label(label, exact=True)
    for part in parts:
        expect(box).to_have_accessible_description(re.compile(re.escape(part)))


def last_audit(sessions: sessionmaker[Session]) -> tuple[str, str, list[str], list[str]]:
    with sessions.begin() as session:
        event = session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc())).first()
        assert event is not None
        return event.actor, event.via, event.before, event.after


def test_an_internal_user_shares_with_an_internal_and_an_external_group_then_does_not_share(
    site: str,
    new_page: NewPage,  # noqa: F811
    shots: Shots,  # noqa: F811
    real_world: Tokens,  # noqa: F811
    sessions: sessionmaker[Session],
) -> None:
    page = new_page(site)
    sign_in(page, shots, real_world.by_user["owner"])

    # the list: the user's and a group member's projects, their groups and pools
    expect(page.get_by_role("heading", name="Projects of your group")).to_be_visible()
    row = page.get_by_role("row").filter(has_text=PROJECT)
    expect(row).to_contain_text(f"SLX-1, SLX-2, {WAITING}")
    expect(row).to_contain_text("Ext Co (external), Other Lab (internal)")
    expect(page.get_by_role("row").filter(has_text="Member Project")).to_contain_text("SLX-3")
    expect(page.get_by_text("Other Project")).to_have_count(0)
    shots.take(page, "projects")

    page.get_by_role("link", name=f"Select Project {PROJECT}").click()
    expect(page).to_have_url(re.compile(rf"/projects/{re.escape(quote(PROJECT, safe=''))}$"))
    expect(page.get_by_role("heading", name=f"Share project {PROJECT}")).to_be_visible()
    assert checkbox_labels(page) == {
        "Ext Co (external)": True,
        "Ext Two (external)": False,
        "Lone Lab (internal)": False,
        "Other Lab (internal)": True,
        "Special (external, special)": False,
        "Third Lab (internal)": False,
    }
    # what each choice means for this project today
    copied = f"will be copied to Ext Two's FTP directory when their run is processed: {WAITING}."
    kept = "Copies stay 30 days. Revoking removes nothing already sent."
    means(
        page,
        "Ext Two (external)",
        copied,
        f"will not be sent: SLX-1 (run {RUN_ID} of 2026-03-01); SLX-2 (run {RUN_ID} of 2026-03-01).",
        kept,
    )
    means(  # Ext Co already received SLX-1 on the run: said so, with the dates, not "will not be sent"
        page,
        "Ext Co (external)",
        f"SLX-1 was already delivered to Ext Co on 2026-03-01 (run {RUN_ID}), kept until 2026-03-31.",
        f"will not be sent: SLX-2 (run {RUN_ID} of 2026-03-01).",
        kept,
    )
    internal = "Download and API access to this project's data, at once, until revoked."
    means(page, "Third Lab (internal)", internal)
    history = page.get_by_role("row").filter(has_text=RUN_ID)
    expect(history.get_by_role("cell")).to_have_text(
        [RUN_ID, "Ext Co", "SLX-1", "1", "2026-03-01 09:30 UTC", "2026-03-31 09:30 UTC"]
    )
    shots.take(page, "project")

    # one internal and one external group; the mouse for two boxes, the keyboard for two
    page.get_by_label("Ext Co (external)", exact=True).uncheck()
    page.get_by_label("Other Lab (internal)", exact=True).uncheck()
    page.get_by_label("Third Lab (internal)", exact=True).focus()
    page.keyboard.press("Space")
    page.get_by_label("Ext Two (external)", exact=True).focus()
    page.keyboard.press("Space")
    expect(page.get_by_label("Ext Two (external)", exact=True)).to_be_checked()
    shots.take(page, "project-chosen")
    page.get_by_role("button", name="Set Sharing").click()

    expect(page).to_have_url(re.compile(r"/shared/"))
    expect(page.get_by_role("status")).to_have_text(
        f"{PROJECT} is now shared with: Ext Two (external), Third Lab (internal)."
    )
    expect(page.get_by_role("listitem").filter(has_text="Granted")).to_have_text(
        "Granted: Ext Two, Third Lab"
    )
    expect(page.get_by_role("listitem").filter(has_text="Revoked")).to_have_text("Revoked: Ext Co, Other Lab")
    shots.take(page, "confirmation")
    assert shares(sessions) == ["Ext Two", "Third Lab"]
    assert last_audit(sessions) == ("owner", "page", ["Ext Co", "Other Lab"], ["Ext Two", "Third Lab"])

    page.reload()  # the change is told once; the state always
    expect(page.get_by_role("status")).to_contain_text("Ext Two (external), Third Lab (internal)")
    expect(page.get_by_text("Granted:")).to_have_count(0)
    shots.take(page, "confirmation-again")

    page.get_by_role("link", name=f"Back to {PROJECT}").click()
    assert checkbox_labels(page)["Ext Two (external)"] and checkbox_labels(page)["Third Lab (internal)"]
    shots.take(page, "project-shared")
    page.get_by_role("button", name="Do Not Share").click()

    expect(page.get_by_role("status")).to_have_text(f"{PROJECT} is now shared with: no group.")
    expect(page.get_by_role("listitem").filter(has_text="Revoked")).to_have_text(
        "Revoked: Ext Two, Third Lab"
    )
    shots.take(page, "confirmation-cleared")
    assert shares(sessions) == []
    assert last_audit(sessions) == ("owner", "page", ["Ext Two", "Third Lab"], [])

    page.get_by_role("link", name="All projects").click()
    expect(page.get_by_role("row").filter(has_text=PROJECT)).to_contain_text("no group")
    shots.take(page, "projects-after")
    assert sorted(shots.folder.iterdir()) == shots.taken and len(shots.taken) == 9
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in shots.taken)


def test_an_external_user_is_offered_only_internal_groups_and_the_special_group(
    site: str,
    new_page: NewPage,  # noqa: F811
    shots: Shots,  # noqa: F811
    real_world: Tokens,  # noqa: F811
) -> None:
    page = new_page(site)
    sign_in(page, shots, real_world.by_user["extowner"])
    expect(page.get_by_role("row").filter(has_text="Ext Project")).to_contain_text("SLX-5")
    expect(page.get_by_text(PROJECT)).to_have_count(0)
    shots.take(page, "projects")
    page.get_by_role("link", name="Select Project Ext Project").click()
    expect(page.get_by_role("heading", name="Share project Ext Project")).to_be_visible()
    assert checkbox_labels(page) == {
        "Lone Lab (internal)": False,
        "Other Lab (internal)": True,
        "Owner Lab (internal)": False,
        "Special (external, special)": False,
        "Third Lab (internal)": False,
    }
    means(
        page,
        "Special (external, special)",
        "will be copied to Special's FTP directory",
        "Copies stay 30 days.",
    )
    shots.take(page, "project")


@pytest.mark.parametrize("user", ["other", "exttwo"])
def test_a_user_of_another_group_cannot_reach_the_project_and_sees_a_missing_one(
    site: str,
    new_page: NewPage,  # noqa: F811
    shots: Shots,  # noqa: F811
    real_world: Tokens,  # noqa: F811
    sessions: sessionmaker[Session],
    user: str,
) -> None:
    """`other`'s group has PROJECT shared with it (it may read its data) and still cannot change it;
    `exttwo`'s group has nothing to do with it. Both get the page of a project that does not exist."""
    page = new_page(site)
    sign_in(page, shots, real_world.by_user[user])
    expect(page.get_by_role("link", name=re.compile(f"Select Project {PROJECT}"))).to_have_count(0)
    shots.take(page, "projects")

    seen = {}
    for name in (PROJECT, MISSING):
        answer = page.goto(f"/projects/{quote(name, safe='')}")
        assert answer is not None and answer.status == 404
        expect(page.get_by_role("heading", name="Not found")).to_be_visible()
        expect(page.get_by_role("alert")).to_contain_text(name)
        expect(page.get_by_role("checkbox")).to_have_count(0)
        seen[name] = page.locator("main").inner_html()
        shots.take(page, "hidden" if name == PROJECT else "missing")
    assert seen[PROJECT] == seen[MISSING].replace(MISSING, PROJECT)
    assert shares(sessions) == ["Ext Co", "Other Lab"]


def test_every_form_control_has_a_name_and_the_pages_have_one_main_heading(
    site: str,
    new_page: NewPage,  # noqa: F811
    shots: Shots,  # noqa: F811
    real_world: Tokens,  # noqa: F811
) -> None:
    """Keyboard and screen-reader basics on each page: every input and button is named (a label, or its
    text), each page has one h1 and a language, and Tab reaches the first group's checkbox."""
    page = new_page(site)
    sign_in(page, shots, real_world.by_user["member"])
    unnamed = """() => Array.from(document.querySelectorAll('input:not([type=hidden]), button, select'))
        .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.innerText.trim())
        .map(e => e.outerHTML)"""
    for path, name in (("/projects", "projects"), (f"/projects/{quote(PROJECT, safe='')}", "project")):
        page.goto(path)
        assert page.evaluate(unnamed) == [], path
        expect(page.locator("h1")).to_have_count(1)
        assert page.evaluate("document.documentElement.lang") == "en"
        shots.take(page, name)
    first = page.get_by_role("checkbox").first
    for _ in range(20):  # from the top of the page, Tab by Tab
        page.keyboard.press("Tab")
        if first.evaluate("e => e === document.activeElement"):
            break
    else:
        pytest.fail("Tab never reaches the first group's checkbox")


@pytest.mark.parametrize("ci", ["true", None])
def test_a_missing_chromium_fails_the_run_in_ci_and_elsewhere(
    monkeypatch: pytest.MonkeyPatch, ci: str | None
) -> None:
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.fail.Exception, match="/usr/bin/chromium is missing"):
        browser_fixtures._unavailable("/usr/bin/chromium is missing")
