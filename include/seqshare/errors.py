"""The errors seqshare reports to people: each carries a one-line message fit for a CLI, a page or an API."""


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


class DatabaseNotReady(SeqshareError):
    """The application database is missing its schema or is out of date."""


def quote(value: object, limit: int = 200) -> str:
    """`repr(value)` for an error line, cut to about `limit` characters: a hostile value (a megabyte of text,
    control characters) must not flood a log or a terminal."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(str(value)):,} characters)"
