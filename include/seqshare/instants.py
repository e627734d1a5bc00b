"""Instants typed by people (CLI arguments, DAG params): ISO 8601, always with a time zone."""

from __future__ import annotations

from datetime import datetime

from seqshare.errors import InvalidInput


def parse_instant(text: str, what: str = "instant") -> datetime:
    """`2026-03-01T09:30:00Z` or `...+01:00`; a time without a zone is refused, never guessed."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{what} {text!r} is not ISO 8601 (e.g. 2026-03-01T09:30:00+00:00)") from None
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput(
            f"{what} {text!r} has no time zone; add one, e.g. 2026-03-01T09:30:00+00:00 or ...Z"
        )
    return value
