"""What every `seqshare` command shares: the console, common options, the database session, output.

Commands open the application database through `app_sessions`/`unit_of_work`, which first check that its
schema is current, and print either a Rich table for people or JSON for scripts (`emit`).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from seqshare.db.engine import make_engine, make_sessions, transaction
from seqshare.db.revision import require_current
from seqshare.services.views import to_jsonable

out = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
AsUser = Annotated[str, typer.Option("--as", help="Act as this user (the page's rules apply).")]


def now() -> datetime:
    return datetime.now(UTC)


def open_engine() -> Engine:
    return make_engine()


@contextmanager
def app_sessions(*, check_schema: bool = True) -> Iterator[sessionmaker[Session]]:
    """Sessions on the application database, once its schema is known to be current."""
    engine = open_engine()
    try:
        if check_schema:
            require_current(engine)
        yield make_sessions(engine)
    finally:
        engine.dispose()


@contextmanager
def unit_of_work(*, check_schema: bool = True) -> Iterator[Session]:
    with app_sessions(check_schema=check_schema) as sessions, transaction(sessions) as session:
        yield session


def emit(data: Any, as_json: bool, human: Callable[[], None]) -> None:
    if as_json:
        print(json.dumps(to_jsonable(data), indent=2, sort_keys=True))
    else:
        human()


def fmt_time(when: datetime | None) -> str:
    return when.strftime("%Y-%m-%d %H:%M:%S %Z") if when else ""


def state_text(state: Any) -> str:
    """An audit event's before/after: a list of groups, or the fields of a run's snapshot override."""
    if isinstance(state, dict):
        return ", ".join(f"{k}={v}" for k, v in state.items() if v is not None) or "-"
    return ", ".join(state) or "-"


def groups_text(groups: Any) -> str:
    return ", ".join(g.name for g in groups) or "(not shared)"
