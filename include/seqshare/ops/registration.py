"""What the Airflow plugin registers: the ops views app, the Deliveries view, and the portal when present.

Kept here, not in `plugins/`, so the plugin file stays a declaration and this is testable without Airflow's
plugin manager. Nothing here opens a database: the apps open seqshare's on their first request.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

OPS_PREFIX = "/seqshare-ops"  # not one of Airflow's reserved prefixes (/api/v2, /ui, /execution, /auth, ...)
PORTAL_PREFIX = "/seqshare"
PORTAL_MODULE = "seqshare.web.app"

# Relative hrefs (no leading slash), so the links work when Airflow is served under a path behind a proxy.
DELIVERIES_VIEW: dict[str, Any] = {
    "name": "Deliveries",
    "href": f"{OPS_PREFIX.lstrip('/')}/deliveries/{{DAG_ID}}/{{RUN_ID}}",
    "destination": "dag_run",
    "url_route": "seqshare-deliveries",  # shown in Airflow's UI as a tab of the DAG run (an iframe)
}
DATA_SHARING_LINK: dict[str, Any] = {
    "name": "Data Sharing",
    "href": f"{PORTAL_PREFIX.lstrip('/')}/",
    "destination": "nav",  # a plain link: the portal is a site of its own, with its own sign-in
}
_UNIMPORTABLE = "seqshare: %s cannot be imported; the Data Sharing portal is not mounted"


def ops_app() -> dict[str, Any]:
    from seqshare.ops.app import create_app

    return {"app": create_app(), "url_prefix": OPS_PREFIX, "name": "seqshare ops views"}


def portal_app() -> dict[str, Any] | None:
    """The Data Sharing portal (`seqshare.web.app.create_app`) if it is installed, else None, said in the log.

    The portal authenticates its own users (tokens, SSO), not Airflow's. A portal that is installed but
    fails to build is logged with its traceback and left out; the ops views still load.
    """
    try:
        from seqshare.web.app import create_app
    except ModuleNotFoundError as exc:
        if exc.name is not None and PORTAL_MODULE.startswith(exc.name):
            log.info("seqshare: %s is not installed; the Data Sharing portal is not mounted", PORTAL_MODULE)
            return None
        log.exception(_UNIMPORTABLE, PORTAL_MODULE)
        return None
    except Exception:
        log.exception(_UNIMPORTABLE, PORTAL_MODULE)
        return None
    try:
        app = create_app()
    except Exception:
        log.exception("seqshare: the Data Sharing portal failed to start; it is not mounted")
        return None
    log.info("seqshare: the Data Sharing portal is mounted at %s/", PORTAL_PREFIX)
    return {"app": app, "url_prefix": PORTAL_PREFIX, "name": "seqshare Data Sharing portal"}


def registration() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(fastapi_apps, external_views) for the plugin: the nav link only when the portal is mounted."""
    apps = [ops_app()]
    views = [dict(DELIVERIES_VIEW)]
    portal = portal_app()
    if portal is not None:
        apps.append(portal)
        views.append(dict(DATA_SHARING_LINK))
    return apps, views
