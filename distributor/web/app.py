"""The HTTP app: one factory wiring settings and store into small routers.

Each group of routes lives in its own module (webhooks.py now; subscribe, unsubscribe,
click redirect and the operator API later) and is included here, so a route finds its
dependencies through `distributor.web.deps` rather than through globals.
"""

from __future__ import annotations

import logging
from typing import Callable

from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse

from distributor import monitor
from distributor.ingest.pipeline import IngestReport
from distributor.settings import Settings
from distributor.signups import Signup
from distributor.store import Store
from distributor.web import admin, esp_webhooks, metrics, operator, public, signals, webhooks
from distributor.web.deps import StoreDep

log = logging.getLogger(__name__)


def create_app(
    settings: Settings,
    store: Store,
    *,
    on_ingested: Callable[[IngestReport], None] | None = None,
    on_signup: Callable[[Signup], None] | None = None,
) -> FastAPI:
    """A FastAPI app serving the site's endpoints over `store`.

    `on_ingested(report)` runs after a webhook stored new or updated articles; the
    default posts them to instant Telegram channels in this process. `on_signup(signup)`
    queues a subscribe request's work (store, confirmation email); the default is a
    background thread of this process (see distributor.signups).
    """
    # No docs pages: FastAPI's /docs and /redoc load their scripts from a CDN and would
    # show every route to anyone. The schema itself is for operators (below).
    app = FastAPI(
        title=f"{settings.site.name} distributor",
        version="0.1.0",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    app.state.store = store
    app.state.on_signup = on_signup
    app.state.on_ingested = on_ingested or (lambda report: webhooks.post_to_channels(settings, store, report))

    @app.get("/healthz", responses={503: {"description": "the database or the broker (or, with strict, any part) is down"}})
    def healthz(store: StoreDep, strict: bool = False) -> JSONResponse:
        """Each part's health for load balancers and monitors: 503 when the database or
        the broker is down (what this process needs), or with ?strict=1 when any part is
        (beat not ticking, no worker seen). Details never name hosts or credentials."""
        parts = monitor.component_health(settings, store)
        needed = {"database", "broker"}
        down = [p.name for p in parts if not p.ok and (strict or p.name in needed)]
        if any(p.name == "database" and not p.ok for p in parts):
            log.error("health check: database unreachable")
        body = {
            "ok": not down,
            "components": {p.name: {"ok": p.ok, "detail": p.detail} for p in parts},
        }
        # The old flat field, kept for checks written against it.
        body["database"] = "ok" if body["components"].get("database", {}).get("ok") else "unreachable"
        return JSONResponse(body, status_code=503 if down else 200)

    @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(operator.require_operator)])
    def openapi_schema() -> JSONResponse:
        """The OpenAPI schema of every route, behind the operator's bearer token."""
        return JSONResponse(app.openapi())

    app.include_router(webhooks.router)
    app.include_router(esp_webhooks.router)
    app.include_router(operator.router)
    app.include_router(public.router)
    app.include_router(signals.router)
    app.include_router(metrics.router)
    admin.mount(app)
    return app
