"""Trending: the ranking with each article's reasons (what `distributor trending` prints),
and the editors' pins: pin an article by URL or key, unpin it."""

from __future__ import annotations

from datetime import datetime, timezone

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from distributor import trending as signals
from distributor.operators import Session
from distributor.store.articles import find_article, pin, unpin
from distributor.web.admin.auth import form_of, need
from distributor.web.admin.render import page, twin

router = APIRouter(prefix="/admin")
MAX_TARGET = 2048  # an article URL or key, as stored
# What an action says on the page afterwards: fixed texts, never echoed input.
DONE = {
    "pinned": "Pinned: it leads every Trending group.",
    "pinned-waiting": "Pinned. No stored article has that URL or key yet; the pin applies when it arrives.",
    "already": "It was already pinned.",
    "unpinned": "Unpinned.",
    "not-pinned": "It was not pinned (pins from the config file are changed there).",
    "empty": "Give an article URL or key to pin.",
}


def _ranking(request: Request) -> dict:
    """The same data as `distributor trending --json`."""
    settings, store = request.app.state.settings, request.app.state.store
    moment = datetime.now(timezone.utc).replace(microsecond=0)
    scorer = signals.scorer_for(settings, store)
    ranked = signals.ranking(settings, store, at=moment, scorer=scorer)
    config = settings.file.trending
    return {
        "at": moment,
        "scores_in": scorer.name,
        "half_life_hours": config.half_life_hours,
        "min_score": config.min_score,
        "ranking": [line.as_dict() for line in ranked],
        "pins": [{"target": target, "origin": origin} for target, origin in signals.pins_in_force(settings, store)],
    }


@router.get("/trending")
async def trending_page(request: Request, done: str = "", session: Session = Depends(need("viewer"))) -> Response:
    data = await run_in_threadpool(_ranking, request)
    return page(request, "trending.html", session=session, title="Trending", notice=DONE.get(done, ""), **data)


@router.get("/trending.json")
async def trending_json(request: Request, session: Session = Depends(need("viewer"))) -> Response:
    return twin(await run_in_threadpool(_ranking, request))


def _pin(store, raw: str) -> str:  # noqa: ANN001
    target = signals.pin_target(raw)
    if not target:
        return "empty"
    if not pin(store, target):
        return "already"
    return "pinned" if find_article(store, target) is not None else "pinned-waiting"


def _unpin(store, raw: str) -> str:  # noqa: ANN001
    # Pins made before URLs were kept canonical are found as typed, as in the CLI.
    return "unpinned" if unpin(store, signals.pin_target(raw)) or unpin(store, raw.strip()) else "not-pinned"


@router.post("/trending/pin")
async def pin_article(request: Request, session: Session = Depends(need("editor"))) -> Response:
    form = await form_of(request, session)
    done = await run_in_threadpool(_pin, request.app.state.store, str(form.get("target") or "")[:MAX_TARGET])
    return RedirectResponse(f"/admin/trending?done={done}", status_code=303)


@router.post("/trending/unpin")
async def unpin_article(request: Request, session: Session = Depends(need("editor"))) -> Response:
    form = await form_of(request, session)
    done = await run_in_threadpool(_unpin, request.app.state.store, str(form.get("target") or "")[:MAX_TARGET])
    return RedirectResponse(f"/admin/trending?done={done}", status_code=303)
