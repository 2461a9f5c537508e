"""Housekeeping: forget what only mattered for a while."""

from __future__ import annotations

import logging
import os
from datetime import datetime, timedelta

from sqlalchemy import delete

from distributor.settings import Settings
from distributor.store import Store
from distributor.store.models import InboundMessageRow, WebhookReceiptRow

log = logging.getLogger(__name__)

# Outbox files are a demo and debugging aid; a week is enough to look at them.
OUTBOX_MAX_AGE = timedelta(days=7)


def sweep(settings: Settings, store: Store, now: datetime) -> dict:
    """Drop webhook receipts past the replay window, outbox files older than a week,
    handled inbound messages past inbound.keep_days, expired waiting page views and
    trending score generations nobody reads."""
    # The receipts table also holds ESP webhook tokens (inbound/esp.py): keep each for
    # twice the longer of the two replay windows.
    window = max(settings.file.webhook.max_age_seconds, settings.file.inbound.webhook_max_age_seconds)
    cutoff = now - timedelta(seconds=window * 2)
    with store.session() as session:
        receipts = session.execute(delete(WebhookReceiptRow).where(WebhookReceiptRow.received_at < cutoff)).rowcount
        inbound = session.execute(
            delete(InboundMessageRow).where(InboundMessageRow.received_at < now - timedelta(days=settings.file.inbound.keep_days))
        ).rowcount
    removed = 0
    oldest = (now - OUTBOX_MAX_AGE).timestamp()
    if settings.outbox_dir.exists():
        for path in settings.outbox_dir.rglob("*"):
            if path.is_file() and path.stat().st_mtime < oldest:
                os.unlink(path)
                removed += 1
    from distributor import trending

    trending.housekeeping(settings, store, now=now)
    log.info("housekeeping", extra={"receipts": receipts, "outbox_files": removed, "inbound_messages": inbound})
    return {"webhook_receipts": receipts, "outbox_files": removed, "inbound_messages": inbound}
