"""Who is calling: one `Actor` per request, found by small pluggable resolvers tried in order.

A resolver looks at the request and answers an Actor (its kind of credential is there and good), None
(its kind of credential is absent: the next resolver is asked) or raises `Unauthenticated` (the
credential is there and bad: the request is refused, no other resolver is asked). In order: the bearer
token, the SSO trusted header (off unless configured, and only from a configured proxy address), the
pages' signed session cookie. Every route depends on `current_actor` (the API) or `page_actor` (the pages,
which send an anonymous caller to the sign-in page instead of a 401).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from seqshare.errors import InvalidInput, NotFound
from seqshare.services import lookup, tokens


@dataclass(frozen=True)
class Actor:
    """The user behind a request (a LIMS username) and how they proved it."""

    username: str
    via: str  # "token", "session" (the pages' cookie) or "header" (SSO)
    token_id: int | None = None


class Unauthenticated(Exception):
    """No credential, or a bad one: answered 401 with a `WWW-Authenticate` challenge."""

    def __init__(self, message: str, *, bad_credential: bool = False) -> None:
        super().__init__(message)
        self.bad_credential = bad_credential


ActorResolver = Callable[[Request, Session, datetime], Actor | None]

NO_CREDENTIAL = "sign in first: send an API token as `Authorization: Bearer seqshare_pat_…`"
BAD_TOKEN = "the API token is not valid (unknown, revoked or expired); ask the facility for a new one"  # noqa: S105


def bearer_token(request: Request, session: Session, now: datetime) -> Actor | None:
    """`Authorization: Bearer seqshare_pat_…`: looked up afresh on every request (no cache)."""
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, credential = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    bearer = tokens.authenticate(session, credential.strip(), now=now)
    if bearer is None:
        raise Unauthenticated(BAD_TOKEN, bad_credential=True)
    return Actor(username=bearer.username, via="token", token_id=bearer.token_id)


SSO_HEADER_ENV = "SEQSHARE_SSO_HEADER"
SSO_PROXIES_ENV = "SEQSHARE_SSO_PROXIES"
Networks = tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]


def sso_settings(
    header: str | None = None, proxies: str | Sequence[str] | None = None
) -> tuple[str | None, Networks]:
    """The trusted header's name and the proxies it is accepted from: given, else `SEQSHARE_SSO_HEADER` and
    `SEQSHARE_SSO_PROXIES` (IPs or CIDRs, comma or space separated). Off (None) unless a header is named;
    a header without any proxy, or a proxy that is not an address, is refused in one line."""
    name = header if header is not None else os.environ.get(SSO_HEADER_ENV, "")
    name = name.strip()
    if not name:
        return None, ()
    listed = proxies if proxies is not None else os.environ.get(SSO_PROXIES_ENV, "")
    items = listed.replace(",", " ").split() if isinstance(listed, str) else list(listed)
    try:
        networks = tuple(ipaddress.ip_network(item.strip(), strict=False) for item in items)
    except ValueError as exc:
        raise InvalidInput(f"{SSO_PROXIES_ENV}: {exc}") from None
    if not networks:
        raise InvalidInput(f"{SSO_HEADER_ENV} is set but {SSO_PROXIES_ENV} names no proxy address")
    return name.lower(), networks


def _from_proxy(request: Request, networks: Networks) -> bool:
    if request.client is None:
        return False
    try:
        peer = ipaddress.ip_address(request.client.host)
    except ValueError:
        return False
    return any(peer in net for net in networks)


def sso_header(request: Request, session: Session, now: datetime) -> Actor | None:
    """The username the SSO proxy put in the trusted header; the header is ignored unless it is configured
    and the direct peer is one of the configured proxies (anyone else can send any header)."""
    name = getattr(request.app.state, "sso_header", None)
    if name is None or not _from_proxy(request, request.app.state.sso_proxies):
        return None
    username = request.headers.get(name, "").strip()
    if not username:
        return None
    try:
        user = lookup.user(session, username)
    except (NotFound, InvalidInput):
        raise Unauthenticated("the signed-in user is not a user of this facility's LIMS") from None
    return Actor(username=user.username, via="header")


SESSION_ENDED = "the session has ended (signed out, or its token was revoked or expired); sign in again"


def session_cookie(request: Request, session: Session, now: datetime) -> Actor | None:
    """The pages' signed cookie: its API token is checked again on every request, so a revoked or expired
    token ends the session at once."""
    sessions = getattr(request.app.state, "sessions", None)
    if sessions is None:
        return None
    page = sessions.load(request)
    if page.token_id is None:
        return None
    bearer = tokens.active(session, page.token_id, now=now)
    if bearer is None:
        raise Unauthenticated(SESSION_ENDED, bad_credential=True)
    return Actor(username=bearer.username, via="session", token_id=bearer.token_id)


DEFAULT_RESOLVERS: Sequence[ActorResolver] = (bearer_token, sso_header, session_cookie)

# Documents the scheme in OpenAPI; the resolvers read the request themselves.
bearer_scheme = HTTPBearer(
    auto_error=False,
    bearerFormat="seqshare_pat_…",
    description="A personal API token from `seqshare token create USER` (ask the facility).",
)


def current_actor(
    request: Request, _documented: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)]
) -> Actor:
    """The request's actor, or 401. Every route but the health check depends on this."""
    return resolve_actor(request)


def resolve_actor(request: Request) -> Actor:
    """Ask the resolvers in order; Unauthenticated when none vouches for the caller."""
    state = request.app.state
    now = state.clock()
    with state.database.transaction() as session:  # its own transaction: the last-used time is kept
        for resolve in state.resolvers:
            actor = resolve(request, session, now)
            if actor is not None:
                request.state.now = now
                return actor
    raise Unauthenticated(NO_CREDENTIAL)
