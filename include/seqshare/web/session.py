"""The pages' signed session cookie and the CSRF token tied to it.

The cookie (`seqshare_session`) is signed with `SEQSHARE_SECRET_KEY` (itsdangerous, timestamped: it ends
after `SEQSHARE_SESSION_HOURS`, 8 by default), HttpOnly, SameSite=Lax, Secure over HTTPS. It holds a
random CSRF value, and once signed in the id of the API token the user signed in with (never the token
itself): the token is checked again on every request, so revoking it ends the session.

CSRF: every form carries the session's CSRF value; a POST is refused (403) unless the field equals the
value in the signed cookie (constant-time comparison). A page rendered for one session cannot be posted
from another, and a third-party site can read neither.
"""

from __future__ import annotations

import hmac
import os
import secrets
from dataclasses import dataclass, field
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

from seqshare.errors import InvalidInput

COOKIE = "seqshare_session"
SECRET_ENV = "SEQSHARE_SECRET_KEY"  # noqa: S105 (the setting's name)
HOURS_ENV = "SEQSHARE_SESSION_HOURS"
MIN_SECRET = 32
CSRF_FIELD = "csrf_token"


def secret_key(value: str | None = None) -> str | None:
    """The session key: given, else `SEQSHARE_SECRET_KEY`; None when unset; refused when too short."""
    key = value if value is not None else os.environ.get(SECRET_ENV)
    if not key:
        return None
    if len(key) < MIN_SECRET:
        raise InvalidInput(f"{SECRET_ENV} is too short: give at least {MIN_SECRET} random characters")
    return key


def lifetime_hours() -> int:
    hours = os.environ.get(HOURS_ENV) or "8"
    if not hours.isdigit() or int(hours) < 1:
        raise InvalidInput(f"{HOURS_ENV}={hours!r}: give a whole number of hours, at least 1")
    return int(hours)


@dataclass
class PageSession:
    """The decoded cookie; `changed` says it must be sent again."""

    csrf: str
    token_id: int | None = None
    flash: dict[str, Any] | None = None
    changed: bool = field(default=False, compare=False)


class Sessions:
    def __init__(self, key: str, hours: int) -> None:
        self._signer = URLSafeTimedSerializer(key, salt="seqshare-page-session")
        self.max_age = hours * 3600

    def load(self, request: Request) -> PageSession:
        """The request's session (cached on it); a missing, forged or expired cookie gives a fresh one."""
        cached = getattr(request.state, "page_session", None)
        if cached is not None:
            return cached
        raw = request.cookies.get(COOKIE)
        data: dict[str, Any] = {}
        if raw:
            try:
                data = self._signer.loads(raw, max_age=self.max_age)
            except BadSignature:  # also SignatureExpired
                data = {}
        if isinstance(data, dict) and isinstance(data.get("csrf"), str):
            token_id = data.get("token_id")
            found = PageSession(
                csrf=data["csrf"],
                token_id=token_id if isinstance(token_id, int) else None,
                flash=data.get("flash") if isinstance(data.get("flash"), dict) else None,
            )
        else:
            found = PageSession(csrf=secrets.token_urlsafe(32), changed=True)
        request.state.page_session = found
        return found

    def save(self, request: Request, response: Response, page: PageSession) -> None:
        data = {"csrf": page.csrf, "token_id": page.token_id, "flash": page.flash}
        response.set_cookie(
            COOKIE,
            self._signer.dumps(data),
            max_age=self.max_age,
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
            path="/",
        )

    @staticmethod
    def csrf_ok(page: PageSession, presented: object) -> bool:
        return isinstance(presented, str) and hmac.compare_digest(presented.encode(), page.csrf.encode())
