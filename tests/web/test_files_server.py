"""The download API over real HTTP: `seqshare serve` (uvicorn) as a process on 127.0.0.1, on SQLite and
PostgreSQL. Memory stays flat for a large file, a client gone or a file replaced mid-download is recorded as
such, a revoke stops the next file. Every server a test starts, it stops."""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from seqshare.db.models import FileDownload
from seqshare.services import sharing
from tests.web.conftest import bearer
from tests.web.servers import serving
from tests.web.world import PROJECT, RUN_FILES, RUN_ID, file_bytes, load_api_world, write_run_folder

R1 = "S1_S1_L001_R1_001.fastq.gz"
URL = f"/api/v1/files/{RUN_ID}/SLX-1/{R1}"

BIG = "S1_S1_L001_R1_002.fastq.gz"
BIG_SIZE = 384 * 1024 * 1024


def _server_pid(base: str) -> int:
    """The `seqshare serve` this test started on `base`'s port (a child of this process)."""
    port = base.rsplit(":", 1)[1]
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == os.getpid() and b"serve" in argv and port.encode() in argv:
            return int(entry.name)
    raise AssertionError(f"no seqshare serve child on port {port}")


def _kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"{field} not in /proc/{pid}/status")


def test_over_real_http_a_large_file_streams_in_flat_memory_and_a_replaced_one_is_cut_short(
    engine: Engine, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """`seqshare serve` (uvicorn) on 127.0.0.1: a 384 MiB file (holes only) goes whole with its md5 while
    the server's peak resident memory grows by far less than the file; replaced while sent, the body ends
    short and the record says so; a revoke stops the next file."""
    with sessions.begin() as session:
        world = load_api_world(session, now=datetime.now(UTC))
        written = write_run_folder(session, tmp_path, sparse={BIG: BIG_SIZE})
    big_url = f"/api/v1/files/{RUN_ID}/SLX-1/{BIG}"
    with serving(engine) as base, httpx.Client(base_url=base, headers=bearer(world.by_user["other"])) as http:
        pid = _server_pid(base)
        assert http.get(URL).content == file_bytes("SLX-1", R1)  # warmed up: routes, threads, database
        before = _kib(pid, "VmRSS")
        with contextlib.suppress(OSError):  # reset the peak (VmHWM) to the current RSS
            Path(f"/proc/{pid}/clear_refs").write_text("5")
        digest, received = hashlib.md5(), 0
        with http.stream("GET", big_url, timeout=120) as answer:
            assert answer.status_code == 200 and int(answer.headers["content-length"]) == BIG_SIZE
            for chunk in answer.iter_raw():
                digest.update(chunk)
                received += len(chunk)
        assert received == BIG_SIZE
        assert (
            answer.headers["x-seqshare-md5"] == digest.hexdigest() == hashlib.md5(bytes(BIG_SIZE)).hexdigest()
        )
        grown_mib = (_kib(pid, "VmHWM") - before) / 1024
        size_mib = BIG_SIZE >> 20
        print(f"server RSS {before / 1024:.0f} MiB; its peak grew {grown_mib:.1f} MiB for {size_mib} MiB")
        assert grown_mib < 48, grown_mib

        got = 0
        with http.stream("GET", big_url, timeout=120) as answer:
            for chunk in answer.iter_raw():
                got += len(chunk)
                if got >= 4 * 1024 * 1024:
                    break  # the client goes away mid-file: the server stops and records what went
        stopped = _wait_for_finished(sessions, count=2)

        path, replacement = written[f"SLX-1/{BIG}"], tmp_path / "replacement"
        with replacement.open("wb") as out:
            out.truncate(BIG_SIZE)
        received = [0]

        def fetch_replacing_it_midway() -> None:
            with http.stream("GET", big_url, timeout=120) as answer:
                for chunk in answer.iter_raw():
                    received[0] += len(chunk)
                    if received[0] >= 4 * 1024 * 1024 and replacement.exists():
                        os.replace(replacement, path)  # a new file under the same name, mid-download

        with pytest.raises(httpx.RemoteProtocolError):  # the body ended short of its Content-Length
            fetch_replacing_it_midway()
        assert received[0] < BIG_SIZE

        second = f"/api/v1/files/{RUN_ID}/SLX-1/{RUN_FILES['SLX-1'][1]}"
        with sessions.begin() as session:
            sharing.set_sharing(
                session, project=PROJECT, groups=["Ext Co"], actor="owner", now=datetime.now(UTC)
            )
        assert http.get(second).status_code == 404
    with sessions.begin() as session:
        records = session.scalars(select(FileDownload).order_by(FileDownload.id)).all()
    big = [(r.status, r.bytes_sent, r.completed) for r in records if r.path == BIG]
    assert big[0] == (200, BIG_SIZE, True)
    assert stopped.completed is False and got <= stopped.bytes_sent < BIG_SIZE
    assert big[2][0] == 200 and big[2][1] < BIG_SIZE and big[2][2] is False


def _wait_for_finished(sessions: sessionmaker[Session], count: int) -> FileDownload:
    """The `count`-th request of the big file once the server has recorded how it ended (it notices a
    client gone at its next chunk): waits for that state, asserts nothing about time."""
    for _ in range(600):
        with sessions.begin() as session:
            rows = session.scalars(
                select(FileDownload).where(FileDownload.path == BIG).order_by(FileDownload.id)
            ).all()
        if len(rows) >= count and rows[count - 1].finished_at is not None:
            return rows[count - 1]
        time.sleep(0.05)
    raise AssertionError("the server never recorded the end of the download")
