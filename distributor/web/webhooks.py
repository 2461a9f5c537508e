"""`POST /webhooks/articles`: the CMS pushes an article (or a batch) on publish.

Checks, in this order, each with its own status so the CMS can tell what to fix:
media type (415: only application/json), body size (413), signature and freshness (401), JSON shape (400), exact replay of an
already accepted request (409); then each article is normalised on its own and the good
ones are stored (200), or 422 when every one was rejected.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from distributor.articles import Article
from distributor.errors import RejectedItem, SignatureError
from distributor.ingest.normalise import article_from_mapping
from distributor.ingest.feeds import ParsedFeed
from distributor.ingest.pipeline import IngestReport, store_articles
from distributor.ingest.webhook import (
    CONTENT_TYPE,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    PayloadError,
    is_json_media_type,
    normalise_signature,
    parse_payload,
    verify,
)
from distributor.settings import Settings
from distributor.store import Store
from distributor.store.models import WebhookReceiptRow, utcnow
from distributor.web import openapi
from distributor.web.deps import SettingsDep, StoreDep

log = logging.getLogger(__name__)

router = APIRouter()

SOURCE = "webhook"


def _error(status: int, reason: str) -> JSONResponse:
    return JSONResponse({"error": reason}, status_code=status)


async def _read_capped(request: Request, limit: int) -> bytes | None:
    """The raw body, or None as soon as it is known to exceed `limit` bytes."""
    declared = request.headers.get("content-length", "").strip()
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def signed_body(
    request: Request, settings: Settings, *, what: str
) -> tuple[bytes, datetime, str] | JSONResponse:
    """The body of a signed push (articles, page views) with its arrival time and
    signature header, or the refusal to answer: 415 not JSON, 413 too large, 401 bad
    signature.

    Replays are checked by the caller, after parsing, so a replayed bad body still gets
    its 400 rather than a 409.
    """
    config = settings.file.webhook
    # Only JSON: a text/plain or form POST is what a browser may send cross-site without
    # asking, and no sender of ours has a reason to use one.
    media_type = request.headers.get("content-type")
    if not is_json_media_type(media_type):
        shown = media_type[:100] if media_type else "missing"
        log.warning("%s refused: Content-Type %s", what, shown)
        return _error(415, f"Content-Type must be {CONTENT_TYPE}, not {shown}")
    body = await _read_capped(request, config.max_body_bytes)
    if body is None:
        return _error(413, f"body larger than {config.max_body_bytes} bytes (webhook.max_body_bytes)")
    now = utcnow()
    signature_header = request.headers.get(SIGNATURE_HEADER)
    try:
        verify(
            settings.secret_key,
            request.headers.get(TIMESTAMP_HEADER),
            signature_header,
            body,
            now=now,
            max_age_seconds=config.max_age_seconds,
        )
    except SignatureError as exc:
        log.warning("%s refused: %s", what, exc)
        return _error(401, str(exc))
    return body, now, signature_header or ""


def claim_receipt(store: Store, signature: str, now: datetime, keep_seconds: int) -> bool:
    """Record an accepted signature; False if it was already recorded (a replay).

    Old receipts are pruned first. The primary key on the signature makes two identical
    requests racing each other end with exactly one winner.
    """
    with store.session() as session:
        session.execute(
            delete(WebhookReceiptRow).where(
                WebhookReceiptRow.received_at < now - timedelta(seconds=keep_seconds)
            )
        )
    try:
        with store.session() as session:
            session.add(WebhookReceiptRow(signature=signature, received_at=now))
    except IntegrityError:
        return False
    return True


def release_receipt(store: Store, signature: str) -> None:
    """Forget a receipt, so that the CMS's retry of a request we failed is accepted."""
    with store.session() as session:
        session.execute(delete(WebhookReceiptRow).where(WebhookReceiptRow.signature == signature))


def _outcomes(articles: Sequence[Article], report: IngestReport) -> list[dict]:
    """Each input article's outcome, in input order."""
    return [{"key": key, "outcome": outcome} for key, outcome in report.outcomes]


def ingest_items(
    settings: Settings, store: Store, items: Sequence[object], now: datetime
) -> tuple[list[dict], list[dict], IngestReport]:
    """Normalise each item on its own, store the good ones: (results, rejected, report)."""
    batch = ParsedFeed(format="webhook")  # collapses repeated keys as a feed does
    rejected: list[dict] = []
    for index, item in enumerate(items):
        try:
            article = article_from_mapping(
                item,
                settings=settings,
                source=SOURCE,
                base_url=settings.site.base_url,
                now=now,
            )
        except RejectedItem as exc:
            rejected.append({"index": index, "reason": str(exc)})
            continue
        batch.add(article, index, f"item {index}")
    articles = batch.articles
    report = IngestReport(source=SOURCE)
    report.rejected = [f"item {r['index']}: {r['reason']}" for r in rejected]
    report.duplicates = list(batch.duplicates)
    if articles:
        store_articles(settings, store, articles, report)
    for reason in report.rejected:
        log.warning("webhook item rejected: %s", reason)
    log.info("webhook: %s", report.summary())
    return _outcomes(articles, report), rejected, report


def post_to_channels(settings: Settings, store: Store, report: IngestReport) -> None:
    """The default reaction to a webhook ingest: instant channel posts and edits, here.

    `distributor web` and `distributor run` replace it with one that queues the same
    work on the Celery broker (see `create_app(on_ingested=...)`).
    """
    from distributor.delivery import social as social_delivery
    from distributor.delivery import telegram as telegram_delivery

    if report.new:
        telegram_delivery.post_new_articles(settings, store, [a.key for a in report.new])
        social_delivery.post_new_articles(settings, store, [a.key for a in report.new])
    if report.updated:
        telegram_delivery.update_posted_articles(settings, store, [a.key for a in report.updated])
        social_delivery.update_posted_articles(settings, store, [a.key for a in report.updated])


@router.post("/webhooks/articles", openapi_extra=openapi.body(openapi.ARTICLES))
async def receive_articles(
    request: Request, settings: SettingsDep, store: StoreDep
) -> JSONResponse:
    """Store the pushed article(s); see the module docstring for the status codes."""
    checked = await signed_body(request, settings, what="webhook")
    if isinstance(checked, JSONResponse):
        return checked
    body, now, signature_header = checked
    config = settings.file.webhook

    try:
        items = parse_payload(body)
    except PayloadError as exc:
        return _error(400, str(exc))

    signature = normalise_signature(signature_header or "")
    # A signature stays valid while its timestamp is within max_age of *our* clock,
    # on either side, so a receipt must outlive its arrival by twice that.
    keep = 2 * config.max_age_seconds
    if not await run_in_threadpool(claim_receipt, store, signature, now, keep):
        log.warning("webhook refused: replay of an accepted request")
        return _error(409, "replay of an already accepted request")
    try:
        results, rejected, report = await run_in_threadpool(ingest_items, settings, store, items, now)
    except Exception:
        await run_in_threadpool(release_receipt, store, signature)
        raise
    status = 200 if results else 422
    # New and corrected articles reach instant channels at once, after the CMS has its
    # answer: the hook runs as a background task of this response.
    background = None
    hook = getattr(request.app.state, "on_ingested", None)
    if hook is not None and (report.new or report.updated):
        background = BackgroundTask(hook, report)
    answer: dict = {"results": results, "rejected": rejected}
    if report.duplicates:
        # Only when there were any, so the common answer keeps its documented shape.
        answer["duplicates"] = list(report.duplicates)
    return JSONResponse(answer, status_code=status, background=background)
