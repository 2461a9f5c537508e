"""One inbound message in: classify, apply the policy, remember it. Idempotent by key.

The key is the message's Message-ID (a digest of its bytes when it has none), or the
provider's event id for webhooks: a message delivered twice (an MTA retrying after a
lost reply, an IMAP rerun) or replayed is recorded and acted on once.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from distributor.inbound import policy
from distributor.inbound.classify import Classification, classify
from distributor.settings import Settings
from distributor.store import Store
from distributor.store.models import InboundMessageRow

log = logging.getLogger(__name__)

# Bytes of an `unknown` message kept for an operator to read.
EXCERPT_BYTES = 16 * 1024
KEY_MAX = 255


@dataclass(frozen=True)
class Handled:
    """The result of handling one inbound message or event."""

    found: Classification
    applied: policy.Applied
    duplicate: bool = False


def message_key(found: Classification, raw: bytes) -> str:
    mid = found.message_id.strip()
    if mid and len(mid) <= 200:
        return "mid:" + mid
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def handle_message(
    settings: Settings,
    store: Store,
    raw: bytes,
    recipients: list[str] | tuple[str, ...] = (),
    *,
    source: str,
    now: datetime | None = None,
) -> Handled:
    """Classify one message and act on it, once per Message-ID."""
    found = classify(settings, raw, recipients)
    excerpt = raw[:EXCERPT_BYTES].decode("utf-8", "replace") if found.outcome == "unknown" else ""
    return handle_outcome(settings, store, found, key=message_key(found, raw), source=source, now=now, excerpt=excerpt)


def handle_outcome(
    settings: Settings,
    store: Store,
    found: Classification,
    *,
    key: str,
    source: str,
    now: datetime | None = None,
    excerpt: str = "",
    extra: dict | None = None,
    subscriber_id: int | None = None,
    run_id: int | None = None,
) -> Handled:
    """Act on an outcome (from a message or a webhook event) once per `key`."""
    moment = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    key = key[:KEY_MAX]
    try:
        with store.session() as session:
            if session.scalar(select(InboundMessageRow.id).where(InboundMessageRow.key == key)) is not None:
                return Handled(found, policy.Applied(reason="already handled"), duplicate=True)
            applied = policy.apply(
                settings, session, found, source, moment, extra=extra, subscriber_id=subscriber_id, run_id=run_id
            )
            session.add(
                InboundMessageRow(
                    key=key, received_at=moment, source=source, outcome=found.outcome,
                    delivery_id=found.delivery_id, subscriber_id=applied.subscriber_id,
                    detail={**found.detail(), **(extra or {}), **({"note": applied.reason} if applied.reason else {})},
                    excerpt=excerpt,
                )
            )
    except IntegrityError:
        # The same key handled at the same moment by another process: theirs counts.
        return Handled(found, policy.Applied(reason="already handled"), duplicate=True)
    log.info(
        "inbound %s", found.outcome,
        extra={"source": source, "delivery": found.delivery_id, "subscriber": applied.subscriber_id, "events": applied.events},
    )
    return Handled(found, applied)


def recent(store: Store, *, outcome: str | None = None, limit: int = 50) -> list[dict]:
    """Handled inbound messages and webhook events, newest first, for an operator."""
    query = select(InboundMessageRow).order_by(InboundMessageRow.received_at.desc(), InboundMessageRow.id.desc()).limit(limit)
    if outcome:
        query = query.where(InboundMessageRow.outcome == outcome)
    with store.session() as session:
        return [
            {
                "id": row.id, "received_at": row.received_at.isoformat(), "source": row.source,
                "outcome": row.outcome, "key": row.key, "delivery_id": row.delivery_id,
                "subscriber_id": row.subscriber_id, "detail": dict(row.detail or {}), "excerpt": row.excerpt,
            }
            for row in session.scalars(query)
        ]
