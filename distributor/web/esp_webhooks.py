"""`POST /webhooks/esp/{ses,sendgrid,postmark,mailgun}`: bounces, complaints and
unsubscribes reported by the relay we send through (checks in distributor/inbound/esp.py).

Answers: 404 provider not configured, 413 body too large, 401/403 not verified, 409 a
replayed Mailgun token, 400 not the provider's JSON; else 200 with what was done. A
refused call changes nothing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime, timezone
from functools import lru_cache

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from distributor.inbound import esp
from distributor.web.deps import SettingsDep, StoreDep
from distributor.web.webhooks import _read_capped

log = logging.getLogger(__name__)

router = APIRouter(prefix="/webhooks/esp")

# Largest webhook body: SES notifications may carry the original headers (SNS allows
# 256 KB); SendGrid batches events. Beyond this, 413.
BODY_MAX = 1024 * 1024


@lru_cache(maxsize=16)
def _fetch_cached(url: str) -> bytes:
    import httpx

    response = httpx.get(url, timeout=10, follow_redirects=False)
    response.raise_for_status()
    return response.content


def _fetcher(request: Request) -> Callable[[str], bytes]:
    """How SNS certificates and subscription URLs are fetched (tests put their own on
    app.state.sns_fetch; the URL's host is checked before either is called)."""
    return getattr(request.app.state, "sns_fetch", None) or _fetch_cached


def _refused(exc: esp.WebhookRefused, provider: str) -> JSONResponse:
    log.warning("ESP webhook refused", extra={"provider": provider, "status": exc.status, "reason": exc.reason})
    return JSONResponse({"error": exc.reason}, status_code=exc.status)


def _summary(done: list) -> JSONResponse:
    return JSONResponse({
        "events": len(done),
        "changed": sum(1 for d in done if d.applied.changed),
        "duplicates": sum(1 for d in done if d.duplicate),
    })


async def _json_body(request: Request) -> tuple[bytes, object]:
    raw = await _read_capped(request, BODY_MAX)
    if raw is None:
        raise esp.WebhookRefused(413, f"body larger than {BODY_MAX} bytes")
    try:
        return raw, json.loads(raw)
    except ValueError:
        raise esp.WebhookRefused(400, "body is not JSON") from None


@router.post("/ses")
async def ses(request: Request, settings: SettingsDep, store: StoreDep) -> JSONResponse:
    try:
        if not settings.file.inbound.ses_topic_arns:
            raise esp.WebhookRefused(404, "SES webhook not configured")
        _, body = await _json_body(request)
        if not isinstance(body, dict):
            raise esp.WebhookRefused(400, "not an SNS message")
        fetch = _fetcher(request)
        await run_in_threadpool(esp.verify_sns, settings, body, fetch)
        kind = body.get("Type")
        if kind == "SubscriptionConfirmation":
            url = esp.check_sns_url(body.get("SubscribeURL", ""), "SubscribeURL")
            await run_in_threadpool(fetch, url)
            log.info("SNS subscription confirmed", extra={"topic": body.get("TopicArn")})
            return JSONResponse({"confirmed": True})
        if kind != "Notification":
            return JSONResponse({"events": 0})
        events = esp.parse_ses(body)
    except esp.WebhookRefused as exc:
        return _refused(exc, "ses")
    return _summary(await run_in_threadpool(esp.handle_events, settings, store, events))


@router.post("/sendgrid")
async def sendgrid(request: Request, settings: SettingsDep, store: StoreDep) -> JSONResponse:
    try:
        if not settings.file.inbound.sendgrid_public_key:
            raise esp.WebhookRefused(404, "SendGrid webhook not configured")
        raw = await _read_capped(request, BODY_MAX)
        if raw is None:
            raise esp.WebhookRefused(413, f"body larger than {BODY_MAX} bytes")
        esp.verify_sendgrid(
            settings, raw,
            request.headers.get("x-twilio-email-event-webhook-signature", ""),
            request.headers.get("x-twilio-email-event-webhook-timestamp", ""),
            datetime.now(timezone.utc),
        )
        events = esp.parse_sendgrid(raw)
    except esp.WebhookRefused as exc:
        return _refused(exc, "sendgrid")
    return _summary(await run_in_threadpool(esp.handle_events, settings, store, events))


@router.post("/postmark")
async def postmark(request: Request, settings: SettingsDep, store: StoreDep) -> JSONResponse:
    try:
        esp.verify_postmark(settings, request.headers.get("authorization", ""))
        _, body = await _json_body(request)
        if not isinstance(body, dict):
            raise esp.WebhookRefused(400, "not a Postmark webhook object")
        events = esp.parse_postmark(body)
    except esp.WebhookRefused as exc:
        return _refused(exc, "postmark")
    return _summary(await run_in_threadpool(esp.handle_events, settings, store, events))


@router.post("/mailgun")
async def mailgun(request: Request, settings: SettingsDep, store: StoreDep) -> JSONResponse:
    try:
        if settings.env.mailgun_webhook_signing_key is None:
            raise esp.WebhookRefused(404, "Mailgun webhook not configured")
        _, body = await _json_body(request)
        if not isinstance(body, dict):
            raise esp.WebhookRefused(400, "not a Mailgun webhook object")
        await run_in_threadpool(esp.verify_mailgun, settings, store, body, datetime.now(timezone.utc))
        events = esp.parse_mailgun(body)
    except esp.WebhookRefused as exc:
        return _refused(exc, "mailgun")
    return _summary(await run_in_threadpool(esp.handle_events, settings, store, events))
