"""Walking a group's directory on a local remote: symlinks and other groups' directories stay out."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest

from seqshare.purge.group import GroupDirectoryRefused, walk
from seqshare.purge.plan import plan_purge
from seqshare.transfer import LocalRemote

NOW = datetime.now(UTC)


def old(path, days=60):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("x")
    t = (NOW - timedelta(days=days)).timestamp()
    os.utime(path, (t, t))


def test_another_groups_directory_inside_this_one_is_never_listed(tmp_path) -> None:
    old(tmp_path / "a" / "run" / "f")
    old(tmp_path / "a" / "b" / "theirs")
    entries = walk(LocalRemote(tmp_path), "a", other_groups=frozenset({"a/b"}))
    assert {e.path for e in entries} == {"a/run", "a/run/f"}
    plan = plan_purge(group="A", group_dir="a", entries=entries, ledger=[], now=NOW, ttl=timedelta(days=30))
    assert [d.path for d in plan.deletions] == ["a/run/f"]


def test_a_symlinked_folder_is_listed_as_a_link_and_not_entered(tmp_path) -> None:
    old(tmp_path / "elsewhere" / "precious")
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "link").symlink_to(tmp_path / "elsewhere")
    entries = walk(LocalRemote(tmp_path), "a")
    assert [(e.path, e.is_symlink) for e in entries] == [("a/link", True)]


def test_a_group_directory_that_is_a_symlink_is_refused(tmp_path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "a").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(GroupDirectoryRefused, match="is a symlink"):
        walk(LocalRemote(tmp_path), "a")


def test_the_local_backend_removes_nothing_through_a_folder_swapped_after_the_check(tmp_path) -> None:
    """No window on the local backend: the removes go through folder handles opened without following
    links, so even a swap between `check_parents` and the unlink deletes nothing of the other group."""
    from seqshare.transfer.remote import SymlinkInPath

    old(tmp_path / "a" / "run" / "f")
    old(tmp_path / "b" / "run" / "f")

    class SwapAfterCheck(LocalRemote):
        def check_parents(self, paths, *, within):
            answer = super().check_parents(paths, within=within)
            (tmp_path / "a" / "run").rename(tmp_path / "a" / "moved")
            (tmp_path / "a" / "run").symlink_to(tmp_path / "b" / "run")
            return answer

    [result] = SwapAfterCheck(tmp_path).remove_many(["a/run/f"], within="a")
    assert isinstance(result.error, SymlinkInPath)
    assert (tmp_path / "b" / "run" / "f").exists()
    assert (tmp_path / "a" / "moved" / "f").exists()
