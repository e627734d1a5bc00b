"""Per-user API tokens: created, listed and revoked by an admin; each secret shown once, stored hashed.

A token reads `seqshare_pat_<36 random letters and digits><6-character checksum>`, after GitHub's tokens:
the prefix lets secret scanners (GitHub's, gitleaks, trufflehog) find a leaked token by a pattern, and the
CRC-32 checksum lets them, and this module, tell a real token from a lookalike without a database lookup.

Only the SHA-256 of the secret is stored, not a bcrypt/scrypt/argon2 hash: those are slow on purpose, to
make guessing a *person's* password expensive. A token is 36 characters drawn uniformly from 62 (about 214
bits): no guessing is feasible however fast the hash, so a slow hash would only add latency to every API
request. A fast, unsalted hash also lets the database find a token by an indexed equality lookup.

A revoked or expired token fails on the very next request: every request looks its token up afresh (no
cache). The last-used time is written at most once a minute per token, so reads stay reads.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import string
import unicodedata
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload, selectinload

from seqshare.db.models import ApiToken, User
from seqshare.errors import InvalidInput, NotFound, quote
from seqshare.services import lookup

PREFIX = "seqshare_pat_"
_ALPHABET = string.digits + string.ascii_letters  # base62: no '-' or '_', so a double-click selects it all
_RANDOM_CHARS = 36
_CHECK_CHARS = 6
TOKEN = re.compile(rf"{PREFIX}[0-9A-Za-z]{{{_RANDOM_CHARS + _CHECK_CHARS}}}")
"""The pattern a secret scanner looks for."""
_HINT_CHARS = 4  # shown by `seqshare token list`, to recognise a token found somewhere
LAST_USED_EVERY = timedelta(minutes=1)


def _base62(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, digit = divmod(number, 62)
        digits.append(_ALPHABET[digit])
    return "".join(reversed(digits))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode()), _CHECK_CHARS)


def new_secret() -> str:
    body = "".join(secrets.choice(_ALPHABET) for _ in range(_RANDOM_CHARS))
    return f"{PREFIX}{body}{_checksum(body)}"


def well_formed(secret: str) -> bool:
    """Whether `secret` has a token's shape and checksum (cheap: no database)."""
    if not TOKEN.fullmatch(secret):
        return False
    body = secret[len(PREFIX) : len(PREFIX) + _RANDOM_CHARS]
    return secrets.compare_digest(secret[-_CHECK_CHARS:], _checksum(body))


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class TokenView:
    """A token as an admin sees it: never the secret."""

    id: int
    user: str
    name: str
    hint: str  # e.g. "seqshare_pat_Ab3x…"
    state: str  # active, expired or revoked (at the instant it was read)
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class NewToken:
    """A token just created: `secret` is shown once and cannot be recovered afterwards."""

    secret: str
    token: TokenView


@dataclass(frozen=True)
class Bearer:
    """Who a valid token speaks for."""

    username: str
    token_id: int


def _state(token: ApiToken, now: datetime) -> str:
    if token.revoked_at is not None:
        return "revoked"
    if token.expires_at is not None and token.expires_at <= now:
        return "expired"
    return "active"


def _view(token: ApiToken, now: datetime) -> TokenView:
    return TokenView(
        id=token.id,
        user=token.user.username,
        name=token.name,
        hint=f"{token.hint}…",
        state=_state(token, now),
        created_at=token.created_at,
        expires_at=token.expires_at,
        last_used_at=token.last_used_at,
        revoked_at=token.revoked_at,
    )


def parse_expiry(text: str | None, now: datetime) -> datetime | None:
    """`90d` (days from now), an ISO 8601 instant with a zone, or None/`never`; it must lie ahead."""
    if text is None or text.strip().lower() == "never":
        return None
    days = re.fullmatch(r"(\d{1,5})d", text.strip())
    if days:
        if int(days[1]) < 1:
            raise InvalidInput(f"expiry {quote(text)}: give at least 1d")
        return now + timedelta(days=int(days[1]))
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            f"expiry {quote(text)}: give days from now (90d), an ISO 8601 instant with a zone, or never"
        ) from None
    if when.tzinfo is None or when.utcoffset() is None:
        raise InvalidInput(f"expiry {quote(text)} has no time zone; add one, e.g. 2027-01-01T00:00:00Z")
    if when <= now:
        raise InvalidInput(f"expiry {quote(text)} is not in the future")
    return when


def _checked_name(name: str) -> str:
    if not name.strip() or len(name) > 100:
        raise InvalidInput(f"token name {quote(name)}: give 1 to 100 characters")
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in name):
        raise InvalidInput(f"token name {quote(name)}: a name cannot hold a control character")
    return name


def create_token(
    session: Session, *, username: str, name: str, expires_at: datetime | None, now: datetime
) -> NewToken:
    """A new token for `username`; the returned secret is the only copy there will ever be."""
    user = lookup.user(session, username)
    name = _checked_name(name)
    if expires_at is not None and expires_at <= now:
        raise InvalidInput(f"expiry {expires_at.isoformat()} is not in the future")
    secret = new_secret()
    token = ApiToken(
        user=user,
        name=name,
        secret_sha256=digest(secret),
        hint=secret[: len(PREFIX) + _HINT_CHARS],
        created_at=now,
        expires_at=expires_at,
    )
    session.add(token)
    session.flush()
    return NewToken(secret=secret, token=_view(token, now))


def list_tokens(
    session: Session, *, now: datetime, username: str | None = None, include_revoked: bool = False
) -> list[TokenView]:
    """Tokens by user then creation; revoked ones only when asked."""
    query = select(ApiToken).join(ApiToken.user).options(selectinload(ApiToken.user))
    if username is not None:
        query = query.where(ApiToken.user_id == lookup.user(session, username).id)
    if not include_revoked:
        query = query.where(ApiToken.revoked_at.is_(None))
    return [_view(t, now) for t in session.scalars(query.order_by(User.username, ApiToken.id))]


def revoke_token(session: Session, *, token_id: int, now: datetime) -> TokenView:
    """Revoke one token (again is harmless: the first revocation time is kept)."""
    token = session.get(ApiToken, token_id, options=[selectinload(ApiToken.user)])
    if token is None:
        raise NotFound(f"unknown token {token_id} (see `seqshare token list`)")
    if token.revoked_at is None:
        token.revoked_at = now
        session.flush()
    return _view(token, now)


def revoke_user_tokens(session: Session, *, username: str, now: datetime) -> list[TokenView]:
    """Revoke every active token of a user (someone leaving, a laptop lost)."""
    user = lookup.user(session, username)
    tokens = list(
        session.scalars(
            select(ApiToken)
            .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
            .options(selectinload(ApiToken.user))
            .order_by(ApiToken.id)
        )
    )
    for token in tokens:
        token.revoked_at = now
    session.flush()
    return [_view(t, now) for t in tokens]


def authenticate(session: Session, secret: str, *, now: datetime) -> Bearer | None:
    """The user a presented secret speaks for, or None (malformed, unknown, revoked or expired).

    One answer for every failure: the caller cannot tell a revoked token from one that never existed.
    """
    if not well_formed(secret):
        return None
    token = session.scalar(
        select(ApiToken).where(ApiToken.secret_sha256 == digest(secret)).options(joinedload(ApiToken.user))
    )
    if token is None or _state(token, now) != "active":
        return None
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_EVERY:
        token.last_used_at = now
        session.flush()
    return Bearer(username=token.user.username, token_id=token.id)


def active(session: Session, token_id: int, *, now: datetime) -> Bearer | None:
    """Who the token with this id speaks for if it is active at `now`, else None (unknown, revoked or
    expired): how a signed-in page session, which keeps the token's id and never its secret, is checked
    again on every request. The last-used time is left alone (only presented secrets count as use)."""
    token = session.scalar(select(ApiToken).where(ApiToken.id == token_id).options(joinedload(ApiToken.user)))
    if token is None or _state(token, now) != "active":
        return None
    return Bearer(username=token.user.username, token_id=token.id)
