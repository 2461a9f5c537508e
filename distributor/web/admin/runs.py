"""Runs: every issue sent, by edition; one issue's progress, reasons, posts and clicks."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from distributor import monitor, reports
from distributor.operators import Session
from distributor.web.admin.auth import need
from distributor.web.admin.render import page, twin

router = APIRouter(prefix="/admin")
PAGE_SIZE = 50
# Ids are INTEGER columns: anything larger is simply not a run (404, not a database error).
MAX_ID = 2**31 - 1


def _chat_links(settings) -> dict[str, str]:  # noqa: ANN001
    links = {}
    for name, channel in settings.file.channels.items():
        if channel.chat_id.startswith("@"):
            links[name] = f"https://t.me/{channel.chat_id[1:]}"
    return links


def _list(request: Request, edition: str | None, page_number: int) -> dict:
    store = request.app.state.store
    runs, total = reports.list_runs(store, edition=edition, page=page_number, size=PAGE_SIZE)
    progress = monitor.runs_progress(store, [r.id for r in runs])
    return {
        "runs": runs,
        "progress": progress,
        "total": total,
        "page": page_number,
        "pages": max(1, -(-total // PAGE_SIZE)),
        "edition": edition or "",
        "editions": sorted(request.app.state.settings.editions),
    }


@router.get("/runs")
async def runs_page(
    request: Request,
    edition: str | None = Query(None, max_length=64),
    page_number: int = Query(1, alias="page", ge=1, le=100_000),
    session: Session = Depends(need("viewer")),
) -> Response:
    data = await run_in_threadpool(_list, request, edition, page_number)
    return page(request, "runs.html", session=session, title="Runs", **data)


@router.get("/runs.json")
async def runs_json(
    request: Request,
    edition: str | None = Query(None, max_length=64),
    page_number: int = Query(1, alias="page", ge=1, le=100_000),
    session: Session = Depends(need("viewer")),
) -> Response:
    data = await run_in_threadpool(_list, request, edition, page_number)
    data["progress"] = {str(k): asdict(v) for k, v in data["progress"].items() if v}
    return twin(data)


def _run(request: Request, run_id: int) -> dict:
    settings, store = request.app.state.settings, request.app.state.store
    run = reports.get_run(store, run_id)
    if run is None:
        raise HTTPException(404, f"no run #{run_id}")
    progress = monitor.run_progress(store, run_id)
    return {
        "run": run,
        "progress": progress,
        "timeline": reports.timeline(store, run_id),
        "reasons": reports.reasons(store, run_id),
        "bounces": reports.bounces(store, run_id),
        "posts": reports.telegram_posts(store, run_id, _chat_links(settings)),
        "clicks": reports.clicks(store, run_id),
    }


@router.get("/runs/{run_id}.json")
async def run_json(request: Request, run_id: int, session: Session = Depends(need("viewer"))) -> Response:
    if not 0 < run_id <= MAX_ID:
        raise HTTPException(404, f"no run #{run_id}")
    data = await run_in_threadpool(_run, request, run_id)
    progress = data["progress"]
    data["progress"] = {**asdict(progress), "percent": progress.percent, "done": progress.done}
    return twin(data)


@router.get("/runs/{run_id}")
async def run_page(request: Request, run_id: int, session: Session = Depends(need("viewer"))) -> Response:
    if not 0 < run_id <= MAX_ID:
        raise HTTPException(404, f"no run #{run_id}")
    data = await run_in_threadpool(_run, request, run_id)
    return page(request, "run.html", session=session, title=f"Run #{run_id}", **data)
