"""Who is calling: one `Actor` per request, found by small pluggable resolvers tried in order.

A resolver looks at the request and answers an Actor (its kind of credential is there and good), None
(its kind of credential is absent: the next resolver is asked) or raises `Unauthenticated` (the
credential is there and bad: the request is refused, no other resolver is asked). Today: the bearer
token. The Data Sharing page adds a signed-session resolver and a trusted-SSO-header one, with no change
to the routes: every route depends on `current_actor`, which refuses a request nobody vouches for.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from seqshare.services import tokens


@dataclass(frozen=True)
class Actor:
    """The user behind a request (a LIMS username) and how they proved it."""

    username: str
    via: str  # "token"; later "session" or "header"
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


DEFAULT_RESOLVERS: Sequence[ActorResolver] = (bearer_token,)

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
    state = request.app.state
    now = state.clock()
    with state.database.transaction() as session:  # its own transaction: the last-used time is kept
        for resolve in state.resolvers:
            actor = resolve(request, session, now)
            if actor is not None:
                request.state.now = now
                return actor
    raise Unauthenticated(NO_CREDENTIAL)
