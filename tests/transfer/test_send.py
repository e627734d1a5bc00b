"""send_files (many files, parallel connections, retries, resumable) and put_text, against the real sshd."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from seqshare.transfer import (
    ConnectionLost,
    CopyResult,
    DestinationConflict,
    FileToSend,
    Guard,
    HostKeyMismatch,
    LocalRemote,
    SendFailed,
    is_retryable,
    put_text,
    send_files,
)
from seqshare.transfer.remote import BaseRemote
from seqshare.transfer.sftp import SftpConfig, SftpRemote
from tests.sshd import SshdServer
from tests.transfer.test_copy import MiB, make_file

WHEN = datetime(2026, 3, 1, 9, 30, 12, tzinfo=UTC)
NO_SLEEP: Callable[[float], None] = lambda _: None  # noqa: E731


def make_files(
    folder: Path, sizes: list[int], prefix: str = "acme/RUN1/SLX-1"
) -> tuple[list[FileToSend], dict]:
    """Files of the given sizes in `folder`; returns them and {remote_path: md5}."""
    folder.mkdir(parents=True, exist_ok=True)
    files, md5s = [], {}
    for n, size in enumerate(sizes):
        path = folder / f"s{n:03d}_R1_001.fastq.gz"
        md5s[f"{prefix}/{path.name}"] = make_file(path, size, seed=n)
        files.append(FileToSend(path, f"{prefix}/{path.name}", size))
    return files, md5s


class Connections:
    """`connect` for send_files that counts connections and closes them after the test."""

    def __init__(self, config: SftpConfig, wrap: Callable[[SftpRemote], Any] | None = None) -> None:
        self.config = config
        self.wrap = wrap
        self.count = 0
        self.lock = threading.Lock()

    def __call__(self) -> Any:
        with self.lock:
            self.count += 1
        remote = SftpRemote.connect(self.config)
        return self.wrap(remote) if self.wrap else remote


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_many_files_in_parallel_are_byte_identical(
    sftp_config: SftpConfig, sftp_root: Path, tmp_path: Path
) -> None:
    sizes = [3 * MiB + 17, 0, 1, 700_000] + [MiB // 2 + n for n in range(20)]
    files, md5s = make_files(tmp_path / "src", sizes)
    connect = Connections(sftp_config)
    main = threading.get_ident()
    seen: list[tuple[str, int]] = []

    def on_sent(file: FileToSend, result: CopyResult) -> None:
        seen.append((file.remote_path, threading.get_ident()))
        assert result.path == file.remote_path

    results = send_files(files, connect, parallel=3, mtime=WHEN, on_sent=on_sent, sleep=NO_SLEEP)

    assert connect.count == 3  # one connection per worker, reused for many files
    assert [r.path for r in results] == [f.remote_path for f in files]  # in the order given
    assert {r.path: r.md5 for r in results} == md5s
    assert not any(r.skipped for r in results)
    assert sorted(path for path, _ in seen) == sorted(md5s)  # once per file
    assert {ident for _, ident in seen} == {main}  # in the caller's thread
    for file in files:
        delivered = sftp_root / file.remote_path
        assert hashlib.md5(delivered.read_bytes()).hexdigest() == md5s[file.remote_path]
        assert delivered.stat().st_mtime == WHEN.timestamp()
    assert tree(sftp_root) == sorted(md5s)  # no partials left


def test_a_rerun_skips_everything(sftp_config: SftpConfig, sftp_root: Path, tmp_path: Path) -> None:
    files, md5s = make_files(tmp_path / "src", [MiB, 2 * MiB, 300_000, 5])
    first = send_files(files, Connections(sftp_config), parallel=2, sleep=NO_SLEEP)
    inodes = {f.remote_path: (sftp_root / f.remote_path).stat().st_ino for f in files}
    ledger = {r.path: r.md5 for r in first}
    again = [replace(f, delivered_md5=ledger[f.remote_path]) for f in files]
    recorded: list[CopyResult] = []

    results = send_files(again, Connections(sftp_config), parallel=2, on_sent=lambda f, r: recorded.append(r))

    assert all(r.skipped for r in results)
    assert {r.path: r.md5 for r in results} == md5s
    assert len(recorded) == len(files)
    assert {f.remote_path: (sftp_root / f.remote_path).stat().st_ino for f in files} == inodes


class _KillingWriter:
    """Counts the bytes written through every writer of the test (a split file has one per connection);
    kills the sessions once the total passes `state["after"]`."""

    def __init__(self, inner: Any, state: dict, kill: Callable[[], None]) -> None:
        self.inner, self.state, self.kill = inner, state, kill

    def write(self, data: bytes) -> int:
        with self.state["lock"]:
            self.state["sent"] = self.state.get("sent", 0) + len(data)
            passed = self.state["sent"] > self.state["after"]
        if passed:
            self.kill()
        return self.inner.write(data)

    def seek(self, offset: int) -> int:
        return self.inner.seek(offset)

    def close(self) -> None:
        self.inner.close()

    def __enter__(self) -> _KillingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.inner.__exit__(*exc)


class _KillOnce:
    """A remote whose uploads kill every sshd session once, when the bytes written pass `after`."""

    def __init__(self, remote: SftpRemote, state: dict) -> None:
        self._remote, self._state = remote, state

    def open_write(self, path: str) -> Any:
        return _KillingWriter(self._remote.open_write(path), self._state, self._kill)

    def open_update(self, path: str) -> Any:
        return _KillingWriter(self._remote.open_update(path), self._state, self._kill)

    def _kill(self) -> None:
        with self._state["lock"]:
            if self._state["killed"] == 0:
                self._state["killed"] = self._state["server"].kill_sessions()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._remote, name)


@pytest.mark.parametrize("split_min_size", [64 * MiB, 16 * MiB], ids=["whole files", "the large file split"])
def test_sessions_killed_mid_transfer_are_retried_and_all_complete(
    sftp_config: SftpConfig, sshd_server: SshdServer, sftp_root: Path, tmp_path: Path, split_min_size: int
) -> None:
    files, md5s = make_files(tmp_path / "src", [24 * MiB] + [2 * MiB] * 6)
    state = {"after": 8 * MiB, "killed": 0, "lock": threading.Lock(), "server": sshd_server}
    connect = Connections(sftp_config, wrap=lambda remote: _KillOnce(remote, state))
    delays: list[float] = []

    results = send_files(files, connect, parallel=2, split_min_size=split_min_size, sleep=delays.append)

    assert state["killed"] >= 1
    assert connect.count >= 3  # at least one worker reconnected
    assert delays  # backed off before retrying
    assert {r.path: r.md5 for r in results} == md5s
    for path, md5 in md5s.items():
        assert hashlib.md5((sftp_root / path).read_bytes()).hexdigest() == md5
    assert tree(sftp_root) == sorted(md5s)  # no `.partial` left


def test_a_conflicting_file_fails_alone_and_the_others_are_delivered(
    sftp_config: SftpConfig, sftp_root: Path, tmp_path: Path
) -> None:
    files, md5s = make_files(tmp_path / "src", [MiB] * 5)
    taken = sftp_root / files[2].remote_path
    taken.parent.mkdir(parents=True)
    taken.write_bytes(b"someone else's file")
    sent: list[str] = []

    with pytest.raises(SendFailed) as caught:
        send_files(
            files, Connections(sftp_config), parallel=2, on_sent=lambda f, r: sent.append(f.remote_path)
        )

    error = caught.value
    assert str(error).startswith(f"1 of 5 files failed: {files[2].remote_path}: DestinationConflict")
    assert [f.file for f in error.failures] == [files[2]]
    assert not error.failures[0].retryable
    assert not is_retryable(error)
    assert sorted(sent) == sorted(p for p in md5s if p != files[2].remote_path)
    assert taken.read_bytes() == b"someone else's file"
    for path in sent:
        assert hashlib.md5((sftp_root / path).read_bytes()).hexdigest() == md5s[path]


def test_a_host_key_mismatch_fails_fast_and_sends_nothing(
    sftp_config: SftpConfig, sshd_server: SshdServer, sftp_root: Path, tmp_path: Path
) -> None:
    files, _ = make_files(tmp_path / "src", [1000] * 30)
    wrong_key = Path(f"{sshd_server.client_key_path}.pub").read_text()  # a valid ed25519 key, not the host's
    connect = Connections(replace(sftp_config, known_host_key=wrong_key))
    delays: list[float] = []

    with pytest.raises(SendFailed) as caught:
        send_files(files, connect, parallel=3, sleep=delays.append)

    assert connect.count <= 3  # at most one try per worker, no retries
    assert delays == []
    assert len(caught.value.failures) == 30
    assert all("HostKeyMismatch" in f.error and not f.retryable for f in caught.value.failures)
    assert isinstance(caught.value.__cause__, HostKeyMismatch)
    assert list(sftp_root.iterdir()) == []


def test_an_unreachable_server_is_retried_then_every_file_fails_retryably(tmp_path: Path) -> None:
    files, _ = make_files(tmp_path / "src", [10] * 5)
    calls: list[int] = []

    def connect() -> LocalRemote:
        calls.append(1)
        raise ConnectionLost("cannot connect to sftp.example.org:22: connection refused")

    with pytest.raises(SendFailed) as caught:
        send_files(files, connect, parallel=2, attempts=3, sleep=NO_SLEEP)

    assert len(calls) == 2 * 3  # each worker tried `attempts` times, then left the files
    assert len(caught.value.failures) == 5
    assert all(f.retryable for f in caught.value.failures)
    assert is_retryable(caught.value)


def test_largest_files_go_first(tmp_path: Path) -> None:
    files, _ = make_files(tmp_path / "src", [10, 3000, 200, 50_000, 7])
    (tmp_path / "dst").mkdir()
    order: list[int] = []
    send_files(
        files, lambda: LocalRemote(tmp_path / "dst"), parallel=1, on_sent=lambda f, r: order.append(f.size)
    )
    assert order == [50_000, 3000, 200, 10, 7]


def test_an_error_in_on_sent_stops_the_run(tmp_path: Path) -> None:
    files, _ = make_files(tmp_path / "src", [100] * 20)
    (tmp_path / "dst").mkdir()

    def on_sent(file: FileToSend, result: CopyResult) -> None:
        raise RuntimeError("ledger is down")

    with pytest.raises(RuntimeError, match="ledger is down"):
        send_files(files, lambda: LocalRemote(tmp_path / "dst"), parallel=2, on_sent=on_sent)
    assert not any(t.name.startswith("seqshare-send") for t in threading.enumerate())  # joined
    assert len(tree(tmp_path / "dst")) < 20  # the workers stopped instead of sending everything


def test_dry_run_sends_nothing(tmp_path: Path) -> None:
    files, _ = make_files(tmp_path / "src", [100, 200])
    (tmp_path / "dst").mkdir()
    guard = Guard(dry_run=True)
    results = send_files(files, lambda: LocalRemote(tmp_path / "dst"), guard=guard)
    assert all(r.dry_run for r in results)
    assert os.listdir(tmp_path / "dst") == []
    assert sorted(p.path for p in guard.planned) == sorted(f.remote_path for f in files)


def test_put_text_is_idempotent_and_replaces_a_changed_manifest(remote: BaseRemote, sftp_root: Path) -> None:
    path = "acme/RUN1/MD5SUMS.txt"
    assert put_text(remote, path, "abc  x_R1_001.fastq.gz\n", mtime=WHEN) is True
    first = (sftp_root / path).stat()
    assert (sftp_root / path).read_text() == "abc  x_R1_001.fastq.gz\n"
    assert first.st_mtime == WHEN.timestamp()

    assert put_text(remote, path, "abc  x_R1_001.fastq.gz\n") is False  # identical: nothing written
    assert (sftp_root / path).stat().st_ino == first.st_ino

    assert put_text(remote, path, "abc  x_R1_001.fastq.gz\ndef  x_R2_001.fastq.gz\n") is True
    assert (sftp_root / path).read_text().endswith("x_R2_001.fastq.gz\n")
    assert os.listdir(sftp_root / "acme/RUN1") == ["MD5SUMS.txt"]  # no partial left


def test_put_text_refuses_to_replace_a_folder(remote: BaseRemote, sftp_root: Path) -> None:
    (sftp_root / "README.txt").mkdir()
    with pytest.raises(DestinationConflict, match="folder"):
        put_text(remote, "README.txt", "hello")


def test_large_files_are_split_over_every_connection_then_the_rest_go_one_per_connection(
    sftp_config: SftpConfig, sftp_root: Path, tmp_path: Path
) -> None:
    files, md5s = make_files(tmp_path / "src", [9 * MiB + 1, 6 * MiB, MiB, 100_000, 0])
    connect = Connections(sftp_config)
    order: list[str] = []

    results = send_files(
        files,
        connect,
        parallel=3,
        mtime=WHEN,
        split_min_size=4 * MiB,
        on_sent=lambda file, result: order.append(file.remote_path),
        sleep=NO_SLEEP,
    )

    assert connect.count == 3 + 3  # the split phase: one worker with 3; then 3 workers with one each
    assert order[:2] == [files[0].remote_path, files[1].remote_path]  # the split files first, largest first
    assert {r.path: r.md5 for r in results} == md5s
    for file in files:
        delivered = sftp_root / file.remote_path
        assert hashlib.md5(delivered.read_bytes()).hexdigest() == md5s[file.remote_path]
        assert delivered.stat().st_mtime == WHEN.timestamp()
    assert tree(sftp_root) == sorted(md5s)


def test_as_many_large_files_as_connections_go_whole_in_parallel(
    sftp_config: SftpConfig, sftp_root: Path, tmp_path: Path
) -> None:
    files, md5s = make_files(tmp_path / "src", [9 * MiB, 6 * MiB, MiB])
    connect = Connections(sftp_config)
    results = send_files(files, connect, parallel=2, split_min_size=4 * MiB, sleep=NO_SLEEP)
    assert connect.count == 2  # no split phase: the two workers' own connections only
    assert {r.path: r.md5 for r in results} == md5s


def test_one_connection_never_splits(sftp_config: SftpConfig, sftp_root: Path, tmp_path: Path) -> None:
    files, md5s = make_files(tmp_path / "src", [9 * MiB, MiB])
    connect = Connections(sftp_config)
    results = send_files(files, connect, parallel=1, split_min_size=4 * MiB, sleep=NO_SLEEP)
    assert connect.count == 1
    assert {r.path: r.md5 for r in results} == md5s


def test_a_split_goes_on_with_the_connections_the_server_allows(
    sftp_config: SftpConfig, sftp_root: Path, tmp_path: Path
) -> None:
    """A server that allows one session per user refuses every extra connection: the file goes over one."""
    files, md5s = make_files(tmp_path / "src", [9 * MiB, MiB])
    lock = threading.Lock()
    sessions = {"open": 0, "refused": 0}

    def connect() -> SftpRemote:
        with lock:
            if sessions["open"] >= 1:
                sessions["refused"] += 1
                raise ConnectionLost("too many sessions for this user")
            sessions["open"] += 1
        remote = SftpRemote.connect(sftp_config)
        real_close = remote.close

        def close() -> None:
            with lock:
                sessions["open"] -= 1
            real_close()

        remote.close = close  # type: ignore[method-assign]
        return remote

    results = send_files(files, connect, parallel=2, split_min_size=4 * MiB, sleep=NO_SLEEP)
    assert sessions["refused"] >= 1
    assert {r.path: r.md5 for r in results} == md5s
    assert tree(sftp_root) == sorted(md5s)
