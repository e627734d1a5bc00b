"""A throwaway OpenSSH `sshd` on 127.0.0.1 with its own config and keys: the demo's SFTP server, and the
tests' (tests/sshd.py). Nothing outside its folder is touched (except /run/sshd, which sshd needs as root).
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from seqshare.transfer.sftp import SftpConfig

SSHD = "/usr/sbin/sshd"
START_TIMEOUT = 10.0

CONFIG = """\
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


class LocalSftpError(RuntimeError):
    """The local sshd cannot be started (not installed, or it did not answer)."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)],
        check=True,
        capture_output=True,
    )


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (from /proc), whatever process group it moved to."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry))
    found, frontier = [], [pid]
    while frontier:
        children = parents.get(frontier.pop(), [])
        found.extend(children)
        frontier.extend(children)
    return found


@dataclass
class LocalSftpServer:
    host: str
    port: int
    username: str
    client_key_path: Path
    host_key_line: str  # "ssh-ed25519 AAAA... comment": what clients must verify
    base_dir: Path  # a folder for data, served at the same absolute path
    tmp: Path
    process: subprocess.Popen[bytes] = field(repr=False)

    def session_pids(self) -> list[int]:
        """Per-connection sshd processes, not the listener."""
        return descendants(self.process.pid)

    def kill_sessions(self) -> int:
        """SIGKILL every per-connection process: each client sees its connection drop."""
        pids = self.session_pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return len(pids)

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        self.kill_sessions()
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def sftp_config(self, root: Path | str) -> SftpConfig:
        """A client configuration for this server, deliveries under `root`, its host key pinned."""
        from seqshare.transfer.sftp import SftpConfig

        return SftpConfig(
            host=self.host,
            port=self.port,
            username=self.username,
            private_key_path=str(self.client_key_path),
            known_host_key=self.host_key_line,
            root=str(root),
            connect_timeout=10,
        )

    def connection(self, root: Path | str) -> dict[str, object]:
        """An Airflow Connection (JSON form) for this server, deliveries under `root`."""
        return {
            "conn_type": "sftp",
            "host": self.host,
            "port": self.port,
            "login": self.username,
            "extra": {
                "host_key": self.host_key_line,
                "key_file": str(self.client_key_path),
                "root": str(root),
                "conn_timeout": 10,
            },
        }


def start(tmp: Path, *, extra_config: str = "", sshd: str = SSHD) -> LocalSftpServer:
    """Start sshd with config and keys in `tmp` and wait until it answers (`extra_config`: more lines)."""
    if not os.access(sshd, os.X_OK):
        raise LocalSftpError(f"{sshd} is missing: install openssh-server (apt-get install openssh-server)")
    if shutil.which("ssh-keygen") is None:
        raise LocalSftpError("ssh-keygen is missing: install openssh-client")
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # privilege separation needs it as root
    tmp.mkdir(parents=True, exist_ok=True)
    _keygen(tmp / "host_ed25519")
    _keygen(tmp / "client_ed25519")
    shutil.copy(tmp / "client_ed25519.pub", tmp / "authorized_keys")
    base_dir = tmp / "data"
    base_dir.mkdir()
    port = free_port()
    config = tmp / "sshd_config"
    config.write_text(CONFIG.format(port=port, tmp=tmp) + extra_config)
    with open(tmp / "sshd.log", "wb") as log:
        process = subprocess.Popen(
            [sshd, "-D", "-e", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if process.poll() is not None:
            raise LocalSftpError(f"sshd exited with {process.returncode}: {(tmp / 'sshd.log').read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as probe:
                probe.settimeout(2)
                if probe.recv(64).startswith(b"SSH-"):
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise LocalSftpError(f"sshd did not answer on 127.0.0.1:{port} within {START_TIMEOUT:.0f} s")
        time.sleep(0.05)
    return LocalSftpServer(
        host="127.0.0.1",
        port=port,
        username=getpass.getuser(),
        client_key_path=tmp / "client_ed25519",
        host_key_line=(tmp / "host_ed25519.pub").read_text().strip(),
        base_dir=base_dir,
        tmp=tmp,
        process=process,
    )
