"""Schedules: every edition's timing, changed with its next slots shown before saving;
pause, resume, reset; run-now behind a confirmation that says what it will send."""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from distributor import engine, monitor, schedules
from distributor.cron import cron_from_times, validate_cron
from distributor.editions import build_edition
from distributor.operators import Session
from distributor.web.admin.auth import form_of, need
from distributor.web.admin.render import page, twin

router = APIRouter(prefix="/admin")
PREVIEW_SLOTS = 5


def _context(request: Request):  # noqa: ANN202
    return request.app.state.settings, request.app.state.store


def _edition_or_404(request: Request, edition: str) -> str:
    settings, _ = _context(request)
    if edition not in settings.editions:
        raise HTTPException(404, f"unknown edition {edition!r}")
    return edition


def _listing(request: Request) -> list[dict]:
    settings, store = _context(request)
    return monitor.upcoming(settings, store, count=3)


@router.get("/schedules")
async def schedules_page(request: Request, session: Session = Depends(need("viewer"))) -> Response:
    items = await run_in_threadpool(_listing, request)
    return page(request, "schedules.html", session=session, title="Schedules", items=items, proposal=None)


@router.get("/schedules.json")
async def schedules_json(request: Request, session: Session = Depends(need("viewer"))) -> Response:
    return twin({"schedules": await run_in_threadpool(_listing, request)})


def proposed_cron(form) -> str:  # noqa: ANN001 - a FormData
    """The cron an edit form asks for: its cron field, else its times and days."""
    cron = str(form.get("cron") or "").strip()
    if cron:
        return validate_cron(cron)
    times = [t for t in str(form.get("times") or "").replace(";", ",").split(",") if t.strip()]
    days = [d for d in str(form.get("days") or "").replace(";", ",").split(",") if d.strip()]
    return cron_from_times(times, days)


@router.post("/schedules/{edition}/check")
async def check_schedule(edition: str, request: Request, session: Session = Depends(need("editor"))) -> Response:
    """Step one of an edit: the next slots of the proposed schedule, and a Save button."""
    _edition_or_404(request, edition)
    form = await form_of(request, session)
    settings, _ = _context(request)
    items = await run_in_threadpool(_listing, request)
    try:
        cron = proposed_cron(form)
    except ValueError as exc:
        return page(request, "schedules.html", status=422, session=session, title="Schedules", items=items,
                    proposal={"edition": edition, "error": str(exc), "cron": str(form.get("cron") or ""), "slots": []})
    tz = ZoneInfo(settings.site.timezone)
    slots = [s.astimezone(tz) for s in schedules.next_slots(cron, tz, datetime.now(timezone.utc), PREVIEW_SLOTS)]
    return page(request, "schedules.html", session=session, title="Schedules", items=items,
                proposal={"edition": edition, "error": "", "cron": cron, "slots": slots})


@router.post("/schedules/{edition}/save")
async def save_schedule(edition: str, request: Request, session: Session = Depends(need("editor"))) -> Response:
    _edition_or_404(request, edition)
    form = await form_of(request, session)
    settings, store = _context(request)
    try:
        cron = validate_cron(str(form.get("cron") or ""))
        await run_in_threadpool(schedules.set_cron, settings, store, edition, cron)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    return RedirectResponse(f"/admin/schedules#{edition}", status_code=303)


def _run_now_plan(request: Request, edition: str) -> dict:
    settings, store = _context(request)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    issue = build_edition(settings, store, edition, at=now)
    return {
        "edition": edition,
        "label": settings.editions[edition].label,
        "articles": issue.count,
        "recipients": monitor.audience(settings, store, edition),
        "channels": sorted(name for name, c in settings.channels.items() if edition in c.digests),
    }


@router.get("/schedules/{edition}/run-now")
async def run_now_confirm(edition: str, request: Request, session: Session = Depends(need("editor"))) -> Response:
    _edition_or_404(request, edition)
    plan = await run_in_threadpool(_run_now_plan, request, edition)
    return page(request, "run_now.html", session=session, title=f"Run {edition} now", plan=plan)


@router.post("/schedules/{edition}/run-now")
async def run_now(edition: str, request: Request, session: Session = Depends(need("editor"))) -> Response:
    _edition_or_404(request, edition)
    form = await form_of(request, session)
    if form.get("confirm") != "yes":
        return RedirectResponse(f"/admin/schedules/{edition}/run-now", status_code=303)
    settings, store = _context(request)
    run, _ = await run_in_threadpool(engine.run_now, settings, store, edition, datetime.now(timezone.utc))
    # The scheduler's next tick builds and sends it, as with the API and the CLI.
    return RedirectResponse(f"/admin/runs/{run.id}", status_code=303)


# Last: its {action} would otherwise catch the run-now POST above.
_ACTIONS = {"pause": schedules.pause, "resume": schedules.resume, "reset": schedules.reset}


@router.post("/schedules/{edition}/{action}")
async def schedule_action(edition: str, action: str, request: Request, session: Session = Depends(need("editor"))) -> Response:
    if action not in _ACTIONS:
        raise HTTPException(404, f"no action {action!r}")
    _edition_or_404(request, edition)
    await form_of(request, session)
    settings, store = _context(request)
    await run_in_threadpool(_ACTIONS[action], settings, store, edition)
    return RedirectResponse(f"/admin/schedules#{edition}", status_code=303)
