"""Subscribers: search and pages of the list, one reader's preferences, state and last
deliveries; for admins, unsubscribe, mark bounced and delete, CSV import with a progress
bar and a per-line report, and CSV export. Everything goes through the same domain
functions as `distributor subscribers ...`."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from distributor import subscriber_list, subscribers
from distributor.operators import Session
from distributor.web.admin.auth import form_of, need
from distributor.web.admin.jobs import Job, Jobs, progress_of
from distributor.web.admin.render import page, twin

router = APIRouter(prefix="/admin")
MAX_ID = 2**31 - 1  # INTEGER ids: anything larger is no subscriber (404, not a database error)
# An upload of at most this many lines is imported before the answer, which then shows
# its report at once; a larger one answers at once with the job's progress page.
SMALL_IMPORT_LINES = 200
# What a finished action says on the subscriber's page: fixed texts, never echoed input.
DONE = {
    "unsubscribed": "Unsubscribed.",
    "reinstated": "Reinstated: the address gets mail again.",
    "bounced": "Marked as bounced: no more mail goes to this address.",
    "unchanged": "Nothing changed: the subscriber was not in a state this action applies to.",
}


def _context(request: Request):  # noqa: ANN202
    return request.app.state.settings, request.app.state.store


def _jobs(request: Request) -> Jobs:
    state = request.app.state
    if getattr(state, "admin_jobs", None) is None:
        state.admin_jobs = Jobs()
    return state.admin_jobs


# --- the list ------------------------------------------------------------------------------


def _search(request: Request, q: str, status: str, section: str, page_number: int) -> dict:
    settings, store = _context(request)
    if status and status not in subscribers.STATUSES:
        raise HTTPException(422, f"status: {status!r} is not one of {', '.join(subscribers.STATUSES)}")
    known = [s.slug for s in settings.sections]
    if section and section not in known:
        raise HTTPException(422, f"section: {section!r} is not one of {', '.join(known)}")
    found = subscriber_list.search(store, address=q, status=status or None, section=section or None, page=page_number)
    return {
        "subscribers": [s.as_dict() for s in found.subscribers],
        "total": found.total,
        "page": found.page,
        "pages": found.pages,
        "filters": {"q": q, "status": status, "section": section},
        "statuses": list(subscribers.STATUSES),
        "sections": [(s.slug, s.label) for s in settings.sections],
        "counts": subscribers.counts(store),
    }


def _filters(
    q: str = Query("", max_length=254),
    status: str = Query("", max_length=16),
    section: str = Query("", max_length=64),
    page_number: int = Query(1, alias="page", ge=1, le=1_000_000),
) -> tuple[str, str, str, int]:
    return q, status, section, page_number


@router.get("/subscribers")
async def list_page(request: Request, f=Depends(_filters), session: Session = Depends(need("viewer"))) -> Response:  # noqa: ANN001, B008
    data = await run_in_threadpool(_search, request, *f)
    notice = "Deleted, with its delivery records." if request.query_params.get("deleted") == "1" else ""
    return page(request, "subscribers.html", session=session, title="Subscribers", notice=notice, **data)


@router.get("/subscribers.json")
async def list_json(request: Request, f=Depends(_filters), session: Session = Depends(need("viewer"))) -> Response:  # noqa: ANN001, B008
    return twin(await run_in_threadpool(_search, request, *f))


# --- export and import (admin) -------------------------------------------------------------


@router.get("/subscribers/export.csv")
async def export(request: Request, status: str = Query("", max_length=16), session: Session = Depends(need("admin"))) -> Response:
    if status and status not in subscribers.STATUSES:
        raise HTTPException(422, f"status: {status!r} is not one of {', '.join(subscribers.STATUSES)}")
    _, store = _context(request)
    name = f"subscribers-{status or 'all'}.csv"
    # A sync generator: Starlette reads it in its thread pool, a batch of rows at a time.
    return StreamingResponse(
        subscribers.export_rows(store, status=status or None),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
    )


@router.get("/subscribers/import")
async def import_form(request: Request, session: Session = Depends(need("admin"))) -> Response:
    return page(request, "subscribers_import.html", session=session, title="Import subscribers", error="",
                columns=subscribers.IMPORT_COLUMNS)


def _report(job: Job) -> dict | None:
    report = job.result
    if report is None:
        return None
    return {
        "added": len(report.added),
        "skipped": [{"line": line, "email": email, "reason": why} for line, email, why in report.skipped],
        "errors": [{"line": line, "reason": why} for line, why in report.errors],
        "confirmations_sent": report.confirmations,
        "confirmation_failures": [{"email": e, "reply": r} for e, r in report.confirmation_failures],
        "fatal": report.fatal,
        "summary": report.summary(),
    }


@router.post("/subscribers/import")
async def import_upload(request: Request, session: Session = Depends(need("admin"))) -> Response:
    form = await form_of(request, session)
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        return page(request, "subscribers_import.html", status=422, session=session, title="Import subscribers",
                    error="Choose a CSV file to import.", columns=subscribers.IMPORT_COLUMNS)
    try:
        text = subscribers.decode_upload(await upload.read(), upload.filename[:120])
    except ValueError as exc:
        return page(request, "subscribers_import.html", status=422, session=session, title="Import subscribers",
                    error=str(exc), columns=subscribers.IMPORT_COLUMNS)
    confirmed = form.get("confirmed") == "yes"
    settings, store = _context(request)

    def work(job: Job) -> subscribers.ImportReport:
        return subscribers.import_text(settings, store, text, confirmed=confirmed, progress=progress_of(job))

    title = f"{upload.filename[:120]} ({'confirmed' if confirmed else 'pending, confirmation emails'})"
    job, thread = _jobs(request).start("import", session.operator.name, title, work)
    if text.count("\n") <= SMALL_IMPORT_LINES:
        await run_in_threadpool(thread.join)
    return RedirectResponse(f"/admin/subscribers/import/{job.id}", status_code=303)


def _job_or_404(request: Request, job_id: str) -> Job:
    job = _jobs(request).get(job_id)
    if job is None or job.kind != "import":
        raise HTTPException(404, "no such import (jobs are kept by the web process that ran them, until it restarts)")
    return job


@router.get("/subscribers/import/{job_id}.json")
async def import_job_json(request: Request, job_id: str, session: Session = Depends(need("admin"))) -> Response:
    job = _job_or_404(request, job_id)
    return twin({"job": job.as_dict(), "report": _report(job)})


@router.get("/subscribers/import/{job_id}")
async def import_job_page(request: Request, job_id: str, session: Session = Depends(need("admin"))) -> Response:
    job = _job_or_404(request, job_id)
    return page(request, "subscribers_job.html", session=session, title="Import", job=job.as_dict(), report=_report(job))


# --- one subscriber ------------------------------------------------------------------------


def _one(request: Request, subscriber_id: int) -> dict:
    settings, store = _context(request)
    found = subscribers.get(store, subscriber_id) if 0 < subscriber_id <= MAX_ID else None
    if found is None:
        raise HTTPException(404, f"no subscriber #{subscriber_id}")
    from distributor.inbound.events import events_for

    history = [{"event": "created", "at": found.created_at, "detail": f"source: {found.source or 'unknown'}"}]
    if found.confirmed_at:
        history.append({"event": "confirmed", "at": found.confirmed_at, "detail": ""})
    # Every change since events are kept (bounces, complaints, unsubscribes, reinstatements),
    # with its source and evidence; the row's own times cover what came before.
    for event in events_for(store, subscriber_id):
        evidence = ", ".join(f"{k}: {v}" for k, v in sorted(event.detail.items()) if v not in (None, ""))
        where = f"run #{event.run_id}" if event.run_id else ""
        history.append({"event": f"{event.kind} ({event.source})", "at": event.at, "detail": "; ".join(x for x in (where, evidence) if x)})
    history.sort(key=lambda h: h["at"])
    return {
        "subscriber": found.as_dict(),
        "editions_resolved": list(found.wanted_editions(settings)),
        "history": history,
        "history_note": "Created and confirmed from the subscriber's row; every later change is an event with its source and evidence.",
        "reinstatable": found.status in ("bounced", "complained"),
        "deliveries": [asdict(d) for d in subscriber_list.deliveries_of(store, subscriber_id)],
    }


@router.get("/subscribers/{subscriber_id}.json")
async def subscriber_json(request: Request, subscriber_id: int, session: Session = Depends(need("viewer"))) -> Response:
    return twin(await run_in_threadpool(_one, request, subscriber_id))


@router.get("/subscribers/{subscriber_id}")
async def subscriber_page(request: Request, subscriber_id: int, done: str = "", session: Session = Depends(need("viewer"))) -> Response:
    data = await run_in_threadpool(_one, request, subscriber_id)
    return page(request, "subscriber.html", session=session, title=data["subscriber"]["email"],
                notice=DONE.get(done, ""), **data)


def _act(request: Request, subscriber_id: int, action: str, confirm: bool, operator: str) -> str:
    """Run an action; the redirect target."""
    _, store = _context(request)
    found = subscribers.get(store, subscriber_id) if 0 < subscriber_id <= MAX_ID else None
    if found is None:
        raise HTTPException(404, f"no subscriber #{subscriber_id}")
    if action == "unsubscribe":
        _, changed = subscribers.unsubscribe(store, subscriber_id, source="operator", detail={"via": "console", "operator": operator})
        return f"/admin/subscribers/{subscriber_id}?done={'unsubscribed' if changed else 'unchanged'}"
    if action == "bounce":
        changed = subscribers.mark_bounced(store, subscriber_id, source="operator", detail={"via": "console", "operator": operator})
        return f"/admin/subscribers/{subscriber_id}?done={'bounced' if changed else 'unchanged'}"
    if action == "reinstate":
        from distributor.inbound.events import reinstate

        _, changed = reinstate(store, found.email, operator=operator, note="console")
        return f"/admin/subscribers/{subscriber_id}?done={'reinstated' if changed else 'unchanged'}"
    if not confirm:
        raise HTTPException(422, "deleting needs the confirmation box ticked")
    subscribers.purge(store, found.email)
    return "/admin/subscribers?deleted=1"


@router.post("/subscribers/{subscriber_id}/{action}")
async def subscriber_action(request: Request, subscriber_id: int, action: str, session: Session = Depends(need("admin"))) -> Response:
    if action not in ("unsubscribe", "bounce", "reinstate", "delete"):
        raise HTTPException(404, f"no action {action!r}")
    form = await form_of(request, session)
    target = await run_in_threadpool(_act, request, subscriber_id, action, form.get("confirm") == "yes", session.operator.name)
    return RedirectResponse(target, status_code=303)
