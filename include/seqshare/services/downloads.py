"""The download record: every file request of the download API, who, which file, when, the range asked
for, the bytes sent, and whether all of them went; queried by admins (`seqshare audit downloads`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, insert, select, update
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
    """Record a file request in a transaction of its own (`record` says what is kept)."""
    with sessions.begin() as s:
        return record(
            s,
            access.caller(s, username),
            run_id=run_id,
            pool=pool,
            name=name,
            project=project,
            method=method,
            status=status,
            range_start=range_start,
            at=at,
            done=done,
        )


_DOWNLOADS = FileDownload.__table__
# Built once: a statement built per call costs more CPU than SQLite takes to run it (every file request).
_RECORD = insert(_DOWNLOADS).returning(_DOWNLOADS.c.id)
_FINISH = (
    update(_DOWNLOADS)
    .where(_DOWNLOADS.c.id == bindparam("record_id"))
    .values(bytes_sent=bindparam("sent"), completed=bindparam("complete"), finished_at=bindparam("finished"))
)


def record(
    session: Session,
    who: access.Caller,
    *,
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
    """Record a file request in `session` (the transaction that judged it, so a request costs one; `done`:
    nothing more will be sent, e.g. refused); returns its id for `finish_request`."""
    return session.execute(
        _RECORD,
        {
            "at": at,
            "finished_at": at if done else None,
            "username": who.username,
            "group_name": who.group.name,
            "project": project,
            "run_id": _text(run_id, 200),
            "pool": _text(pool, 50),
            "path": _text(name, 1024),
            "method": method,
            "status": status,
            "range_start": range_start,
            "bytes_sent": 0,
            "completed": False,
        },
    ).scalar_one()


def finish_request(
    sessions: sessionmaker[Session], record_id: int, *, bytes_sent: int, completed: bool, at: datetime
) -> None:
    """The bytes a streamed answer sent, and whether it sent all it promised (one UPDATE)."""
    with sessions.begin() as s:
        finished = {"record_id": record_id, "sent": bytes_sent, "complete": completed, "finished": at}
        s.execute(_FINISH, finished)


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
