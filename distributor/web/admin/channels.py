"""Channels: each configured Telegram channel with its routing, quiet hours, pause state
and last post; admins resume a paused channel, editors send a test message (through the
normal channel path: the shared rate limit, the fake or real Bot API, or outbox files)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from limits import RateLimitItemPerHour
from starlette.concurrency import run_in_threadpool

from distributor.delivery import ledger, telegram
from distributor.operators import Session
from distributor.web.admin.auth import form_of, limiter, need
from distributor.web.admin.render import page, twin

router = APIRouter(prefix="/admin")
# What an action says on the page afterwards: fixed texts, never echoed input.
DONE = {"resumed": "Resumed: the channel posts again.", "unchanged": "It was not paused; nothing changed."}


def _listing(request: Request) -> dict:
    settings, store = request.app.state.settings, request.app.state.store
    counts = ledger.status_counts(store)
    last = ledger.last_posts(store)
    channels = []
    for name, config in settings.channels.items():
        state = ledger.channel_state(settings, store, name)
        channels.append(
            {
                "channel": name,
                "chat_id": state.chat_id,
                "configured_chat_id": config.chat_id,
                "migrated": state.migrated,
                "sections": list(config.sections),  # empty: every section
                "digests": list(config.digests),
                "instant": config.instant,
                "quiet_hours": config.quiet_hours,
                "silent_hours": config.silent_hours,
                "paused": state.paused,
                "reason": state.reason,
                "paused_at": state.paused_at,
                "last_post": last.get(name),
                "posts": dict(sorted(counts.get(name, {}).items())),
            }
        )
    return {
        "transport": "Bot API" if settings.env.telegram_bot_token else "outbox files (no TELEGRAM_BOT_TOKEN)",
        "channels": channels,
        "attention": ledger.attention(store),
    }


@router.get("/channels")
async def channels_page(request: Request, done: str = "", session: Session = Depends(need("viewer"))) -> Response:
    data = await run_in_threadpool(_listing, request)
    return page(request, "channels.html", session=session, title="Channels", notice=DONE.get(done, ""), result=None, **data)


@router.get("/channels.json")
async def channels_json(request: Request, session: Session = Depends(need("viewer"))) -> Response:
    return twin(await run_in_threadpool(_listing, request))


def _known(request: Request, channel: str) -> str:
    if channel not in request.app.state.settings.channels:
        raise HTTPException(404, f"unknown channel {channel!r}")
    return channel


@router.post("/channels/{channel}/resume")
async def resume(channel: str, request: Request, session: Session = Depends(need("admin"))) -> Response:
    _known(request, channel)
    await form_of(request, session)
    changed = await run_in_threadpool(ledger.resume_channel, request.app.state.store, channel)
    return RedirectResponse(f"/admin/channels?done={'resumed' if changed else 'unchanged'}#{channel}", status_code=303)


@router.post("/channels/{channel}/test")
async def test_message(channel: str, request: Request, session: Session = Depends(need("editor"))) -> Response:
    """A short silent test message to the channel; rate-limited per operator."""
    _known(request, channel)
    await form_of(request, session)
    settings, store = request.app.state.settings, request.app.state.store
    per_hour = RateLimitItemPerHour(settings.file.admin.test_sends_per_hour)
    if not limiter(request).hit(per_hour, "distributor:admin-channel-test", str(session.operator.id)):
        data = await run_in_threadpool(_listing, request)
        text = f"At most {settings.file.admin.test_sends_per_hour} test messages an hour; try later."
        return page(request, "channels.html", status=429, session=session, title="Channels", notice="",
                    result={"ok": False, "channel": channel, "text": text}, **data)
    result, chat_id = await run_in_threadpool(telegram.send_test_message, settings, store, channel)
    if result.ok:
        ids = ", ".join(map(str, result.message_ids))
        outcome = {"ok": True, "channel": channel, "text": f"Test message sent to {chat_id}" + (f" (message {ids})." if ids else ".")}
    else:
        outcome = {"ok": False, "channel": channel, "text": f"Test message to {chat_id} not sent ({result.outcome}): {result.description}"}
    data = await run_in_threadpool(_listing, request)
    return page(request, "channels.html", status=200 if result.ok else 502, session=session, title="Channels",
                notice="", result=outcome, **data)
