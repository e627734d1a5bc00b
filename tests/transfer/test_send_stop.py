"""send_files stopped by its caller (a delivery that lost its lease, ADR 8), on every backend: whatever
`interrupt` or `before_rename` raises stops every worker at once, is never retried, leaves no partial and
nothing under a final name after it, and is raised as it is."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from seqshare.errors import SeqshareError
from seqshare.transfer import partial_path, send_files
from seqshare.transfer.remote import BaseRemote
from tests.transfer.test_copy import MiB
from tests.transfer.test_send import NO_SLEEP, make_files


class Withdrawn(SeqshareError):
    """Retryable, like LeaseLost: send_files must still not retry it."""

    retryable = True


def on_server(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_a_writer_s_partial_name_carries_its_tag() -> None:
    assert partial_path("a/b/x.fastq.gz", "0123abcd") == "a/b/.x.fastq.gz.0123abcd.partial"
    assert partial_path("x", None) == ".x.partial"


def test_a_refused_rename_stops_everything_and_is_raised_unchanged(
    make_remote: Callable[..., BaseRemote], sftp_root: Path, tmp_path: Path
) -> None:
    files, _ = make_files(tmp_path / "src", [3 * MiB, 2 * MiB, MiB, MiB])
    asked: list[int] = []

    def before_rename() -> None:
        asked.append(1)
        if len(asked) > 1:
            raise Withdrawn("the lease is someone else's")

    with pytest.raises(Withdrawn, match="the lease is someone else's"):
        send_files(
            files,
            make_remote,
            parallel=1,
            sleep=NO_SLEEP,
            partial_tag="0123abcd",
            before_rename=before_rename,
        )
    assert len(asked) == 2  # not retried
    assert on_server(sftp_root) == [files[0].remote_path]  # the largest went first; nothing after it


def test_an_interrupt_stops_every_worker_mid_file_and_leaves_no_partial(
    make_remote: Callable[..., BaseRemote], sftp_root: Path, tmp_path: Path
) -> None:
    files, _ = make_files(tmp_path / "src", [9 * MiB, 9 * MiB, 9 * MiB])
    withdrawn: list[bool] = []
    sent: list[str] = []

    def interrupt() -> None:
        if withdrawn:
            raise Withdrawn("stopped")

    def on_sent(file, result) -> None:
        sent.append(file.remote_path)
        withdrawn.append(True)  # e.g. the ledger write found the lease gone

    with pytest.raises(Withdrawn):
        send_files(
            files,
            make_remote,
            parallel=2,
            sleep=NO_SLEEP,
            on_sent=on_sent,
            partial_tag="0123abcd",
            interrupt=interrupt,
        )
    assert len(sent) <= 2  # at most the files both workers had already finished
    assert on_server(sftp_root) == sorted(sent)  # no partial left, no final name after the stop


def test_an_interrupt_stops_a_split_upload(
    make_remote: Callable[..., BaseRemote], sftp_root: Path, tmp_path: Path
) -> None:
    files, _ = make_files(tmp_path / "src", [13 * MiB])
    chunks: list[int] = []

    def interrupt() -> None:
        chunks.append(1)
        if len(chunks) > 2:  # before the file, then after the first chunk: stop at the second chunk
            raise Withdrawn("stopped")

    with pytest.raises(Withdrawn):
        send_files(
            files,
            make_remote,
            parallel=2,
            sleep=NO_SLEEP,
            split_min_size=1,
            partial_tag="0123abcd",
            interrupt=interrupt,
        )
    assert on_server(sftp_root) == []
