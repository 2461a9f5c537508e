"""Delivery: the dispatch stage, from an edition run to one ledger row per recipient.

email.py turns a prepared edition run into deliveries (one row per run and subscriber),
sends them in batches by subscriber-id range through the mail channel, and records each
outcome in the ledger. The ledger, not the broker, is the source of truth: every step can
run twice and still send each message once.

Channel posts keep their own ledger, shared by every kind (ledger.py: one row per channel
and article or run); telegram.py and social.py (Mastodon, Bluesky) are each kind's sending.
"""

from distributor.delivery.email import (
    BatchReport,
    DispatchReport,
    batch_ranges,
    create_deliveries,
    dispatch_run,
    retry_deferred,
    send_batch,
)

__all__ = [
    "BatchReport",
    "DispatchReport",
    "batch_ranges",
    "create_deliveries",
    "dispatch_run",
    "retry_deferred",
    "send_batch",
]
