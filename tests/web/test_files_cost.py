"""What a file request of the download API costs the database, counted (never timed): a many-file download
pays it once per file, so the judging (caller, visibility, file, stored md5) and the record share one
transaction, and the finish is one UPDATE. The checks themselves stay: see test_files_api.py."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, select
from sqlalchemy.orm import Session, sessionmaker

from seqshare.db.models import FileDownload
from seqshare.services import sharing
from tests.web.conftest import Clock, bearer
from tests.web.world import PROJECT, RUN_ID, Tokens, write_run_folder

R1 = "S1_S1_L001_R1_001.fastq.gz"
URL = f"/api/v1/files/{RUN_ID}/SLX-1/{R1}"

TRANSACTIONS = 3
"""Per request whose md5 is stored: the token (its own, keeps the last-used time), the judging with the
record, the finish. There were 5 (the judging, the md5 and the record each had their own)."""
STATEMENTS = 9
"""SQL statements per such request, BEGIN and COMMIT not counted: the token, the caller (2), the pool with
its project's visibility, the runs, the frozen plans' keys, the stored md5, the record, its finish. There
were 21: the caller looked up twice, relationships loaded one query at a time, the visibility in 4 queries,
the record an ORM object read back."""


@dataclass
class Counted:
    transactions: int = 0
    statements: list[str] = field(default_factory=list)


@contextmanager
def counting(app: FastAPI) -> Iterator[Counted]:
    engine: Engine = app.state.database.sessions().kw["bind"]
    counted = Counted()

    def on_begin(_: Any) -> None:
        counted.transactions += 1

    def on_statement(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
        if statement.strip().upper() not in {"BEGIN IMMEDIATE", "BEGIN", "COMMIT"}:
            counted.statements.append(statement)

    event.listen(engine, "begin", on_begin)
    event.listen(engine, "before_cursor_execute", on_statement)
    try:
        yield counted
    finally:
        event.remove(engine, "begin", on_begin)
        event.remove(engine, "before_cursor_execute", on_statement)


@pytest.fixture
def run_files(world: Tokens, sessions: sessionmaker[Session], tmp_path: Path) -> dict[str, Path]:
    with sessions.begin() as session:
        return write_run_folder(session, tmp_path)


@pytest.mark.parametrize("method", ["HEAD", "GET"])
def test_a_file_request_is_judged_and_recorded_in_one_transaction(
    client: TestClient, app: FastAPI, world: Tokens, run_files: dict[str, Path], method: str
) -> None:
    secret = world.by_user["other"]
    assert client.get(URL, headers=bearer(secret)).status_code == 200  # the md5 computed and stored
    with counting(app) as counted:
        answer = client.request(method, URL, headers=bearer(secret))
    assert answer.status_code == 200 and answer.headers["x-seqshare-md5"]
    assert counted.transactions == TRANSACTIONS, counted.statements
    assert len(counted.statements) <= STATEMENTS, counted.statements


def test_a_refused_request_is_recorded_and_a_revoke_still_stops_the_next_file(
    client: TestClient,
    app: FastAPI,
    world: Tokens,
    run_files: dict[str, Path],
    sessions: sessionmaker[Session],
    clock: Clock,
) -> None:
    """One transaction judges and records: a refusal's record must be committed all the same."""
    secret = world.by_user["other"]
    assert client.head(URL, headers=bearer(secret)).status_code == 200
    with sessions.begin() as session:
        sharing.set_sharing(session, project=PROJECT, groups=["Third Lab"], actor="owner", now=clock.now)
    with counting(app) as counted:
        refused = client.head(URL, headers=bearer(secret))
        missing = client.get(URL + "x", headers=bearer(secret))
    assert refused.status_code == missing.status_code == 404
    assert counted.transactions == 2 * 2  # the token, the judging with the record; no finish
    with sessions.begin() as session:
        rows = session.execute(
            select(
                FileDownload.method, FileDownload.status, FileDownload.path, FileDownload.username
            ).order_by(FileDownload.id)
        ).all()
    assert [tuple(r) for r in rows] == [
        ("HEAD", 200, R1, "other"),
        ("HEAD", 404, R1, "other"),
        ("GET", 404, R1 + "x", "other"),
    ]
