"""Where seqshare finds its database: one place, read when asked, never at import time."""

from __future__ import annotations

import os
from pathlib import Path

DATABASE_URL_ENV = "SEQSHARE_DATABASE_URL"
HOME_ENV = "SEQSHARE_HOME"


def seqshare_home() -> Path:
    """The folder for seqshare's local state (the default SQLite database)."""
    return Path(os.environ.get(HOME_ENV) or Path.home() / ".seqshare")


def database_url() -> str:
    """`SEQSHARE_DATABASE_URL`, else a SQLite file in `seqshare_home()` (the embedded default)."""
    url = os.environ.get(DATABASE_URL_ENV)
    if url:
        return url
    home = seqshare_home()
    home.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{home / 'seqshare.db'}"
