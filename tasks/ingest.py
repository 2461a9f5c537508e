"""Ingest tasks: poll a source; react to newly stored articles."""

from __future__ import annotations

import logging

from tasks.app import app
from tasks.base import RETRY
from tasks.runtime import context

log = logging.getLogger(__name__)


@app.task(name="tasks.ingest.poll_source", **RETRY)
def poll_source(name: str) -> dict:
    """Fetch one configured source; new articles go out to instant channels at once."""
    from distributor.ingest.pipeline import ingest_sources

    settings, store = context()
    [report] = ingest_sources(settings, store, [name])
    after_ingest(report.as_dict())
    return {"source": name, "new": len(report.new), "updated": len(report.updated), "error": report.error}


def queue_after_ingest(report) -> None:  # noqa: ANN001 - an IngestReport
    """The web app's hook: queue Telegram work for what a webhook stored."""
    after_ingest(report.as_dict())


def after_ingest(report: dict) -> None:
    """Queue Telegram work for what an ingest stored (webhook and polls alike)."""
    from tasks.telegram import post_articles, update_articles

    if report.get("new"):
        post_articles.delay(report["new"])
    if report.get("updated"):
        update_articles.delay(report["updated"])
