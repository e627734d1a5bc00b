"""The seqshare web app: `create_app()` builds it; nothing connects to a database at import time.

Served on its own by `seqshare serve` (uvicorn), or mounted inside Airflow's API server by the plugin in
`plugins/`. Airflow does not authenticate plugin apps, so this app authenticates every request itself
(`seqshare.web.actors`); only `/healthz` answers anonymous callers, and, when the Data Sharing pages are on
(a session key is set), their sign-in page; every other page sends an anonymous caller there.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import BaseModel
from sqlalchemy.orm import Session, sessionmaker
from starlette.exceptions import HTTPException as StarletteHTTPException

from seqshare import config
from seqshare.db.engine import make_engine, make_sessions, transaction
from seqshare.db.revision import HEAD_REVISION, database_revision
from seqshare.errors import DatabaseNotReady, InvalidInput, NotFound, SeqshareError, SharingRefused
from seqshare.services.files import PlanFiles
from seqshare.web import api, files
from seqshare.web.actors import DEFAULT_RESOLVERS, ActorResolver, Unauthenticated, sso_settings
from seqshare.web.session import Sessions, lifetime_hours, secret_key

log = logging.getLogger(__name__)
PUBLIC_PATHS = frozenset({"/healthz"})
"""The only routes answering anonymous callers; a test enumerates the app's routes against this."""
PAGE_PUBLIC_PATHS = frozenset({"/signin"})
"""With the pages on, the sign-in page (GET the form, POST a token) also answers anonymous callers."""


class Database:
    """The application database, opened on first use (not at import, not at `create_app`): a plugin app
    mounted in Airflow gets no lifespan events, and the API server must start even if it is down."""

    def __init__(self, url: str | None) -> None:
        self._url = url
        self._sessions: sessionmaker[Session] | None = None
        self._lock = threading.Lock()

    def sessions(self) -> sessionmaker[Session]:
        with self._lock:
            if self._sessions is None:
                engine = make_engine(self._url or config.database_url())
                current = database_revision(engine)
                if current != HEAD_REVISION:
                    engine.dispose()
                    state = "has no seqshare schema" if current is None else f"is at revision {current}"
                    raise DatabaseNotReady(
                        f"the database {state}, not {HEAD_REVISION}; run `seqshare db upgrade`"
                    )
                self._sessions = make_sessions(engine)
            return self._sessions

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        with transaction(self.sessions()) as session:
            yield session

    def dispose(self) -> None:
        with self._lock:
            if self._sessions is not None:
                engine = self._sessions.kw["bind"]
                engine.dispose()
                self._sessions = None


class Health(BaseModel):
    status: str


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else f"{line[:limit]}…"


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": _one_line(message)}, status_code=status, headers=headers)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = " ".join(str(p) for p in err.get("loc", ()) if p != "body")
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def _install_error_handlers(app: FastAPI) -> None:
    """Every error is JSON `{"detail": "<one line>"}`; hidden and missing projects answer alike (404)."""

    @app.exception_handler(Unauthenticated)
    def unauthenticated(_: Request, exc: Unauthenticated) -> JSONResponse:
        challenge = 'Bearer realm="seqshare"' + (', error="invalid_token"' if exc.bad_credential else "")
        return _error(401, str(exc), {"WWW-Authenticate": challenge})

    def answer_with(status: int) -> Callable[[Request, Exception], JSONResponse]:
        return lambda _, exc: _error(status, str(exc))

    # The services' errors, each to its status (the most specific class wins; any other SeqshareError: 409).
    for error, status in (
        (NotFound, 404),
        (SharingRefused, 403),
        (InvalidInput, 422),
        (DatabaseNotReady, 503),
        (SeqshareError, 409),
    ):
        app.add_exception_handler(error, answer_with(status))

    @app.exception_handler(RequestValidationError)
    def bad_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return _error(500, f"unexpected {type(exc).__name__}; see the server's log")


def create_app(
    *,
    database_url: str | None = None,
    resolvers: Sequence[ActorResolver] = DEFAULT_RESOLVERS,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    secret: str | None = None,
    sso_header: str | None = None,
    sso_proxies: str | Sequence[str] | None = None,
) -> FastAPI:
    """The app. `database_url` defaults to `seqshare.config.database_url()` (read on first request);
    `resolvers` find the actor (see `seqshare.web.actors`); `clock` is "now" for tokens and visibility.

    The Data Sharing pages are served only with a session key (`secret`, else `SEQSHARE_SECRET_KEY`, at
    least 32 characters): without one the app is the API alone. The SSO header (`sso_header`/
    `sso_proxies`, else `SEQSHARE_SSO_HEADER`/`SEQSHARE_SSO_PROXIES`) is off unless named. Bad settings
    raise InvalidInput (one line)."""
    app = FastAPI(
        title="seqshare internal API",
        version="1",
        summary="Projects, pools, samples, runs and files a research group may see.",
        docs_url=None,  # no anonymous documentation: the schema is /api/v1/openapi.json, with a token
        redoc_url=None,
        openapi_url=None,
    )
    app.state.database = Database(database_url)
    app.state.plan_files = PlanFiles()  # frozen plans' pool files, parsed once (per app: one database)
    app.state.resolvers = tuple(resolvers)
    app.state.clock = clock
    app.state.sso_header, app.state.sso_proxies = sso_settings(sso_header, sso_proxies)
    key = secret_key(secret)
    app.state.sessions = Sessions(key, lifetime_hours()) if key else None
    _install_error_handlers(app)

    @app.get("/healthz", response_model=Health, tags=["health"])
    def healthz() -> Health:
        """Liveness, for load balancers: the only anonymous route; it reads nothing."""
        return Health(status="ok")

    app.include_router(api.router)
    app.include_router(files.router)
    if app.state.sessions is not None:
        from seqshare.web import pages  # jinja2 and the templates only when the pages are on

        @app.exception_handler(pages.SignInRequired)
        def sign_in_first(request: Request, _: pages.SignInRequired) -> RedirectResponse:
            return RedirectResponse(str(request.url_for("signin_form")), status_code=303)

        app.include_router(pages.router)
    return app
