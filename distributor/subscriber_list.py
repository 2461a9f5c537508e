"""Finding subscribers and what was sent to them: read-only queries for the console.

Search is by address substring, status and section, a page at a time in id order. A
section matches readers who chose it and readers who take every section (sections None),
since both receive it. Sections are stored as a JSON list; the match is on its text
(`"slug"` with the quotes), which reads the same on SQLite and PostgreSQL, and slugs are
plain `[a-z0-9-]` words, so no slug is a part of another's quoted form.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Text, cast, func, or_, select

from distributor.store import Store
from distributor.store.models import DeliveryRow, EditionRunRow, SubscriberRow
from distributor.subscribers import STATUSES, Subscriber, _value

PAGE_SIZE = 50
LAST_DELIVERIES = 20


@dataclass(frozen=True)
class SearchPage:
    """One page of a search: the subscribers on it, the number found, the page number."""

    subscribers: list[Subscriber]
    total: int
    page: int
    size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search(
    store: Store,
    *,
    address: str = "",
    status: str | None = None,
    section: str | None = None,
    page: int = 1,
    size: int = PAGE_SIZE,
) -> SearchPage:
    """Subscribers whose address contains `address` (any case), of `status`, receiving
    `section`; page `page` (from 1) of `size`, in id order."""
    if status is not None and status not in STATUSES:
        raise ValueError(f"status: {status!r} is not one of {', '.join(STATUSES)}")
    conditions = []
    needle = address.strip().lower()
    if needle:
        conditions.append(func.lower(SubscriberRow.email).like(f"%{_like_escape(needle)}%", escape="\\"))
    if status:
        conditions.append(SubscriberRow.status == status)
    if section:
        text = cast(SubscriberRow.sections, Text)
        conditions.append(
            or_(SubscriberRow.sections.is_(None), text == "null", text.like(f'%"{_like_escape(section)}"%', escape="\\"))
        )
    page = max(1, page)
    with store.session() as session:
        total = session.scalar(select(func.count()).select_from(SubscriberRow).where(*conditions)) or 0
        rows = session.scalars(
            select(SubscriberRow).where(*conditions).order_by(SubscriberRow.id).offset((page - 1) * size).limit(size)
        )
        return SearchPage([_value(r) for r in rows], total, page, size)


@dataclass(frozen=True)
class DeliveryLine:
    """One email of an edition run to this reader, as the ledger holds it."""

    run_id: int
    edition: str
    slot: datetime
    status: str
    reply: str
    attempts: int
    at: datetime  # when the row last changed (sent, deferred, failed)


def deliveries_of(store: Store, subscriber_id: int, limit: int = LAST_DELIVERIES) -> list[DeliveryLine]:
    """The reader's last `limit` deliveries, newest first."""
    with store.session() as session:
        rows = session.execute(
            select(DeliveryRow, EditionRunRow.edition, EditionRunRow.slot)
            .join(EditionRunRow, EditionRunRow.id == DeliveryRow.run_id)
            .where(DeliveryRow.subscriber_id == subscriber_id)
            .order_by(DeliveryRow.id.desc())
            .limit(limit)
        ).all()
        return [
            DeliveryLine(row.run_id, edition, slot, row.status, row.reply, row.attempts, row.updated_at)
            for row, edition, slot in rows
        ]
