"""Email tasks: send one batch of a run; retry deferred deliveries until their deadline."""

from __future__ import annotations

from datetime import datetime, timezone

from tasks.app import app
from tasks.base import RETRY
from tasks.runtime import context


@app.task(name="tasks.email.send_batch", **RETRY)
def send_batch(run_id: int, first_id: int, last_id: int) -> dict:
    """Send the queued deliveries of subscribers first_id..last_id (claimed, so never twice)."""
    from distributor import engine
    from distributor.delivery import email as email_delivery
    from distributor.delivery import leases

    settings, store = context()
    # Redelivered after its worker died (acks_late, reject_on_worker_lost), the batch finds
    # its rows leased to the dead process: it waits out that lease once and sends them.
    counts = email_delivery.send_batch(
        settings, store, run_id, first_id, last_id, now=datetime.now(timezone.utc), wait_for_leases=True
    )
    if leases.stop_requested() or counts.released:
        # A warm shutdown (or a lease this process could not renew): the rows the batch
        # did not start are queued again in the ledger, and the batch goes back to the
        # broker for the next worker.
        send_batch.apply_async((run_id, first_id, last_id))
        return {"run": run_id, "batch": [first_id, last_id], "requeued": True, **dict(counts)}
    engine.finish_if_done(store, run_id)
    return {"run": run_id, "batch": [first_id, last_id], **dict(counts)}


@app.task(name="tasks.email.retry_deferred", **RETRY)
def retry_deferred() -> dict:
    """Re-send deferred deliveries whose next attempt has come (beat, every tick)."""
    from distributor import engine
    from distributor.delivery import email as email_delivery

    settings, store = context()
    report = dict(email_delivery.retry_deferred(settings, store, datetime.now(timezone.utc)))
    # A retry may settle a run's last delivery: close such runs here.
    engine.finish_settled_runs(store)
    return report
