"""Preview: any edition at any time, for one subscriber or a chosen set of sections; the
email in desktop and mobile frames, its text part, the Telegram posts drawn as Telegram
shows them; and a test send of that preview to one address.

The email itself is served by `/admin/preview/email.html` with a CSP of its own (inline
styles, https images, nothing else) into a sandboxed frame: the console's strict CSP stays
strict, and nothing in a preview can run script.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from limits import RateLimitItemPerHour
from starlette.concurrency import run_in_threadpool

from distributor import subscribers
from distributor.delivery.trial import TEST_PREFIX
from distributor.editions import build_edition
from distributor.operators import Session
from distributor.runs import previous_run_end
from distributor.web.admin.auth import form_of, limiter, need
from distributor.web.admin.render import page, twin

router = APIRouter(prefix="/admin")
# The email as a reader's client gets it: inline styles and https images, no script, no
# requests anywhere else, only framed by the console.
EMAIL_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; frame-ancestors 'self'"


@dataclass(frozen=True)
class Choice:
    """What to preview: an edition at a time, for a subscriber or sections (None: all)."""

    edition: str
    at: datetime
    subscriber: str
    sections: tuple[str, ...] | None

    def query(self) -> str:
        from urllib.parse import urlencode

        pairs = [("edition", self.edition), ("at", self.at.strftime("%Y-%m-%dT%H:%M"))]
        if self.subscriber:
            pairs.append(("subscriber", self.subscriber))
        pairs += [("sections", s) for s in self.sections or ()]
        return urlencode(pairs)


def _choice(request: Request, values) -> Choice:  # noqa: ANN001 - query params or a form
    settings = request.app.state.settings
    edition = str(values.get("edition") or next(iter(settings.editions), ""))
    if edition not in settings.editions:
        raise HTTPException(404, f"unknown edition {edition!r}")
    raw_at = str(values.get("at") or "").strip()
    if raw_at:
        try:
            at = datetime.fromisoformat(raw_at)
        except ValueError:
            raise HTTPException(422, f"at: {raw_at[:40]!r} is not a date and time (YYYY-MM-DDTHH:MM)") from None
        at = at.replace(tzinfo=settings.tz) if at.tzinfo is None else at
    else:
        at = datetime.now(timezone.utc).astimezone(settings.tz).replace(second=0, microsecond=0)
    known = {s.slug for s in settings.sections}
    chosen = [s for s in values.getlist("sections") if s in known] if hasattr(values, "getlist") else []
    return Choice(edition, at.astimezone(timezone.utc), str(values.get("subscriber") or "").strip()[:254], tuple(sorted(chosen)) or None)


def _render(request: Request, choice: Choice, *, subject_prefix: str = "") -> dict:
    from distributor.delivery.telegram import preview_calls
    from distributor.render.email import Recipient, fill_html, fill_text, render_variant

    settings, store = request.app.state.settings, request.app.state.store
    config = settings.editions[choice.edition]
    previous_end = previous_run_end(store, choice.edition, choice.at) if config.window == "since_last" else None
    issue = build_edition(settings, store, choice.edition, at=choice.at, previous_end=previous_end)
    sections, recipient, text_only, problem = choice.sections, None, False, ""
    if choice.subscriber:
        found = subscribers.find(store, choice.subscriber)
        if found is None:
            problem = f"no subscriber {choice.subscriber!r}: showing the all-sections variant"
        else:
            sections = found.sections
            text_only = found.format == "text"
            recipient = Recipient(
                email=found.email,
                name=found.name,
                unsubscribe_url=subscribers.unsubscribe_url(settings, found.id, found.email),
                preferences_url=subscribers.preferences_url(settings, found.id, found.email),
            )
    variant = render_variant(settings, issue, sections=sections, run_id=None, now=choice.at, subject_prefix=subject_prefix)
    result = {
        "choice": choice,
        "issue": issue,
        "variant": variant,
        "subject": variant.subject,
        "count": variant.count,
        "html": fill_html(variant, recipient),
        "text": fill_text(variant, recipient),
        "text_only": text_only,
        "problem": problem,
        "telegram": preview_calls(settings, issue),
    }
    result["name"] = recipient.name if recipient else ""
    return result


def _page_data(request: Request, choice: Choice) -> dict:
    data = _render(request, choice)
    settings = request.app.state.settings
    return {
        "choice": choice,
        "query": choice.query(),
        "at_local": choice.at.astimezone(settings.tz).strftime("%Y-%m-%dT%H:%M"),
        "editions": sorted(settings.editions),
        "sections": [(s.slug, s.label) for s in settings.sections],
        "subject": data["subject"],
        "count": data["count"],
        "text": data["text"],
        "text_only": data["text_only"],
        "problem": data["problem"],
        "telegram": data["telegram"],
        "window": (data["issue"].window.start, data["issue"].window.end),
        "test_chats": sorted((name, c.test_chat_id) for name, c in settings.channels.items() if c.test_chat_id),
    }


@router.get("/preview")
async def preview_page(request: Request, session: Session = Depends(need("viewer"))) -> Response:
    choice = _choice(request, request.query_params)
    data = await run_in_threadpool(_page_data, request, choice)
    return page(request, "preview.html", session=session, title="Preview", result=None, **data)


@router.get("/preview.json")
async def preview_json(request: Request, session: Session = Depends(need("viewer"))) -> Response:
    choice = _choice(request, request.query_params)
    data = await run_in_threadpool(_page_data, request, choice)
    data["window"] = [moment.isoformat() for moment in data["window"]]
    return twin(data)


@router.get("/preview/email.html")
async def preview_email(request: Request, session: Session = Depends(need("viewer"))) -> Response:
    choice = _choice(request, request.query_params)
    data = await run_in_threadpool(_render, request, choice)
    return HTMLResponse(
        data["html"],
        headers={
            "Content-Security-Policy": EMAIL_CSP,
            "X-Frame-Options": "SAMEORIGIN",
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer",
        },
    )


def _within_budget(request: Request, session: Session) -> bool:
    """One hourly budget per operator for test emails and test digests."""
    per_hour = RateLimitItemPerHour(request.app.state.settings.file.admin.test_sends_per_hour)
    return limiter(request).hit(per_hour, "distributor:admin-test-send", str(session.operator.id))


async def _answer(request: Request, session: Session, choice: Choice, status: int, ok: bool, text: str) -> Response:
    """The preview page again, with the outcome of a test send above it."""
    data = await run_in_threadpool(_page_data, request, choice)
    return page(request, "preview.html", status=status, session=session, title="Preview", result={"ok": ok, "text": text}, **data)


@router.post("/preview/test-send")
async def test_send(request: Request, session: Session = Depends(need("editor"))) -> Response:
    """Mail the preview to one address: Subject "[Test] ...", no ledger row, rate-limited."""
    from distributor.delivery.trial import send_test
    from distributor.subscribers import InvalidAddress

    form = await form_of(request, session)
    choice = _choice(request, form)
    settings = request.app.state.settings
    try:
        to = subscribers.normalise_address(str(form.get("to") or ""))
    except InvalidAddress as exc:
        return await _answer(request, session, choice, 422, False, f"Test address: {exc}")
    if not _within_budget(request, session):
        return await _answer(request, session, choice, 429, False, f"At most {settings.file.admin.test_sends_per_hour} test sends an hour; try later.")
    rendered = await run_in_threadpool(_render, request, choice, subject_prefix=TEST_PREFIX)
    sent = await run_in_threadpool(
        lambda: send_test(settings, rendered["variant"], to, name=rendered["name"], text_only=rendered["text_only"], label=session.operator.name)
    )
    ok = sent.outcome == "sent"
    text = f"Test sent to {to}." if ok else f"Test to {to} not sent: {sent.code or ''} {sent.reply}".strip()
    return await _answer(request, session, choice, 200 if ok else 502, ok, text)


@router.post("/preview/test-channel")
async def test_channel(request: Request, session: Session = Depends(need("editor"))) -> Response:
    """Post the preview's digest for one channel to that channel's test chat (no ledger row,
    the same hourly budget as test emails)."""
    from distributor.delivery.telegram import send_preview_to_test_chat

    form = await form_of(request, session)
    choice = _choice(request, form)
    settings, store = request.app.state.settings, request.app.state.store
    channel = str(form.get("channel") or "")
    config = settings.channels.get(channel)
    if config is None or not config.test_chat_id:
        raise HTTPException(422, f"channel {channel[:64]!r} has no test chat (channels.NAME.test_chat_id)")
    if not _within_budget(request, session):
        return await _answer(request, session, choice, 429, False, f"At most {settings.file.admin.test_sends_per_hour} test sends an hour; try later.")
    rendered = await run_in_threadpool(_render, request, choice)
    results = await run_in_threadpool(send_preview_to_test_chat, settings, store, channel, rendered["issue"])
    ok = bool(results) and all(r.ok for r in results)
    if not results:
        text = f"Nothing for {channel}'s sections in this issue: nothing posted."
    elif ok:
        text = f"Test digest posted to {config.test_chat_id} ({len(results)} message(s))."
    else:
        text = f"Test digest to {config.test_chat_id} not posted: {results[-1].description}"
    return await _answer(request, session, choice, 200 if ok or not results else 502, ok, text)
