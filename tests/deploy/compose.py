"""Read the compose deployment's files as Docker Compose would: the raw YAML, the .env.example, and
`docker-compose config` (Debian's docker-compose, which validates against the Compose schema offline)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yaml"
ENV_EXAMPLE = REPO / ".env.example"
DOCKERFILE = REPO / "Dockerfile"

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?message}, ${NAME?message}; $$ is an escaped $.
INTERPOLATION = re.compile(r"(?<!\$)\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?])?(?P<arg>[^}]*)\}")


def raw() -> dict[str, Any]:
    """docker-compose.yaml as written (anchors and merge keys resolved, nothing interpolated)."""
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


def example_env() -> dict[str, str]:
    """The variables .env.example sets (uncommented `NAME=value` lines), quotes stripped as Compose does."""
    values = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        match = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)", line)
        if match:
            value = match.group(2)
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            values[match.group(1)] = value
    return values


def docker_compose() -> str:
    """Debian's docker-compose (scripts/test installs it); a missing one fails the test, never skips it."""
    path = shutil.which("docker-compose")
    if path is None:
        pytest.fail("docker-compose is not installed (apt-get install docker-compose)", pytrace=False)
    return path


def write_env(folder: Path, env: dict[str, str]) -> Path:
    path = folder / "test.env"
    path.write_text("".join(f"{k}='{v}'\n" for k, v in env.items()), encoding="utf-8")
    return path


def config(
    env_file: Path, *extra: str, compose_file: Path = COMPOSE_FILE
) -> subprocess.CompletedProcess[str]:
    """`docker-compose config` of the repository's file with that env file (no Docker engine needed)."""
    return subprocess.run(
        [
            docker_compose(),
            "--project-directory",
            str(compose_file.parent),
            "-f",
            str(compose_file),
            "--env-file",
            str(env_file),
            "config",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def rendered(env_file: Path) -> dict[str, Any]:
    """The compose file as Compose resolves it with that env file."""
    result = config(env_file)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def init_script() -> str:
    """The airflow-init service's bash script as the container runs it ($$ unescaped)."""
    command = raw()["services"]["airflow-init"]["command"]
    assert command[:2] == ["bash", "-c"], command
    return command[2].replace("$$", "$")


def code_reads(name: str) -> bool:
    """Whether seqshare's code (include/, dags/, plugins/) names this environment variable."""
    quoted = re.compile(rf"[\"']{re.escape(name)}[\"']")
    return any(
        quoted.search(path.read_text(encoding="utf-8"))
        for folder in ("include", "dags", "plugins")
        for path in (REPO / folder).rglob("*.py")
    )


def rendered_in(project: Path) -> dict[str, Any]:
    """`docker-compose config` in a project folder, with that folder's own .env (as `docker compose up`)."""
    result = subprocess.run(
        [docker_compose(), "config"], cwd=project, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)
