"""The API's fixtures: the test world on SQLite and PostgreSQL, the app in-process with a clock the test
moves, and its tokens."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from seqshare.web.app import create_app
from tests.web.world import Tokens, load_api_world


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 6, 1, 12, 0).astimezone())


@pytest.fixture
def world(sessions: sessionmaker[Session], clock: Clock) -> Tokens:
    with sessions.begin() as session:
        return load_api_world(session, now=clock.now)


def database_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


@pytest.fixture
def app(engine: Engine, clock: Clock, world: Tokens) -> Iterator[FastAPI]:
    app = create_app(database_url=database_url(engine), clock=clock)
    yield app
    app.state.database.dispose()


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as client:
        yield client


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}
