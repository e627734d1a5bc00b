"""The bodies of the DAGs' tasks and of the matching CLI commands: plain functions over JSON-able values.

They sit above the services (which sit above the pure rules in `delivery/` and `purge/`); the DAG files
in `dags/` call exactly one of them per task. Each opens the application database itself and holds no
state between calls, so any task can be retried or cleared on its own.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session, sessionmaker

from seqshare.db.engine import make_engine, make_sessions
from seqshare.db.revision import require_current


@contextmanager
def app_sessions() -> Iterator[sessionmaker[Session]]:
    """The application database (SEQSHARE_DATABASE_URL), never Airflow's; disposed after the task."""
    engine = make_engine()
    try:
        require_current(engine)  # a worker on an old schema says so in one line, and is not retried
        yield make_sessions(engine)
    finally:
        engine.dispose()


LOG_SSH_ENV = "SEQSHARE_LOG_SSH"


def quiet_ssh_logs() -> None:
    """Keep paramiko's per-connection INFO lines ("Connected (version 2.0 ...)", "Authentication ...
    successful!") out of task logs: a delivery opens several connections, ops read what was delivered.
    `SEQSHARE_LOG_SSH=1` keeps them (diagnosing a server); warnings and errors always show."""
    logger = logging.getLogger("paramiko")
    if os.environ.get(LOG_SSH_ENV, "").strip().lower() in ("1", "true", "yes", "on"):
        logger.setLevel(logging.NOTSET)  # as the task's logging says (a process may run several tasks)
    elif logger.getEffectiveLevel() < logging.WARNING:
        logger.setLevel(logging.WARNING)
