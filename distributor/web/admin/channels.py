"""Channels: each configured channel (Telegram, Mastodon, Bluesky) with its destination,
routing, quiet hours, pause state and last post; admins resume a paused channel, editors
test one: a Telegram channel gets a test message (through the normal channel path: the
shared rate limit, the fake or real Bot API, or outbox files), a Mastodon or Bluesky
channel a check of its credentials that posts nothing.

Credentials are never on the page: a channel names the variable holding them, and shows
the Bluesky handle (public) but never a token or an app password."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from limits import RateLimitItemPerHour
from starlette.concurrency import run_in_threadpool

from distributor.channels.destinations import destination
from distributor.delivery import ledger, social, telegram
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
        where = destination(settings, name, chat_id=state.chat_id)
        channels.append(
            {
                "channel": name,
                "kind": where.kind,
                # The chat (Telegram), the instance (Mastodon) or the PDS (Bluesky).
                "destination": where.address,
                "account": where.account,  # the Bluesky handle; "" when not known
                "via": where.via,  # the service's API, or "outbox: <dir>/" without credentials
                "outbox": where.outbox,
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
    """Telegram: a short silent test message to the channel. Mastodon, Bluesky: a check of
    the channel's credentials that posts nothing. Rate-limited per operator."""
    _known(request, channel)
    await form_of(request, session)
    settings, store = request.app.state.settings, request.app.state.store
    per_hour = RateLimitItemPerHour(settings.file.admin.test_sends_per_hour)
    if not limiter(request).hit(per_hour, "distributor:admin-channel-test", str(session.operator.id)):
        data = await run_in_threadpool(_listing, request)
        text = f"At most {settings.file.admin.test_sends_per_hour} test messages an hour; try later."
        return page(request, "channels.html", status=429, session=session, title="Channels", notice="",
                    result={"ok": False, "channel": channel, "text": text}, **data)
    if settings.channels[channel].kind != "telegram":
        ok, text = await run_in_threadpool(social.check_channel, settings, channel)
        data = await run_in_threadpool(_listing, request)
        return page(request, "channels.html", status=200 if ok else 502, session=session, title="Channels",
                    notice="", result={"ok": ok, "channel": channel, "text": text[:1].upper() + text[1:]}, **data)
    result, chat_id = await run_in_threadpool(telegram.send_test_message, settings, store, channel)
    if result.ok:
        ids = ", ".join(map(str, result.message_ids))
        outcome = {"ok": True, "channel": channel, "text": f"Test message sent to {chat_id}" + (f" (message {ids})." if ids else ".")}
    else:
        outcome = {"ok": False, "channel": channel, "text": f"Test message to {chat_id} not sent ({result.outcome}): {result.description}"}
    data = await run_in_threadpool(_listing, request)
    return page(request, "channels.html", status=200 if result.ok else 502, session=session, title="Channels",
                notice="", result=outcome, **data)
