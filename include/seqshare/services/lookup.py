"""Find records by the names people use, with a clear error when they do not exist.

Every name is checked before it reaches the database: a control character (NUL, a newline, an escape) or a
byte that was not valid UTF-8 on the command line (Python keeps it as a lone surrogate) is no part of any
record's name, and PostgreSQL or the driver would otherwise fail on it with a raw error of its own.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from seqshare.db.models import Group, Project, Run, User
from seqshare.errors import InvalidInput, NotFound, quote
from seqshare.names import not_text


def _checked(kind: str, name: str) -> str:
    problem = not_text(name)
    if problem:
        raise InvalidInput(f"{kind} {quote(name)}: a name cannot hold {problem}")
    return name


def user(session: Session, username: str) -> User:
    found = session.scalar(select(User).where(User.username == _checked("user", username)))
    if found is None:
        raise NotFound(f"unknown user {quote(username)}")
    return found


def group(session: Session, name: str, *, lock: bool = False) -> Group:
    """The group named so; `lock` takes a shared row lock until the transaction ends (PostgreSQL's FOR
    SHARE), so a concurrent change of the group (a LIMS import moving its directory) is waited for."""
    query = select(Group).where(Group.name == _checked("group", name))
    if lock:
        query = query.with_for_update(read=True)
    found = session.scalar(query)
    if found is None:
        raise NotFound(f"unknown group {quote(name)}")
    return found


def project(session: Session, name: str, *, for_update: bool = False) -> Project:
    """The project named so; `for_update` locks it until the transaction ends, serialising its changes.

    On PostgreSQL that is the row lock; on SQLite `FOR UPDATE` renders as nothing and every transaction
    already holds the database's write lock from its start (`seqshare.db.engine`).
    """
    query = select(Project).where(Project.name == _checked("project", name))
    if for_update:
        query = query.with_for_update()
    found = session.scalar(query)
    if found is None:
        raise NotFound(f"unknown project {quote(name)}")
    return found


def run(session: Session, run_id: str) -> Run:
    found = session.scalar(select(Run).where(Run.run_id == _checked("run", run_id)))
    if found is None:
        raise NotFound(f"unknown run {quote(run_id)}")
    return found
