"""SFTP-specific behaviour against the real sshd: host key verification, negotiated settings."""

from __future__ import annotations

import subprocess
from pathlib import Path

import paramiko
import pytest

from seqshare.transfer import AuthenticationFailed, ConnectionLost, HostKeyMismatch, is_retryable
from seqshare.transfer.sftp import parse_host_key
from tests.sshd import SshdServer


def other_key_line(tmp_path: Path, key_type: str = "ed25519") -> str:
    key = tmp_path / f"other_{key_type}"
    subprocess.run(["ssh-keygen", "-q", "-t", key_type, "-N", "", "-f", str(key)], check=True)
    return key.with_suffix(".pub").read_text().strip()


@pytest.fixture
def auth_attempts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every authentication attempt (a spy: the real method still runs)."""
    seen: list[str] = []
    real = paramiko.Transport.auth_publickey

    def spy(self, username, key, *args, **kwargs):
        seen.append(username)
        return real(self, username, key, *args, **kwargs)

    monkeypatch.setattr(paramiko.Transport, "auth_publickey", spy)
    return seen


def test_a_different_host_key_is_refused_before_anything_is_sent(
    connect_sftp, tmp_path: Path, sftp_root: Path, auth_attempts: list[str], sshd_server: SshdServer
) -> None:
    with pytest.raises(HostKeyMismatch) as caught:
        connect_sftp(known_host_key=other_key_line(tmp_path))
    message = str(caught.value)
    assert f"ssh-keyscan -p {sshd_server.port} 127.0.0.1" in message
    assert "host_key" in message
    assert auth_attempts == []
    assert not is_retryable(caught.value)
    assert list(sftp_root.iterdir()) == []


def test_a_host_key_of_a_type_the_server_lacks_is_refused(
    connect_sftp, tmp_path: Path, auth_attempts: list[str]
) -> None:
    with pytest.raises(HostKeyMismatch, match="ssh-keyscan"):
        connect_sftp(known_host_key=other_key_line(tmp_path, "ecdsa"))
    assert auth_attempts == []


def test_an_unparseable_host_key_is_refused(connect_sftp) -> None:
    with pytest.raises(HostKeyMismatch, match="public key line"):
        connect_sftp(known_host_key="not a key")


def test_an_ssh_keyscan_line_is_accepted(connect_sftp, sshd_server: SshdServer) -> None:
    line = f"[127.0.0.1]:{sshd_server.port} {sshd_server.host_key_line}"
    with connect_sftp(known_host_key=line) as remote:
        assert remote.list("") == []


def test_a_key_the_server_does_not_know_fails_authentication(connect_sftp, tmp_path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True)
    with pytest.raises(AuthenticationFailed):
        connect_sftp(private_key_path=str(tmp_path / "k"))


def test_parse_host_key_round_trips(sshd_server: SshdServer) -> None:
    key = parse_host_key(sshd_server.host_key_line)
    assert key.get_name() == "ssh-ed25519"


def test_connection_uses_gcm_nodelay_and_the_servers_request_size(connect_sftp) -> None:
    import socket

    with connect_sftp() as remote:
        assert remote.cipher == "aes128-gcm@openssh.com"
        assert "limits@openssh.com" in remote.server_extensions
        assert remote.request_size == 261_120  # OpenSSH's max-write-length
        assert remote.read_size == 261_120
        sock = remote._transport.sock
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        with remote.open_write("f") as out:
            out.write(b"x" * 3_000_000)
        assert remote.read_bytes("f") == b"x" * 3_000_000
    assert paramiko.SFTPFile.MAX_REQUEST_SIZE == 32768  # the class-wide default was not changed


def test_the_request_size_can_be_capped(connect_sftp) -> None:
    with connect_sftp(max_request_size=65536) as remote:
        assert remote.request_size == 65536


def test_the_root_is_normalised_by_the_server(connect_sftp, sftp_root: Path) -> None:
    with connect_sftp(root=f"{sftp_root}//./") as remote:
        assert remote.root == str(sftp_root)


def test_connecting_to_a_closed_port_is_retryable(connect_sftp) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ConnectionLost) as caught:
        connect_sftp(port=port, connect_timeout=2)
    assert is_retryable(caught.value)


def test_a_missing_sshd_fails_the_tests_instead_of_skipping_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from tests import sshd

    monkeypatch.setattr(sshd, "SSHD", "/nonexistent/sshd")
    with pytest.raises(pytest.fail.Exception, match="openssh-server"):
        sshd.start_sshd(tmp_path)


@pytest.mark.parametrize("opener", ["open_write", "open_update"])
def test_a_pipelined_write_that_fails_is_reported_on_close(
    connect_sftp, sftp_root: Path, opener: str
) -> None:
    """The server refuses the writes (their handle is gone); fewer than 100 are in flight, so paramiko alone
    would read their failed statuses at close and drop them."""
    from paramiko.sftp import CMD_CLOSE

    remote = connect_sftp()
    if opener == "open_update":
        (sftp_root / "f").write_bytes(b"")
    out = getattr(remote, opener)("f")
    remote._client._request(CMD_CLOSE, out._handle.handle)  # the server forgets the handle
    out.write(b"x" * 300_000)  # two pipelined requests: no reply read yet
    with pytest.raises(OSError, match="Failure"):
        out.close()
    assert (sftp_root / "f").stat().st_size == 0
    assert remote.stat("f") is not None  # the connection is still usable
