"""The Data Sharing pages: server-rendered HTML (no JavaScript), thin routes over the services.

Who is calling is the same actor as the API's (`seqshare.web.actors`); an anonymous caller is sent to the
sign-in page. Whom a user may share with and what a change does are `seqshare.services.sharing`'s rules;
what the page says about them is read by `seqshare.services.sharing_page`. Every POST carries the
session's CSRF token (`seqshare.web.session`); a change is POST-redirect-GET to its confirmation.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.templating import Jinja2Templates

from seqshare.errors import InvalidInput, NotFound, SeqshareError, SharingRefused, StaleChange
from seqshare.services import sharing, sharing_page, tokens
from seqshare.web.actors import Actor, Unauthenticated, resolve_actor
from seqshare.web.session import CSRF_FIELD, PageSession, Sessions

VIA = "page"  # the audit trail's channel for changes made here
templates = Jinja2Templates(
    env=Environment(
        loader=FileSystemLoader(Path(__file__).with_name("templates")),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )
)


class SignInRequired(Exception):
    """An anonymous page request: answered by a redirect to the sign-in page (the API answers 401)."""


def _sessions(request: Request) -> Sessions:
    return request.app.state.sessions


def page_actor(request: Request) -> Actor:
    try:
        return resolve_actor(request)
    except Unauthenticated:
        raise SignInRequired from None


Who = Annotated[Actor, Depends(page_actor)]
router = APIRouter(include_in_schema=False)


def _render(
    request: Request, name: str, context: dict[str, Any], status: int = 200, actor: Actor | None = None
) -> Response:
    page = _sessions(request).load(request)
    base = {
        "csrf_field": CSRF_FIELD,
        "csrf": page.csrf,
        "actor": actor,
        "link": lambda r, p: _link(request, r, p),
    }
    response = templates.TemplateResponse(request, name, {**base, **context}, status)
    if page.changed:
        _sessions(request).save(request, response, page)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    return response


def refusal(request: Request, status: int, message: str, actor: Actor | None = None) -> Response:
    return _render(request, "refused.html", {"status": status, "message": message}, status, actor)


def _csrf_refused(request: Request, presented: str | None, actor: Actor | None) -> Response | None:
    if Sessions.csrf_ok(_sessions(request).load(request), presented):
        return None
    return refusal(
        request,
        403,
        "This form has expired or did not come from this site (its security token is missing or wrong). "
        "Nothing was changed. Open the page again and resubmit.",
        actor,
    )


def _link(request: Request, route: str, project: str) -> str:
    """A project's URL, its name percent-encoded whole (a name may hold `/`, `?`, `#` or a space)."""
    return str(request.url_for(route, project=quote(project, safe="")))


def _redirect(request: Request, name: str, project: str | None = None) -> RedirectResponse:
    url = _link(request, name, project) if project is not None else str(request.url_for(name))
    return RedirectResponse(url, status_code=303)


def _now(request: Request) -> datetime:
    return request.state.now


@router.get("/signin", name="signin_form", response_class=HTMLResponse)
def signin_form(request: Request) -> Response:
    return _render(request, "signin.html", {"error": None})


@router.post("/signin", name="signin", response_class=HTMLResponse)
def signin(
    request: Request,
    token: Annotated[str, Form(max_length=200)] = "",
    csrf_token: Annotated[str | None, Form(max_length=200)] = None,
) -> Response:
    refused = _csrf_refused(request, csrf_token, None)
    if refused:
        return refused
    state = request.app.state
    with state.database.transaction() as session:
        bearer = tokens.authenticate(session, token.strip(), now=state.clock())
    if bearer is None:
        error = "That token is not valid (unknown, revoked or expired). Ask the facility for a new one."
        return _render(request, "signin.html", {"error": error}, 401)
    page = PageSession(csrf=secrets.token_urlsafe(32), token_id=bearer.token_id)  # a new CSRF value
    response = _redirect(request, "page_projects")
    _sessions(request).save(request, response, page)
    return response


@router.post("/signout", name="signout")
def signout(request: Request, actor: Who, csrf_token: Annotated[str | None, Form(max_length=200)] = None):
    refused = _csrf_refused(request, csrf_token, actor)
    if refused:
        return refused
    response = _redirect(request, "signin_form")
    _sessions(request).save(request, response, PageSession(csrf=secrets.token_urlsafe(32)))
    return response


@router.get("/", name="home")
def home(request: Request, actor: Who) -> Response:
    return _redirect(request, "page_projects")


@router.get("/projects", name="page_projects", response_class=HTMLResponse)
def projects(request: Request, actor: Who) -> Response:
    with request.app.state.database.transaction() as session:
        listed = sharing_page.group_projects(session, actor.username)
    return _render(request, "projects.html", {"projects": listed}, actor=actor)


@router.get("/projects/{project:path}", name="project_page", response_class=HTMLResponse)
def project_page(request: Request, actor: Who, project: str) -> Response:
    try:
        with request.app.state.database.transaction() as session:
            page = sharing_page.sharing_page(session, actor.username, project)
    except NotFound as exc:
        return refusal(request, 404, str(exc), actor)
    except SeqshareError as exc:
        return refusal(request, 400, str(exc), actor)
    return _render(request, "project.html", {"page": page}, actor=actor)


@router.post("/projects/{project:path}", name="set_sharing", response_class=HTMLResponse)
def set_sharing(
    request: Request,
    actor: Who,
    project: str,
    action: Annotated[str, Form(max_length=20)] = "",
    groups: Annotated[list[str] | None, Form()] = None,
    shown: Annotated[list[str] | None, Form()] = None,
    csrf_token: Annotated[str | None, Form(max_length=200)] = None,
) -> Response:
    refused = _csrf_refused(request, csrf_token, actor)
    if refused:
        return refused
    if action not in ("set", "clear"):
        return refusal(request, 400, "Choose Set Sharing or Do Not Share. Nothing was changed.", actor)
    database = request.app.state.database
    try:
        with database.transaction() as session:
            before = sharing_page.current_groups(session, actor.username, project)
            offered = {g.name for g in sharing.shareable_groups(session, actor.username, project)}
    except NotFound as exc:
        return refusal(request, 404, str(exc), actor)
    except SeqshareError as exc:
        return refusal(request, 400, str(exc), actor)
    if sorted(shown or []) != sorted(before):
        return refusal(
            request,
            409,
            f"The sharing of {project} changed since this form was shown (it is now shared with "
            f"{', '.join(before) or 'no group'}). Nothing was changed: look at the page again and resubmit.",
            actor,
        )
    wanted = [] if action == "clear" else list(dict.fromkeys(groups or []))
    not_allowed = [g for g in wanted if g not in offered and g not in before]
    if not_allowed:
        return refusal(
            request,
            403,
            f"You may not share {project} with {', '.join(not_allowed)}. Nothing was changed.",
            actor,
        )
    try:
        change = sharing.set_sharing_now(
            database.sessions(),
            project=project,
            groups=wanted,
            actor=actor.username,
            clock=request.app.state.clock,
            via=VIA,
            expected_before=shown or [],  # checked again under the project's lock: closes the race
        )
    except NotFound as exc:
        return refusal(request, 404, str(exc), actor)
    except SharingRefused as exc:
        return refusal(request, 403, f"{exc}. Nothing was changed.", actor)
    except StaleChange as exc:
        return refusal(request, 409, f"{str(exc)[0].upper()}{str(exc)[1:]}: look at the page again.", actor)
    except (InvalidInput, SeqshareError) as exc:
        return refusal(request, 409, f"{exc}. Nothing was changed.", actor)
    page = _sessions(request).load(request)
    page.flash = {"project": change.project, "granted": list(change.granted), "revoked": list(change.revoked)}
    response = _redirect(request, "confirmation", project=change.project)
    _sessions(request).save(request, response, page)
    return response


@router.get("/shared/{project:path}", name="confirmation", response_class=HTMLResponse)
def confirmation(request: Request, actor: Who, project: str) -> Response:
    try:
        with request.app.state.database.transaction() as session:
            page = sharing_page.sharing_page(session, actor.username, project)
    except NotFound as exc:
        return refusal(request, 404, str(exc), actor)
    session_page = _sessions(request).load(request)
    flash = (
        session_page.flash if session_page.flash and session_page.flash.get("project") == project else None
    )
    response = _render(request, "confirmation.html", {"page": page, "change": flash}, actor=actor)
    if flash is not None:  # shown once
        session_page.flash = None
        _sessions(request).save(request, response, session_page)
    return response
