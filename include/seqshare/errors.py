"""The errors seqshare reports to people: each carries a one-line message fit for a CLI, a page or an API."""


class SeqshareError(Exception):
    """Base of every error that is the user's input or the world's state, not a bug."""


class NotFound(SeqshareError):
    """A project, group, user, pool or run named by the caller does not exist."""


class SharingRefused(SeqshareError):
    """A sharing change that the rules forbid; nothing was changed."""


class InvalidInput(SeqshareError):
    """Input (a LIMS file, an instant, a name) that cannot be accepted as given."""


class DatabaseNotReady(SeqshareError):
    """The application database is missing its schema or is out of date."""
