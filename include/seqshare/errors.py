"""The errors seqshare reports to people: each carries a one-line message fit for a CLI, a page or an API."""

from __future__ import annotations


class SeqshareError(Exception):
    """Base of every error that is the user's input or the world's state, not a bug.

    `retryable` says whether trying the same thing again later can succeed without anyone acting
    (read by `seqshare.transfer.errors.is_retryable`, the one place that decides).
    """

    retryable = False


class NotFound(SeqshareError):
    """A project, group, user, pool or run named by the caller does not exist."""


class SharingRefused(SeqshareError):
    """A sharing change that the rules forbid; nothing was changed."""


class InvalidInput(SeqshareError):
    """Input (a LIMS file, an instant, a name) that cannot be accepted as given."""


class StaleChange(SeqshareError):
    """A change decided from a state that is no longer current (a form shown before someone else's change);
    nothing was changed."""


class DatabaseNotReady(SeqshareError):
    """The application database is missing its schema or is out of date."""


class ConcurrentChange(SeqshareError):
    """A change that kept meeting other changes of the same records and was given up; nothing was changed.

    Raised only after the change was retried; trying again later can succeed.
    """

    retryable = True


def quote(value: object, limit: int = 200) -> str:
    """`repr(value)` for an error line, cut to `limit` characters with an ellipsis and the full length.

    repr() escapes newlines and control characters, so the line stays one line; the cut keeps a hostile
    value (a 10 MB name) from flooding a log.
    """
    text = repr(value)
    if len(text) <= limit:
        return text
    size = len(value) if isinstance(value, str | bytes) else len(text)
    return f"{text[:limit]}… ({size:,} {'bytes' if isinstance(value, bytes) else 'characters'})"


def one_line(text: object, limit: int = 300) -> str:
    """`text` folded onto one line (an error line in a log or a terminal) and cut at about `limit`."""
    line = " ".join(str(text).split()) or "no detail"
    return line if len(line) <= limit else f"{line[:limit]}… ({len(line):,} characters)"
