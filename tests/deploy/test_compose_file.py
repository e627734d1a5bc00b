"""docker-compose.yaml, the Dockerfile and .env.example agree with the Compose schema, with each other and
with what seqshare's code reads. Checked offline: Debian's docker-compose validates without an engine."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from seqshare.airflow_connection import DEFAULT_CONN_ID
from tests.deploy import compose
from tests.deploy.compose import DOCKERFILE, INTERPOLATION, REPO

AIRFLOW_SERVICES = ["airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
                    "airflow-worker", "airflow-init"]  # fmt: skip
SECRET_NAME = re.compile(r"KEY|SECRET|PASSWORD|TOKEN|^AIRFLOW_CONN_|_URL$|SQL_ALCHEMY_CONN")


@pytest.fixture(scope="module")
def example_file() -> Path:
    return compose.ENV_EXAMPLE


def test_the_compose_file_validates_with_the_example_env(example_file: Path) -> None:
    result = compose.config(example_file, "-q")
    assert result.returncode == 0, result.stderr


def test_the_compose_file_refuses_to_render_without_its_secrets(tmp_path: Path) -> None:
    empty = compose.write_env(tmp_path, {})
    result = compose.config(empty, "-q")
    assert result.returncode != 0
    assert "in .env" in result.stderr  # the ${NAME:?...} message says where to set it


def test_a_broken_compose_file_fails_validation(tmp_path: Path, example_file: Path) -> None:
    """The validation is real: a misspelt key is refused by the schema."""
    broken = tmp_path / "docker-compose.yaml"
    text = compose.COMPOSE_FILE.read_text(encoding="utf-8")
    broken.write_text(text.replace("    healthcheck:\n", "    healthchek:\n", 1), encoding="utf-8")
    (tmp_path / "deploy").symlink_to(REPO / "deploy")
    result = compose.config(example_file, "-q", compose_file=broken)
    assert result.returncode != 0
    assert "healthchek" in result.stderr


def test_every_long_running_service_has_a_healthcheck_and_one_shots_gate_the_others() -> None:
    services = compose.raw()["services"]
    assert services["sftp"]["profiles"] == ["trial-sftp"]  # optional: nothing may wait for it
    assert not any("sftp" in (s.get("depends_on") or {}) for s in services.values())
    one_shots = {name for name, s in services.items() if s.get("restart") == "no"}
    assert one_shots == {"airflow-init"}
    for name, service in services.items():
        if name in one_shots:
            continue
        check = service.get("healthcheck")
        assert check and not check.get("disable") and check.get("test"), f"{name} has no healthcheck"
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name
    for name in AIRFLOW_SERVICES:
        if name == "airflow-init":
            continue
        depends = services[name]["depends_on"]
        assert depends["airflow-init"]["condition"] == "service_completed_successfully", name
        assert depends["postgres"]["condition"] == "service_healthy", name


def test_every_airflow_service_runs_the_image_built_from_the_dockerfile() -> None:
    services = compose.raw()["services"]
    runs_our_code = {n for n, s in services.items() if "airflow" in str(s.get("command", ""))}
    assert runs_our_code == set(AIRFLOW_SERVICES)
    images = set()
    for name in AIRFLOW_SERVICES:
        build = services[name]["build"]
        context = build if isinstance(build, str) else build["context"]
        assert (REPO / context).resolve() == REPO, name
        assert isinstance(build, str) or build.get("dockerfile", "Dockerfile") == "Dockerfile", name
        images.add(services[name]["image"])
    assert len(images) == 1  # one image, built once, for every Airflow component
    sftp_build = services["sftp"]["build"]
    assert (REPO / sftp_build / "Dockerfile").is_file()


def test_the_dockerfile_installs_the_lock_then_seqshare_without_dependencies() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    steps = [s for s in re.split(r"\n(?=[A-Z]+ )", re.sub(r"\\\n\s*", " ", text)) if not s.startswith("#")]
    installs = [s for s in steps if "pip install" in s]
    assert "COPY requirements.txt" in text
    assert re.search(r"pip install [^&]*-r \S*requirements\.txt", installs[0]), installs[0]
    assert "pip check" in installs[0]
    assert re.search(r"pip install [^&]*--no-deps", installs[1]), installs[1]
    assert not any("requirements.in" in s or "pip install -U" in s for s in steps)


def test_the_base_image_matches_the_python_and_airflow_the_lock_was_resolved_for() -> None:
    lock = (REPO / "requirements.txt").read_text(encoding="utf-8")
    lock_python = re.search(r"on Python (\d+\.\d+)", lock.splitlines()[0]).group(1)
    lock_airflow = re.search(r"^apache-airflow==(\S+)$", lock, re.M).group(1)
    base = re.search(r"^FROM (\S+)", DOCKERFILE.read_text(encoding="utf-8"), re.M).group(1)
    official = re.fullmatch(r"apache/airflow:(?P<airflow>[\d.]+)-python(?P<python>[\d.]+)", base)
    slim = re.fullmatch(r"python:(?P<python>\d+\.\d+)-slim-bookworm", base)
    assert official or slim, f"unexpected base image {base}"
    assert (official or slim).group("python") == lock_python
    if official:
        assert official.group("airflow") == lock_airflow


def test_the_dockerignore_lets_in_exactly_what_the_dockerfile_copies() -> None:
    ignore = (REPO / ".dockerignore").read_text(encoding="utf-8").split()
    assert ignore[ignore.index("*") if "*" in ignore else 0] == "*"  # everything out by default
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    sources = set()
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        if line.startswith("COPY "):
            sources.update(p.rstrip("/") for p in line.split()[1:-1] if not p.startswith("--"))
    assert sources == allowed
    assert not allowed & {".env", ".venv", "var", "tests", "deploy"}


def test_every_interpolated_variable_is_documented_in_the_example_env() -> None:
    text = compose.COMPOSE_FILE.read_text(encoding="utf-8")
    example = compose.ENV_EXAMPLE.read_text(encoding="utf-8")
    documented = set(re.findall(r"^#? ?([A-Z_][A-Z0-9_]*)=", example, re.M))
    used = {m.group("name") for m in INTERPOLATION.finditer(text)}
    assert sorted(used - documented) == []
    required = {m.group("name") for m in INTERPOLATION.finditer(text) if m.group("op") in (":?", "?")}
    assert required <= set(compose.example_env()), "required variables must be set in .env.example"


def test_no_secret_is_written_in_the_compose_file() -> None:
    """Every secret-looking setting is `${NAME:?...}` from .env, never a value; so are the key files."""
    data = compose.raw()
    for name, service in data["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if SECRET_NAME.search(key) and not key.endswith("_FILE") and key != "AIRFLOW__CELERY__BROKER_URL":
                match = INTERPOLATION.fullmatch(str(value))
                assert match and match.group("op") in (":?", ":-", None), f"{name}: {key}={value}"
                assert match.group("op") != ":-" or match.group("arg") == "", f"{name}: {key} has a default"
    broker = data["services"]["airflow-worker"]["environment"]["AIRFLOW__CELERY__BROKER_URL"]
    assert broker == "redis://redis:6379/0"  # the one URL written out: no credentials in it
    for secret in data["secrets"].values():
        assert INTERPOLATION.match(secret["file"]), secret
    text = compose.COMPOSE_FILE.read_text(encoding="utf-8")
    assert not re.search(r"://[^\s/$]*:[^\s/$@]*@", text), "credentials in a URL"
    assert not re.search(r"ssh-(ed25519|rsa) AAAA|BEGIN [A-Z ]*PRIVATE KEY", text)


def test_the_example_env_holds_placeholders_not_secrets() -> None:
    env = compose.example_env()
    for key, value in env.items():
        if SECRET_NAME.search(key) and value and not value.startswith(("./", "http://airflow-apiserver")):
            assert "change-me" in value, f"{key} in .env.example looks like a real secret"


def test_the_placeholder_secrets_render_into_every_airflow_service(tmp_path: Path) -> None:
    """Each secret reaches each Airflow component from the env file, unchanged."""
    env = compose.example_env()
    marked = {k: (f"marker-{k}" if SECRET_NAME.search(k) and "change-me" in v else v) for k, v in env.items()}
    marked["AIRFLOW_CONN_SEQSHARE_SFTP"] = env["AIRFLOW_CONN_SEQSHARE_SFTP"]  # JSON, checked below
    services = compose.rendered(compose.write_env(tmp_path, marked))["services"]
    for name in AIRFLOW_SERVICES:
        environment = services[name]["environment"]
        for key in ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY",
                    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "SEQSHARE_DATABASE_URL"):  # fmt: skip
            assert environment[key] == f"marker-{key}", (name, key)
        assert environment["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == (
            "http://airflow-apiserver:8080/execution/"
        )
    postgres = services["postgres"]["environment"]
    assert postgres["POSTGRES_PASSWORD"] == "marker-PG_SUPERUSER_PASSWORD"
    assert postgres["PG_SEQSHARE_PASSWORD"] == "marker-PG_SEQSHARE_PASSWORD"


def test_the_sftp_connection_has_the_name_the_code_looks_up_and_a_pinned_host_key(tmp_path: Path) -> None:
    from seqshare.airflow_connection import ConnectionConfigError

    services = compose.rendered(compose.ENV_EXAMPLE)["services"]
    conn_env = f"AIRFLOW_CONN_{DEFAULT_CONN_ID.upper()}"
    for name in AIRFLOW_SERVICES:
        assert conn_env in services[name]["environment"], name
    conn = services["airflow-worker"]["environment"][conn_env]
    extra = json.loads(conn)["extra"]
    assert extra["key_file"] == "/run/secrets/sftp_delivery_key"
    assert "sftp_delivery_key" in compose.raw()["services"]["airflow-worker"]["secrets"]
    with pytest.raises(ConnectionConfigError, match="host_key"):  # the placeholder key is refused as such
        _config_from(conn)


def _config_from(conn_json: str) -> object:
    from seqshare.airflow_connection import sftp_config_from_fields

    conn = json.loads(conn_json)
    return sftp_config_from_fields(
        DEFAULT_CONN_ID, host=conn["host"], port=conn["port"], login=conn["login"], password=None,
        extra=conn["extra"],
    )  # fmt: skip


def test_workers_listen_on_the_default_queue_and_the_transfer_queue(tmp_path: Path) -> None:
    env = compose.example_env() | {"SEQSHARE_TRANSFER_QUEUE": "near-storage"}
    services = compose.rendered(compose.write_env(tmp_path, env))["services"]
    worker = services["airflow-worker"]
    queues = worker["command"][worker["command"].index("--queues") + 1].split(",")
    assert sorted(queues) == ["default", "near-storage"]
    for name in AIRFLOW_SERVICES:  # the DAG processor must see the same queue name the workers listen on
        assert services[name]["environment"]["SEQSHARE_TRANSFER_QUEUE"] == "near-storage", name
    assert "container_name" not in worker and "ports" not in worker  # --scale needs both absent


def test_the_init_service_migrates_both_databases_and_creates_the_pool_the_dags_use() -> None:
    script = compose.init_script()
    pools = set()
    for dag in (REPO / "dags").glob("*.py"):
        pools.update(re.findall(r'^SFTP_POOL = "([^"]+)"', dag.read_text(encoding="utf-8"), re.M))
    assert len(pools) == 1, pools
    pool = pools.pop()
    lines = [line.strip() for line in script.splitlines()]
    assert "airflow db migrate" in lines
    assert "seqshare db upgrade" in lines
    assert any(line.startswith(f"airflow pools set {pool} ") for line in lines)


def test_the_run_folders_are_mounted_read_only_where_the_scanner_looks(tmp_path: Path) -> None:
    services = compose.rendered(compose.ENV_EXAMPLE)["services"]
    for name in ("airflow-scheduler", "airflow-worker", "airflow-dag-processor"):
        roots = services[name]["environment"]["SEQSHARE_RUN_ROOTS"].split(":")
        volumes = services[name]["volumes"]
        for root in roots:
            mount = [v for v in volumes if (v["target"] if isinstance(v, dict) else v.split(":")[1]) == root]
            assert mount, (name, root)
            assert mount[0]["read_only"] if isinstance(mount[0], dict) else mount[0].endswith(":ro")


SEQSHARE_SETTINGS = sorted(
    {
        key
        for s in compose.raw()["services"].values()
        for key in (s.get("environment") or {})
        if key.startswith("SEQSHARE_")
    }
)


@pytest.mark.parametrize("name", SEQSHARE_SETTINGS)
def test_every_seqshare_setting_in_the_compose_file_is_read_by_the_code(name: str) -> None:
    assert compose.code_reads(name), f"{name} is set in docker-compose.yaml but no code reads it"


def test_the_trial_sftp_servers_sshd_config_passes_sshd_t(tmp_path: Path) -> None:
    sshd, keygen = shutil.which("sshd") or "/usr/sbin/sshd", shutil.which("ssh-keygen")
    if not Path(sshd).exists() or keygen is None:
        pytest.fail("sshd and ssh-keygen are needed (openssh-server)", pytrace=False)
    subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "hk")], check=True)
    config = (REPO / "deploy/sftp/sshd_config").read_text(encoding="utf-8")
    assert "HostKey /etc/ssh/ssh_host_ed25519_key\n" in config
    copy = tmp_path / "sshd_config"
    copy.write_text(config.replace("/etc/ssh/ssh_host_ed25519_key", str(tmp_path / "hk")), encoding="utf-8")
    checked = subprocess.run([sshd, "-t", "-f", str(copy)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr
    effective = subprocess.run(
        [sshd, "-T", "-f", str(copy), "-C", "user=seqshare-delivery,host=worker,addr=10.0.0.2"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "chrootdirectory /srv/sftp\n" in effective
    assert "forcecommand internal-sftp -u 0027 -P symlink,hardlink\n" in effective
    assert "passwordauthentication no\n" in effective


def _airflow_commands() -> list[list[str]]:
    """Every `airflow ...` command line the compose file runs (service commands, healthchecks, the init
    script), with its shell variables given example values."""
    import shlex

    shell_values = {"${HOSTNAME}": "host", "$slots": "4"}
    lines = compose.init_script().replace("\\\n", " ").splitlines()
    found = []
    for service in compose.raw()["services"].values():
        command = service.get("command")
        if isinstance(command, list) and command[0] == "airflow":
            found.append(command)
        test = (service.get("healthcheck") or {}).get("test") or []
        lines.append(" ".join(test[1:]).replace("$$", "$"))
    for line in lines:
        for part in re.split(r"&&|\|\||\|", line):
            for name, value in shell_values.items():
                part = part.replace(name, value)
            words = shlex.split(part)
            if words[:1] == ["airflow"]:
                assert "$" not in part, part
                found.append(words)
    return found


def test_every_airflow_command_and_healthcheck_parses_with_the_locked_airflow(tmp_path: Path) -> None:
    from airflow.cli.cli_parser import get_parser

    commands = _airflow_commands()
    assert {tuple(c[1:3]) for c in commands} >= {
        ("api-server",),
        ("celery", "worker"),
        ("jobs", "check"),
        ("db", "migrate"),
        ("pools", "set"),
    }
    for command in commands:
        try:
            get_parser().parse_args(command[1:])
        except SystemExit:
            pytest.fail(f"airflow does not accept: {' '.join(command)}")


def test_the_healthchecks_call_what_the_image_has() -> None:
    import importlib.util

    from airflow.configuration import conf

    from seqshare.ops.registration import PORTAL_PREFIX

    services = compose.raw()["services"]
    api = " ".join(services["airflow-apiserver"]["healthcheck"]["test"])
    assert "http://localhost:8080/api/v2/monitor/health" in api
    assert f"http://localhost:8080{PORTAL_PREFIX}/healthz" in api  # the seqshare plugin is mounted
    port = conf.get("scheduler", "scheduler_health_check_server_port")
    assert f"http://localhost:{port}/health" in services["airflow-scheduler"]["healthcheck"]["test"]
    worker = " ".join(services["airflow-worker"]["healthcheck"]["test"])
    app = re.search(r"--app (\S+)\.app ", worker).group(1)
    assert importlib.util.find_spec(app) is not None, app
    assert "curl" in DOCKERFILE.read_text(encoding="utf-8")


def test_published_ports_listen_on_this_machine_only() -> None:
    services = compose.rendered(compose.ENV_EXAMPLE)["services"]
    published = {name: s["ports"] for name, s in services.items() if s.get("ports")}
    assert set(published) == {"airflow-apiserver", "sftp"}
    for name, ports in published.items():
        for port in ports:  # short syntax 127.0.0.1:8080:8080/tcp, or the long one with host_ip
            host_ip = port.get("host_ip") if isinstance(port, dict) else str(port).rsplit(":", 2)[0]
            assert host_ip == "127.0.0.1", (name, port)


def test_the_run_folders_override_in_the_docs_validates_and_reaches_every_task_runner(tmp_path: Path) -> None:
    docs = (REPO / "docs/deployment.md").read_text(encoding="utf-8")
    override_text = re.search(r"```yaml\n(x-run-folders:.*?)```", docs, re.S).group(1)
    override = tmp_path / "docker-compose.override.yaml"
    override.write_text(override_text, encoding="utf-8")
    result = subprocess.run(
        [compose.docker_compose(), "--project-directory", str(REPO), "-f", str(compose.COMPOSE_FILE),
         "-f", str(override), "--env-file", str(compose.ENV_EXAMPLE), "config"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    for name in ("airflow-scheduler", "airflow-dag-processor", "airflow-worker"):
        targets = {v["target"] if isinstance(v, dict) else v.split(":")[1] for v in services[name]["volumes"]}
        roots = services[name]["environment"]["SEQSHARE_RUN_ROOTS"].split(":")
        assert set(roots) | {"/data/demux"} <= targets, name


def test_the_secrets_make_env_writes_are_never_committed_nor_sent_to_a_build() -> None:
    for path in (".env", "deploy/sftp/keys/delivery_ed25519", "deploy/sftp/keys/ssh_host_ed25519_key"):
        ignored = subprocess.run(["git", "-C", str(REPO), "check-ignore", "-q", path], check=False)
        assert ignored.returncode == 0, f"{path} is not git-ignored"
    assert (
        ".env.example"
        not in subprocess.run(
            ["git", "-C", str(REPO), "check-ignore", ".env.example"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
    )
