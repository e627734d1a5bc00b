"""The download API in-process (ASGI), on SQLite and PostgreSQL: who may fetch what, ranges, versions, md5
once per version, a file changing while sent, the download record and `seqshare audit downloads`."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session, sessionmaker

from seqshare.db import models as files_model
from seqshare.db.models import Delivery, FileChecksum
from seqshare.services import files, sharing
from tests.e2e.test_cli import SEQSHARE
from tests.web.conftest import Clock, bearer, database_url
from tests.web.world import (
    MATRIX,
    NO_ACCESS,
    PROJECT,
    RUN_FILES,
    RUN_ID,
    Tokens,
    file_bytes,
    write_run_folder,
)

R1 = "S1_S1_L001_R1_001.fastq.gz"
URL = f"/api/v1/files/{RUN_ID}/SLX-1/{R1}"


@pytest.fixture
def run_files(world: Tokens, sessions: sessionmaker[Session], tmp_path: Path) -> dict[str, Path]:
    with sessions.begin() as session:
        return write_run_folder(session, tmp_path)


def get(client: TestClient, path: str, secret: str | None, **headers: str) -> Any:
    sent = {name.replace("_", "-"): value for name, value in headers.items()}
    return client.get(path, headers={**(bearer(secret) if secret else {}), **sent})


def listing(client: TestClient, secret: str, target: str, **params: str) -> Any:
    return client.get("/api/v1/downloads", headers=bearer(secret), params={"target": target, **params})


def test_a_listing_gives_each_file_of_the_pool_or_the_project_with_its_url(
    client: TestClient, world: Tokens, run_files: dict[str, Path]
) -> None:
    answer = listing(client, world.by_user["other"], "SLX-1")
    assert answer.status_code == 200
    assert answer.json() == {
        "project": PROJECT,
        "files": [
            {
                "run_id": RUN_ID,
                "pool": "SLX-1",
                "path": f"{RUN_ID}/SLX-1/{name}",
                "size": 3000,
                "md5": None,  # not computed yet
                "url": f"/api/v1/files/{RUN_ID}/SLX-1/{name}",
            }
            for name in RUN_FILES["SLX-1"]
        ],
    }
    whole = listing(client, world.by_user["other"], PROJECT).json()
    assert [f["path"] for f in whole["files"]] == [
        f"{RUN_ID}/{pool}/{name}" for pool, names in RUN_FILES.items() for name in names
    ]
    assert listing(client, world.by_user["other"], PROJECT, run="NO_SUCH_RUN").json()["files"] == []


@pytest.mark.parametrize("role", list(MATRIX))
def test_the_visibility_matrix_for_files(
    client: TestClient, world: Tokens, run_files: dict[str, Path], role: str
) -> None:
    user, sees = MATRIX[role]
    secret = world.by_user[user]
    answer = get(client, URL, secret)
    assert answer.status_code == (200 if sees else 404), (role, answer.text)
    assert listing(client, secret, "SLX-1").status_code == (200 if sees else 404)
    assert listing(client, secret, PROJECT).status_code == (200 if sees else 404)
    if sees:
        assert answer.content == file_bytes("SLX-1", R1)
        assert answer.headers["x-seqshare-md5"] == hashlib.md5(answer.content).hexdigest()
    else:
        assert answer.json() == {"detail": f"no such file: '{RUN_ID}/SLX-1/{R1}'"}


@pytest.mark.parametrize("user", NO_ACCESS)
def test_a_hidden_file_answers_exactly_like_a_missing_one(
    client: TestClient, world: Tokens, run_files: dict[str, Path], user: str
) -> None:
    secret = world.by_user[user]
    hidden = get(client, URL, secret)
    for missing_url in (
        f"/api/v1/files/{RUN_ID}/SLX-9/{R1}",  # no such pool
        f"/api/v1/files/260301_A01535_0001_BTESTRUN09/SLX-1/{R1}",  # no such run
        f"/api/v1/files/{RUN_ID}/SLX-1/S9_S9_L001_R1_001.fastq.gz",  # no such file
    ):
        missing = get(client, missing_url, secret)
        assert missing.status_code == hidden.status_code == 404
        _, run, pool, name = missing_url.rsplit("/", 3)
        assert hidden.content == missing.content.replace(
            f"{run}/{pool}/{name}".encode(), f"{RUN_ID}/SLX-1/{R1}".encode()
        )
        assert dict(hidden.headers) == dict(
            missing.headers, **{"content-length": hidden.headers["content-length"]}
        )
    hidden_pool = listing(client, secret, "SLX-1")
    missing_pool = listing(client, secret, "SLX-7")
    assert hidden_pool.content == missing_pool.content.replace(b"SLX-7", b"SLX-1")


@pytest.mark.parametrize("credential", ["none", "bad", "revoked", "expired"])
def test_no_bad_revoked_or_expired_token_gets_no_file(
    client: TestClient, world: Tokens, run_files: dict[str, Path], credential: str
) -> None:
    secret = {
        "none": None,
        "bad": "seqshare_pat_nonsense",
        "revoked": world.revoked,
        "expired": world.expired,
    }
    for path in (URL, "/api/v1/downloads?target=SLX-1"):
        answer = get(client, path, secret[credential])
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"].startswith('Bearer realm="seqshare"')
        assert R1 not in answer.text and PROJECT not in answer.text


def test_a_revoke_stops_the_next_file_and_a_grant_opens_it(
    client: TestClient,
    world: Tokens,
    run_files: dict[str, Path],
    sessions: sessionmaker[Session],
    clock: Clock,
) -> None:
    other, loner = world.by_user["other"], world.by_user["loner"]
    assert get(client, URL, other).status_code == 200
    assert get(client, URL, loner).status_code == 404
    with sessions.begin() as session:
        sharing.set_sharing(
            session, project=PROJECT, groups=["Ext Co", "Lone Lab"], actor="owner", now=clock.now
        )
    second = f"/api/v1/files/{RUN_ID}/SLX-1/{RUN_FILES['SLX-1'][1]}"
    assert get(client, second, other).status_code == 404  # revoked: the very next file
    assert get(client, second, loner).status_code == 200  # granted: the very next file


def test_ranges_resume_a_file_and_if_match_refuses_a_changed_one(
    client: TestClient, world: Tokens, run_files: dict[str, Path]
) -> None:
    secret, data = world.by_user["member"], file_bytes("SLX-1", R1)
    whole = get(client, URL, secret)
    etag = whole.headers["etag"]
    assert whole.headers["accept-ranges"] == "bytes" and whole.headers["content-length"] == "3000"
    rest = get(client, URL, secret, range="bytes=1000-", if_match=etag)
    assert rest.status_code == 206 and rest.content == data[1000:]
    assert rest.headers["content-range"] == "bytes 1000-2999/3000"
    assert rest.headers["x-seqshare-md5"] == hashlib.md5(data).hexdigest()  # of the whole file
    assert get(client, URL, secret, range="bytes=10-19").content == data[10:20]
    assert get(client, URL, secret, range="bytes=-5").content == data[-5:]
    assert get(client, URL, secret, range="bytes=0-1,5-9").status_code == 200  # several: ignored, all sent
    past = get(client, URL, secret, range="bytes=3000-")
    assert past.status_code == 416 and past.headers["content-range"] == "bytes */3000"
    assert list(past.json()) == ["detail"]
    head = client.head(URL, headers=bearer(secret))
    assert head.status_code == 200 and head.content == b"" and head.headers["etag"] == etag

    path = run_files[f"SLX-1/{R1}"]
    path.write_bytes(data.upper())  # rewritten in place, same size
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))
    changed = get(client, URL, secret, range="bytes=1000-", if_match=etag)
    assert changed.status_code == 412
    assert changed.json()["detail"].startswith("file changed on the server: ")
    fresh = get(client, URL, secret)
    assert fresh.headers["etag"] != etag and fresh.content == data.upper()
    assert fresh.headers["x-seqshare-md5"] == hashlib.md5(data.upper()).hexdigest()


def test_only_the_pools_own_files_are_served(
    client: TestClient, world: Tokens, run_files: dict[str, Path], tmp_path: Path
) -> None:
    secret = world.by_user["owner"]
    expected = get(client, f"/api/v1/files/{RUN_ID}/SLX-1/nothing.fastq.gz", secret).content
    other_pool = RUN_FILES["SLX-2"][0]
    outside = tmp_path / "secret.txt"
    outside.write_bytes(b"not a sequencing file" * 200)
    linked = run_files[f"SLX-1/{RUN_FILES['SLX-1'][2]}"]
    linked.unlink()
    linked.symlink_to(outside)  # a planned file, re-pointed out of the run folder since the plan was frozen
    for name in (other_pool, "RunInfo.xml", "..", "%2E%2E%2FRunInfo.xml", linked.name):
        answer = get(client, f"/api/v1/files/{RUN_ID}/SLX-1/{name}", secret)
        assert answer.status_code == 404, name
        assert b"not a sequencing file" not in answer.content and b"Version=" not in answer.content
        if "%" not in name and name != "..":  # those two never reach the route: the router's 404
            assert answer.content == expected.replace(b"nothing.fastq.gz", name.encode()), name
    assert get(client, f"/api/v1/files/{RUN_ID}/SLX-2/{other_pool}", secret).status_code == 200
    names = [f["path"] for f in listing(client, secret, "SLX-1").json()["files"]]
    assert f"{RUN_ID}/SLX-1/{linked.name}" not in names and len(names) == 2


def test_the_md5_is_computed_once_per_version_and_reused(
    client: TestClient,
    world: Tokens,
    run_files: dict[str, Path],
    sessions: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []
    real = files.compute_md5

    def counted(handle: files.OpenFile) -> str:
        calls.append(handle.path.name)
        return real(handle)

    monkeypatch.setattr(files, "compute_md5", counted)
    secret, data = world.by_user["other"], file_bytes("SLX-1", R1)
    for headers in ({}, {"range": "bytes=100-"}, {}):
        assert get(client, URL, secret, **headers).headers["x-seqshare-md5"] == hashlib.md5(data).hexdigest()
    assert client.head(URL, headers=bearer(secret)).status_code == 200
    assert calls == [R1]
    listed = {f["path"]: f["md5"] for f in listing(client, secret, "SLX-1").json()["files"]}
    assert listed[f"{RUN_ID}/SLX-1/{R1}"] == hashlib.md5(data).hexdigest()
    assert calls == [R1]  # a listing never computes

    path = run_files[f"SLX-1/{R1}"]
    path.write_bytes(data + b"more")
    assert get(client, URL, secret).headers["x-seqshare-md5"] == hashlib.md5(data + b"more").hexdigest()
    assert calls == [R1, R1]  # a new version: computed once more
    with sessions.begin() as session:
        assert session.scalars(select(FileChecksum.source)).all() == ["server", "server"]


def test_a_deliverys_md5_is_reused_when_the_file_is_unchanged_since(
    client: TestClient,
    world: Tokens,
    run_files: dict[str, Path],
    sessions: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def never(handle: files.OpenFile) -> str:
        raise AssertionError("computed")

    ledger_md5 = hashlib.md5(file_bytes("SLX-1", R1)).hexdigest()
    with sessions.begin() as session:
        session.execute(  # the world's ledger row for R1: delivered after the file was last written
            update(Delivery).values(
                delivered_at=datetime.now(UTC) + timedelta(minutes=1), md5=ledger_md5, size=3000
            )
        )
    monkeypatch.setattr(files, "compute_md5", never)
    assert get(client, URL, world.by_user["owner"]).headers["x-seqshare-md5"] == ledger_md5
    with sessions.begin() as session:
        assert session.scalars(select(FileChecksum.source)).all() == ["ledger"]


def test_a_file_changing_while_sent_ends_the_body_short_and_is_recorded_incomplete(
    client: TestClient,
    world: Tokens,
    run_files: dict[str, Path],
    sessions: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = run_files[f"SLX-1/{R1}"]
    monkeypatch.setattr("seqshare.web.files.CHUNK", 1000)
    real_read = files.OpenFile.read

    def read_then_append(self: files.OpenFile, offset: int, size: int = files.CHUNK) -> bytes:
        chunk = real_read(self, offset, size)
        if offset == 1000 and size == 1000:  # the second chunk of the body: the file grows meanwhile
            with path.open("ab") as out:
                out.write(b"appended")
        return chunk

    secret = world.by_user["other"]
    get(client, URL, secret)  # md5 computed (whole-file reads) before the change is staged
    monkeypatch.setattr(files.OpenFile, "read", read_then_append)
    answer = get(client, URL, secret)
    assert answer.status_code == 200 and answer.headers["content-length"] == "3000"
    assert answer.content == file_bytes("SLX-1", R1)[:1000]  # the chunk read during the change never went
    with sessions.begin() as session:
        last = session.scalars(select(files_model.FileDownload).order_by(files_model.FileDownload.id)).all()[
            -1
        ]
    assert (last.status, last.bytes_sent, last.completed) == (200, 1000, False)


def test_every_file_request_is_recorded_and_listed_by_the_cli(
    client: TestClient, world: Tokens, run_files: dict[str, Path], engine: Engine, clock: Clock
) -> None:
    get(client, URL, world.by_user["other"])
    get(client, URL, world.by_user["other"], range="bytes=2000-")
    get(client, URL, world.by_user["loner"])
    clock.now += timedelta(days=1)
    get(client, URL, world.by_user["member"], range="bytes=5000-")

    def audit(*args: str) -> list[dict[str, Any]]:
        env = {**os.environ, "SEQSHARE_DATABASE_URL": database_url(engine)}
        done = subprocess.run(
            [SEQSHARE, "audit", "downloads", *args, "--json"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    rows = audit()
    assert [
        (r["user"], r["group"], r["status"], r["range_start"], r["bytes_sent"], r["completed"]) for r in rows
    ] == [
        ("other", "Other Lab", 200, None, 3000, True),
        ("other", "Other Lab", 206, 2000, 1000, True),
        ("loner", "Lone Lab", 404, None, 0, False),
        ("member", "Owner Lab", 416, None, 0, False),
    ]
    assert {(r["project"], r["run_id"], r["pool"], r["path"]) for r in rows if r["status"] != 404} == {
        (PROJECT, RUN_ID, "SLX-1", R1)
    }
    assert rows[2]["project"] is None  # a pool the caller may not see: not named by the record either
    assert [r["user"] for r in audit("--user", "other")] == ["other", "other"]
    assert len(audit("--project", PROJECT)) == 3
    since = (clock.now - timedelta(hours=1)).isoformat()
    assert [r["user"] for r in audit("--since", since)] == ["member"]
    bad = subprocess.run(
        [SEQSHARE, "audit", "downloads", "--since", "yesterday"],
        env={**os.environ, "SEQSHARE_DATABASE_URL": database_url(engine)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 1 and len(bad.stderr.strip().splitlines()) == 1


def test_a_plan_frozen_from_a_real_run_folder_serves_each_pools_fastqs_and_nothing_else(
    engine: Engine, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """The plan `services.runs.freeze_snapshot` really writes (a BCL Convert run folder of the delivery
    tests): every fastq of the pool, byte for byte; Undetermined reads, the sample sheet and RunInfo.xml
    never, though they sit in the same folders."""
    from seqshare.runfolder import read_run_folder
    from seqshare.services import runs, tokens
    from seqshare.web.app import create_app
    from tests.runs import POOLS, build_run, load_scenario
    from tests.runs import RUN_ID as REAL_RUN

    built = build_run(tmp_path, POOLS, size=4096)
    folder = read_run_folder(built.path)
    now = datetime.now(UTC)
    with sessions.begin() as s:
        load_scenario(s)
        runs.register_run(s, folder)
        runs.freeze_snapshot(s, folder, override=None, actor="airflow:test", now=now)
        secret = tokens.create_token(s, username="other", name="t", expires_at=None, now=now).secret
    app = create_app(database_url=database_url(engine))
    try:
        with TestClient(app) as client:
            listed = listing(client, secret, "SLX-1").json()["files"]
            assert sorted(f["path"] for f in listed) == sorted(
                f"{REAL_RUN}/SLX-1/{p.name}" for p in built.files["SLX-1"]
            )
            for f in listed:
                answer = get(client, f["url"], secret)
                on_disk = (built.path / "BCLConvert" / "SLX-1" / f["path"].rsplit("/", 1)[1]).read_bytes()
                assert answer.content == on_disk and f["size"] == len(on_disk)
                assert answer.headers["x-seqshare-md5"] == hashlib.md5(on_disk).hexdigest()
            for name in ("Undetermined_S0_L001_R1_001.fastq.gz", "SampleSheet.csv", "RunInfo.xml"):
                assert get(client, f"/api/v1/files/{REAL_RUN}/SLX-1/{name}", secret).status_code == 404
            assert listing(client, secret, "SLX-3").status_code == 404  # Member Project: not shared with it
    finally:
        app.state.database.dispose()
