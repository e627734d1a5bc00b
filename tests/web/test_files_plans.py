"""A run's frozen plan is parsed once per app, not once per file request, and a plan frozen anew is read
anew: on SQLite and PostgreSQL, in-process."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from seqshare.db.models import Run, RunSnapshot
from seqshare.delivery.plan import DeliveryPlan
from tests.web.conftest import bearer
from tests.web.world import RUN_FILES, RUN_ID, Tokens, write_run_folder


@pytest.fixture
def run_files(world: Tokens, sessions: sessionmaker[Session], tmp_path: Path) -> dict[str, Path]:
    with sessions.begin() as session:
        return write_run_folder(session, tmp_path)


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The run ids of the plans parsed (DeliveryPlan.from_dict), in order."""
    parsed: list[str] = []
    original = DeliveryPlan.from_dict.__func__  # type: ignore[attr-defined]

    def counting(cls: type[DeliveryPlan], data: dict) -> DeliveryPlan:
        parsed.append(data["run_id"])
        return original(cls, data)

    monkeypatch.setattr(DeliveryPlan, "from_dict", classmethod(counting))
    return parsed


def fetch(client: TestClient, secret: str, name: str) -> int:
    return client.get(f"/api/v1/files/{RUN_ID}/SLX-1/{name}", headers=bearer(secret)).status_code


def test_a_runs_plan_is_parsed_once_for_many_file_requests(
    client: TestClient, world: Tokens, run_files: dict[str, Path], parses: list[str]
) -> None:
    secret = world.by_user["other"]
    names = RUN_FILES["SLX-1"]
    listed = client.get("/api/v1/downloads", headers=bearer(secret), params={"target": "SLX-1"})

    assert listed.status_code == 200 and len(listed.json()["files"]) == len(names)
    assert [fetch(client, secret, name) for name in names * 3] == [200] * (len(names) * 3)
    assert parses == [RUN_ID]  # before: one parse of the whole plan per listing and per file request


def test_a_plan_frozen_anew_is_read_anew_and_the_cache_never_bypasses_visibility(
    client: TestClient,
    world: Tokens,
    run_files: dict[str, Path],
    sessions: sessionmaker[Session],
    parses: list[str],
) -> None:
    secret = world.by_user["other"]
    kept, dropped = RUN_FILES["SLX-1"][0], RUN_FILES["SLX-1"][1]
    assert fetch(client, secret, dropped) == 200
    with sessions.begin() as session:  # as a database restored with another freeze of the run would be
        snapshot = session.scalar(select(RunSnapshot).join(Run).where(Run.run_id == RUN_ID))
        assert snapshot is not None
        plan = dict(snapshot.plan)
        plan["files"] = [f for f in plan["files"] if not f["source"].endswith(dropped)]
        plan["groups"] = [
            {**g, "files": [f for f in g["files"] if not f["source"].endswith(dropped)]}
            for g in plan["groups"]
        ]
        snapshot.plan = plan
        snapshot.frozen_at = snapshot.frozen_at.replace(year=snapshot.frozen_at.year + 1)

    assert fetch(client, secret, dropped) == 404
    assert fetch(client, secret, kept) == 200
    assert parses == [RUN_ID, RUN_ID]
    assert fetch(client, world.by_user["loner"], kept) == 404  # cached or not, visibility comes first


def test_a_file_name_with_url_characters_is_listed_with_a_url_that_fetches_it(
    client: TestClient, world: Tokens, run_files: dict[str, Path], sessions: sessionmaker[Session]
) -> None:
    secret = world.by_user["other"]
    plain = RUN_FILES["SLX-1"][0]
    odd = "S1 #1?x=1.fastq.gz"  # (not "%": the in-process test client decodes a path twice)
    with sessions.begin() as session:
        snapshot = session.scalar(select(RunSnapshot).join(Run).where(Run.run_id == RUN_ID))
        assert snapshot is not None
        plan = dict(snapshot.plan)
        entries = [f for f in plan["files"] if f["source"].endswith(plain)]
        assert len(entries) == 1
        source = Path(entries[0]["resolved"])
        renamed = source.with_name(odd)
        source.rename(renamed)
        entries[0].update(source=entries[0]["source"][: -len(plain)] + odd, resolved=str(renamed))
        snapshot.plan = {**plan, "groups": [{**g, "files": []} for g in plan["groups"]]}
        snapshot.frozen_at = snapshot.frozen_at.replace(year=snapshot.frozen_at.year + 1)

    listed = client.get("/api/v1/downloads", headers=bearer(secret), params={"target": "SLX-1"}).json()
    (url,) = [f["url"] for f in listed["files"] if f["path"].endswith(odd)]

    assert url == f"/api/v1/files/{RUN_ID}/SLX-1/S1%20%231%3Fx%3D1.fastq.gz"
    answer = client.get(url, headers=bearer(secret))
    assert answer.status_code == 200 and answer.content == renamed.read_bytes()
