"""Subscriber events: every change to a reader's standing, with its evidence.

A bounce, complaint or unsubscribe that arrives by mail or webhook, and an operator's
reinstatement, each leave one row in `subscriber_events`; `distributor subscribers show`
lists them, and per-run counts come from them (reports.bounces).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from distributor.store import Store
from distributor.store.models import SubscriberEventRow, SubscriberRow
from distributor.subscribers import Subscriber, UnknownSubscriber, _now, _value, normalise_address

KINDS = ("bounced", "soft_bounce", "complained", "unsubscribed", "reinstated")
# smtp/imap/webhook: inbound mail; send: refused at RCPT while sending; web: the reader's
# own unsubscribe (one-click or the page); operator: the CLI or the console.
SOURCES = ("smtp", "imap", "webhook", "operator", "send", "web")
# Statuses an operator may reinstate: suppressions we decided on. An unsubscribe was the
# reader's own choice and only the reader can undo it (by subscribing again).
REINSTATABLE = ("bounced", "complained")


@dataclass(frozen=True)
class Event:
    """One stored subscriber event."""

    id: int
    subscriber_id: int
    at: datetime
    kind: str
    source: str
    run_id: int | None
    delivery_id: int | None
    detail: dict

    def as_dict(self) -> dict:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "kind": self.kind,
            "source": self.source,
            "run_id": self.run_id,
            "delivery_id": self.delivery_id,
            "detail": self.detail,
        }


def _event(row: SubscriberEventRow) -> Event:
    return Event(row.id, row.subscriber_id, row.at, row.kind, row.source, row.run_id, row.delivery_id, dict(row.detail or {}))


def record(
    session,  # noqa: ANN001 - an open Session: the event commits with the change it records
    subscriber_id: int,
    kind: str,
    source: str,
    *,
    now: datetime,
    run_id: int | None = None,
    delivery_id: int | None = None,
    detail: dict | None = None,
) -> None:
    """Add one event to the session (committed with the change it records)."""
    if kind not in KINDS:
        raise ValueError(f"unknown event kind {kind!r}")
    if source not in SOURCES:
        raise ValueError(f"unknown event source {source!r}")
    session.add(
        SubscriberEventRow(
            subscriber_id=subscriber_id, at=now, kind=kind, source=source,
            run_id=run_id, delivery_id=delivery_id, detail=dict(detail or {}),
        )
    )


def events_for(store: Store, subscriber_id: int) -> list[Event]:
    """A subscriber's events, oldest first."""
    with store.session() as session:
        rows = session.scalars(
            select(SubscriberEventRow)
            .where(SubscriberEventRow.subscriber_id == subscriber_id)
            .order_by(SubscriberEventRow.at, SubscriberEventRow.id)
        ).all()
        return [_event(r) for r in rows]


def reinstate(store: Store, email: str, *, operator: str = "", note: str = "", now: datetime | None = None) -> tuple[Subscriber, bool]:
    """An operator's reversal of a bounce or complaint: back to confirmed, with an event.

    Returns (subscriber, changed); a subscriber who is not bounced or complained is left
    as they are. UnknownSubscriber when nobody has the address.
    """
    moment = _now(now)
    with store.session() as session:
        row = session.scalars(select(SubscriberRow).where(SubscriberRow.email == normalise_address(email))).first()
        if row is None:
            raise UnknownSubscriber(f"no subscriber has the address {email.strip()!r}")
        if row.status not in REINSTATABLE:
            return _value(row), False
        was = row.status
        # Back to where they stood: confirmed if they ever confirmed, else pending. The
        # consent record (confirmed_at) is the reader's, so it is not rewritten.
        row.status = "confirmed" if row.confirmed_at is not None else "pending"
        row.status_changed_at = moment
        detail = {"was": was, "now": row.status}
        if operator:
            detail["operator"] = operator
        if note:
            detail["note"] = note
        record(session, row.id, "reinstated", "operator", now=moment, detail=detail)
        return _value(row), True
