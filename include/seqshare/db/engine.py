"""Engines and transactions, built in one bootstrap place (never at import time).

Writers are serialised on every backend. On PostgreSQL a change locks the rows it decides from (a sharing
change locks its project, `SELECT ... FOR UPDATE`). On SQLite, where `FOR UPDATE` does nothing, every
transaction begins with `BEGIN IMMEDIATE`, taking the database's one write lock before its first read.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from seqshare import config

BUSY_TIMEOUT_S = 30
"""How long a SQLite transaction waits for the write lock before giving up ("database is locked")."""

# PostgreSQL gave up on a transaction because of another one: serialization failure, deadlock, lock timeout.
_PG_LOST_RACE = {"40001": "a serialization failure", "40P01": "a deadlock", "55P03": "a lock timeout"}


def make_engine(url: str | None = None, **kwargs: Any) -> Engine:
    """An engine for `url` (default: `config.database_url()`); on SQLite, see `_take_over_sqlite_begin`."""
    url = url or config.database_url()
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        _take_over_sqlite_begin(engine)
    return engine


def _take_over_sqlite_begin(engine: Engine) -> None:
    """Foreign keys on, a busy timeout, and SQLAlchemy's recipe for serializable SQLite transactions.

    Python's sqlite3 driver (legacy transaction control, up to Python 3.15) emits BEGIN only before an
    INSERT, UPDATE or DELETE: a transaction's reads ran outside it, so two processes could each read the
    same shares and then write their changes one after the other, both from a stale picture (an audit
    event contradicting the history, a raw UNIQUE error). The driver's BEGIN is switched off and SQLAlchemy
    emits `BEGIN IMMEDIATE` at the start of every transaction (SQLAlchemy's SQLite docs, "Enabling
    Non-Legacy SQLite Transactional Modes"): the write lock is taken before the first read, waiting up to
    BUSY_TIMEOUT_S for the writer holding it, so a change always decides from the latest committed state.
    Savepoints (`begin_nested`) are real and DDL is transactional (Alembic's migrations commit as a
    whole or not at all). Read-only transactions wait their turn too: simpler, and no transaction that
    reads then writes can fail to upgrade its lock. Transactions are short everywhere in seqshare (none
    spans a transfer), so holding the lock from the start costs little.
    """

    @event.listens_for(engine, "connect")
    def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # the driver emits no BEGIN of its own; COMMIT/ROLLBACK still work
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")  # outside any transaction, where SQLite honours it
        cur.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _sqlite_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def lost_race(exc: DBAPIError) -> str | None:
    """Why the database gave up on a transaction because of a concurrent one, or None if it did not.

    Such a transaction changed nothing and can be tried again: PostgreSQL's serialization failures,
    deadlocks and lock timeouts, and SQLite's write lock held by another writer past BUSY_TIMEOUT_S.
    """
    orig = exc.orig
    reason = _PG_LOST_RACE.get(getattr(orig, "sqlstate", None) or "")
    if reason is None and getattr(orig, "sqlite_errorname", "") in {"SQLITE_BUSY", "SQLITE_LOCKED"}:
        reason = f"the database stayed locked by another writer for {BUSY_TIMEOUT_S} s"
    return reason


def make_sessions(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    with sessions.begin() as session:
        yield session
