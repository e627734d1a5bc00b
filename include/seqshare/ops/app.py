"""The ops views app: the Deliveries view of a `distribute_run` DAG run, behind Airflow's own sign-in.

Airflow mounts plugin apps without authentication, so this app asks for it itself: every route depends on
Airflow's `get_user` (a bearer token, or the UI's `_token` cookie, which a same-origin iframe sends), and
the Deliveries view also on Airflow's authorization to read that DAG's runs (`requires_access_dag`).

The DAG run is read from Airflow's metadata database with Airflow's own session (its conf names the run
folder); everything shown comes from seqshare's database (`SEQSHARE_DATABASE_URL`) through
`seqshare.services.deliveries`.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Annotated, Any

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.common.db.common import SessionDep
from airflow.api_fastapi.core_api.security import get_user, requires_access_dag
from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from seqshare.services import deliveries
from seqshare.services.deliveries import NOT_DELIVERED

DAG_ID = "distribute_run"
TEMPLATES = Path(__file__).resolve().parent / "templates"
# Who received what is not for caches; no script runs on these pages (defence in depth behind escaping); only
# Airflow's own pages (same origin) may frame them.
HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


@dataclass(frozen=True)
class DagRunRef:
    """What the view needs of an Airflow DAG run."""

    dag_id: str
    run_id: str
    conf: Mapping[str, Any]


def airflow_dag_run(dag_id: str, run_id: str, session: SessionDep) -> DagRunRef | None:
    """The DAG run from Airflow's metadata database (Airflow's session, as its own routes do), or None."""
    from airflow.models.dagrun import DagRun

    row = session.execute(
        select(DagRun.conf).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)
    ).one_or_none()
    if row is None:
        return None
    return DagRunRef(dag_id, run_id, row.conf if isinstance(row.conf, dict) else {})


class _AppDatabase:
    """seqshare's database, opened on the first request (never when the plugin is imported)."""

    def __init__(self, sessions: sessionmaker[Session] | None) -> None:
        self._sessions = sessions
        self._lock = threading.Lock()

    def __call__(self) -> sessionmaker[Session]:
        with self._lock:
            if self._sessions is None:
                from seqshare.db.engine import make_engine, make_sessions

                self._sessions = make_sessions(make_engine())
            return self._sessions


def app_sessions(request: Request) -> sessionmaker[Session]:
    """seqshare's sessions of the app serving the request."""
    return request.app.state.seqshare_database()


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
    env.filters["when"] = lambda d: f"{d.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC" if d else "—"
    env.filters["bytes"] = lambda n: f"{n:,}"
    env.globals["NOT_DELIVERED"] = NOT_DELIVERED
    return env


def create_app(*, sessions: sessionmaker[Session] | None = None) -> FastAPI:
    """The ops app; `sessions` for seqshare's database (default: `SEQSHARE_DATABASE_URL`, opened lazily)."""
    app = FastAPI(
        title="seqshare ops views",
        dependencies=[Depends(get_user)],  # no route answers anyone Airflow has not signed in
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.seqshare_database = _AppDatabase(sessions)
    templates = _environment()

    def page(name: str, status: int = 200, **values: Any) -> HTMLResponse:
        return HTMLResponse(
            templates.get_template(name).render(**values), status_code=status, headers=HEADERS
        )

    @app.get(
        "/deliveries/{dag_id}/{run_id}",
        response_class=HTMLResponse,
        dependencies=[Depends(requires_access_dag("GET", DagAccessEntity.RUN))],
    )
    def deliveries_view(
        dag_id: str,
        run_id: str,
        dag_run: Annotated[DagRunRef | None, Depends(airflow_dag_run)],
        sessions: Annotated[sessionmaker[Session], Depends(app_sessions)],
    ) -> HTMLResponse:
        """The plan and the ledger of the seqshare run behind a `distribute_run` DAG run."""
        if dag_id != DAG_ID or dag_run is None:
            return page("not_found.html", 404, dag_id=dag_id, run_id=run_id, delivering_dag=DAG_ID)
        with sessions.begin() as s:
            seqshare_run = deliveries.run_of_dag_run(s, dag_run.run_id, dag_run.conf)
            view = deliveries.run_deliveries(s, seqshare_run) if seqshare_run else None
        return page("deliveries.html", dag_run=dag_run, run=view, run_folder=dag_run.conf.get("run_folder"))

    return app
