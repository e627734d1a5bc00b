"""A throwaway OpenSSH `sshd` on 127.0.0.1 for integration tests (real server, no mocks).

Use it as a pytest plugin — `pytest_plugins = ["tests.sshd"]` in the root tests/conftest.py — or import the
fixtures into a conftest (`from tests.sshd import sshd_server, sftp_root  # noqa: F401`).

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

import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SSHD = "/usr/sbin/sshd"
START_TIMEOUT = 10.0

_CONFIG = """\
ListenAddress 127.0.0.1
Port {port}
HostKey {tmp}/host_ed25519
PidFile {tmp}/sshd.pid
AuthorizedKeysFile {tmp}/authorized_keys
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
UsePAM no
UseDNS no
MaxSessions 64
MaxStartups 64:30:100
LogLevel ERROR
Subsystem sftp internal-sftp
"""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)],
        check=True,
        capture_output=True,
    )


def _children(pid: int) -> list[int]:
    """Direct children of `pid`, from /proc (no psutil needed)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(entry))
    return found


def _descendants(pid: int) -> list[int]:
    result, frontier = [], [pid]
    while frontier:
        children = _children(frontier.pop())
        result.extend(children)
        frontier.extend(children)
    return result


@dataclass
class SshdServer:
    host: str
    port: int
    username: str
    client_key_path: Path
    host_key_line: str  # "ssh-ed25519 AAAA... comment"
    base_dir: Path  # scratch space on the server side (tests get subfolders via `sftp_root`)
    tmp: Path
    process: subprocess.Popen[bytes] = field(repr=False)

    def session_pids(self) -> list[int]:
        """Per-connection sshd processes (and their privsep children), not the listener."""
        return _descendants(self.process.pid)

    def kill_sessions(self) -> int:
        """SIGKILL every per-connection process: each client sees its connection drop. Returns how many."""
        pids = self.session_pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return len(pids)

    def alive(self) -> bool:
        return self.process.poll() is None


def start_sshd(tmp: Path) -> SshdServer:
    """Start sshd in `tmp` and wait until it answers; raise (never skip) if it cannot run."""
    if not os.access(SSHD, os.X_OK):
        pytest.fail(
            f"{SSHD} is missing: install openssh-server (apt-get install openssh-server) to run the "
            "SFTP integration tests",
            pytrace=False,
        )
    if shutil.which("ssh-keygen") is None:
        pytest.fail("ssh-keygen is missing: install openssh-client", pytrace=False)
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # privilege-separation dir sshd needs as root
    tmp.mkdir(parents=True, exist_ok=True)
    _keygen(tmp / "host_ed25519")
    _keygen(tmp / "client_ed25519")
    shutil.copy(tmp / "client_ed25519.pub", tmp / "authorized_keys")
    base_dir = tmp / "data"
    base_dir.mkdir()
    port = _free_port()
    config = tmp / "sshd_config"
    config.write_text(_CONFIG.format(port=port, tmp=tmp))
    log = open(tmp / "sshd.log", "wb")  # noqa: SIM115 - lives as long as the server
    process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if process.poll() is not None:
            pytest.fail(
                f"sshd exited with {process.returncode}: {(tmp / 'sshd.log').read_text()}", pytrace=False
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as probe:
                probe.settimeout(2)
                if probe.recv(64).startswith(b"SSH-"):
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"sshd did not answer on 127.0.0.1:{port} within {START_TIMEOUT}s", pytrace=False)
        time.sleep(0.05)
    return SshdServer(
        host="127.0.0.1",
        port=port,
        username=getpass.getuser(),
        client_key_path=tmp / "client_ed25519",
        host_key_line=(tmp / "host_ed25519.pub").read_text().strip(),
        base_dir=base_dir,
        tmp=tmp,
        process=process,
    )


def stop_sshd(server: SshdServer) -> None:
    server.kill_sessions()
    server.process.terminate()
    try:
        server.process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


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
