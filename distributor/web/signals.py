"""Trending signals over HTTP: click links (`GET /c/{token}`) and page views pushed by the
site (`POST /webhooks/pageviews`).

Clicks: a valid token whose target is the article's own page is counted and answered
302 to that target (and nowhere else); anything else is 400 with no Location header.
HEAD requests (link checkers, mail scanners probing a link) and link-preview fetchers
(trending.uncounted_agents: Telegram fetches each posted link once) get the same answer
but are not counted.

Page views: signed, refused and replay-checked exactly like `POST /webhooks/articles`
(same headers, same SECRET_KEY, same receipts table), with these statuses: 413 body too
large, 401 signature or freshness, 400 JSON shape, 409 replay, 422 every entry refused,
200 otherwise (with the per-entry refusals listed).
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from distributor import trending
from distributor.ingest.webhook import PayloadError, normalise_signature
from distributor.store.models import utcnow
from distributor.web import openapi
from distributor.web.deps import SettingsDep, StoreDep
from distributor.web.webhooks import claim_receipt, release_receipt, signed_body

log = logging.getLogger(__name__)

router = APIRouter()


def _refused(reason: str) -> PlainTextResponse:
    # No Location header, and nothing a cache could keep.
    return PlainTextResponse(
        f"This link is not valid ({reason}).\n", status_code=400, headers={"Cache-Control": "no-store"}
    )


# Two routes, not one with two methods: the OpenAPI schema needs an operation id each.
@router.get("/c/{token}")
@router.head("/c/{token}", include_in_schema=False)
def follow_click(token: str, request: Request, settings: SettingsDep, store: StoreDep):  # noqa: ANN201
    """Count a click on one of our links and redirect to the article (see module docstring)."""
    try:
        click, article, target = trending.resolve_click(settings, store, token)
    except trending.ClickRefused as exc:
        log.warning("click link refused: %s", exc)
        return _refused(str(exc))
    counted = request.method == "GET" and trending.counts_as_reader(settings, request.headers.get("user-agent"))
    if article is not None and counted:
        try:
            trending.record_click(settings, store, click, at=utcnow())
        except Exception:  # noqa: BLE001 - a reader is never stranded because counting failed
            log.exception("click not recorded", extra={"article": click.article_key})
    # no-store: a cached redirect would send the next click past us, uncounted.
    return RedirectResponse(target, status_code=302, headers={"Cache-Control": "no-store"})


@router.post("/webhooks/pageviews", openapi_extra=openapi.body(openapi.PAGEVIEWS))
async def receive_pageviews(request: Request, settings: SettingsDep, store: StoreDep) -> JSONResponse:
    """Credit pushed page views to articles by URL; unknown URLs wait for their article."""
    checked = await signed_body(request, settings, what="page views")
    if isinstance(checked, JSONResponse):
        return checked
    body, now, signature_header = checked
    config = settings.file.webhook
    try:
        entries, rejected = trending.parse_pageviews(settings, body, now=now)
    except PayloadError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)

    signature = normalise_signature(signature_header or "")
    # As for articles: a signature stays valid max_age on either side of our clock.
    if not await run_in_threadpool(claim_receipt, store, signature, now, 2 * config.max_age_seconds):
        log.warning("page views refused: replay of an accepted request")
        return JSONResponse({"error": "replay of an already accepted request"}, status_code=409)
    try:
        report = await run_in_threadpool(trending.record_pageviews, settings, store, entries, now=now)
    except Exception:
        await run_in_threadpool(release_receipt, store, signature)
        raise
    report.rejected = rejected
    for refusal in rejected:
        log.warning("page views entry %d refused: %s", refusal["index"], refusal["reason"])
    return JSONResponse(report.as_dict(), status_code=200 if entries else 422)
