"""One file's fetch against an in-memory server that keeps the download API's contract (httpx's
MockTransport): resume, verification, a changed file, a corrupt partial, answers the real server never gives
(a Range ignored). The real server over real HTTP is in tests/download/."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from seqshare.download import body
from seqshare.download.errors import NotVisible
from seqshare.download.fetch import RECONNECTS, Outcome, Status, fetch
from seqshare.download.plan import Job, make_plan, parse_listing

URL = "/api/v1/files/RUN/SLX-1/S1.fastq.gz"
DATA = bytes(range(256)) * 4096  # 1 MiB


class Server:
    """The contract's file endpoint for one file; what it was asked is in `requests`."""

    def __init__(self, data: bytes = DATA) -> None:
        self.data, self.version = data, 1
        self.requests: list[httpx.Request] = []
        self.ignore_range = False
        self.cut_at: int | None = None  # send only this many bytes of the body
        self.md5_header: str | None = None  # a wrong md5, to provoke a mismatch
        self.hidden = False
        self.answer: tuple[int, str] | None = None  # (status, detail) for every request
        self.head_md5 = True  # False: a HEAD has no md5 until a GET made the server compute it

    def replace(self, data: bytes) -> None:
        self.data, self.version = data, self.version + 1

    @property
    def etag(self) -> str:
        return f'"v{self.version}"'

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.hidden:
            return httpx.Response(404, json={"detail": "no such file: 'RUN/SLX-1/S1.fastq.gz'"})
        if self.answer is not None:
            return httpx.Response(self.answer[0], json={"detail": self.answer[1]})
        if request.headers.get("if-match", self.etag) != self.etag:
            return httpx.Response(412, json={"detail": "file changed on the server: S1.fastq.gz"})
        start, status = 0, 200
        asked = request.headers.get("range")
        if asked and not self.ignore_range:
            start, status = int(asked.removeprefix("bytes=").split("-")[0]), 206
            if start >= len(self.data):
                return httpx.Response(416, json={"detail": "range not satisfiable"})
        headers = {
            "ETag": self.etag,
            "X-Seqshare-MD5": self.md5_header or hashlib.md5(self.data).hexdigest(),
            "Content-Length": str(len(self.data) - start),
            "Accept-Ranges": "bytes",
        }
        if request.method == "HEAD" and not self.head_md5:
            del headers["X-Seqshare-MD5"]
        if status == 206:
            headers["Content-Range"] = f"bytes {start}-{len(self.data) - 1}/{len(self.data)}"
        body = b"" if request.method == "HEAD" else self.data[start:]
        if self.cut_at is not None:
            body = body[: self.cut_at]
        return httpx.Response(status, headers=headers, stream=Body(body))


class Body(httpx.SyncByteStream):
    """A body read as a network's is (in pieces), not one already in memory."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __iter__(self) -> Iterator[bytes]:
        for at in range(0, len(self.data), 65536):
            yield self.data[at : at + 65536]


class Events:
    def __init__(self) -> None:
        self.notes: list[str] = []
        self.starts: list[tuple[int, int]] = []

    def started(self, job: Job, offset: int, total: int) -> None:
        self.starts.append((offset, total))

    def advance(self, job: Job, n: int) -> None:
        pass

    def note(self, line: str) -> None:
        self.notes.append(line)


def job(tmp_path: Path, server: Server, md5: str | None = None) -> Job:
    entry = {"run_id": "RUN", "pool": "SLX-1", "path": "RUN/SLX-1/S1.fastq.gz", "url": URL}
    listing = parse_listing({"project": "P", "files": [{**entry, "size": len(server.data), "md5": md5}]})
    return make_plan(listing, tmp_path, None, "SLX-1")[0]


def run(server: Server, the_job: Job, events: Events | None = None) -> Outcome:
    with httpx.Client(transport=httpx.MockTransport(server), base_url="http://seqshare.test") as client:
        return fetch(client, the_job, events or Events(), threading.Event())  # type: ignore[arg-type]


def gets(server: Server) -> list[dict[str, Any]]:
    return [
        {k: r.headers[k] for k in ("range", "if-match") if k in r.headers}
        for r in server.requests
        if r.method == "GET"
    ]


def test_a_fresh_file_is_verified_then_named_and_leaves_only_its_stamp(tmp_path: Path) -> None:
    server = Server()
    j = job(tmp_path, server)
    outcome = run(server, j)
    assert (outcome.status, outcome.received, outcome.md5) == (
        Status.DONE,
        len(DATA),
        hashlib.md5(DATA).hexdigest(),
    )
    assert j.final.read_bytes() == DATA
    assert not j.partial.exists() and not j.etag_file.exists()
    assert json.loads(j.stamp.read_text())["md5"] == hashlib.md5(DATA).hexdigest()


def test_a_partial_is_resumed_with_range_and_its_etag_and_the_md5_covers_the_whole_file(
    tmp_path: Path,
) -> None:
    server = Server()
    j = job(tmp_path, server)
    j.final.parent.mkdir(parents=True)
    j.partial.write_bytes(DATA[:300_000])
    j.etag_file.write_text(server.etag + "\n")
    events = Events()
    outcome = run(server, j, events)
    assert gets(server) == [{"range": "bytes=300000-", "if-match": server.etag}]
    assert (outcome.status, outcome.received, outcome.resumed_from) == (
        Status.DONE,
        len(DATA) - 300_000,
        300_000,
    )
    assert events.starts == [(300_000, len(DATA))]
    assert j.final.read_bytes() == DATA


def test_a_corrupt_partial_is_found_by_the_md5_and_fetched_again_once_from_zero(tmp_path: Path) -> None:
    server = Server()
    j = job(tmp_path, server)
    j.final.parent.mkdir(parents=True)
    j.partial.write_bytes(b"\0" * 300_000)  # right length, wrong bytes
    j.etag_file.write_text(server.etag)
    events = Events()
    outcome = run(server, j, events)
    assert gets(server) == [{"range": "bytes=300000-", "if-match": server.etag}, {}]
    assert outcome.status is Status.DONE and j.final.read_bytes() == DATA
    assert events.notes == [
        "RUN/SLX-1/S1.fastq.gz: md5 mismatch (corrupt partial or transfer); fetching it again from the start"
    ]


def test_a_partial_of_a_version_the_server_no_longer_has_is_reported_and_removed_never_mixed(
    tmp_path: Path,
) -> None:
    server = Server()
    j = job(tmp_path, server)
    j.final.parent.mkdir(parents=True)
    j.partial.write_bytes(DATA[:300_000])
    j.etag_file.write_text(server.etag)
    server.replace(DATA[::-1])
    outcome = run(server, j)
    assert outcome.status is Status.CHANGED and "changed on the server" in (outcome.message or "")
    assert not j.partial.exists() and not j.etag_file.exists() and not j.final.exists()
    again = run(server, j)  # the next run starts it over
    assert again.status is Status.DONE and j.final.read_bytes() == DATA[::-1]


def test_a_server_ignoring_the_range_gets_the_file_written_from_zero(tmp_path: Path) -> None:
    server = Server()
    server.ignore_range = True
    j = job(tmp_path, server)
    j.final.parent.mkdir(parents=True)
    j.partial.write_bytes(DATA[:300_000])
    j.etag_file.write_text(server.etag)
    assert run(server, j).status is Status.DONE
    assert j.final.read_bytes() == DATA


def test_a_wrong_md5_twice_fails_the_file_and_keeps_nothing(tmp_path: Path) -> None:
    server = Server()
    server.md5_header = "0" * 32
    j = job(tmp_path, server)
    outcome = run(server, j)
    assert outcome.status is Status.FAILED and "md5 mismatch" in (outcome.message or "")
    assert len(gets(server)) == 2
    assert not j.final.exists() and not j.partial.exists()


def test_a_body_cut_short_while_the_version_moved_is_changed_and_otherwise_resumed(tmp_path: Path) -> None:
    server = Server()
    server.cut_at = 100_000
    j = job(tmp_path, server)
    original = server.__call__

    def cut_then_replace(request: httpx.Request) -> httpx.Response:
        answer = original(request)
        if request.method == "GET":
            server.replace(DATA[::-1])
        return answer

    with httpx.Client(transport=httpx.MockTransport(cut_then_replace), base_url="http://s.test") as client:
        outcome = fetch(client, j, Events(), threading.Event())  # type: ignore[arg-type]
    assert outcome.status is Status.CHANGED and not j.partial.exists()

    server = Server()
    server.cut_at = 400_000  # the connection drops each time, the file stays: the rest is asked for
    j = job(tmp_path / "again", server)
    assert run(server, j).status is Status.DONE and j.final.read_bytes() == DATA
    assert gets(server) == [
        {},
        {"range": "bytes=400000-", "if-match": server.etag},
        {"range": "bytes=800000-", "if-match": server.etag},
    ]


def test_a_connection_dropping_again_and_again_fails_the_file_and_keeps_the_partial(tmp_path: Path) -> None:
    server = Server()
    server.cut_at = 100_000
    j = job(tmp_path, server)
    outcome = run(server, j)
    assert outcome.status is Status.FAILED and "resumes failed" in (outcome.message or "")
    assert len(gets(server)) == 1 + RECONNECTS and j.partial.stat().st_size == (1 + RECONNECTS) * 100_000
    server.cut_at = None
    assert run(server, j).status is Status.DONE and j.final.read_bytes() == DATA
    assert gets(server)[-1] == {"range": f"bytes={(1 + RECONNECTS) * 100_000}-", "if-match": server.etag}


def test_a_file_already_here_is_hashed_once_then_known_by_its_stamp(tmp_path: Path) -> None:
    server = Server()
    j = job(tmp_path, server, md5=hashlib.md5(DATA).hexdigest())
    j.final.parent.mkdir(parents=True)
    j.final.write_bytes(DATA)
    assert run(server, j).status is Status.SKIPPED
    assert json.loads(j.stamp.read_text())["md5"] == hashlib.md5(DATA).hexdigest()
    assert server.requests == []  # the listing's md5 was enough
    j.stamp.write_text(j.stamp.read_text())  # unchanged: still skipped without hashing or asking
    assert run(server, j).status is Status.SKIPPED and server.requests == []


def test_a_file_here_with_the_right_size_but_other_bytes_is_fetched_and_replaced(tmp_path: Path) -> None:
    server = Server()
    j = job(tmp_path, server)  # md5 not listed yet: asked with HEAD
    j.final.parent.mkdir(parents=True)
    j.final.write_bytes(DATA[::-1])
    assert run(server, j).status is Status.DONE
    assert [r.method for r in server.requests] == ["HEAD", "GET"]
    assert j.final.read_bytes() == DATA


def test_a_404_for_the_file_is_raised_for_the_runner_to_judge(tmp_path: Path) -> None:
    server = Server()
    server.hidden = True
    with pytest.raises(NotVisible, match="no such file"):
        run(server, job(tmp_path, server))


@pytest.mark.parametrize("thread_from", [0, 1 << 40])
def test_the_md5_is_the_same_whether_hashed_on_its_own_thread_or_inline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, thread_from: int
) -> None:
    monkeypatch.setattr(body, "HASH_THREAD_FROM", thread_from)
    data = os.urandom(3 * body.BATCH + 12345)  # batches and a remainder
    server = Server(data)
    j = job(tmp_path, server)
    j.final.parent.mkdir(parents=True)
    j.partial.write_bytes(data[:100_000])
    j.etag_file.write_text(server.etag)
    outcome = run(server, j)
    assert (outcome.status, outcome.md5) == (Status.DONE, hashlib.md5(data).hexdigest())
    assert j.final.read_bytes() == data


def test_a_server_error_for_one_file_fails_that_file_only_and_a_409_is_a_change(tmp_path: Path) -> None:
    server = Server()
    server.answer = (500, "Internal Server Error")
    failed = run(server, job(tmp_path, server))
    assert failed.status is Status.FAILED
    assert failed.message == "RUN/SLX-1/S1.fastq.gz: the server answered Internal Server Error"
    server.answer = (409, "file changed on the server: S1.fastq.gz was written to while read")
    changed = run(server, job(tmp_path, server))
    assert changed.status is Status.CHANGED and "while the server computed its md5" in (changed.message or "")


def test_a_file_here_is_checked_by_a_one_byte_get_when_a_head_has_no_md5_yet(tmp_path: Path) -> None:
    server = Server()
    server.head_md5 = False
    j = job(tmp_path, server)
    j.final.parent.mkdir(parents=True)
    j.final.write_bytes(DATA)
    assert run(server, j).status is Status.SKIPPED
    assert [(r.method, r.headers.get("range")) for r in server.requests] == [
        ("HEAD", None),
        ("GET", "bytes=0-0"),
    ]
