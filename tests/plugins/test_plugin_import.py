"""The plugin file is cheap and safe to import (Airflow imports plugins in every component), and the
portal is mounted only when `seqshare.web.app` is importable, saying so in the log either way."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import types

import pytest
from fastapi import FastAPI

from seqshare.ops import registration
from tests.airflow_env import REPO

PLUGIN = REPO / "plugins" / "seqshare_plugin.py"

# Imports the plugin file as Airflow's plugin manager does (by path), in a fresh interpreter, with every way
# to seqshare's database recorded: a call to make_engine, or the database file appearing.
_IMPORT_PLUGIN = """
import importlib.util, json, os, sys
import seqshare.db.engine as engine
opened = []
real = engine.make_engine
engine.make_engine = lambda *a, **k: opened.append(a) or real(*a, **k)
spec = importlib.util.spec_from_file_location("seqshare_plugin", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
plugin = module.SeqsharePlugin
print(json.dumps({
    "name": plugin.name,
    "apps": [a["url_prefix"] for a in plugin.fastapi_apps],
    "views": plugin.external_views,
    "engines": len(opened),
    "database_file": os.path.exists(os.environ["SEQSHARE_DATABASE_URL"].removeprefix("sqlite:///")),
    "home_made": os.path.exists(os.environ["SEQSHARE_HOME"]),
}))
"""


def test_importing_the_plugin_opens_no_database(tmp_path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO / "include"),
        "SEQSHARE_DATABASE_URL": f"sqlite:///{tmp_path / 'seqshare.db'}",
        "SEQSHARE_HOME": str(tmp_path / "home"),
    }
    done = subprocess.run(
        [sys.executable, "-c", _IMPORT_PLUGIN, str(PLUGIN)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["name"] == "seqshare"
    assert "/seqshare-ops" in result["apps"]
    assert {"name": "Deliveries", "destination": "dag_run"}.items() <= result["views"][0].items()
    assert (result["engines"], result["database_file"], result["home_made"]) == (0, False, False)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    @property
    def text(self) -> str:
        return "\n".join(r.getMessage() for r in self.records)


@pytest.fixture
def logged():
    """What `seqshare.ops.registration` logs (a handler of its own: Airflow's logging set-up may stop
    records from reaching pytest's)."""
    handler = _Records()
    registration.log.addHandler(handler)
    level = registration.log.level
    registration.log.setLevel(logging.INFO)
    yield handler
    registration.log.removeHandler(handler)
    registration.log.setLevel(level)


def test_without_the_portal_only_the_ops_views_load(monkeypatch, logged) -> None:
    monkeypatch.setitem(sys.modules, registration.PORTAL_MODULE, None)  # as if not installed
    apps, views = registration.registration()
    assert [a["url_prefix"] for a in apps] == ["/seqshare-ops"]
    assert [v["destination"] for v in views] == ["dag_run"]  # no dead "Data Sharing" link
    assert "seqshare.web.app is not installed; the Data Sharing portal is not mounted" in logged.text


def _portal_module(create_app) -> types.ModuleType:
    module = types.ModuleType(registration.PORTAL_MODULE)
    module.create_app = create_app
    return module


def test_with_the_portal_it_is_mounted_and_linked_from_airflows_navigation(monkeypatch) -> None:
    portal = FastAPI()
    monkeypatch.setitem(sys.modules, registration.PORTAL_MODULE, _portal_module(lambda: portal))
    apps, views = registration.registration()
    assert {a["url_prefix"]: a["app"] for a in apps}["/seqshare"] is portal
    (link,) = [v for v in views if v["destination"] == "nav"]
    assert (link["name"], link["href"]) == ("Data Sharing", "seqshare/")


@pytest.mark.parametrize("failure", ["import", "start"])
def test_a_broken_portal_is_logged_and_left_out(monkeypatch, logged, failure) -> None:
    def broken() -> FastAPI:
        raise RuntimeError("portal misconfigured")

    if failure == "import":
        monkeypatch.setitem(sys.modules, registration.PORTAL_MODULE, types.ModuleType("empty"))
    else:
        monkeypatch.setitem(sys.modules, registration.PORTAL_MODULE, _portal_module(broken))
    apps, views = registration.registration()
    assert [a["url_prefix"] for a in apps] == ["/seqshare-ops"]
    assert [v["destination"] for v in views] == ["dag_run"]
    assert "the Data Sharing portal" in logged.text and "not mounted" in logged.text
    assert logged.records[-1].levelno == logging.ERROR
