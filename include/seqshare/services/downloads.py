"""The download record: every file request of the download API, who, which file, when, the range asked
for, the bytes sent, and whether all of them went; queried by admins (`seqshare audit downloads`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from seqshare.db.models import FileDownload
from seqshare.errors import quote
from seqshare.names import not_text
from seqshare.services import access


@dataclass(frozen=True)
class DownloadRecord:
    """One file request as it was answered (`seqshare audit downloads`)."""

    id: int
    at: datetime
    finished_at: datetime | None
    user: str
    group: str
    project: str | None
    run_id: str
    pool: str
    path: str
    method: str
    status: int
    range_start: int | None
    bytes_sent: int
    completed: bool


def _text(value: str, limit: int) -> str:
    """A requested name as it can be stored: one line of text (a control character is escaped), cut to fit."""
    text = quote(value, limit=limit) if not_text(value) else value
    return text if len(text) <= limit else text[: limit - 1] + "…"


def record_request(
    sessions: sessionmaker[Session],
    *,
    username: str,
    run_id: str,
    pool: str,
    name: str,
    project: str | None,
    method: str,
    status: int,
    range_start: int | None,
    at: datetime,
    done: bool = False,
) -> int:
    """Record a file request (`done`: nothing more will be sent, e.g. refused); returns its id for
    `finish_request`."""
    with sessions.begin() as s:
        who = access.caller(s, username)
        row = FileDownload(
            at=at,
            finished_at=at if done else None,
            username=who.username,
            group_name=who.group.name,
            project=project,
            run_id=_text(run_id, 200),
            pool=_text(pool, 50),
            path=_text(name, 1024),
            method=method,
            status=status,
            range_start=range_start,
            bytes_sent=0,
            completed=False,
        )
        s.add(row)
        s.flush()
        return row.id


def finish_request(
    sessions: sessionmaker[Session], record_id: int, *, bytes_sent: int, completed: bool, at: datetime
) -> None:
    """The bytes a streamed answer sent, and whether it sent all it promised."""
    with sessions.begin() as s:
        row = s.get(FileDownload, record_id)
        if row is not None:
            row.bytes_sent, row.completed, row.finished_at = bytes_sent, completed, at


def download_records(
    session: Session, *, user: str | None = None, project: str | None = None, since: datetime | None = None
) -> list[DownloadRecord]:
    """File requests, oldest first, optionally one user's, one project's, or those at or after `since`."""
    query = select(FileDownload).order_by(FileDownload.at, FileDownload.id)
    if user is not None:
        query = query.where(FileDownload.username == user)
    if project is not None:
        query = query.where(FileDownload.project == project)
    if since is not None:
        query = query.where(FileDownload.at >= since)
    return [
        DownloadRecord(
            id=r.id,
            at=r.at,
            finished_at=r.finished_at,
            user=r.username,
            group=r.group_name,
            project=r.project,
            run_id=r.run_id,
            pool=r.pool,
            path=r.path,
            method=r.method,
            status=r.status,
            range_start=r.range_start,
            bytes_sent=r.bytes_sent,
            completed=r.completed,
        )
        for r in session.scalars(query)
    ]
