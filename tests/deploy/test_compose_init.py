"""What the compose deployment runs before Airflow starts, run for real outside Docker: the postgres
service's init script on the test PostgreSQL server, the airflow-init service's script with the real
`airflow` and `seqshare` commands, and deploy/make-env."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from tests.databases import PG_ADMIN_URL
from tests.deploy import compose
from tests.deploy.compose import REPO

BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Databases:
    airflow_url: str
    seqshare_url: str
    airflow_user: str
    seqshare_user: str


def _url(user: str, password: str, database: str) -> str:
    return (
        make_url(PG_ADMIN_URL)
        .set(username=user, password=password, database=database)
        .render_as_string(hide_password=False)
    )


@pytest.fixture
def databases() -> Iterator[Databases]:
    """deploy/postgres/init-databases.sh run against the test server with scratch names, dropped after."""
    admin_url = make_url(PG_ADMIN_URL)
    tag = secrets.token_hex(4)
    names = {
        "AIRFLOW_DB": f"compose_airflow_{tag}",
        "AIRFLOW_DB_USER": f"compose_airflow_{tag}",
        "SEQSHARE_DB": f"compose_seqshare_{tag}",
        "SEQSHARE_DB_USER": f"compose_seqshare_{tag}",
    }
    passwords = {"PG_AIRFLOW_PASSWORD": secrets.token_hex(8), "PG_SEQSHARE_PASSWORD": secrets.token_hex(8)}
    env = os.environ | names | passwords
    env |= {
        "PGHOST": admin_url.host or "127.0.0.1",
        "PGPORT": str(admin_url.port or 5432),
        "POSTGRES_USER": admin_url.username or "postgres",
        "POSTGRES_DB": admin_url.database or "postgres",
    }
    if admin_url.password:
        env["PGPASSWORD"] = admin_url.password
    if shutil.which("psql") is None:
        pytest.fail("psql is needed (postgresql-client)", pytrace=False)
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        result = subprocess.run(
            [str(REPO / "deploy/postgres/init-databases.sh")], env=env, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr
        yield Databases(
            airflow_url=_url(names["AIRFLOW_DB_USER"], passwords["PG_AIRFLOW_PASSWORD"], names["AIRFLOW_DB"]),
            seqshare_url=_url(
                names["SEQSHARE_DB_USER"], passwords["PG_SEQSHARE_PASSWORD"], names["SEQSHARE_DB"]
            ),
            airflow_user=names["AIRFLOW_DB_USER"],
            seqshare_user=names["SEQSHARE_DB_USER"],
        )
    finally:
        with admin.connect() as conn:
            for db in (names["AIRFLOW_DB"], names["SEQSHARE_DB"]):
                conn.execute(text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
            for role in (names["AIRFLOW_DB_USER"], names["SEQSHARE_DB_USER"]):
                conn.execute(text(f'DROP ROLE IF EXISTS "{role}"'))
        admin.dispose()


def _connect_error(url: str) -> str:
    """'' when that URL connects, else the server's refusal."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        return ""
    except OperationalError as exc:
        return str(exc)
    finally:
        engine.dispose()


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return set(
                conn.execute(text("select tablename from pg_tables where schemaname = 'public'")).scalars()
            )
    finally:
        engine.dispose()


def _swap_db(url: str, other: str) -> str:
    return make_url(url).set(database=make_url(other).database).render_as_string(hide_password=False)


@pytest.mark.postgres
def test_airflow_and_seqshare_get_separate_databases_neither_role_can_open_the_other(
    databases: Databases,
) -> None:
    assert _connect_error(databases.airflow_url) == ""
    assert _connect_error(databases.seqshare_url) == ""
    refused = "permission denied for database"
    assert refused in _connect_error(_swap_db(databases.seqshare_url, databases.airflow_url))
    assert refused in _connect_error(_swap_db(databases.airflow_url, databases.seqshare_url))


def _init_env(tmp_path: Path, dbs: Databases, **overrides: str) -> dict[str, str]:
    """airflow-init's environment as docker-compose renders it from an .env holding these databases,
    fresh secrets and `overrides`; only the image's paths are replaced by this checkout's."""
    values = compose.example_env() | {
        "AIRFLOW__CORE__FERNET_KEY": "9H1Pt5-Yqv3nXk5qNEpUJf0f1H5qO3bq8a1sD2tA4Xk=",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(16),
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(16),
        "AIRFLOW_CONN_SEQSHARE_SFTP": '{"conn_type": "sftp", "host": "sftp"}',
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": dbs.airflow_url,
        "SEQSHARE_DATABASE_URL": dbs.seqshare_url,
        "SEQSHARE_PARALLEL_FILES": "2",
        "SFTP_SESSIONS_POOL_SLOTS": "3",
    }
    service = compose.rendered(compose.write_env(tmp_path, values | overrides))["services"]["airflow-init"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "SEQSHARE_"))}
    return (
        env
        | {k: str(v) for k, v in service["environment"].items()}
        | {
            "PATH": f"{BIN}:{env.get('PATH', '/usr/bin:/bin')}",
            "PYTHONPATH": f"{REPO / 'include'}:{REPO}",
            "AIRFLOW_HOME": str(tmp_path / "airflow-home"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(tmp_path / "passwords.json"),
        }
    )


def _run_init(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", compose.init_script()], env=env, capture_output=True, text=True, timeout=600
    )


@pytest.mark.postgres
def test_the_init_service_refuses_placeholders_and_a_pool_too_small_before_touching_anything(
    databases: Databases, tmp_path: Path
) -> None:
    placeholder = _run_init(_init_env(tmp_path, databases, AIRFLOW__API_AUTH__JWT_SECRET="change-me-jwt"))
    assert placeholder.returncode == 1
    assert placeholder.stderr.strip().splitlines() == [
        "airflow-init: AIRFLOW__API_AUTH__JWT_SECRET in .env is still the example's placeholder; "
        "run deploy/make-env"
    ]
    small = _run_init(_init_env(tmp_path, databases, SFTP_SESSIONS_POOL_SLOTS="1"))
    assert small.returncode == 1
    assert "SFTP_SESSIONS_POOL_SLOTS=1 is below SEQSHARE_PARALLEL_FILES=2" in small.stderr
    assert _tables(databases.airflow_url) == set()
    assert _tables(databases.seqshare_url) == set()


@pytest.mark.postgres
@pytest.mark.slow
def test_the_init_service_migrates_both_databases_and_creates_the_pool(
    databases: Databases, tmp_path: Path
) -> None:
    result = _run_init(_init_env(tmp_path, databases))
    assert result.returncode == 0, result.stderr[-3000:]
    airflow_tables, seqshare_tables = _tables(databases.airflow_url), _tables(databases.seqshare_url)
    assert {"dag_run", "slot_pool", "task_instance"} <= airflow_tables
    assert {"alembic_version", "project", "share"} <= seqshare_tables
    assert not airflow_tables & {"project", "share"}  # each schema in its own database
    assert not seqshare_tables & {"dag_run", "slot_pool"}
    engine = create_engine(databases.airflow_url)
    try:
        with engine.connect() as conn:
            slots = conn.execute(text("select slots from slot_pool where pool = 'sftp_sessions'")).scalar()
    finally:
        engine.dispose()
    assert slots == 3
    again = _run_init(_init_env(tmp_path, databases, SFTP_SESSIONS_POOL_SLOTS="5"))  # a restart is harmless
    assert again.returncode == 0, again.stderr[-3000:]
    assert (
        databases.seqshare_url.split("@")[0].split(":")[-1] not in again.stdout + again.stderr
    )  # no password
    engine = create_engine(databases.airflow_url)
    try:
        with engine.connect() as conn:
            assert (
                conn.execute(text("select slots from slot_pool where pool = 'sftp_sessions'")).scalar() == 5
            )
    finally:
        engine.dispose()


def test_make_env_writes_fresh_secrets_and_pins_the_trial_servers_host_key(tmp_path: Path) -> None:
    from seqshare.airflow_connection import sftp_config_from_fields

    if shutil.which("ssh-keygen") is None:
        pytest.fail("ssh-keygen is needed (openssh-client)", pytrace=False)
    project = tmp_path / "project"
    project.mkdir()
    for name in ("docker-compose.yaml", ".env.example"):
        shutil.copy(REPO / name, project / name)
    shutil.copytree(REPO / "deploy", project / "deploy", ignore=shutil.ignore_patterns("*_ed25519*"))
    made = subprocess.run(
        [str(REPO / "deploy/make-env"), str(project)], capture_output=True, text=True, check=False
    )
    assert made.returncode == 0, made.stderr
    env_text = (project / ".env").read_text(encoding="utf-8")
    assert "change-me" not in env_text
    assert stat.S_IMODE((project / ".env").stat().st_mode) == 0o600
    keys = project / "deploy/sftp/keys"
    for key in ("ssh_host_ed25519_key", "delivery_ed25519"):
        assert stat.S_IMODE((keys / key).stat().st_mode) == 0o600
    services = compose.rendered_in(project)["services"]
    worker = services["airflow-worker"]["environment"]
    conn = json.loads(worker["AIRFLOW_CONN_SEQSHARE_SFTP"])
    host_pub = (keys / "ssh_host_ed25519_key.pub").read_text(encoding="utf-8").split()[:2]
    config = sftp_config_from_fields(
        "seqshare_sftp",
        host=conn["host"],
        port=conn["port"],
        login=conn["login"],
        password=None,
        extra=conn["extra"] | {"key_file": str(keys / "delivery_ed25519")},
    )
    assert config.known_host_key == " ".join(host_pub)
    password = services["postgres"]["environment"]["PG_SEQSHARE_PASSWORD"]
    assert make_url(worker["SEQSHARE_DATABASE_URL"]).password == password
    airflow_password = services["postgres"]["environment"]["PG_AIRFLOW_PASSWORD"]
    assert make_url(worker["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]).password == airflow_password
    assert len({airflow_password, password, worker["AIRFLOW__API_AUTH__JWT_SECRET"]}) == 3
    again = subprocess.run([str(REPO / "deploy/make-env"), str(project)], capture_output=True, text=True)
    assert again.returncode == 1
    assert "exists; kept" in again.stderr
    assert (project / ".env").read_text(encoding="utf-8") == env_text
