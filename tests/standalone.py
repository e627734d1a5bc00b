"""A clone must stand alone: fail the test run if a test reads anything beside the repository.

The tests once read real Illumina files from a folder beside the repository, which a user cloning the
project does not have;
they are vendored under `tests/fixtures/` now. This plugin keeps it that way: an audit hook (PEP 578) sees
every `open`, `os.listdir` and `os.scandir` of the test process, and any path under the repository's
parent folder but outside the repository itself (a sibling checkout, shared material) fails the run,
naming the path and the test. Subprocesses (Airflow, sshd) are not watched; they are given paths by the
tests, which are.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BESIDE = str(REPO.parent) + os.sep
INSIDE = str(REPO) + os.sep

_reads: dict[str, str] = {}  # path read outside the repository -> the test that read it
_current = {"test": "collection"}


def _beside_the_repository(path: object) -> str | None:
    if isinstance(path, int) or path is None:
        return None
    try:
        text = os.fsdecode(path)
    except TypeError:
        return None
    full = os.path.abspath(text)
    if (full + os.sep).startswith(INSIDE) or not (full + os.sep).startswith(BESIDE):
        return None
    return full


def _audit(event: str, args: tuple) -> None:
    if event not in ("open", "os.listdir", "os.scandir") or not args:
        return
    path = _beside_the_repository(args[0])
    if path is not None and path not in _reads:
        _reads[path] = _current["test"]


def pytest_configure(config: pytest.Config) -> None:
    if REPO.parent != REPO.parent.parent:  # a repository right under / has only the system beside it
        sys.addaudithook(_audit)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> object:
    _current["test"] = item.nodeid
    try:
        return (yield)
    finally:
        _current["test"] = "between tests"


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config
) -> None:
    if not _reads:
        return
    terminalreporter.section("read outside the repository", red=True)
    for path, test in sorted(_reads.items()):
        terminalreporter.write_line(f"{test} read {path}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _reads and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
