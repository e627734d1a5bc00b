"""copy_file against every backend, plus the SFTP-only fault: a session dropped mid-file."""

from __future__ import annotations

import hashlib
import os
import random
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from seqshare.transfer import (
    ConnectionLost,
    DestinationConflict,
    Guard,
    LocalRemote,
    SourceChanged,
    call_with_retry,
    copy_file,
    is_retryable,
    partial_path,
)
from seqshare.transfer.remote import BaseRemote
from tests.sshd import SshdServer

MiB = 1024 * 1024


def make_file(path: Path, size: int, seed: int = 0) -> str:
    """A file of `size` pseudo-random bytes (one random MiB, each copy prefixed by its index); its md5."""
    block = random.Random(seed).randbytes(MiB)
    md5 = hashlib.md5()
    with open(path, "wb") as out:
        for index, offset in enumerate(range(0, size, MiB)):
            piece = (index.to_bytes(8, "big") + block)[: min(MiB, size - offset)]
            out.write(piece)
            md5.update(piece)
    return md5.hexdigest()


@pytest.fixture
def source(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "sample_R1.fastq.gz"
    return path, make_file(path, 5 * MiB + 123)


def test_copy_is_byte_identical_and_reports_the_md5(remote: BaseRemote, sftp_root: Path, source) -> None:
    path, md5 = source
    result = copy_file(path, remote, "P001/run1/sample_R1.fastq.gz", chunk_size=MiB)
    assert (result.size, result.md5, result.skipped) == (path.stat().st_size, md5, False)
    assert (sftp_root / "P001/run1/sample_R1.fastq.gz").read_bytes() == path.read_bytes()
    assert [e.name for e in remote.list("P001/run1")] == ["sample_R1.fastq.gz"]


@pytest.mark.parametrize("hash_in_thread", [True, False])
def test_md5_is_the_same_inline_and_in_a_thread(remote: BaseRemote, source, hash_in_thread: bool) -> None:
    path, md5 = source
    assert copy_file(path, remote, "f", hash_in_thread=hash_in_thread, chunk_size=MiB).md5 == md5


def test_an_empty_file_is_copied(remote: BaseRemote, tmp_path: Path, sftp_root: Path) -> None:
    (tmp_path / "empty").write_bytes(b"")
    result = copy_file(tmp_path / "empty", remote, "empty")
    assert result.md5 == hashlib.md5(b"").hexdigest()
    assert (sftp_root / "empty").read_bytes() == b""


def test_the_delivery_time_becomes_the_mtime(remote: BaseRemote, source) -> None:
    when = datetime(2026, 3, 1, 9, 30, 12, tzinfo=UTC)
    copy_file(source[0], remote, "f", mtime=when)
    entry = remote.stat("f")
    assert entry is not None
    assert entry.mtime == when


def test_a_rerun_skips_the_delivered_file(remote: BaseRemote, sftp_root: Path, source) -> None:
    path, md5 = source
    copy_file(path, remote, "f", mtime=datetime(2026, 1, 1, tzinfo=UTC))
    before = (sftp_root / "f").stat()
    again = copy_file(path, remote, "f", expected_md5=md5, delivered_md5=md5)
    assert again.skipped
    assert again.md5 == md5
    after = (sftp_root / "f").stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_a_different_existing_file_is_a_conflict_and_stays_untouched(
    remote: BaseRemote, sftp_root: Path, source
) -> None:
    (sftp_root / "f").write_bytes(b"someone else's file")
    with pytest.raises(DestinationConflict, match="never replaces"):
        copy_file(source[0], remote, "f")
    assert (sftp_root / "f").read_bytes() == b"someone else's file"
    assert sorted(p.name for p in sftp_root.iterdir()) == ["f"]


def test_an_unrecorded_file_with_the_same_bytes_is_verified_and_skipped(
    remote: BaseRemote, sftp_root: Path, source
) -> None:
    """A crash between rename and ledger record: the re-run compares the bytes, then records the md5."""
    path, md5 = source
    (sftp_root / "f").write_bytes(path.read_bytes())
    again = copy_file(path, remote, "f")
    assert again.skipped
    assert again.md5 == md5


def test_an_unrecorded_same_size_file_with_other_bytes_is_a_conflict(
    remote: BaseRemote, sftp_root: Path, source
) -> None:
    path, _ = source
    squatter = bytearray(path.read_bytes())
    squatter[-1] ^= 0xFF
    (sftp_root / "f").write_bytes(bytes(squatter))
    with pytest.raises(DestinationConflict, match="same size but other content"):
        copy_file(path, remote, "f")
    assert (sftp_root / "f").read_bytes() == bytes(squatter)


def test_same_size_but_different_ledger_md5_is_a_conflict(remote: BaseRemote, source) -> None:
    path, md5 = source
    copy_file(path, remote, "f")
    with pytest.raises(DestinationConflict, match="md5"):
        copy_file(path, remote, "f", expected_md5=md5, delivered_md5="0" * 32)


def test_a_folder_at_the_destination_is_a_conflict(remote: BaseRemote, sftp_root: Path, source) -> None:
    (sftp_root / "f").mkdir()
    with pytest.raises(DestinationConflict, match="folder"):
        copy_file(source[0], remote, "f")


def test_a_stale_partial_is_restarted_from_scratch(remote: BaseRemote, sftp_root: Path, source) -> None:
    path, md5 = source
    (sftp_root / "d").mkdir()
    (sftp_root / "d" / ".f.partial").write_bytes(b"garbage from an earlier, interrupted run" * 1000)
    result = copy_file(path, remote, "d/f")
    assert result.md5 == md5
    assert not result.skipped
    assert (sftp_root / "d" / "f").read_bytes() == path.read_bytes()
    assert sorted(p.name for p in (sftp_root / "d").iterdir()) == ["f"]


def test_a_source_that_does_not_match_the_ledger_leaves_nothing_behind(
    remote: BaseRemote, sftp_root: Path, source
) -> None:
    with pytest.raises(SourceChanged, match="ledger"):
        copy_file(source[0], remote, "f", expected_md5="0" * 32)
    assert list(sftp_root.iterdir()) == []


def test_dry_run_copy_writes_nothing(make_remote: Callable[..., BaseRemote], sftp_root: Path, source) -> None:
    guard = Guard(dry_run=True)
    with make_remote(guard=guard) as remote:
        result = copy_file(source[0], remote, "d/f")
    assert result.dry_run
    assert not result.skipped
    assert list(sftp_root.iterdir()) == []
    assert [(p.action.value, p.path) for p in guard.planned] == [("write", "d/f")]


def test_partial_name_sits_beside_the_destination() -> None:
    assert partial_path("a/b/x.fastq.gz") == "a/b/.x.fastq.gz.partial"
    assert partial_path("x") == ".x.partial"


@pytest.mark.parametrize("helpers", [0, 1], ids=["one connection", "split over two"])
def test_memory_stays_flat_for_a_large_file(tmp_path: Path, sftp_root: Path, helpers: int) -> None:
    path = tmp_path / "big"
    md5 = make_file(path, 48 * MiB)
    tracemalloc.start()
    try:
        extra = [LocalRemote(sftp_root) for _ in range(helpers)]
        result = copy_file(path, LocalRemote(sftp_root), "big", helpers=extra)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.md5 == md5
    assert peak < 30 * MiB  # a few 4 MiB chunks in flight, not the file size


@pytest.mark.parametrize("helpers", [0, 1], ids=["one connection", "split over two"])
def test_a_dropped_session_fails_retryably_and_the_retry_completes(
    connect_sftp, sshd_server: SshdServer, sftp_root: Path, tmp_path: Path, helpers: int
) -> None:
    path = tmp_path / "big.bam"
    md5 = make_file(path, 64 * MiB, seed=7)
    final = sftp_root / "run" / "big.bam"
    visible_while_incomplete: list[int] = []
    attempts: list[BaseException] = []
    killed = False

    def progress(sent: int) -> None:
        nonlocal killed
        if final.exists():
            visible_while_incomplete.append(sent)
        if not killed and sent >= 16 * MiB:
            killed = True
            assert (sftp_root / "run" / ".big.bam.partial").exists()
            assert sshd_server.kill_sessions() >= 1 + helpers

    def attempt():
        connections = [connect_sftp() for _ in range(1 + helpers)]
        try:
            return copy_file(
                path,
                connections[0],
                "run/big.bam",
                expected_md5=md5,
                progress=progress,
                helpers=connections[1:],
            )
        finally:
            for connection in connections:
                connection.close()

    result = call_with_retry(
        attempt, attempts=3, sleep=lambda _: None, on_retry=lambda n, exc, delay: attempts.append(exc)
    )
    assert [type(exc) for exc in attempts] == [ConnectionLost]
    assert is_retryable(attempts[0])
    assert (result.md5, result.size, result.skipped) == (md5, 64 * MiB, False)
    assert hashlib.md5(final.read_bytes()).hexdigest() == md5
    assert os.listdir(final.parent) == ["big.bam"]
    assert visible_while_incomplete == []


class _CountingRemote:
    """A remote whose writers count the bytes each connection wrote."""

    def __init__(self, remote: BaseRemote) -> None:
        self._remote = remote
        self.written = 0
        self.opened: list[str] = []

    def _count(self, inner):
        outer = self

        class Writer:
            def write(self, data: bytes) -> int:
                outer.written += len(data)
                return inner.write(data)

            def seek(self, offset: int) -> int:
                return inner.seek(offset)

            def close(self) -> None:
                inner.close()

            def __enter__(self):
                return self

            def __exit__(self, *exc: object) -> None:
                inner.__exit__(*exc)

        return Writer()

    def open_write(self, path: str):
        self.opened.append(path)
        return self._count(self._remote.open_write(path))

    def open_update(self, path: str):
        self.opened.append(path)
        return self._count(self._remote.open_update(path))

    def __getattr__(self, name: str):
        return getattr(self._remote, name)


@pytest.mark.parametrize("helpers", [1, 2])
def test_a_split_copy_is_byte_identical_and_every_connection_writes_into_the_one_partial(
    make_remote: Callable[..., BaseRemote], sftp_root: Path, tmp_path: Path, helpers: int
) -> None:
    path = tmp_path / "big.fastq.gz"
    md5 = make_file(path, 9 * MiB + 5, seed=3)
    when = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    connections = [_CountingRemote(make_remote()) for _ in range(helpers + 1)]
    try:
        result = copy_file(
            path,
            connections[0],
            "run/big.fastq.gz",
            chunk_size=64 * 1024,
            mtime=when,
            helpers=connections[1:],
        )
    finally:
        for connection in connections:
            connection.close()
    assert (result.md5, result.size, result.skipped) == (md5, 9 * MiB + 5, False)
    final = sftp_root / "run" / "big.fastq.gz"
    assert hashlib.md5(final.read_bytes()).hexdigest() == md5
    assert final.stat().st_mtime == when.timestamp()
    assert os.listdir(final.parent) == ["big.fastq.gz"]  # the partial was renamed, nothing else left
    assert [c.opened for c in connections] == [["run/.big.fastq.gz.partial"]] * (helpers + 1)
    assert sum(c.written for c in connections) == 9 * MiB + 5  # each byte written once, by one connection


def test_a_file_of_one_chunk_is_not_split(remote: BaseRemote, source) -> None:
    path, md5 = source
    helper = _CountingRemote(remote)
    result = copy_file(path, remote, "small", helpers=[helper], chunk_size=8 * MiB)
    assert result.md5 == md5
    assert helper.opened == []


class _RefusesUpdates:
    """A helper connection to a server that refuses read-write opens (some allow uploads only)."""

    def __init__(self, remote: BaseRemote) -> None:
        self._remote = remote

    def open_update(self, path: str):
        raise PermissionError(13, "read-write open refused", path)

    def __getattr__(self, name: str):
        return getattr(self._remote, name)


def test_a_helper_that_cannot_open_the_partial_is_left_out(
    make_remote: Callable[..., BaseRemote], sftp_root: Path, tmp_path: Path
) -> None:
    path = tmp_path / "big"
    md5 = make_file(path, 3 * MiB + 9, seed=5)
    primary, good = _CountingRemote(make_remote()), _CountingRemote(make_remote())
    refusing = _RefusesUpdates(make_remote())
    result = copy_file(path, primary, "big", chunk_size=256 * 1024, helpers=[refusing, good])
    assert result.md5 == md5
    assert hashlib.md5((sftp_root / "big").read_bytes()).hexdigest() == md5
    assert primary.written + good.written == 3 * MiB + 9
    assert os.listdir(sftp_root) == ["big"]


def test_a_writer_thread_that_cannot_start_stops_the_others_and_fails_the_copy(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sftp_root: Path
) -> None:
    import threading

    path = tmp_path / "big"
    make_file(path, 3 * MiB)
    real_start = threading.Thread.start
    starts = {"n": 0}

    def start(self: threading.Thread) -> None:
        if self.name.startswith("seqshare-split-"):
            starts["n"] += 1
            if starts["n"] == 2:
                raise RuntimeError("can't start new thread")
        real_start(self)

    monkeypatch.setattr(threading.Thread, "start", start)
    remote = LocalRemote(sftp_root)
    with pytest.raises(RuntimeError, match="can't start new thread"):
        copy_file(path, remote, "big", chunk_size=MiB, helpers=[LocalRemote(sftp_root)])
    assert os.listdir(sftp_root) == []  # the partial was removed; nothing under the final name
    assert not [t for t in threading.enumerate() if t.name.startswith("seqshare-split-")]


def test_short_writes_are_completed_not_left_as_holes(
    remote: BaseRemote, sftp_root: Path, source, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A raw file may take fewer bytes than given (a full disk); every chunk is written whole."""
    path, md5 = source

    class Short:
        def __init__(self, inner) -> None:
            self.inner = inner

        def write(self, data: bytes) -> int:
            return self.inner.write(data[: max(1, len(data) // 3)])

        def __enter__(self):
            return self

        def __exit__(self, *exc: object) -> None:
            self.inner.__exit__(*exc)

        def __getattr__(self, name: str):
            return getattr(self.inner, name)

    real_open_write = type(remote).open_write
    monkeypatch.setattr(type(remote), "open_write", lambda self, p: Short(real_open_write(self, p)))
    result = copy_file(path, remote, "short", chunk_size=MiB)
    assert result.md5 == md5
    assert hashlib.md5((sftp_root / "short").read_bytes()).hexdigest() == md5
