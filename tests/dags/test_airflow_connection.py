"""SftpConfig from an Airflow Connection: provider extra names, host keys always verified."""

from __future__ import annotations

import io
import json
from urllib.parse import quote

import paramiko
import pytest

from seqshare.airflow_connection import (
    ConnectionConfigError,
    sftp_config_from_connection,
    sftp_config_from_fields,
)
from seqshare.transfer.sftp import parse_host_key

HOST_KEY_OBJ = paramiko.ECDSAKey.generate()
HOST_KEY = f"{HOST_KEY_OBJ.get_name()} {HOST_KEY_OBJ.get_base64()}"
CLIENT_KEY = paramiko.ECDSAKey.generate()


def key_text(key: paramiko.PKey, password: str | None = None) -> str:
    out = io.StringIO()
    key.write_private_key(out, password=password)
    return out.getvalue()


def set_connection(monkeypatch: pytest.MonkeyPatch, conn_id: str = "seqshare_sftp", **fields) -> None:
    conn = {"conn_type": "sftp", "host": "sftp.example.org", "login": "seqshare", **fields}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))


def config(**extra):
    return sftp_config_from_fields(
        "seqshare_sftp", host="sftp.example.org", port=None, login="seqshare", password=None, extra=extra
    )


def test_connection_from_json_env_var_maps_every_field(monkeypatch):
    set_connection(
        monkeypatch,
        port=2222,
        extra={
            "host_key": HOST_KEY,
            "key_file": "/keys/id_ed25519",
            "root": "/srv/deliveries",
            "conn_timeout": 5,
        },
    )

    sftp = sftp_config_from_connection()

    assert (sftp.host, sftp.port, sftp.username, sftp.root) == (
        "sftp.example.org",
        2222,
        "seqshare",
        "/srv/deliveries",
    )
    assert sftp.private_key_path == "/keys/id_ed25519" and sftp.private_key is None
    assert sftp.connect_timeout == 5.0
    assert parse_host_key(sftp.known_host_key) == HOST_KEY_OBJ


def test_connection_in_uri_form_works_too(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_GROUP_B",
        f"sftp://alice@sftp.example.org?host_key={quote(HOST_KEY)}&key_file={quote('/keys/b')}",
    )

    sftp = sftp_config_from_connection("group_b")

    assert (sftp.username, sftp.port, sftp.private_key_path, sftp.root) == ("alice", 22, "/keys/b", ".")
    assert sftp.known_host_key == HOST_KEY


def test_private_key_text_is_loaded_with_its_passphrase(monkeypatch):
    set_connection(
        monkeypatch,
        extra={
            "host_key": HOST_KEY,
            "private_key": key_text(CLIENT_KEY, "s3cret-pass"),
            "private_key_passphrase": "s3cret-pass",
        },
    )

    sftp = sftp_config_from_connection()

    assert sftp.load_private_key() == CLIENT_KEY
    assert "s3cret" not in repr(sftp)


def test_a_missing_connection_says_how_to_define_it():
    with pytest.raises(ConnectionConfigError, match="not defined; set AIRFLOW_CONN_NO_SUCH_CONNECTION"):
        sftp_config_from_connection("no_such_connection")


def test_root_defaults_to_the_login_directory():
    assert config(host_key=HOST_KEY, key_file="/k").root == "."


def test_connection_without_host_key_is_refused_with_the_fix():
    with pytest.raises(
        ConnectionConfigError, match=r"'seqshare_sftp'.*host_key.*ssh-keyscan sftp\.example\.org"
    ):
        config(key_file="/k")


@pytest.mark.parametrize(
    "name", ["no_host_key_check", "ignore_hostkey_verification", "allow_host_key_change"]
)
@pytest.mark.parametrize("value", [True, "true", "True"])
def test_switching_host_key_verification_off_is_refused(name, value):
    with pytest.raises(ConnectionConfigError, match=f"{name}=true"):
        config(host_key=HOST_KEY, key_file="/k", **{name: value})


def test_no_host_key_check_false_is_accepted():
    assert config(host_key=HOST_KEY, key_file="/k", no_host_key_check="false").known_host_key == HOST_KEY


def test_host_key_without_its_type_is_refused():
    with pytest.raises(ConnectionConfigError, match="key type"):
        config(host_key=HOST_KEY_OBJ.get_base64(), key_file="/k")


def test_password_without_key_is_refused():
    with pytest.raises(ConnectionConfigError, match="password but no key"):
        sftp_config_from_fields(
            "c", host="h", port=22, login="u", password="pw", extra={"host_key": HOST_KEY}
        )


def test_key_file_and_private_key_together_are_refused():
    with pytest.raises(ConnectionConfigError, match="both"):
        config(host_key=HOST_KEY, key_file="/k", private_key=key_text(CLIENT_KEY))


def test_encrypted_private_key_without_passphrase_is_refused():
    with pytest.raises(ConnectionConfigError, match="encrypted"):
        config(host_key=HOST_KEY, private_key=key_text(CLIENT_KEY, "s3cret-pass"))


def test_garbage_private_key_is_refused_without_echoing_it():
    with pytest.raises(ConnectionConfigError, match="not an Ed25519") as caught:
        config(host_key=HOST_KEY, private_key="-----BEGIN NOTHING-----\nc2VjcmV0\n-----END NOTHING-----")
    assert "c2VjcmV0" not in str(caught.value)


@pytest.mark.parametrize(("field", "message"), [("host", "no host"), ("login", "no login")])
def test_host_and_login_are_required(field, message):
    fields = {"host": "h", "port": None, "login": "u", "password": None, "extra": {"host_key": HOST_KEY}}
    fields[field] = None
    with pytest.raises(ConnectionConfigError, match=message):
        sftp_config_from_fields("c", **fields)
