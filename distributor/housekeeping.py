"""Housekeeping: forget what only mattered for a while."""

from __future__ import annotations

import logging
import os
from datetime import datetime, timedelta

from sqlalchemy import delete

from distributor.settings import Settings
from distributor.store import Store
from distributor.store.models import WebhookReceiptRow

log = logging.getLogger(__name__)

# Outbox files are a demo and debugging aid; a week is enough to look at them.
OUTBOX_MAX_AGE = timedelta(days=7)


def sweep(settings: Settings, store: Store, now: datetime) -> dict:
    """Drop webhook receipts past the replay window, outbox files older than a week,
    expired waiting page views and trending score generations nobody reads."""
    cutoff = now - timedelta(seconds=settings.file.webhook.max_age_seconds * 2)
    with store.session() as session:
        receipts = session.execute(delete(WebhookReceiptRow).where(WebhookReceiptRow.received_at < cutoff)).rowcount
    removed = 0
    oldest = (now - OUTBOX_MAX_AGE).timestamp()
    if settings.outbox_dir.exists():
        for path in settings.outbox_dir.rglob("*"):
            if path.is_file() and path.stat().st_mtime < oldest:
                os.unlink(path)
                removed += 1
    from distributor import trending

    trending.housekeeping(settings, store, now=now)
    log.info("housekeeping", extra={"receipts": receipts, "outbox_files": removed})
    return {"webhook_receipts": receipts, "outbox_files": removed}
