"""A source file that changes while it is being sent is never delivered nor vouched for (issue 8, item 4).

The change is made deterministically from inside the upload (no sleeps): after the first chunk is read
(`copy_file`'s `progress` hook) or on the first write of the upload (a writer wrapper for `send_files`),
so the bytes sent mix the two versions. Every source's mtime is set an hour back first, as a run folder's
files are written well before delivery: the rewrite then changes it whatever the filesystem's timestamp
granularity.
"""

from __future__ import annotations

import hashlib
import os
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from seqshare.transfer import (
    CopyResult,
    FileToSend,
    LocalRemote,
    SendFailed,
    SourceChanged,
    call_with_retry,
    copy_file,
    is_retryable,
    send_files,
)
from seqshare.transfer.remote import BaseRemote
from seqshare.transfer.sftp import SftpConfig, SftpRemote
from tests.transfer.test_copy import MiB, make_file

NO_SLEEP: Callable[[float], None] = lambda _: None  # noqa: E731
SPLIT = [0, 1]
SPLIT_IDS = ["one connection", "split over two"]


def written_earlier(path: Path) -> None:
    hour_ago = time.time() - 3600
    os.utime(path, (hour_ago, hour_ago))


def rewrite_in_place(path: Path, seed: int) -> str:
    """Overwrite `path` in place (same inode, same size) with other bytes; their md5."""
    data = random.Random(seed).randbytes(path.stat().st_size)
    with open(path, "r+b") as out:
        out.write(data)
    return hashlib.md5(data).hexdigest()


def replace_by_rename(path: Path, seed: int) -> str:
    """Write a new file of the same size beside `path` and rename it over `path` (a new inode)."""
    fresh = path.with_name(path.name + ".new")
    md5 = make_file(fresh, path.stat().st_size, seed=seed)
    os.replace(fresh, path)
    return md5


@pytest.fixture
def big(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "src" / "big.bam"
    path.parent.mkdir()
    md5 = make_file(path, 3 * MiB + 11, seed=1)
    written_earlier(path)
    return path, md5


def copy(path: Path, make_remote: Callable[..., BaseRemote], helpers: int, **kwargs: Any) -> CopyResult:
    """copy_file over 1 + `helpers` fresh connections of the parametrized backend, small chunks."""
    connections = [make_remote() for _ in range(1 + helpers)]
    try:
        return copy_file(
            path, connections[0], "run/big.bam", chunk_size=256 * 1024, helpers=connections[1:], **kwargs
        )
    finally:
        for connection in connections:
            connection.close()


@pytest.mark.parametrize("helpers", SPLIT, ids=SPLIT_IDS)
def test_a_file_rewritten_in_place_during_the_upload_is_discarded_not_delivered(
    make_remote: Callable[..., BaseRemote], sftp_root: Path, big, helpers: int
) -> None:
    path, _ = big
    rewritten: list[int] = []

    def progress(sent: int) -> None:
        if not rewritten:
            rewritten.append(sent)
            rewrite_in_place(path, seed=2)

    with pytest.raises(SourceChanged) as caught:
        copy(path, make_remote, helpers, progress=progress)

    assert rewritten == [256 * 1024]  # after the first chunk, while more was still to be read
    message = str(caught.value)
    assert "\n" not in message
    assert str(path) in message
    assert "changed while it was read" in message
    assert "(modified in place, same size, new mtime)" in message
    assert "nothing was delivered or recorded" in message
    assert is_retryable(caught.value)  # a file still being written settles: worth trying again later
    assert os.listdir(sftp_root / "run") == []  # neither the final name nor the `.partial`


@pytest.mark.parametrize("helpers", SPLIT, ids=SPLIT_IDS)
def test_a_file_replaced_by_rename_during_the_upload_is_discarded(
    make_remote: Callable[..., BaseRemote], sftp_root: Path, big, helpers: int
) -> None:
    """The open file stays whole (its old inode), but the path now names another file: what was sent is
    no longer the run folder's file."""
    path, _ = big
    replaced: list[str] = []

    def progress(sent: int) -> None:
        if not replaced:
            replaced.append(replace_by_rename(path, seed=3))

    with pytest.raises(SourceChanged, match="replaced at its path") as caught:
        copy(path, make_remote, helpers, progress=progress)

    assert is_retryable(caught.value)
    assert os.listdir(sftp_root / "run") == []


def test_a_file_still_growing_during_the_upload_is_discarded_retryably(
    remote: BaseRemote, sftp_root: Path, big
) -> None:
    """A file still being appended to (was: a non-retryable "changed" error, as for a damaged source)."""
    path, _ = big
    size = path.stat().st_size

    def progress(sent: int) -> None:
        if path.stat().st_size == size:
            with open(path, "ab") as out:
                out.write(b"more reads\n")

    with pytest.raises(SourceChanged, match=f"modified in place, {size} → {size + 11} bytes") as caught:
        copy_file(path, remote, "run/big.bam", chunk_size=256 * 1024, progress=progress)
    assert is_retryable(caught.value)
    assert os.listdir(sftp_root / "run") == []


@pytest.mark.parametrize("helpers", SPLIT, ids=SPLIT_IDS)
def test_a_file_whose_changes_stop_is_delivered_whole_on_the_retry(
    make_remote: Callable[..., BaseRemote], sftp_root: Path, big, helpers: int
) -> None:
    path, _ = big
    settled: list[str] = []
    failures: list[BaseException] = []

    def progress(sent: int) -> None:
        if not settled:  # the writer finishes during the first attempt, then leaves the file alone
            settled.append(rewrite_in_place(path, seed=4))

    result = call_with_retry(
        lambda: copy(path, make_remote, helpers, progress=progress),
        attempts=3,
        sleep=NO_SLEEP,
        on_retry=lambda n, exc, delay: failures.append(exc),
    )

    assert [isinstance(exc, SourceChanged) and is_retryable(exc) for exc in failures] == [True]
    assert (result.md5, result.skipped) == (settled[0], False)
    final = sftp_root / "run" / "big.bam"
    assert final.read_bytes() == path.read_bytes()
    assert hashlib.md5(final.read_bytes()).hexdigest() == settled[0]
    assert os.listdir(final.parent) == ["big.bam"]


class _RewritesWhileCompared:
    """A remote whose reads of the destination rewrite the local source first, once: the source changes
    while seqshare compares it with a same-size file that is not in the ledger."""

    def __init__(self, remote: BaseRemote, source: Path) -> None:
        self._remote, self._source = remote, source
        self.rewritten = False

    def open_read(self, path: str) -> Any:
        if not self.rewritten:
            self.rewritten = True
            rewrite_in_place(self._source, seed=5)
        return self._remote.open_read(path)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._remote, name)


def test_a_file_changed_while_compared_with_an_unrecorded_copy_is_not_called_delivered(
    make_remote: Callable[..., BaseRemote], sftp_root: Path, big
) -> None:
    """The "same-size file already there, not in the ledger" path reads the source too: a change while it
    is compared must not let the old bytes be recorded as the file's md5."""
    path, md5 = big
    (sftp_root / "run").mkdir()
    (sftp_root / "run" / "big.bam").write_bytes(path.read_bytes())  # a crash between rename and record
    remote = _RewritesWhileCompared(make_remote(), path)
    try:
        with pytest.raises(SourceChanged, match="changed while it was read") as caught:
            copy_file(path, remote, "run/big.bam")  # type: ignore[arg-type]
    finally:
        remote.close()
    assert remote.rewritten
    assert is_retryable(caught.value)
    assert hashlib.md5((sftp_root / "run" / "big.bam").read_bytes()).hexdigest() == md5  # left untouched


# --- send_files: the retry, both for whole files and for a lone large file split over connections ---


class _RewritingWriter:
    def __init__(self, inner: Any, on_first_write: Callable[[], None]) -> None:
        self.inner, self.on_first_write, self.first = inner, on_first_write, True

    def write(self, data: bytes) -> int:
        if self.first:
            self.first = False
            self.on_first_write()
        return self.inner.write(data)

    def seek(self, offset: int) -> int:
        return self.inner.seek(offset)

    def close(self) -> None:
        self.inner.close()

    def __enter__(self) -> _RewritingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.inner.__exit__(*exc)


class Rewriter:
    """Wraps every connection: the first write into an upload's `.partial` (by whichever connection, when
    it is split) rewrites that file's source in place, for its first `times` uploads, with other bytes."""

    def __init__(self, sources: dict[str, Path], times: int) -> None:
        self.sources, self.times = sources, times
        self.uploads: dict[str, int] = {}  # remote path → uploads started
        self.pending: set[str] = set()  # uploads whose first write will rewrite the source
        self.settled: dict[str, str] = {}  # remote path → md5 of the source's last version
        self.connections = 0
        self.lock = threading.Lock()

    def wrap(self, remote: Any) -> Any:
        rewriter = self
        with self.lock:
            self.connections += 1

        class Connection:
            def open_write(self, partial: str) -> Any:
                target = rewriter.target(partial)
                with rewriter.lock:
                    rewriter.uploads[target] = rewriter.uploads.get(target, 0) + 1
                    if rewriter.uploads[target] <= rewriter.times:
                        rewriter.pending.add(target)
                return _RewritingWriter(remote.open_write(partial), lambda: rewriter.rewrite(target))

            def open_update(self, partial: str) -> Any:
                target = rewriter.target(partial)
                return _RewritingWriter(remote.open_update(partial), lambda: rewriter.rewrite(target))

            def __getattr__(self, name: str) -> Any:
                return getattr(remote, name)

        return Connection()

    @staticmethod
    def target(partial: str) -> str:
        folder, _, name = partial.rpartition("/")
        return f"{folder}/{name[1 : -len('.partial')]}"

    def rewrite(self, target: str) -> None:
        with self.lock:
            if target in self.pending:
                self.pending.discard(target)
                self.settled[target] = rewrite_in_place(self.sources[target], seed=100 + self.uploads[target])


def sources(folder: Path, sizes: list[int]) -> list[FileToSend]:
    folder.mkdir(parents=True)
    files = []
    for n, size in enumerate(sizes):
        path = folder / f"s{n}_R1_001.fastq.gz"
        make_file(path, size, seed=n)
        written_earlier(path)
        files.append(FileToSend(path, f"acme/RUN1/SLX-1/{path.name}", size))
    return files


def connections(sftp_config: SftpConfig, rewriter: Rewriter) -> Callable[[], Any]:
    return lambda: rewriter.wrap(SftpRemote.connect(sftp_config))


# 28 MiB: seven 4 MiB chunks, more than the split's queue and writers hold, so the reader is still reading
# when the first chunk is written and the rewrite lands in the middle of what is sent.
SIZES = {"whole files": [3 * MiB + 5, 2 * MiB], "the large file split": [28 * MiB, 2 * MiB]}


@pytest.mark.parametrize("layout", list(SIZES))
def test_send_files_retries_a_changed_file_and_delivers_its_settled_version(
    sftp_config: SftpConfig, sftp_root: Path, tmp_path: Path, layout: str
) -> None:
    files = sources(tmp_path / "src", SIZES[layout])
    rewriter = Rewriter({f.remote_path: f.local_path for f in files}, times=1)
    recorded: dict[str, str | None] = {}
    delays: list[float] = []

    results = send_files(
        files,
        connections(sftp_config, rewriter),
        parallel=2,
        split_min_size=16 * MiB,
        on_sent=lambda f, r: recorded.setdefault(f.remote_path, r.md5),
        sleep=delays.append,
    )

    assert len(delays) == len(files)  # each file failed once, then went through
    assert rewriter.connections == {"whole files": 2, "the large file split": 2 + 1}[layout]  # none dropped
    assert recorded == rewriter.settled  # the ledger only ever saw the settled versions
    assert {r.path: r.md5 for r in results} == rewriter.settled
    for file in files:
        delivered = sftp_root / file.remote_path
        assert delivered.read_bytes() == file.local_path.read_bytes()
    assert sorted(os.listdir(sftp_root / "acme/RUN1/SLX-1")) == sorted(f.local_path.name for f in files)


@pytest.mark.parametrize("layout", list(SIZES))
def test_send_files_fails_clearly_when_a_file_keeps_changing(
    sftp_config: SftpConfig, sftp_root: Path, tmp_path: Path, layout: str
) -> None:
    files = sources(tmp_path / "src", SIZES[layout][:1])
    rewriter = Rewriter({f.remote_path: f.local_path for f in files}, times=99)
    recorded: list[str] = []

    with pytest.raises(SendFailed) as caught:
        send_files(
            files,
            connections(sftp_config, rewriter),
            parallel=2,
            attempts=3,
            split_min_size=16 * MiB,
            on_sent=lambda f, r: recorded.append(f.remote_path),
            sleep=NO_SLEEP,
        )

    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"1 of 1 files failed: {files[0].remote_path}: SourceChanged")
    assert f"{files[0].local_path} changed while it was read" in message
    assert "nothing was delivered or recorded" in message
    assert rewriter.uploads[files[0].remote_path] == 3  # the bounded retries, then the failure
    assert caught.value.retryable  # Airflow tries the task again later: by then the file may be complete
    assert recorded == []
    assert os.listdir(sftp_root / "acme/RUN1/SLX-1") == []  # no final name, no `.partial`


def test_send_files_over_the_local_backend_retries_a_changed_file(tmp_path: Path) -> None:
    files = sources(tmp_path / "src", [3 * MiB])
    rewriter = Rewriter({f.remote_path: f.local_path for f in files}, times=1)
    (tmp_path / "dst").mkdir()
    results = send_files(files, lambda: rewriter.wrap(LocalRemote(tmp_path / "dst")), sleep=NO_SLEEP)
    assert [r.md5 for r in results] == [rewriter.settled[files[0].remote_path]]
    assert (tmp_path / "dst" / files[0].remote_path).read_bytes() == files[0].local_path.read_bytes()
