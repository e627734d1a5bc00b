"""The one path check: nothing a caller passes can land outside the root."""

from __future__ import annotations

import posixpath

import pytest
from hypothesis import given
from hypothesis import strategies as st

from seqshare.transfer import UnsafePath, check_path, resolve_under


@pytest.mark.parametrize(
    ("given_path", "expected"),
    [
        ("", ""),
        (".", ""),
        ("a", "a"),
        ("a//b/./c/", "a/b/c"),
        ("./x.fastq.gz", "x.fastq.gz"),
        ("a..b", "a..b"),
    ],
)
def test_harmless_paths_are_normalised(given_path: str, expected: str) -> None:
    assert check_path(given_path) == expected


@pytest.mark.parametrize("bad", ["/abs", "..", "a/..", "../a", "a/../b", "a\x00", "a\nb", "a\rb", "a\\b"])
def test_dangerous_paths_are_refused(bad: str) -> None:
    with pytest.raises(UnsafePath):
        check_path(bad)


def test_non_strings_are_refused() -> None:
    with pytest.raises(UnsafePath):
        check_path(b"a")  # type: ignore[arg-type]


@given(st.lists(st.sampled_from(["a", ".", "/", "..", "\\", "\n", "\x00", "b/"]), max_size=12).map("".join))
def test_a_resolved_path_always_stays_under_the_root(path: str) -> None:
    try:
        resolved = resolve_under("/srv/group", path)
    except UnsafePath:
        return
    assert resolved == "/srv/group" or resolved.startswith("/srv/group/")
    assert posixpath.normpath(resolved) == resolved
