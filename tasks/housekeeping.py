"""Housekeeping: prune what only matters for a while (webhook receipts, old outbox files)."""

from __future__ import annotations

from datetime import datetime, timezone

from tasks.app import app
from tasks.base import RETRY
from tasks.runtime import context


@app.task(name="tasks.housekeeping.sweep", **RETRY)
def sweep() -> dict:
    from distributor import housekeeping

    settings, store = context()
    return housekeeping.sweep(settings, store, datetime.now(timezone.utc))
