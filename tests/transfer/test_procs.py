"""send_files_processes (worker processes over subprocess) against the real sshd."""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import paramiko
import pytest

from seqshare.transfer import (
    CopyResult,
    FileToSend,
    HostKeyMismatch,
    SendFailed,
    send_files_processes,
)
from seqshare.transfer import procs as procs_module
from seqshare.transfer.procs import SPLIT_MIN_SIZE, config_from_json, config_to_json
from seqshare.transfer.sftp import SftpConfig, SftpRemote
from tests.sshd import SshdServer
from tests.transfer.test_copy import MiB
from tests.transfer.test_send import make_files, tree

WHEN = datetime(2026, 3, 1, 9, 30, 12, tzinfo=UTC)
NO_SLEEP: Callable[[float], None] = lambda _: None  # noqa: E731


def md5_of(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def spawned(monkeypatch: pytest.MonkeyPatch) -> list[subprocess.Popen]:
    """Every worker process started during the test (to check none is left running)."""
    seen: list[subprocess.Popen] = []
    original = procs_module._Worker.__init__

    def init(self: procs_module._Worker, *args: object) -> None:
        original(self, *args)
        seen.append(self.process)

    monkeypatch.setattr(procs_module._Worker, "__init__", init)
    return seen


def assert_no_workers_left(spawned: list[subprocess.Popen]) -> None:
    assert spawned, "no worker was started"
    assert all(p.poll() is not None for p in spawned), [p.pid for p in spawned if p.poll() is None]
    for process in spawned:
        with pytest.raises(ProcessLookupError):
            os.kill(process.pid, 0)  # reaped: not even a zombie


def assert_delivered(sftp_root: Path, md5s: dict[str, str]) -> None:
    assert tree(sftp_root) == sorted(md5s)
    for path, md5 in md5s.items():
        assert md5_of(sftp_root / path) == md5, path


def test_many_files_are_byte_identical_with_md5_and_on_sent_in_the_callers_thread(
    sftp_config: SftpConfig, sftp_root: Path, tmp_path: Path, spawned: list[subprocess.Popen]
) -> None:
    sizes = [3 * MiB + 17, 0, 1, 700_000] + [MiB // 2 + n for n in range(30)]
    files, md5s = make_files(tmp_path / "src", sizes)
    main = threading.get_ident()
    seen: list[tuple[str, int]] = []

    def on_sent(file: FileToSend, result: CopyResult) -> None:
        seen.append((file.remote_path, threading.get_ident()))

    results = send_files_processes(
        files, sftp_config, processes=2, mtime=WHEN, on_sent=on_sent, sleep=NO_SLEEP
    )
    assert [r.path for r in results] == [f.remote_path for f in files]
    assert all(r.md5 == md5s[r.path] and not r.skipped for r in results)
    assert sorted(p for p, _ in seen) == sorted(md5s)  # once per file
    assert {t for _, t in seen} == {main}
    assert_delivered(sftp_root, md5s)
    assert (sftp_root / files[0].remote_path).stat().st_mtime == WHEN.timestamp()
    assert len(spawned) == 2
    assert_no_workers_left(spawned)


@pytest.mark.parametrize("processes", [2, 3])
def test_a_large_file_is_split_over_the_workers(
    sftp_config: SftpConfig,
    sftp_root: Path,
    tmp_path: Path,
    spawned: list[subprocess.Popen],
    processes: int,
) -> None:
    files, md5s = make_files(tmp_path / "src", [40 * MiB + 5, 3 * MiB])
    assert files[0].size >= SPLIT_MIN_SIZE > files[1].size
    seen: list[str] = []
    results = send_files_processes(
        files,
        sftp_config,
        processes=processes,
        mtime=WHEN,
        on_sent=lambda f, r: seen.append(f.remote_path),
        sleep=NO_SLEEP,
    )
    assert [r.md5 for r in results] == [md5s[f.remote_path] for f in files]
    assert seen == [f.remote_path for f in files]  # largest first, each once
    assert_delivered(sftp_root, md5s)
    assert (sftp_root / files[0].remote_path).stat().st_mtime == WHEN.timestamp()
    assert len(spawned) == processes
    assert_no_workers_left(spawned)


def test_md5_off_still_delivers_byte_identical(
    sftp_config: SftpConfig, sftp_root: Path, tmp_path: Path
) -> None:
    files, md5s = make_files(tmp_path / "src", [36 * MiB, MiB, 10])
    results = send_files_processes(files, sftp_config, compute_md5=False, sleep=NO_SLEEP)
    assert all(r.md5 is None for r in results)
    assert_delivered(sftp_root, md5s)


def test_a_rerun_skips_everything(
    sftp_config: SftpConfig, sftp_root: Path, tmp_path: Path, spawned: list[subprocess.Popen]
) -> None:
    files, md5s = make_files(tmp_path / "src", [34 * MiB, MiB, 300_000, 5])
    first = send_files_processes(files, sftp_config, sleep=NO_SLEEP)
    inodes = {f.remote_path: (sftp_root / f.remote_path).stat().st_ino for f in files}
    recorded = [replace(f, delivered_md5=r.md5) for f, r in zip(files, first, strict=True)]
    again = send_files_processes(recorded, sftp_config, sleep=NO_SLEEP)
    assert all(r.skipped for r in again)
    assert [r.md5 for r in again] == [md5s[f.remote_path] for f in files]
    # not recorded (a crash between rename and ledger): verified by content, then skipped
    unrecorded = send_files_processes(files, sftp_config, sleep=NO_SLEEP)
    assert all(r.skipped and r.md5 == md5s[r.path] for r in unrecorded)
    assert {f.remote_path: (sftp_root / f.remote_path).stat().st_ino for f in files} == inodes
    assert_delivered(sftp_root, md5s)
    assert_no_workers_left(spawned)


@pytest.mark.parametrize("big", [False, True])
def test_a_conflicting_file_fails_alone_and_the_others_are_delivered(
    sftp_config: SftpConfig,
    sftp_root: Path,
    tmp_path: Path,
    spawned: list[subprocess.Popen],
    big: bool,
) -> None:
    sizes = [33 * MiB, 34 * MiB, MiB, MiB] if big else [MiB] * 5
    files, md5s = make_files(tmp_path / "src", sizes)
    conflict = files[1]
    (sftp_root / conflict.remote_path).parent.mkdir(parents=True)
    (sftp_root / conflict.remote_path).write_bytes(b"someone else's file")

    with pytest.raises(SendFailed) as caught:
        send_files_processes(files, sftp_config, sleep=NO_SLEEP)
    failures = caught.value.failures
    assert [f.file.remote_path for f in failures] == [conflict.remote_path]
    assert "DestinationConflict" in failures[0].error and not failures[0].retryable
    assert conflict.remote_path in str(caught.value)
    assert (sftp_root / conflict.remote_path).read_bytes() == b"someone else's file"
    del md5s[conflict.remote_path]
    for path, md5 in md5s.items():
        assert md5_of(sftp_root / path) == md5
    assert not [p for p in tree(sftp_root) if p.endswith(".partial")]
    assert_no_workers_left(spawned)


def test_a_host_key_mismatch_fails_fast_and_sends_nothing(
    sftp_config: SftpConfig,
    sshd_server: SshdServer,
    sftp_root: Path,
    tmp_path: Path,
    spawned: list[subprocess.Popen],
) -> None:
    files, _ = make_files(tmp_path / "src", [40 * MiB, 1000, 1000])
    wrong_key = Path(f"{sshd_server.client_key_path}.pub").read_text()  # a valid ed25519 key, not the host's
    delays: list[float] = []
    t0 = time.monotonic()
    with pytest.raises(SendFailed) as caught:
        send_files_processes(
            files, replace(sftp_config, known_host_key=wrong_key), sleep=delays.append, attempts=4
        )
    assert time.monotonic() - t0 < 10
    assert delays == []
    assert len(caught.value.failures) == 3
    assert all("HostKeyMismatch" in f.error and not f.retryable for f in caught.value.failures)
    assert isinstance(caught.value.__cause__, HostKeyMismatch)
    assert list(sftp_root.iterdir()) == []
    assert spawned == []  # checked on the parent's connection before any process starts


def _kill_after(sshd_server: SshdServer, watched: Path, threshold: int, state: dict) -> threading.Thread:
    def run() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            written = sum(p.stat().st_size for p in watched.rglob("*") if p.is_file())
            if written >= threshold:
                state["killed"] = sshd_server.kill_sessions()
                return
            time.sleep(0.005)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("sizes", [[48 * MiB, MiB, MiB], [2 * MiB] * 30], ids=["split", "whole"])
def test_sessions_killed_mid_transfer_are_retried_and_all_complete(
    sftp_config: SftpConfig,
    sshd_server: SshdServer,
    sftp_root: Path,
    tmp_path: Path,
    spawned: list[subprocess.Popen],
    sizes: list[int],
) -> None:
    files, md5s = make_files(tmp_path / "src", sizes)
    state: dict = {}
    killer = _kill_after(sshd_server, sftp_root, 8 * MiB, state)
    delays: list[float] = []
    results = send_files_processes(files, sftp_config, sleep=delays.append, backoff_base=0.01)
    killer.join()
    assert state.get("killed", 0) >= 1, "the sessions were not killed mid-transfer"
    assert delays, "nothing was retried"
    assert [r.md5 for r in results] == [md5s[f.remote_path] for f in files]
    assert_delivered(sftp_root, md5s)  # no .partial left either
    assert len(spawned) > 2  # workers were restarted
    assert_no_workers_left(spawned)


def test_no_worker_is_left_after_an_error_in_on_sent(
    sftp_config: SftpConfig, sftp_root: Path, tmp_path: Path, spawned: list[subprocess.Popen]
) -> None:
    files, _ = make_files(tmp_path / "src", [MiB] * 20)

    def on_sent(file: FileToSend, result: CopyResult) -> None:
        raise RuntimeError("ledger down")

    with pytest.raises(RuntimeError, match="ledger down"):
        send_files_processes(files, sftp_config, on_sent=on_sent, sleep=NO_SLEEP)
    assert_no_workers_left(spawned)
    assert not [p for p in tree(sftp_root) if p.endswith(".partial")]


def test_worker_stops_when_its_stdin_closes(sftp_config: SftpConfig) -> None:
    worker = procs_module._Worker(config_to_json(sftp_config), procs_module._worker_env())
    worker.wait_ready()
    worker._stdin.close()
    assert worker.process.wait(timeout=10) == 0


def test_a_key_object_travels_to_the_worker(sftp_config: SftpConfig, sftp_root: Path, tmp_path: Path) -> None:
    key = paramiko.PKey.from_path(sftp_config.private_key_path)
    config = replace(sftp_config, private_key_path=None, private_key=key)
    rebuilt = config_from_json(config_to_json(config))
    assert rebuilt.private_key is not None and rebuilt.private_key.asbytes() == key.asbytes()
    SftpRemote.connect(rebuilt).close()
    files, md5s = make_files(tmp_path / "src", [1000, 2000])
    send_files_processes(files, config, sleep=NO_SLEEP)
    assert_delivered(sftp_root, md5s)
