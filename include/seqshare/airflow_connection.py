"""Build an `SftpConfig` from an Airflow Connection, so operators manage SFTP targets in Airflow.

Call it inside a task, never at DAG parse time (a Connection lookup while parsing fails the
DAG-integrity test). Importing this module is cheap: Airflow and paramiko are imported when called.

The Connection uses the field and extra names of Airflow's SSH/SFTP providers, so one Connection works
with both ``SFTPHook`` and seqshare:

========================  ==========================================================================
host / port / login       server, port (default 22) and user
extra ``host_key``        **required**: the server's public key, ``ssh-ed25519 AAAA...`` (a line of
                          ``ssh-keyscan`` output works). Host keys are always verified.
extra ``key_file``        path of the private key on the worker, or
extra ``private_key``     the private key itself (PEM/OpenSSH text); exactly one of the two
extra ``private_key_passphrase`` (or the SFTP provider's ``passphrase``) if the key is encrypted
extra ``conn_timeout``    seconds to wait for the connection (default 30)
extra ``root``            seqshare's own: the directory on the server that deliveries are written
                          under; default ``.``, the login's home (or chroot) directory
========================  ==========================================================================

Refused with a message naming the Connection: no ``host_key``; ``no_host_key_check``,
``ignore_hostkey_verification`` or ``allow_host_key_change`` set to true; a password instead of a key
(seqshare authenticates with keys only).

Example (``AIRFLOW_CONN_SEQSHARE_SFTP``, JSON form)::

    {"conn_type": "sftp", "host": "sftp.example.org", "port": 22, "login": "seqshare",
     "extra": {"host_key": "ssh-ed25519 AAAAC3Nz...", "key_file": "/run/secrets/seqshare_ed25519",
               "root": "deliveries"}}
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from seqshare.errors import SeqshareError

if TYPE_CHECKING:
    import paramiko

    from seqshare.transfer.sftp import SftpConfig

DEFAULT_CONN_ID = "seqshare_sftp"
_SKIP_CHECK_EXTRAS = ("no_host_key_check", "ignore_hostkey_verification", "allow_host_key_change")


class ConnectionConfigError(SeqshareError, ValueError):
    """An Airflow Connection that cannot be turned into a safe SFTP configuration."""

    def __init__(self, conn_id: str, reason: str) -> None:
        self.conn_id = conn_id
        super().__init__(f"Airflow connection {conn_id!r}: {reason}")


def sftp_config_from_connection(conn_id: str = DEFAULT_CONN_ID) -> SftpConfig:
    """Look up ``conn_id`` (env ``AIRFLOW_CONN_<ID>``, secrets backend or Airflow's database).

    Raises ConnectionConfigError for an incomplete or unsafe Connection, and Airflow's
    AirflowNotFoundException when it does not exist.
    """
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        raise ConnectionConfigError(
            conn_id, f"not defined; set AIRFLOW_CONN_{conn_id.upper()} or add it in Airflow's Connections"
        ) from None
    return sftp_config_from_fields(
        conn_id,
        host=conn.host,
        port=conn.port,
        login=conn.login,
        password=conn.password,
        extra=conn.extra_dejson,
    )


def sftp_config_from_fields(
    conn_id: str,
    *,
    host: str | None,
    port: int | None,
    login: str | None,
    password: str | None,
    extra: Mapping[str, Any],
) -> SftpConfig:
    """The mapping itself, without Airflow; see the module docstring."""
    from seqshare.transfer.errors import HostKeyMismatch
    from seqshare.transfer.sftp import SftpConfig, parse_host_key

    def fail(reason: str) -> ConnectionConfigError:
        return ConnectionConfigError(conn_id, reason)

    if not host:
        raise fail("has no host")
    if not login:
        raise fail("has no login (the SFTP user name)")
    for name in _SKIP_CHECK_EXTRAS:
        if _truthy(extra.get(name)):
            raise fail(
                f"sets {name}=true; seqshare always verifies the server's host key. Remove {name!r} "
                "and put the server's key in the 'host_key' extra"
            )
    host_key = str(extra.get("host_key") or "").strip()
    if not host_key:
        raise fail(
            "has no 'host_key' extra; seqshare always verifies the server's host key. Fetch it with "
            f"`ssh-keyscan{_port_flag(port)} {host}`, check its fingerprint with the server's "
            "administrators, and set the extra to the key line, e.g. 'ssh-ed25519 AAAA...'"
        )
    try:
        parse_host_key(host_key)
    except HostKeyMismatch as exc:
        raise fail(
            f"its 'host_key' extra is not usable ({exc}); it needs the key type and the key, as in "
            "'ssh-ed25519 AAAA...'"
        ) from None
    key_file = str(extra.get("key_file") or "").strip() or None
    key_text = str(extra.get("private_key") or "").strip() or None
    passphrase = extra.get("private_key_passphrase") or extra.get("passphrase") or None
    if key_file and key_text:
        raise fail("sets both 'key_file' and 'private_key'; keep one")
    if not key_file and not key_text:
        if password:
            raise fail("has a password but no key; seqshare logs in with a key ('key_file' or 'private_key')")
        raise fail("has no 'key_file' or 'private_key' extra")
    private_key = _load_private_key(key_text, passphrase, fail) if key_text else None
    root = str(extra.get("root") or ".").strip() or "."
    try:
        connect_timeout = float(extra.get("conn_timeout") or 30.0)
    except (TypeError, ValueError):
        raise fail(f"'conn_timeout' is not a number: {extra.get('conn_timeout')!r}") from None
    return SftpConfig(
        host=host,
        username=login,
        known_host_key=host_key,
        root=root,
        port=int(port) if port else 22,
        private_key_path=key_file,
        private_key=private_key,
        private_key_passphrase=passphrase if key_file else None,
        connect_timeout=connect_timeout,
    )


def _truthy(value: object) -> bool:
    return str(value).strip().lower() in ("true", "1", "yes")


def _port_flag(port: int | None) -> str:
    return f" -p {port}" if port and port != 22 else ""


def _load_private_key(
    text: str, passphrase: str | None, fail: Callable[[str], ConnectionConfigError]
) -> paramiko.PKey:
    import paramiko

    if "\n" not in text:
        raise fail("its 'private_key' extra must be the whole key, with its BEGIN and END lines")
    for key_class in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return key_class.from_private_key(io.StringIO(text), password=passphrase)
        except paramiko.PasswordRequiredException:
            raise fail("its private key is encrypted; set 'private_key_passphrase'") from None
        except (paramiko.SSHException, ValueError):
            continue  # the wrong class for this key; the message must not echo key material
    raise fail(
        "its 'private_key' extra is not an Ed25519, ECDSA or RSA private key (or the passphrase is wrong)"
    )


__all__ = [
    "DEFAULT_CONN_ID",
    "ConnectionConfigError",
    "sftp_config_from_connection",
    "sftp_config_from_fields",
]
