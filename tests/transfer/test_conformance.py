"""One conformance suite for every `Remote` backend (rclone's fstests idea): same calls, same answers."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from seqshare.transfer import Guard, UnsafePath
from seqshare.transfer.remote import BaseRemote


def write(remote: BaseRemote, path: str, data: bytes) -> None:
    with remote.open_write(path) as out:
        out.write(data)


def test_stat_of_missing_path_is_none(remote: BaseRemote) -> None:
    assert remote.stat("nothing/here") is None
    assert remote.stat("nothing") is None


def test_written_file_stats_with_its_size_and_reads_back(remote: BaseRemote) -> None:
    write(remote, "a.txt", b"hello")
    entry = remote.stat("a.txt")
    assert entry is not None
    assert (entry.path, entry.name, entry.size, entry.is_file, entry.is_dir) == (
        "a.txt",
        "a.txt",
        5,
        True,
        False,
    )
    assert entry.mtime.tzinfo is not None
    assert remote.read_bytes("a.txt") == b"hello"


def test_open_write_refuses_to_truncate_an_existing_file(remote: BaseRemote) -> None:
    write(remote, "a.txt", b"keep me")
    with pytest.raises(FileExistsError):
        write(remote, "a.txt", b"x")
    assert remote.read_bytes("a.txt") == b"keep me"


def test_open_update_writes_at_offsets_and_never_creates_nor_truncates(remote: BaseRemote) -> None:
    with remote.open_write("f") as out:
        out.write(b"a" * 10)
    with remote.open_update("f") as out:
        out.seek(6)
        out.write(b"XY")
        out.seek(0)
        out.write(b"Z")
    assert remote.read_bytes("f") == b"Zaaaaa" + b"XY" + b"aa"
    with pytest.raises(FileNotFoundError):
        remote.open_update("missing")
    assert remote.stat("missing") is None


def test_makedirs_creates_parents_and_tolerates_existing(remote: BaseRemote) -> None:
    remote.makedirs("p/q/r")
    remote.makedirs("p/q/r")
    entry = remote.stat("p/q")
    assert entry is not None
    assert entry.is_dir
    write(remote, "p/file", b"x")
    with pytest.raises(NotADirectoryError):
        remote.makedirs("p/file/sub")


def test_list_returns_entries_with_attributes_sorted(remote: BaseRemote) -> None:
    remote.makedirs("d/sub")
    write(remote, "d/b.bin", b"12345")
    write(remote, "d/a.bin", b"1")
    entries = remote.list("d")
    assert [(e.path, e.size, e.is_dir) for e in entries if not e.is_dir] == [
        ("d/a.bin", 1, False),
        ("d/b.bin", 5, False),
    ]
    assert [e.path for e in entries] == ["d/a.bin", "d/b.bin", "d/sub"]
    assert [e.name for e in remote.list("")] == ["d"]


def test_list_many_equals_listing_each_folder_and_raises_for_a_missing_one(remote: BaseRemote) -> None:
    folders = [f"d{n:03d}" for n in range(150)]  # more than SFTP's window of folders listed at once
    for n, folder in enumerate(folders):
        remote.makedirs(f"{folder}/sub")
        for k in range(n % 4):
            with remote.open_write(f"{folder}/f{k}") as out:
                out.write(b"x" * k)
    listed = remote.list_many(["", *folders])
    assert listed == [remote.list(""), *(remote.list(f) for f in folders)]
    assert [len(entries) for entries in listed[1:5]] == [1, 2, 3, 4]  # sub + 0..3 files
    with pytest.raises(FileNotFoundError):
        remote.list_many([folders[0], "missing", folders[1]])
    assert remote.list_many([]) == []


def test_list_of_missing_folder_raises(remote: BaseRemote) -> None:
    with pytest.raises(FileNotFoundError):
        remote.list("missing")


def test_symlinks_are_reported_not_followed(remote: BaseRemote, sftp_root: Path) -> None:
    write(remote, "target", b"0123456789")
    os.symlink("target", sftp_root / "link")
    entry = remote.stat("link")
    assert entry is not None
    assert entry.is_symlink
    assert not entry.is_file
    assert [e.is_symlink for e in remote.list("") if e.name == "link"] == [True]


def test_rename_moves_a_file(remote: BaseRemote) -> None:
    write(remote, "src", b"data")
    remote.rename("src", "dst")
    assert remote.stat("src") is None
    assert remote.read_bytes("dst") == b"data"


def test_rename_never_replaces_an_existing_file(remote: BaseRemote) -> None:
    write(remote, "src", b"new")
    write(remote, "dst", b"old")
    with pytest.raises(FileExistsError):
        remote.rename("src", "dst")
    assert remote.read_bytes("dst") == b"old"
    assert remote.read_bytes("src") == b"new"


def test_rename_never_replaces_an_existing_empty_folder(remote: BaseRemote) -> None:
    remote.makedirs("a")
    remote.makedirs("b")
    with pytest.raises(FileExistsError):
        remote.rename("a", "b")
    assert remote.stat("a") is not None


def test_rename_replaces_only_when_asked(remote: BaseRemote) -> None:
    write(remote, "src", b"new")
    write(remote, "dst", b"old")
    remote.rename("src", "dst", replace=True)
    assert remote.read_bytes("dst") == b"new"
    assert remote.stat("src") is None


def test_remove_and_rmdir(remote: BaseRemote) -> None:
    remote.makedirs("d")
    write(remote, "d/f", b"x")
    remote.remove("d/f")
    assert remote.stat("d/f") is None
    remote.rmdir("d")
    assert remote.stat("d") is None
    with pytest.raises(FileNotFoundError):
        remote.remove("d/f")


def test_remove_many_reports_each_path(remote: BaseRemote) -> None:
    remote.makedirs("many")
    names = [f"many/f{i:04d}" for i in range(1500)]  # more than one SFTP window of 1,024 requests
    for name in names:
        write(remote, name, b"")
    results = remote.remove_many([*names, "many/absent", "../escape", "many"])
    assert [r.path for r in results] == [*names, "many/absent", "../escape", "many"]
    assert all(r.ok for r in results[: len(names)])
    assert isinstance(results[-3].error, FileNotFoundError)
    assert isinstance(results[-2].error, UnsafePath)
    assert isinstance(results[-1].error, OSError)  # a folder is not removed by remove
    assert remote.list("many") == []


def test_stat_many_is_stat_of_each_path_in_order(remote: BaseRemote, sftp_root: Path) -> None:
    remote.makedirs("d")
    write(remote, "d/f", b"12345")
    os.symlink("d", sftp_root / "link")
    paths = [f"d/x{i}" for i in range(1100)] + ["d/f", "link", "d", "absent/deeper"]  # > one SFTP window
    found = remote.stat_many(paths)
    assert found == [remote.stat(p) for p in paths]
    assert found[-4] is not None and found[-4].size == 5
    assert found[-3] is not None and found[-3].is_symlink
    with pytest.raises(UnsafePath):
        remote.stat_many(["d/f", "../escape"])


def test_check_parents_refuses_a_symlink_or_a_file_anywhere_on_the_path(
    remote: BaseRemote, sftp_root: Path
) -> None:
    from seqshare.transfer.remote import SymlinkInPath

    remote.makedirs("group/run/pool")
    remote.makedirs("other/run/pool")
    write(remote, "group/plain", b"x")
    os.symlink(sftp_root / "other" / "run", sftp_root / "group" / "swapped")
    problems = remote.check_parents(
        [
            "group/run/pool/f",  # every folder real: fine (the file itself need not exist)
            "group/swapped/pool/f",  # a folder on the way is a link to another group's folder
            "group/plain/f",  # a file where a folder should be
            "group/gone/pool/f",  # a missing folder
            "other/run/pool/f",  # not under the group's directory
            "group/../other/f",
        ],
        within="group",
    )
    assert problems[0] is None
    assert isinstance(problems[1], SymlinkInPath) and "group/swapped" in str(problems[1])
    assert isinstance(problems[2], SymlinkInPath)
    assert isinstance(problems[3], FileNotFoundError)
    assert isinstance(problems[4], UnsafePath) and isinstance(problems[5], UnsafePath)
    os.rename(sftp_root / "group", sftp_root / "real")
    os.symlink(sftp_root / "other", sftp_root / "group")  # the group's directory itself swapped
    assert isinstance(remote.check_parents(["group/run/pool/f"], within="group")[0], SymlinkInPath)


def test_remove_many_within_a_folder_removes_nothing_through_a_symlink(
    remote: BaseRemote, sftp_root: Path
) -> None:
    from seqshare.transfer.remote import SymlinkInPath

    remote.makedirs("group/run/pool")
    remote.makedirs("other/run/pool")
    write(remote, "group/run/pool/mine", b"x")
    write(remote, "other/run/pool/theirs", b"keep")
    os.symlink(sftp_root / "other" / "run", sftp_root / "group" / "swapped")
    results = remote.remove_many(
        ["group/run/pool/mine", "group/swapped/pool/theirs", "group/absent/f", "other/run/pool/theirs"],
        within="group",
    )
    assert results[0].ok and remote.stat("group/run/pool/mine") is None
    assert isinstance(results[1].error, SymlinkInPath)
    assert isinstance(results[2].error, FileNotFoundError)
    assert isinstance(results[3].error, UnsafePath)
    assert remote.read_bytes("other/run/pool/theirs") == b"keep"


def test_set_mtime_is_visible_in_stat_and_list(remote: BaseRemote) -> None:
    write(remote, "f", b"x")
    when = datetime(2024, 5, 17, 12, 30, 45, tzinfo=UTC)
    remote.set_mtime("f", when)
    entry = remote.stat("f")
    assert entry is not None
    assert entry.mtime == when
    assert remote.list("")[0].mtime == when


def test_set_mtime_requires_an_aware_datetime(remote: BaseRemote) -> None:
    write(remote, "f", b"x")
    with pytest.raises(ValueError, match="timezone-aware"):
        remote.set_mtime("f", datetime(2024, 1, 1))


@pytest.mark.parametrize(
    "bad",
    ["../x", "a/../../x", "/etc/passwd", "a/\x00b", "a\nb", "a\rb", "a\\..\\b", ".."],
)
def test_paths_that_could_escape_the_root_are_refused_by_every_call(remote: BaseRemote, bad: str) -> None:
    calls = [
        lambda: remote.stat(bad),
        lambda: remote.list(bad),
        lambda: remote.makedirs(bad),
        lambda: remote.open_write(bad),
        lambda: remote.read_bytes(bad),
        lambda: remote.rename(bad, "ok"),
        lambda: remote.rename("ok", bad),
        lambda: remote.remove(bad),
        lambda: remote.rmdir(bad),
        lambda: remote.set_mtime(bad, datetime.now(UTC)),
    ]
    for call in calls:
        with pytest.raises(UnsafePath):
            call()


def test_the_root_itself_cannot_be_removed(remote: BaseRemote) -> None:
    with pytest.raises(IsADirectoryError):
        remote.rmdir("")
    assert not remote.remove_many([""])[0].ok


def test_dry_run_changes_nothing_and_records_the_deletions(make_remote, sftp_root: Path) -> None:
    (sftp_root / "d").mkdir()
    (sftp_root / "d" / "f").write_bytes(b"precious")
    (sftp_root / "g").write_bytes(b"also precious")
    guard = Guard(dry_run=True)
    with make_remote(guard=guard) as remote:
        remote.remove("d/f")
        assert [r.ok for r in remote.remove_many(["g", "d/f"])] == [True, True]
        remote.rmdir("d")
        remote.rename("g", "d/f", replace=True)
        remote.makedirs("new/dir")
        with remote.open_write("new/file") as out:
            out.write(b"x")
        with remote.open_update("g") as out:
            out.seek(3)
            out.write(b"x")
        remote.set_mtime("g", datetime(2020, 1, 1, tzinfo=UTC))
    assert (sftp_root / "d" / "f").read_bytes() == b"precious"
    assert (sftp_root / "g").read_bytes() == b"also precious"
    assert sorted(p.name for p in sftp_root.iterdir()) == ["d", "g"]
    assert [(p.action.value, p.path) for p in guard.would_delete] == [
        ("remove", "d/f"),
        ("remove", "g"),
        ("remove", "d/f"),
        ("rmdir", "d"),
        ("overwrite", "d/f"),
    ]


def test_every_backend_satisfies_the_remote_protocol(remote: BaseRemote) -> None:
    from seqshare.transfer import Remote

    assert isinstance(remote, Remote)
