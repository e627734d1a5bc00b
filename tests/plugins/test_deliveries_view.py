"""The Deliveries view in-process: its data (services.deliveries) and its page, on SQLite and PostgreSQL.

Airflow's real authentication runs here too (the SimpleAuthManager's JWT); only the DAG run lookup in
Airflow's metadata database is replaced by a fixed DAG run (the real lookup runs in test_in_airflow.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from markupsafe import escape
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from seqshare.db.models import Run
from seqshare.services import deliveries
from tests.plugins.scenario import (
    DELIVERED_AT,
    EVIL_GROUP,
    EVIL_PROJECT,
    SCANNED_DAG_RUN,
    freeze_with_deliveries,
)
from tests.runs import RUN_ID

MANUAL_DAG_RUN = "manual__2026-03-06T10:00:00+00:00"


@pytest.fixture(scope="module")
def airflow_tokens(airflow_db) -> Iterator[dict[str, str]]:
    """JWTs signed by Airflow's own auth manager (the SimpleAuthManager): a viewer, and a user with no role
    (signed in, but not allowed to read any DAG's runs)."""
    from airflow.api_fastapi.app import create_auth_manager, purge_cached_app
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    manager = create_auth_manager()
    manager.init()
    yield {
        role or "none": manager.generate_jwt(SimpleAuthManagerUser(username=f"u-{role}", role=role))
        for role in ("viewer", None)
    }
    purge_cached_app()


@pytest.fixture(scope="module")
def airflow_token(airflow_tokens) -> str:
    return airflow_tokens["viewer"]


def client(sessions: sessionmaker[Session], dag_runs: dict[str, dict]) -> TestClient:
    """The ops app on `sessions`, with Airflow's DAG runs of distribute_run being `dag_runs` (id → conf)."""
    from seqshare.ops.app import DagRunRef, airflow_dag_run, create_app

    app = create_app(sessions=sessions)

    def fixed_dag_run(dag_id: str, run_id: str) -> DagRunRef | None:
        conf = dag_runs.get(run_id) if dag_id == "distribute_run" else None
        return None if conf is None else DagRunRef(dag_id, run_id, conf)

    app.dependency_overrides[airflow_dag_run] = fixed_dag_run
    return TestClient(app)


def test_the_plan_and_the_ledger_of_a_frozen_run(sessions, tmp_path) -> None:
    frozen = freeze_with_deliveries(sessions, tmp_path)
    with sessions.begin() as s:
        run_id = deliveries.run_of_dag_run(s, SCANNED_DAG_RUN, {"run_folder": str(frozen.run_folder)})
        view = deliveries.run_deliveries(s, run_id)
    assert run_id == RUN_ID
    assert view.frozen_by == f"airflow:{SCANNED_DAG_RUN}"
    by_group = {g.group: g for g in view.groups}
    assert set(by_group) == {"Ext Co", EVIL_GROUP, "Special"}
    ext = {f.remote_path: f for f in by_group["Ext Co"].files}
    assert {p: (ext[p].state, ext[p].md5, ext[p].delivered_at) for p in frozen.delivered} == {
        p: ("delivered", frozen.md5, DELIVERED_AT) for p in frozen.delivered
    }
    assert ext[frozen.purged].state == "purged"
    assert ext[frozen.purged].expires_at == DELIVERED_AT + timedelta(days=30)
    others = [f for f in ext.values() if f.remote_path not in {*frozen.delivered, frozen.purged}]
    assert others and {(f.state, f.md5, f.delivered_at) for f in others} == {("not delivered", None, None)}
    assert by_group["Ext Co"].count("delivered") == 2 and by_group["Ext Co"].count("purged") == 1
    assert view.unplanned == ()
    withheld = {(p.pool, w.group, w.reason.value) for p in view.plan.pools for w in p.withheld}
    assert ("SLX-4", "Ext Co", "shared only after sequencing") in withheld


def test_a_dag_run_maps_to_its_run_by_freezer_by_run_folder_then_by_scanned_id(sessions, tmp_path) -> None:
    frozen = freeze_with_deliveries(sessions, tmp_path)
    folder = {"run_folder": str(frozen.run_folder)}
    with sessions.begin() as s:
        assert deliveries.run_of_dag_run(s, SCANNED_DAG_RUN, None) == RUN_ID  # the DAG run that froze it
        assert deliveries.run_of_dag_run(s, MANUAL_DAG_RUN, folder) == RUN_ID  # a manual re-run, by conf
        unresolved = {"run_folder": str(tmp_path / "elsewhere" / ".." / frozen.run_folder.name)}
        assert deliveries.run_of_dag_run(s, MANUAL_DAG_RUN, unresolved) == RUN_ID  # registered resolved
        s.scalars(select(Run)).one().run_folder = None  # e.g. a run the LIMS created
    with sessions.begin() as s:
        assert deliveries.run_of_dag_run(s, "run__other", folder) is None
        assert deliveries.run_of_dag_run(s, MANUAL_DAG_RUN, folder) is None
        assert deliveries.run_of_dag_run(s, f"run__{RUN_ID}~0123456789ab", None) is None
        assert deliveries.run_of_dag_run(s, MANUAL_DAG_RUN, {"run_folder": "/x\0y"}) is None


def test_the_page_shows_plan_files_and_ledger_with_names_escaped(sessions, tmp_path, airflow_token) -> None:
    frozen = freeze_with_deliveries(sessions, tmp_path)
    app = client(sessions, {MANUAL_DAG_RUN: {"run_folder": str(frozen.run_folder)}})
    answer = app.get(
        f"/deliveries/distribute_run/{MANUAL_DAG_RUN}", headers={"Authorization": f"Bearer {airflow_token}"}
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    assert "default-src 'none'" in answer.headers["content-security-policy"]  # no script runs, whatever
    assert "frame-ancestors 'self'" in answer.headers["content-security-policy"]  # Airflow's UI frames it
    page = answer.text
    assert "<script" not in page  # no markup from a name reaches the page
    assert escape(EVIL_GROUP) in page and escape(EVIL_PROJECT) in page
    assert f"Deliveries of run {RUN_ID}" in page
    assert "source: lims, precision: exact" in page
    assert "shared only after sequencing" in page  # a withheld group and why
    assert "internal group: access through the download tool, no copy" in page
    assert frozen.md5 in page and "2026-03-05 09:00:00 UTC" in page and "2026-04-04 09:00:00 UTC" in page
    assert "2 delivered, 1 purged" in page and ">purged<" in page and ">not delivered<" in page
    assert f"airflow:{SCANNED_DAG_RUN}" in page  # frozen by the scanned DAG run, shown on the manual one


def test_a_run_not_frozen_yet_says_so(sessions, tmp_path, airflow_token) -> None:
    from tests.world import load_world

    with sessions.begin() as s:
        load_world(s)
        s.add(Run(run_id=RUN_ID, run_folder=str(tmp_path)))  # registered, not frozen
    dag_runs = {"run__unknown": {"run_folder": "/runs/unknown"}, MANUAL_DAG_RUN: {}, f"run__{RUN_ID}": {}}
    app = client(sessions, dag_runs)
    auth = {"Authorization": f"Bearer {airflow_token}"}
    for dag_run, expected in [
        ("run__unknown", "seqshare does not know the run of DAG run"),
        (MANUAL_DAG_RUN, "seqshare does not know the run of DAG run"),
        (f"run__{RUN_ID}", f"Deliveries of run {RUN_ID}: not frozen yet"),
    ]:
        answer = app.get(f"/deliveries/distribute_run/{dag_run}", headers=auth)
        assert answer.status_code == 200, answer.text
        assert expected in answer.text


def test_an_unknown_dag_run_or_another_dag_is_not_found(sessions, airflow_token) -> None:
    app = client(sessions, {"run__known": {}})
    auth = {"Authorization": f"Bearer {airflow_token}"}
    missing = app.get("/deliveries/distribute_run/run__missing", headers=auth)
    assert missing.status_code == 404 and "DAG run <code>run__missing</code>" in missing.text
    other = app.get("/deliveries/scan_run_folders/run__known", headers=auth)
    assert other.status_code == 404 and "delivers nothing" in other.text


def test_every_route_refuses_an_anonymous_caller_and_a_forged_token(sessions) -> None:
    from fastapi.routing import APIRoute

    app = client(sessions, {"run__known": {}})
    routes = [r for r in app.app.routes if isinstance(r, APIRoute)]
    assert routes
    for route in routes:
        path = route.path.format(dag_id="distribute_run", run_id="run__known")
        assert app.get(path).status_code == 401, path
        forged = app.get(path, headers={"Authorization": "Bearer not.a.jwt"})
        assert forged.status_code == 403, path
        assert app.get(path, cookies={"_token": "not.a.jwt"}).status_code == 403, path


def test_a_signed_in_user_airflow_does_not_let_read_dag_runs_is_refused(sessions, airflow_tokens) -> None:
    app = client(sessions, {"run__known": {}})
    refused = app.get(
        "/deliveries/distribute_run/run__known", headers={"Authorization": f"Bearer {airflow_tokens['none']}"}
    )
    assert refused.status_code == 403, refused.text


def test_a_snapshot_without_a_plan_still_shows_the_ledger(sessions, tmp_path, airflow_token) -> None:
    from seqshare.db.models import RunSnapshot

    frozen = freeze_with_deliveries(sessions, tmp_path)
    with sessions.begin() as s:
        s.scalars(select(RunSnapshot)).one().plan = None  # frozen before plans were kept with snapshots
    app = client(sessions, {SCANNED_DAG_RUN: {}})
    page = app.get(
        f"/deliveries/distribute_run/{SCANNED_DAG_RUN}", headers={"Authorization": f"Bearer {airflow_token}"}
    )
    assert page.status_code == 200, page.text
    assert "no plan kept" in page.text and "<h2>Ledger</h2>" in page.text
    assert all(path in page.text for path in (*frozen.delivered, frozen.purged))
