"""Operator HTTP API: the `schedule`, `runs` and `sources` commands over HTTP, behind a bearer token.

The token comes from OPERATOR_TOKEN; without it the API answers 503 and does nothing.
Changes are written to the database and take effect at the scheduler's next tick, the
same path as the CLI: the web process never needs to reach the broker.
"""

from __future__ import annotations

import hmac
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel
from sqlalchemy import select

from distributor import engine, schedules
from distributor.ingest.health import source_health
from distributor.runs import delivery_counts, telegram_counts
from distributor.settings import Settings
from distributor.store import Store
from distributor.store.models import EditionRunRow

router = APIRouter(prefix="/api", tags=["operator"])

# The most runs one `GET /api/runs` lists; more is refused (422), not silently cut.
MAX_RUNS = 500


def _context(request: Request) -> tuple[Settings, Store]:
    return request.app.state.settings, request.app.state.store


def require_operator(request: Request) -> None:
    settings, _ = _context(request)
    expected = settings.operator_token
    if not expected:
        raise HTTPException(503, "the operator API is disabled: set OPERATOR_TOKEN")
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})


def _schedule_json(settings: Settings, item: schedules.Schedule) -> dict:
    tz = ZoneInfo(settings.site.timezone)
    upcoming = [] if item.paused else schedules.next_slots(item.cron, tz, datetime.now(timezone.utc), 3)
    return {
        "edition": item.edition,
        "cron": item.cron,
        "paused": item.paused,
        "changed_by": item.changed_by,
        "next": [slot.astimezone(tz).isoformat() for slot in upcoming],
    }


@router.get("/schedules", dependencies=[Depends(require_operator)])
def list_schedules(request: Request) -> list[dict]:
    settings, store = _context(request)
    return [_schedule_json(settings, s) for s in schedules.seed(settings, store)]


class CronChange(BaseModel):
    cron: str


def _apply(request: Request, action, edition: str, *args) -> dict:  # noqa: ANN001
    settings, store = _context(request)
    try:
        return _schedule_json(settings, action(settings, store, edition, *args))
    except KeyError as exc:
        raise HTTPException(404, str(exc.args[0])) from None
    except ValueError as exc:
        # FastAPI's own shape for a 422 (the one the schema documents), naming the field.
        raise HTTPException(422, [{"loc": ["body", "cron"], "msg": str(exc), "type": "value_error"}]) from None


@router.put("/schedules/{edition}", dependencies=[Depends(require_operator)])
def set_schedule(edition: str, change: CronChange, request: Request) -> dict:
    return _apply(request, schedules.set_cron, edition, change.cron)


@router.post("/schedules/{edition}/pause", dependencies=[Depends(require_operator)])
def pause_schedule(edition: str, request: Request) -> dict:
    return _apply(request, schedules.pause, edition)


@router.post("/schedules/{edition}/resume", dependencies=[Depends(require_operator)])
def resume_schedule(edition: str, request: Request) -> dict:
    return _apply(request, schedules.resume, edition)


@router.post("/schedules/{edition}/reset", dependencies=[Depends(require_operator)])
def reset_schedule(edition: str, request: Request) -> dict:
    return _apply(request, schedules.reset, edition)


@router.post("/schedules/{edition}/run-now", status_code=202, dependencies=[Depends(require_operator)])
def run_now(edition: str, request: Request, force: bool = False) -> dict:
    """Open a run for this minute; the scheduler's next tick (or the one after) builds and
    sends it: the web process never talks to the broker itself."""
    settings, store = _context(request)
    if edition not in settings.editions:
        raise HTTPException(404, f"unknown edition {edition!r}")
    run, created = engine.run_now(settings, store, edition, datetime.now(timezone.utc), force=force)
    return {"run": run.id, "created": created, "status": run.status}


@router.get("/runs", dependencies=[Depends(require_operator)])
def list_runs(
    request: Request,
    edition: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_RUNS, description="How many runs, newest first.")] = 20,
) -> list[dict]:
    settings, store = _context(request)
    query = select(EditionRunRow).order_by(EditionRunRow.created_at.desc(), EditionRunRow.id.desc()).limit(limit)
    if edition:
        query = query.where(EditionRunRow.edition == edition)
    with store.session() as session:
        rows = list(session.scalars(query))
    return [
        {
            "id": r.id,
            "edition": r.edition,
            "slot": r.slot.isoformat(),
            "timezone": r.timezone,
            "status": r.status,
            "articles": len(r.article_keys or []),
            "email": delivery_counts(store, r.id),
            "telegram": telegram_counts(store, r.id),
        }
        for r in rows
    ]


@router.get("/sources", dependencies=[Depends(require_operator)])
def list_sources(request: Request) -> list[dict]:
    """Feed health, the same data as `distributor sources --json`."""
    settings, store = _context(request)
    return [h.as_dict() for h in source_health(settings, store, datetime.now(timezone.utc))]
