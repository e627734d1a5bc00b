"""The stand-alone check itself: a test that reads beside the repository fails the run, naming both."""

from __future__ import annotations

import os

import pytest

from tests import standalone

pytest_plugins = ["pytester"]

INNER = """
import os
from tests import standalone

def test_lists_the_folder_beside_the_repository():
    os.listdir(standalone.REPO.parent)

def test_reads_inside_the_repository():
    assert (standalone.REPO / "README.md").read_text()
"""


def run_inner(pytester: pytest.Pytester, source: str) -> pytest.RunResult:
    """A pytest of its own, in a subprocess (an audit hook cannot be removed), seeing `tests` as CI does."""
    pytester.makepyfile(test_inner=source)
    path = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(standalone.REPO), path) if p)
    try:
        return pytester.runpytest_subprocess(
            "-p", "tests.standalone", "-p", "no:cacheprovider", f"--rootdir={pytester.path}"
        )
    finally:
        if path is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = path


def test_a_read_beside_the_repository_fails_the_run_and_names_the_test(pytester: pytest.Pytester) -> None:
    result = run_inner(pytester, INNER)
    result.assert_outcomes(passed=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [f"*test_lists_the_folder_beside_the_repository read {standalone.REPO.parent}"]
    )
    assert "test_reads_inside_the_repository read" not in result.stdout.str()


def test_reads_inside_the_repository_and_elsewhere_pass(pytester: pytest.Pytester) -> None:
    inside_and_elsewhere = """
from tests import standalone

def test_reads():
    assert (standalone.REPO / "README.md").read_text()
    assert open("/etc/hostname").read() is not None
"""
    result = run_inner(pytester, inside_and_elsewhere)
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.OK
