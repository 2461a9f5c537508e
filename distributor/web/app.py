"""The HTTP app: one factory wiring settings and store into small routers.

Each group of routes lives in its own module (webhooks.py now; subscribe, unsubscribe,
click redirect and the operator API later) and is included here, so a route finds its
dependencies through `distributor.web.deps` rather than through globals.
"""

from __future__ import annotations

import logging
from typing import Callable

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import text

from distributor.ingest.pipeline import IngestReport
from distributor.settings import Settings
from distributor.signups import Signup
from distributor.store import Store
from distributor.web import operator, public, signals, webhooks
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
    app = FastAPI(title=f"{settings.site.name} distributor", version="0.1.0")
    app.state.settings = settings
    app.state.store = store
    app.state.on_signup = on_signup
    app.state.on_ingested = on_ingested or (lambda report: webhooks.post_to_channels(settings, store, report))

    @app.get("/healthz")
    def healthz(store: StoreDep) -> JSONResponse:
        """Liveness and database reachability, for load balancers and compose health checks."""
        try:
            with store.session() as session:
                session.execute(text("SELECT 1"))
        except Exception as exc:  # noqa: BLE001 - any failure means "not healthy"
            # The exception text may name the database host; only its type goes out.
            log.error("health check: database unreachable (%s)", type(exc).__name__)
            return JSONResponse({"ok": False, "database": "unreachable"}, status_code=503)
        return JSONResponse({"ok": True, "database": "ok"})

    app.include_router(webhooks.router)
    app.include_router(operator.router)
    app.include_router(public.router)
    app.include_router(signals.router)
    return app
