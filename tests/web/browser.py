"""Real-browser fixtures: Debian's Chromium driven by Playwright, and a screenshot of every page visited.

Chromium is `/usr/bin/chromium` (Debian's package; `scripts/test` installs it), never a browser Playwright
downloads. Missing, the browser tests fail when `CI=true` (CI must run them) and are skipped otherwise.

Screenshots go to `test-artifacts/screenshots/<test>/<nn>-<page>.png` at the top of the repository
(git-ignored), a folder per test emptied when the test starts, so each run leaves exactly its own pages.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",  # the tests may run as root (containers, CI)
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",  # nothing beyond loopback
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
SCREENSHOTS = ARTIFACTS / "screenshots"
TIMEOUT_MS = 20_000  # generous: the machine is shared; a test waits for an element, never for a time


def _unavailable(reason: str) -> None:
    """Fail, never skip: like a missing sshd or PostgreSQL, a missing browser must not pass unnoticed."""
    pytest.fail(
        f"browser tests cannot run: {reason}; install Debian's chromium (scripts/test does)", pytrace=False
    )


@pytest.fixture(scope="session")
def chromium() -> Iterator[Browser]:
    """One headless Chromium for the session (each test gets its own context: its own cookies)."""
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        _unavailable(f"{CHROMIUM} is missing")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        _unavailable(f"playwright is not installed ({exc})")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class Shots:
    """Numbered full-page screenshots of one test's pages."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.taken: list[Path] = []

    def take(self, page: Page, name: str) -> Path:
        path = self.folder / f"{len(self.taken) + 1:02}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        self.taken.append(path)
        return path


def _folder_name(nodeid: str) -> str:
    """`test_x[postgresql]` → `test_x-postgresql`: a plain folder name."""
    name = nodeid.rsplit("::", 1)[-1]
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Shots:
    folder = SCREENSHOTS / _folder_name(request.node.nodeid)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return Shots(folder)


@pytest.fixture
def new_page(chromium: Browser) -> Iterator[Callable[[str], Page]]:
    """`new_page(base_url)`: a page in a fresh context (no cookies), closed with the test."""
    contexts = []

    def make(base_url: str) -> Page:
        context = chromium.new_context(base_url=base_url, viewport={"width": 1200, "height": 900})
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()
