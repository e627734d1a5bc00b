"""What can stop a download, the exit code each means, and its one line: decided here and nowhere else.

Scripts rely on the exit codes (README, `seqshare download --help`), so they are an enum, not literals.
Every HTTP answer, transport failure and OS error the client meets is turned into one of these errors by
`from_response`, `from_transport` or `from_os_error`; the CLI prints `str(error)` and exits with `.exit`.
"""

from __future__ import annotations

import errno
from enum import IntEnum

import httpx

from seqshare.errors import SeqshareError, one_line, quote


class Exit(IntEnum):
    """`seqshare download`'s exit codes (2 stays the CLI's "unexpected error, a bug")."""

    OK = 0  # every file is here and verified
    BAD_INPUT = 1  # a usage error, bad option value, bad config file, or a pattern matching nothing
    AUTH = 3  # no token, or it is unknown, expired or revoked, or its file is open to others
    NOT_FOUND = 4  # no such pool or project, or not yours to see (the same answer), or access ended meanwhile
    FILES_FAILED = 5  # some files failed or changed on the server; the others are done
    DISK_FULL = 6  # not enough space at the destination (checked before starting, or met while writing)
    UNREACHABLE = 7  # the server cannot be reached, or does not answer as a seqshare server should
    INTERRUPTED = 130  # Ctrl-C (SIGINT): partial files stay, the next run resumes them


EXIT_HELP = (
    "Exit codes: 0 all files present and verified; 1 bad input or usage; 3 token missing, unknown, expired "
    "or revoked, or its file open to others; 4 no such pool or project (or not yours to see), or access "
    "ended during the download; 5 some files failed or changed on the server (the rest are done); 6 not "
    "enough disk space; 7 server unreachable or answering badly; 130 interrupted (run again to resume); "
    "2 an unexpected error (a bug)."
)


class DownloadError(SeqshareError):
    """A failure that ends the whole download; `exit` is the process's exit code."""

    exit = Exit.BAD_INPUT


class BadInput(DownloadError):
    exit = Exit.BAD_INPUT


class TokenRefused(DownloadError):
    exit = Exit.AUTH


class NotVisible(DownloadError):
    """404: missing or hidden (the server answers both alike, and so does this client)."""

    exit = Exit.NOT_FOUND


class DiskFull(DownloadError):
    exit = Exit.DISK_FULL


class Unreachable(DownloadError):
    exit = Exit.UNREACHABLE


class BadAnswer(Unreachable):
    """The server answered, but not as the contract says (a 5xx, a proxy's HTML page, a broken listing)."""


class Interrupted(DownloadError):
    """Ctrl-C: partial files stay for the next run to resume."""

    exit = Exit.INTERRUPTED


def _detail(response: httpx.Response) -> str:
    """The API's one-line `{"detail": ...}`, else the status line (a proxy's page is not shown)."""
    try:
        response.read()  # a streamed answer's body is not read yet; an error's is one short line
        detail = response.json().get("detail")
    except (ValueError, AttributeError, httpx.HTTPError):
        detail = None
    if isinstance(detail, str) and detail:
        return one_line(detail, 200)
    return f"HTTP {response.status_code} {response.reason_phrase}".strip()


def from_response(response: httpx.Response, what: str) -> DownloadError:
    """The error an unexpected answer means; `what` names the request (the target, or a file's path)."""
    status = response.status_code
    if status == 401:
        return TokenRefused(f"the server refused the token: {_detail(response)}")
    if status == 404:
        return NotVisible(_detail(response))
    if status in (400, 422):
        return BadInput(f"{what}: {_detail(response)}")
    return BadAnswer(f"{what}: the server answered {_detail(response)}")


def from_transport(exc: httpx.TransportError, url: str) -> Unreachable:
    """A connection refused, a name that does not resolve, a timeout: the server is out of reach."""
    reason = one_line(str(exc) or type(exc).__name__, 160)
    return Unreachable(f"cannot reach the seqshare server at {url}: {reason}")


def from_os_error(exc: OSError, path: object) -> DownloadError:
    """A failed write or rename at the destination."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFull(f"disk full while writing {quote(str(path))}; free space, then run again to resume")
    return BadInput(f"cannot write {quote(str(path))}: {exc.strerror or exc}")
