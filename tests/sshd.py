"""A throwaway OpenSSH `sshd` on 127.0.0.1 for integration tests (real server, no mocks).

A pytest plugin (listed in tests/conftest.py) over `seqshare.localsftp`, which the demo uses too.

Fixtures:
- `sshd_server` (session-scoped): one sshd for the whole run (starting one costs ~0.2 s plus key
  generation); an `SshdServer` with host, port, username (the current user), client_key_path,
  host_key_line ("ssh-ed25519 AAAA..."), base_dir, and `kill_sessions()` which SIGKILLs the per-connection
  sshd processes (not the listener) to drop every client's session mid-transfer.
- `sftp_root` (function-scoped): a fresh, empty directory on the server's side for one test's uploads.

If /usr/sbin/sshd (or ssh-keygen) is missing the fixture **fails** with a clear message: these tests are
the evidence that deliveries work, so they must not silently disappear.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from seqshare import localsftp
from seqshare.localsftp import LocalSftpServer as SshdServer

SSHD = localsftp.SSHD

__all__ = ["SshdServer", "sftp_root", "sshd_server", "start_sshd", "stop_sshd"]


def start_sshd(tmp: Path) -> SshdServer:
    """Start the server (seqshare.localsftp); fail the test run, never skip, when it cannot."""
    try:
        return localsftp.start(tmp, sshd=SSHD)
    except localsftp.LocalSftpError as exc:
        pytest.fail(f"{exc} (needed by the SFTP integration tests)", pytrace=False)


def stop_sshd(server: SshdServer) -> None:
    server.stop()


@pytest.fixture(scope="session")
def sshd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshdServer]:
    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    try:
        yield server
    finally:
        stop_sshd(server)


@pytest.fixture
def sftp_root(sshd_server: SshdServer, request: pytest.FixtureRequest) -> Path:
    """A fresh empty directory (absolute path, local and on the server alike) for one test."""
    name = "".join(c if c.isalnum() else "_" for c in request.node.name)[:80]
    root = sshd_server.base_dir / f"{name}_{time.monotonic_ns()}"
    root.mkdir()
    return root
