"""The download client's server URL and token: environment first, a config file only when it is private."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from seqshare.download.errors import BadInput, Exit, TokenRefused
from seqshare.download.settings import checked_url, load_settings

TOKEN = "seqshare_pat_abc123"


def config(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    os.chmod(path, mode)
    return path


def test_the_environment_wins_over_the_config_file(tmp_path: Path) -> None:
    path = config(tmp_path, f'url = "http://file.example"\ntoken = "{TOKEN}-file"\n')
    env = {"SEQSHARE_CONFIG": str(path), "SEQSHARE_URL": "http://env.example/", "SEQSHARE_TOKEN": TOKEN}
    settings = load_settings(env)
    assert (settings.url, settings.token, settings.source) == ("http://env.example", TOKEN, "SEQSHARE_TOKEN")


def test_a_private_config_file_gives_url_and_token_and_the_repr_hides_the_token(tmp_path: Path) -> None:
    path = config(tmp_path, f'url = "https://seqshare.example.org/api/v1/"\ntoken = "{TOKEN}"\n')
    settings = load_settings({"SEQSHARE_CONFIG": str(path)})
    assert (settings.url, settings.token) == ("https://seqshare.example.org", TOKEN)
    assert TOKEN not in repr(settings)


def test_the_default_config_file_is_under_xdg_config_home(tmp_path: Path) -> None:
    (tmp_path / "seqshare").mkdir()
    config(tmp_path / "seqshare", f'url = "http://x.example"\ntoken = "{TOKEN}"\n')
    assert load_settings({"XDG_CONFIG_HOME": str(tmp_path)}).token == TOKEN


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o660])
def test_a_token_file_open_to_others_is_refused_in_one_line(tmp_path: Path, mode: int) -> None:
    path = config(tmp_path, f'url = "http://x.example"\ntoken = "{TOKEN}"\n', mode)
    with pytest.raises(TokenRefused) as refused:
        load_settings({"SEQSHARE_CONFIG": str(path)})
    assert refused.value.exit == Exit.AUTH
    assert f"mode {mode:04o}" in str(refused.value) and "chmod 600" in str(refused.value)
    assert "\n" not in str(refused.value) and TOKEN not in str(refused.value)


def test_a_world_readable_file_without_a_token_is_fine(tmp_path: Path) -> None:
    path = config(tmp_path, 'url = "http://x.example"\n', 0o644)
    assert load_settings({"SEQSHARE_CONFIG": str(path), "SEQSHARE_TOKEN": TOKEN}).url == "http://x.example"


def test_no_token_anywhere_is_an_auth_error_naming_both_places(tmp_path: Path) -> None:
    with pytest.raises(TokenRefused, match="no token: set SEQSHARE_TOKEN") as refused:
        load_settings({"SEQSHARE_URL": "http://x.example", "XDG_CONFIG_HOME": str(tmp_path)})
    assert str(tmp_path / "seqshare" / "config.toml") in str(refused.value)


@pytest.mark.parametrize(
    ("text", "error", "message"),
    [
        ('url = "http://x.example"\ntokn = "x"\n', BadInput, "unknown settings: tokn"),
        ("url = [1]\n", BadInput, "url must be a string"),
        ("url = \n", BadInput, "not valid TOML"),
        ('url = "ftp://x.example"\ntoken = "t"\n', BadInput, "is not a server URL"),
        ('url = "http://x.example"\ntoken = "has space"\n', TokenRefused, "not a seqshare token"),
        ('token = "t"\n', BadInput, "no server"),
    ],
)
def test_a_bad_config_file_is_one_clear_line(tmp_path: Path, text: str, error: type, message: str) -> None:
    path = config(tmp_path, text)
    with pytest.raises(error, match=message) as raised:
        load_settings({"SEQSHARE_CONFIG": str(path)})
    assert "\n" not in str(raised.value)


def test_a_missing_config_file_named_by_seqshare_config_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="does not exist"):
        load_settings({"SEQSHARE_CONFIG": str(tmp_path / "nope.toml"), "SEQSHARE_TOKEN": TOKEN})


@pytest.mark.parametrize(
    ("url", "base"),
    [
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("https://h.example/seqshare/", "https://h.example/seqshare"),
        ("https://h.example/api/v1", "https://h.example"),
    ],
)
def test_server_urls_are_reduced_to_their_base(url: str, base: str) -> None:
    assert checked_url(url, "SEQSHARE_URL") == base


@pytest.mark.parametrize("url", ["127.0.0.1:8000", "file:///etc/passwd", "http://", "http://h/?q=1"])
def test_what_is_not_a_server_url_is_refused(url: str) -> None:
    with pytest.raises(BadInput, match="SEQSHARE_URL"):
        checked_url(url, "SEQSHARE_URL")
