"""Sources: each feed's health as `distributor sources` shows it (last poll, HTTP status,
last error and when, articles new and updated in 24 h, next poll)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from distributor.ingest.health import source_health
from distributor.operators import Session
from distributor.store.models import utcnow
from distributor.web.admin.auth import need
from distributor.web.admin.render import page, twin

router = APIRouter(prefix="/admin")


def _sources(request: Request):  # noqa: ANN202
    return source_health(request.app.state.settings, request.app.state.store, utcnow())


@router.get("/sources")
async def sources_page(request: Request, session: Session = Depends(need("viewer"))) -> Response:
    found = await run_in_threadpool(_sources, request)
    return page(request, "sources.html", session=session, title="Sources", sources=found)


@router.get("/sources.json")
async def sources_json(request: Request, session: Session = Depends(need("viewer"))) -> Response:
    found = await run_in_threadpool(_sources, request)
    return twin({"sources": [s.as_dict() for s in found]})
