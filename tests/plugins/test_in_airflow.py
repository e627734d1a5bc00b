"""The plugin inside a real `airflow api-server` process: listed, its Deliveries view registered, answering
a signed-in Airflow user (bearer token or the UI's cookie) and refusing anyone else.

One server for the module (~20-40 s to start on 2 cores): a temporary AIRFLOW_HOME with its SQLite
metadata database (tests.airflow_env), `AIRFLOW__CORE__PLUGINS_FOLDER` = the repository's plugins/, the
SimpleAuthManager with known passwords, a free port on 127.0.0.1, and seqshare's own database (a SQLite
file holding a frozen run). The DAG runs are created through Airflow's REST API.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from seqshare.db.engine import make_sessions
from tests import databases
from tests.airflow_env import REPO
from tests.plugins.scenario import SCANNED_DAG_RUN, FrozenRun, freeze_with_deliveries
from tests.runs import RUN_ID

pytestmark = pytest.mark.slow

PASSWORDS = {"ops": "ops-secret-1", "trigger": "trigger-secret-2", "nobody": "nobody-secret-3"}
USERS = "ops:viewer,trigger:user,nobody:"  # ops only reads; trigger may create DAG runs; nobody may not read
MANUAL_DAG_RUN = "manual__2026-03-06T10:00:00+00:00"  # as Airflow names a triggered run
UNKNOWN_FOLDER_DAG_RUN = "manual__not_registered"
START_TIMEOUT_S = 180


@dataclass(frozen=True)
class Server:
    url: str
    env: dict[str, str]
    frozen: FrozenRun
    log: Path

    def token(self, user: str) -> str:
        answer = httpx.post(
            f"{self.url}/auth/token", json={"username": user, "password": PASSWORDS[user]}, timeout=30
        )
        assert answer.status_code == 201, answer.text
        return answer.json()["access_token"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sync_dags_to_metadata_db() -> None:
    """Serialise dags/ into Airflow's metadata database, as the dag-processor would (none runs here)."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db
    from airflow.utils.session import create_session

    manager = DagBundlesManager()
    with create_session() as session:
        manager.sync_bundles_to_db(session=session)
    for bundle in manager.get_all_dag_bundles():
        bundle.initialize()
        bag = BundleDagBag(dag_folder=bundle.path, bundle_path=bundle.path, bundle_name=bundle.name)
        assert "distribute_run" in bag.dags, bag.import_errors
        sync_bag_to_db(bag, bundle.name, bundle.version)


def _wait_until_up(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S  # a bound on waiting, not an assertion on speed
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"airflow api-server exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(f"{url}/api/v2/monitor/health", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    pytest.fail(f"airflow api-server did not answer within {START_TIMEOUT_S} s:\n{log.read_text()[-4000:]}")


@pytest.fixture(scope="module")
def server(airflow_db, tmp_path_factory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("in-airflow")
    url = databases.scratch_sqlite(tmp)
    engine = databases.migrated_engine(url)
    try:
        frozen = freeze_with_deliveries(make_sessions(engine), tmp)
    finally:
        engine.dispose()
    _sync_dags_to_metadata_db()
    passwords = tmp / "passwords.json"
    passwords.write_text(json.dumps(PASSWORDS))
    port = _free_port()
    env = {
        **os.environ,  # AIRFLOW_HOME & co. from tests.airflow_env
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__AUTH_MANAGER": (
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
        ),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": USERS,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__API_AUTH__JWT_SECRET": "seqshare-plugin-test-" + "x" * 64,
        "SEQSHARE_DATABASE_URL": url,
        "PYTHONPATH": os.pathsep.join([str(REPO / "include"), os.environ.get("PYTHONPATH", "")]),
    }
    airflow = str(Path(sys.executable).parent / "airflow")
    log = tmp / "api-server.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [airflow, "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_until_up(base, process, log)
        yield Server(base, env, frozen, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def dag_runs(server: Server) -> Iterator[dict[str, str]]:
    """Three distribute_run DAG runs made through Airflow's REST API (no scheduler runs them): the scanned
    one that froze the run, a manual re-run of the same folder, and one of a folder seqshare never saw.

    Deleted afterwards: the metadata database is the test session's, and the scanning DAG's tests must not
    find `run__<run id>` already there."""
    auth = {"Authorization": f"Bearer {server.token('trigger')}"}
    folder = str(server.frozen.run_folder)
    made = {}
    for run_id, run_folder in [
        (SCANNED_DAG_RUN, folder),
        (MANUAL_DAG_RUN, folder),
        (UNKNOWN_FOLDER_DAG_RUN, "/runs/never/seen"),
    ]:
        answer = httpx.post(
            f"{server.url}/api/v2/dags/distribute_run/dagRuns",
            headers=auth,
            json={"dag_run_id": run_id, "logical_date": None, "conf": {"run_folder": run_folder}},
            timeout=60,
        )
        assert answer.status_code == 200, answer.text
        made[run_id] = run_folder
    yield made
    for run_id in made:
        gone = httpx.delete(
            f"{server.url}/api/v2/dags/distribute_run/dagRuns/{quote(run_id, safe='')}",
            headers=auth,
            timeout=60,
        )
        assert gone.status_code == 204, gone.text


def _view(server: Server, dag_run: str, dag_id: str = "distribute_run") -> str:
    return f"{server.url}/seqshare-ops/deliveries/{dag_id}/{dag_run}"


def test_airflow_lists_the_plugin_and_its_views(server: Server) -> None:
    listed = subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "plugins", "--output", "json"],
        env=server.env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert listed.returncode == 0, listed.stderr
    plugins = {p["name"]: p for p in json.loads(listed.stdout[listed.stdout.index("[") :])}
    assert "seqshare" in plugins, listed.stdout
    answer = httpx.get(
        f"{server.url}/api/v2/plugins", headers={"Authorization": f"Bearer {server.token('ops')}"}, timeout=30
    )
    assert answer.status_code == 200, answer.text
    (plugin,) = [p for p in answer.json()["plugins"] if p["name"] == "seqshare"]
    (view,) = [v for v in plugin["external_views"] if v["destination"] == "dag_run"]
    assert (view["name"], view["href"]) == ("Deliveries", "seqshare-ops/deliveries/{DAG_ID}/{RUN_ID}")
    assert not view["href"].startswith("/")  # relative: works behind a proxy's path prefix
    assert any(a["url_prefix"] == "/seqshare-ops" for a in plugin["fastapi_apps"]), plugin


def test_the_deliveries_view_answers_a_signed_in_airflow_user(server: Server, dag_runs) -> None:
    token = server.token("ops")
    href = "seqshare-ops/deliveries/{DAG_ID}/{RUN_ID}"  # as registered; the UI fills it in
    page = httpx.get(
        f"{server.url}/{href.format(DAG_ID='distribute_run', RUN_ID=SCANNED_DAG_RUN)}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert page.status_code == 200, page.text
    assert f"Deliveries of run {RUN_ID}" in page.text and server.frozen.md5 in page.text
    assert "2 delivered, 1 purged" in page.text
    # Inside Airflow's UI the view is an iframe: the browser sends the UI's `_token` cookie, no header.
    # The UI fills {RUN_ID} in with encodeURIComponent: ':' and '+' arrive percent-encoded.
    framed = httpx.get(_view(server, quote(MANUAL_DAG_RUN, safe="")), cookies={"_token": token}, timeout=30)
    assert framed.status_code == 200, framed.text
    assert f"Deliveries of run {RUN_ID}" in framed.text  # a manual re-run, mapped through its conf
    not_yet = httpx.get(_view(server, UNKNOWN_FOLDER_DAG_RUN), cookies={"_token": token}, timeout=30)
    assert not_yet.status_code == 200 and "seqshare does not know the run of DAG run" in not_yet.text
    missing = httpx.get(_view(server, "run__no_such_dag_run"), cookies={"_token": token}, timeout=30)
    assert missing.status_code == 404


def test_the_deliveries_view_refuses_anyone_airflow_has_not_signed_in(server: Server, dag_runs) -> None:
    view = _view(server, SCANNED_DAG_RUN)
    anonymous = httpx.get(view, timeout=30)
    assert anonymous.status_code == 401, anonymous.text
    forged = httpx.get(view, headers={"Authorization": "Bearer forged.token.value"}, timeout=30)
    assert forged.status_code == 403, forged.text
    assert httpx.get(view, cookies={"_token": "forged.token.value"}, timeout=30).status_code == 403
    assert RUN_ID not in anonymous.text + forged.text


def test_the_deliveries_view_refuses_a_user_airflow_does_not_let_read_dag_runs(
    server: Server, dag_runs
) -> None:
    refused = httpx.get(
        _view(server, SCANNED_DAG_RUN), cookies={"_token": server.token("nobody")}, timeout=30
    )
    assert refused.status_code == 403, refused.text
    assert RUN_ID not in refused.text


def test_the_portal_in_airflow_answers_a_seqshare_token_and_refuses_anyone_else(server: Server) -> None:
    """The portal authenticates its own users: Airflow's sign-in opens nothing there, a token does."""
    from datetime import UTC, datetime

    from seqshare.services import tokens

    engine = databases.make_engine(server.env["SEQSHARE_DATABASE_URL"])
    try:
        with make_sessions(engine).begin() as s:
            secret = tokens.create_token(
                s, username="owner", name="plugin test", expires_at=None, now=datetime.now(UTC)
            ).secret
    finally:
        engine.dispose()
    projects = f"{server.url}/seqshare/api/v1/projects"

    assert httpx.get(projects, timeout=30).status_code == 401
    airflow_user = {"Authorization": f"Bearer {server.token('ops')}"}
    assert httpx.get(projects, headers=airflow_user, timeout=30).status_code == 401
    answer = httpx.get(projects, headers={"Authorization": f"Bearer {secret}"}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert "Member Project" in {p["name"] for p in answer.json()["projects"]}  # owner's group's
