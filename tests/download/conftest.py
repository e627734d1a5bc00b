"""`seqshare download` against the real API: the test world with a run folder of real files on disk,
`seqshare serve` on 127.0.0.1 (stopped when the test ends), and the client run as a process."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from seqshare.services import downloads
from tests.e2e.test_cli import SEQSHARE
from tests.web.servers import serving
from tests.web.world import Tokens, load_api_world, write_run_folder

BIG = "S0_S0_L001_R1_001.fastq.gz"  # sorts first in SLX-1
BIG_SIZE = 32 << 20  # more than the loopback socket buffers hold, so a held answer is really mid-file

# The caller's settings that would change what the client does: each test sets its own.
_CLIENT_SETTINGS = ("SEQSHARE_URL", "SEQSHARE_TOKEN", "SEQSHARE_CONFIG", "XDG_CONFIG_HOME", "SEQSHARE_DEBUG")


@dataclass
class World:
    tokens: Tokens
    files: dict[str, Path]  # "<pool>/<name>" -> the file on the server's disk
    sessions: sessionmaker[Session]

    def records(self, user: str = "other") -> list[downloads.DownloadRecord]:
        with self.sessions.begin() as session:
            return downloads.download_records(session, user=user)


@pytest.fixture
def world(sessions: sessionmaker[Session], tmp_path: Path) -> World:
    """The API's world; its run folder with the small files of SLX-1 and SLX-2 and one 32 MiB file of
    random bytes in SLX-1 (`BIG`)."""
    with sessions.begin() as session:
        tokens = load_api_world(session, now=datetime.now(UTC))
        files = write_run_folder(session, tmp_path / "runs", sparse={BIG: BIG_SIZE})
    files[f"SLX-1/{BIG}"].write_bytes(os.urandom(BIG_SIZE))
    return World(tokens, files, sessions)


@pytest.fixture
def server(engine: Engine, world: World) -> Iterator[str]:
    with serving(engine) as base:
        yield base


@dataclass
class Result:
    code: int
    events: list[dict[str, Any]]
    stderr: str

    def files(self, status: str) -> list[str]:
        return [e["path"] for e in self.events if e["event"] == "file" and e["status"] == status]

    @property
    def summary(self) -> dict[str, Any]:
        (summary,) = [e for e in self.events if e["event"] == "summary"]
        return summary


def client_env(tmp_path: Path, url: str, token: str | None, **more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _CLIENT_SETTINGS}
    env.update({"SEQSHARE_URL": url, "XDG_CONFIG_HOME": str(tmp_path / "no-config"), **more})
    if token is not None:
        env["SEQSHARE_TOKEN"] = token
    return env


def start(url: str, token: str | None, *args: str, cwd: Path, **more: str) -> subprocess.Popen[str]:
    """`seqshare download *args` as a process (stdout is a pipe: JSON lines)."""
    return subprocess.Popen(
        [SEQSHARE, "download", *args],
        env=client_env(cwd, url, token, **more),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> Result:
    out, err = process.communicate(timeout=120)
    return Result(process.returncode, [json.loads(line) for line in out.splitlines() if line], err)


def download(url: str, token: str | None, *args: str, cwd: Path, **more: str) -> Result:
    return finish(start(url, token, *args, cwd=cwd, **more))
