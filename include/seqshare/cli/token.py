"""`seqshare token`: users' API tokens for the internal API (create shows the secret once; list never)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from seqshare.cli.common import JsonOpt, emit, fmt_time, now, out, unit_of_work
from seqshare.errors import InvalidInput
from seqshare.services import tokens

app = typer.Typer(help="API tokens for the internal API.", no_args_is_help=True)


@app.command("create")
def token_create(
    user: Annotated[str, typer.Argument(help="The LIMS username the token speaks for.")],
    name: Annotated[str, typer.Option("--name", help="What it is for, e.g. 'pipeline on hpc1'.")] = "api",
    expires: Annotated[
        str | None,
        typer.Option("--expires", help="`90d` from now, an ISO 8601 instant with a zone, or `never`."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a token for USER and print its secret: the only time it is ever shown."""
    at = now()
    expires_at = tokens.parse_expiry(expires, at)
    with unit_of_work() as session:
        created = tokens.create_token(session, username=user, name=name, expires_at=expires_at, now=at)

    def human() -> None:
        t = created.token
        until = f", expires {fmt_time(t.expires_at)}" if t.expires_at else ", no expiry"
        out.print(f"token {t.id} for {t.user} ({t.name}{until}):")
        print(created.secret)
        out.print("Copy it now: it is shown only this once. Use it as `Authorization: Bearer <token>`.")

    emit(created, as_json, human)


@app.command("list")
def token_list(
    user: Annotated[str | None, typer.Option("--user", help="Only this user's tokens.")] = None,
    include_revoked: Annotated[bool, typer.Option("--all", help="Include revoked tokens.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Tokens (never their secrets): id, user, name, state, created, expires, last used."""
    at = now()
    with unit_of_work() as session:
        views = tokens.list_tokens(session, now=at, username=user, include_revoked=include_revoked)

    def human() -> None:
        table = Table("id", "user", "name", "token", "state", "created", "expires", "last used", "revoked")
        for t in views:
            table.add_row(
                str(t.id),
                t.user,
                t.name,
                t.hint,
                t.state,
                fmt_time(t.created_at),
                fmt_time(t.expires_at) or "never",
                fmt_time(t.last_used_at) or "never",
                fmt_time(t.revoked_at),
            )
        out.print(table)

    emit(views, as_json, human)


@app.command("revoke")
def token_revoke(
    token_id: Annotated[int | None, typer.Argument(help="The token's id (`seqshare token list`).")] = None,
    user: Annotated[str | None, typer.Option("--user", help="Revoke every token of this user.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Revoke a token (or all of a user's): it fails on the very next request."""
    if (token_id is None) == (user is None):
        raise InvalidInput("give a token id or --user USER, not both")
    at = now()
    with unit_of_work() as session:
        if token_id is not None:
            revoked = [tokens.revoke_token(session, token_id=token_id, now=at)]
        else:
            revoked = tokens.revoke_user_tokens(session, username=user or "", now=at)

    def human() -> None:
        for t in revoked:
            out.print(f"token {t.id} of {t.user} ({t.name}) revoked at {fmt_time(t.revoked_at)}")
        if not revoked:
            out.print(f"{user} had no active token")

    emit(revoked, as_json, human)
