"""GET /metrics: Prometheus text format, behind the operator token, off unless enabled."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool

from distributor import metrics

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def scrape(request: Request) -> Response:
    settings, store = request.app.state.settings, request.app.state.store
    if not settings.file.metrics.enabled:
        raise HTTPException(404, "metrics are off: set [metrics] enabled = true")
    expected = settings.operator_token
    if not expected:
        raise HTTPException(503, "metrics need OPERATOR_TOKEN (Prometheus sends it as a bearer token)")
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})
    body = await run_in_threadpool(metrics.exposition, settings, store)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
