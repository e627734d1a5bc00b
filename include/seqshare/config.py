"""seqshare's settings from the environment: one place, read when asked, never at import time."""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from seqshare.errors import InvalidInput, quote

if TYPE_CHECKING:
    from seqshare.runfolder.layout import OutputSearch

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


TTL_ENV = "SEQSHARE_TTL_DAYS"


def default_ttl() -> timedelta:
    """How long delivered files stay on the FTP server unless a group has its own: 30 days by default."""
    days = os.environ.get(TTL_ENV) or "30"
    if not days.isdigit() or int(days) < 1:
        raise InvalidInput(f"{TTL_ENV}={days!r}: give a whole number of days, at least 1")
    return timedelta(days=int(days))


PARALLEL_ENV = "SEQSHARE_PARALLEL_FILES"


def parallel_connections() -> int:
    """SFTP connections per group delivery (`SEQSHARE_PARALLEL_FILES`, default 2): files go one per
    connection, a lone large file is split over them. The DAG takes as many `sftp_sessions` pool slots."""
    value = os.environ.get(PARALLEL_ENV) or "2"
    if not value.isdigit() or int(value) < 1:
        raise InvalidInput(f"{PARALLEL_ENV}={value!r}: give a whole number of connections, at least 1")
    return int(value)


INSTRUMENT_TZ_ENV = "SEQSHARE_INSTRUMENT_TZ"


def instrument_zone() -> ZoneInfo:
    """The zone instruments write local times in (`SEQSHARE_INSTRUMENT_TZ`, default UTC)."""
    zone = os.environ.get(INSTRUMENT_TZ_ENV) or "UTC"
    try:
        return ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"{INSTRUMENT_TZ_ENV}={zone!r} is not a time zone (e.g. Europe/London)") from None


OWNER_DELIVERY_ENV = "SEQSHARE_OWNER_RECEIVES_OWN"


def owner_receives_own() -> bool:
    """Whether an external owner group receives its own projects' pools on every run
    (`SEQSHARE_OWNER_RECEIVES_OWN`, default on; a group can be switched off on its own in the LIMS)."""
    value = (os.environ.get(OWNER_DELIVERY_ENV) or "on").strip().lower()
    if value in ("1", "on", "true", "yes"):
        return True
    if value in ("0", "off", "false", "no"):
        return False
    raise InvalidInput(f"{OWNER_DELIVERY_ENV}={value!r}: give on or off")


OUTPUT_PATTERNS_ENV = "SEQSHARE_OUTPUT_PATTERNS"
OUTPUT_ROOT_ENV = "SEQSHARE_OUTPUT_ROOT"


def output_search() -> OutputSearch:
    """Where a run folder's demultiplexed output is looked for when no ``output_dir`` is given.

    `SEQSHARE_OUTPUT_ROOT`: a folder keyed by run id outside the run folders (`/demux` means
    `/demux/<run id>`; `{run_id}` places it, `/demux/{run_id}/fastq`); when set, the only place looked at.
    `SEQSHARE_OUTPUT_PATTERNS`: glob patterns relative to the run folder, separated by `,` or `:`; the
    word `default` is the built-in search (also the default). See `seqshare.runfolder.layout`.
    """
    from seqshare.runfolder.layout import DEFAULT_SEARCH, OutputSearch  # runfolder imports this module

    value = os.environ.get(OUTPUT_PATTERNS_ENV) or ""
    patterns = tuple(p.strip() for p in re.split(r"[,:]", value) if p.strip()) or (DEFAULT_SEARCH,)
    root = (os.environ.get(OUTPUT_ROOT_ENV) or "").strip() or None
    try:
        OutputSearch(patterns=patterns)
    except ValueError as exc:
        raise InvalidInput(f"{OUTPUT_PATTERNS_ENV}={quote(value)}: {exc}") from None
    try:
        return OutputSearch(patterns=patterns, root=root)
    except ValueError as exc:
        raise InvalidInput(f"{OUTPUT_ROOT_ENV}={quote(root)}: {exc}") from None
