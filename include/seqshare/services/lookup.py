"""Find records by the names people use, with a clear error when they do not exist."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from seqshare.db.models import Group, Project, Run, User
from seqshare.errors import NotFound


def user(session: Session, username: str) -> User:
    found = session.scalar(select(User).where(User.username == username))
    if found is None:
        raise NotFound(f"unknown user {username!r}")
    return found


def group(session: Session, name: str) -> Group:
    found = session.scalar(select(Group).where(Group.name == name))
    if found is None:
        raise NotFound(f"unknown group {name!r}")
    return found


def project(session: Session, name: str, *, for_update: bool = False) -> Project:
    query = select(Project).where(Project.name == name)
    if for_update:  # serialise concurrent changes of one project (PostgreSQL; SQLite locks the file)
        query = query.with_for_update()
    found = session.scalar(query)
    if found is None:
        raise NotFound(f"unknown project {name!r}")
    return found


def run(session: Session, run_id: str) -> Run:
    found = session.scalar(select(Run).where(Run.run_id == run_id))
    if found is None:
        raise NotFound(f"unknown run {run_id!r}")
    return found
