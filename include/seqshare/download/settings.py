"""Where the download client finds its server and the user's token: the environment, else a config file.

Never the command line: a token in argv is visible to every user of the machine (`ps`) and lands in shell
history. The config file (TOML: `url = "..."`, `token = "..."`) is `SEQSHARE_CONFIG`, else
`$XDG_CONFIG_HOME/seqshare/config.toml` (`~/.config/...`). A file holding a token is refused when anyone but
its owner may read or write it, as OpenSSH refuses an open private key: it would mean the token has leaked
already (read), or that someone could point the client at their own server and collect it (write).
"""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from seqshare.download.errors import BadInput, TokenRefused
from seqshare.errors import quote

URL_ENV = "SEQSHARE_URL"
TOKEN_ENV = "SEQSHARE_TOKEN"  # noqa: S105 (the variable's name, not a secret)
CONFIG_ENV = "SEQSHARE_CONFIG"
KEYS = {"url", "token"}


@dataclass(frozen=True)
class ClientSettings:
    url: str  # the server's base URL, without `/api/v1`
    token: str
    source: str  # where the token came from, for messages ("SEQSHARE_TOKEN" or the file)

    def __repr__(self) -> str:  # never print the secret, even in a debugging session
        return f"ClientSettings(url={self.url!r}, token=<from {self.source}>)"


def config_path(env: Mapping[str, str]) -> Path:
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV]).expanduser()
    base = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else Path.home() / ".config"
    return base / "seqshare" / "config.toml"


def read_config(path: Path, *, required: bool) -> dict[str, str]:
    """The file's settings ({} when it does not exist and was not asked for by `SEQSHARE_CONFIG`)."""
    try:
        raw = path.read_bytes()
        info = path.stat()
    except FileNotFoundError:
        if required:
            raise BadInput(f"{CONFIG_ENV} names {quote(str(path))}, which does not exist") from None
        return {}
    except OSError as exc:
        raise BadInput(f"cannot read the config file {quote(str(path))}: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise BadInput(f"the config file {quote(str(path))} is not valid TOML: {exc}") from None
    unknown = sorted(set(data) - KEYS)
    if unknown:
        raise BadInput(f"the config file {quote(str(path))} has unknown settings: {', '.join(unknown)}")
    for key, value in data.items():
        if not isinstance(value, str):
            raise BadInput(f"the config file {quote(str(path))}: {key} must be a string")
    if "token" in data:
        _check_private(path, info)
    return dict(data)


def _check_private(path: Path, info: os.stat_result) -> None:
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise TokenRefused(
            f"refused: {quote(str(path))} holds your token but others may read or change it "
            f"(mode {mode:04o}); run `chmod 600 {path}`"
        )
    if info.st_uid != os.getuid():
        raise TokenRefused(f"refused: {quote(str(path))} holds a token but is not your own file")


def checked_url(url: str, where: str) -> str:
    """`http(s)://host[:port][/prefix]`, without a trailing `/` or `/api/v1`."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise BadInput(f"{where}: {quote(url)} is not a server URL such as https://seqshare.example.org")
    base = url.strip().rstrip("/")
    return base.removesuffix("/api/v1").rstrip("/")


def checked_token(token: str, where: str) -> str:
    token = token.strip()
    if not token:
        raise TokenRefused(f"{where} is empty")
    if not token.isascii() or not token.isprintable() or " " in token:
        raise TokenRefused(f"{where} is not a seqshare token (it has spaces or control characters)")
    return token


def load_settings(env: Mapping[str, str] | None = None) -> ClientSettings:
    """The server URL and the token, from the environment first, then the config file."""
    env = os.environ if env is None else env
    path = config_path(env)
    config = read_config(path, required=bool(env.get(CONFIG_ENV)))
    if env.get(URL_ENV):
        url = checked_url(env[URL_ENV], URL_ENV)
    elif config.get("url"):
        url = checked_url(config["url"], f"url in {path}")
    else:
        raise BadInput(f'no server: set {URL_ENV} or `url = "https://..."` in {path}')
    if env.get(TOKEN_ENV):
        return ClientSettings(url, checked_token(env[TOKEN_ENV], TOKEN_ENV), TOKEN_ENV)
    if config.get("token"):
        return ClientSettings(url, checked_token(config["token"], f"token in {path}"), str(path))
    raise TokenRefused(
        f'no token: set {TOKEN_ENV}, or `token = "..."` in {path} (mode 600); '
        "an admin creates one with `seqshare token create USER`"
    )
