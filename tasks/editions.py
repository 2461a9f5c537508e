"""Edition tasks: the scheduler tick, building a run, fanning it out."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from tasks.app import app
from tasks.base import RETRY
from tasks.runtime import context

log = logging.getLogger(__name__)


@app.task(name="tasks.editions.tick", **RETRY)
def tick() -> dict:
    """Open runs for due slots and poll due sources (beat sends this every tick_seconds)."""
    from distributor import engine
    from tasks.ingest import poll_source

    settings, store = context()
    result = engine.tick(settings, store, datetime.now(timezone.utc))
    for run in result.opened:
        build_run.delay(run.id)
    # Work the broker lost (e.g. Redis restarted without persistence) is rebuilt from the
    # database; build_run is idempotent and every send is claimed before it happens.
    for run_id in result.stale:
        build_run.delay(run_id)
    for name in result.sources_due:
        poll_source.delay(name)
    return {"opened": [r.id for r in result.opened], "sources": result.sources_due, "requeued": result.stale}


@app.task(name="tasks.editions.build_run", **RETRY)
def build_run(run_id: int) -> dict:
    """Fix the run's issue, then queue its email batches and channel digest posts."""
    from distributor import engine
    from distributor.delivery import email as email_delivery
    from distributor.delivery import ledger
    from tasks.email import send_batch
    from tasks.telegram import post_run

    settings, store = context()
    prepared = engine.prepare_run(settings, store, run_id)
    if not prepared.ready:
        return {"run": run_id, "ready": False, "reason": prepared.reason}
    # Every delivery and post is in the ledger before its task is queued: work the broker
    # loses is then found (engine.stale_runs) and the run cannot close without it.
    batches = email_delivery.create_deliveries(settings, store, run_id)
    ledger.queue_run_posts(settings, store, run_id)
    for first_id, last_id in batches:
        send_batch.delay(run_id, first_id, last_id)
    post_run.delay(run_id)
    engine.mark_sending(store, run_id)
    return {"run": run_id, "ready": True, "batches": len(batches)}


@app.task(name="tasks.editions.run_now", **RETRY)
def run_now(edition: str, force: bool = False) -> dict:
    """Open a run for this minute's slot now (operator `schedule run-now`)."""
    from distributor import engine

    settings, store = context()
    run, created = engine.run_now(settings, store, edition, datetime.now(timezone.utc), force=force)
    if created:
        build_run.delay(run.id)
    return {"run": run.id, "created": created}
