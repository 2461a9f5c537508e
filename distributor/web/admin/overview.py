"""The console's front page: is everything working, what is being sent, what comes next."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from distributor import monitor
from distributor.operators import Session
from distributor.store.models import utcnow
from distributor.web.admin.auth import need
from distributor.web.admin.render import page, twin

router = APIRouter(prefix="/admin")


def _progress_json(progress: monitor.RunProgress) -> dict:
    return {**asdict(progress), "percent": progress.percent, "done": progress.done}


def overview_data(request: Request) -> dict:
    settings, store = request.app.state.settings, request.app.state.store
    now = utcnow()
    return {
        "health": monitor.component_health(settings, store, now),
        "runs": monitor.runs_in_progress(store, now),
        "editions": monitor.upcoming(settings, store, now, count=1),
        "failing_sources": monitor.failing_sources(store),
        "paused_channels": monitor.paused_channels(store),
        "now": now,
    }


@router.get("")
@router.get("/")
async def overview(request: Request, session: Session = Depends(need("viewer"))) -> Response:
    data = await run_in_threadpool(overview_data, request)
    return page(request, "overview.html", session=session, title="Overview", **data)


@router.get(".json")
@router.get("/overview.json")
async def overview_json(request: Request, session: Session = Depends(need("viewer"))) -> Response:
    data = await run_in_threadpool(overview_data, request)
    data["runs"] = [_progress_json(p) for p in data["runs"]]
    return twin(data)
