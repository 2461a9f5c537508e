"""What one issue did: its deliveries over time, why some did not go, its Telegram posts
and the clicks it earned. Read-only queries for the console's run page and its twin.

Clicks are counted per article, run and channel by the click redirect; who clicked is
never recorded (links are rendered once per variant, and a reader's click is not ours to
keep), so there are click totals, not unique clickers.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select

from distributor.store import Store
from distributor.store.models import (
    ArticleRow,
    DeliveryRow,
    EditionRunRow,
    SubscriberRow,
    TelegramPostRow,
    TrendingClickRow,
)

# Width of one bar of the "sent over time" table.
TIMELINE_STEP = timedelta(minutes=1)
MAX_TIMELINE_STEPS = 120


@dataclass(frozen=True)
class RunSummary:
    id: int
    edition: str
    slot: datetime
    timezone: str
    attempt: int
    status: str
    articles: int
    window_start: datetime
    window_end: datetime
    created_at: datetime
    finished_at: datetime | None
    note: str


def _summary(row: EditionRunRow) -> RunSummary:
    return RunSummary(
        row.id, row.edition, row.slot, row.timezone, row.attempt, row.status, len(row.article_keys or []),
        row.window_start, row.window_end, row.created_at, row.finished_at, row.note,
    )


def list_runs(store: Store, *, edition: str | None = None, page: int = 1, size: int = 50) -> tuple[list[RunSummary], int]:
    """A page of runs, newest first, and how many there are in all."""
    query = select(EditionRunRow)
    counter = select(func.count()).select_from(EditionRunRow)
    if edition:
        query = query.where(EditionRunRow.edition == edition)
        counter = counter.where(EditionRunRow.edition == edition)
    query = query.order_by(EditionRunRow.created_at.desc(), EditionRunRow.id.desc()).offset((page - 1) * size).limit(size)
    with store.session() as session:
        return [_summary(r) for r in session.scalars(query)], int(session.scalar(counter) or 0)


def get_run(store: Store, run_id: int) -> RunSummary | None:
    with store.session() as session:
        row = session.get(EditionRunRow, run_id)
        return _summary(row) if row else None


def timeline(store: Store, run_id: int) -> list[dict]:
    """Deliveries settled per minute (by their last update), from the first to the last."""
    with store.session() as session:
        rows = session.execute(
            select(DeliveryRow.status, DeliveryRow.updated_at).where(
                DeliveryRow.run_id == run_id, DeliveryRow.status.in_(("sent", "failed", "deferred", "suppressed"))
            )
        ).all()
    if not rows:
        return []
    start = min(moment for _, moment in rows).replace(second=0, microsecond=0)
    buckets: dict[int, Counter] = {}
    for status, moment in rows:
        index = min(int((moment - start) / TIMELINE_STEP), MAX_TIMELINE_STEPS - 1)
        buckets.setdefault(index, Counter())[status] += 1
    return [
        {"at": start + index * TIMELINE_STEP, **{s: buckets[index].get(s, 0) for s in ("sent", "deferred", "failed", "suppressed")}}
        for index in sorted(buckets)
    ]


def reasons(store: Store, run_id: int, limit: int = 20) -> list[dict]:
    """Why deliveries were deferred or failed: the server's replies grouped, most first."""
    with store.session() as session:
        rows = session.execute(
            select(DeliveryRow.status, DeliveryRow.reply, func.count())
            .where(DeliveryRow.run_id == run_id, DeliveryRow.status.in_(("deferred", "failed", "suppressed")))
            .group_by(DeliveryRow.status, DeliveryRow.reply)
            .order_by(func.count().desc(), DeliveryRow.status, DeliveryRow.reply)
            .limit(limit)
        ).all()
    return [{"status": status, "reply": reply or "(no reply)", "count": n} for status, reply, n in rows]


def bounces(store: Store, run_id: int) -> dict:
    """Readers of this run suppressed because of it: bounced (refused at send time, or a
    bounce that came back naming one of this run's messages) or complained about it.

    Counted from the subscriber events that name the run (distributor.inbound), plus the
    send-time refusals, which mark the subscriber and fail the delivery without an event.
    """
    from distributor.store.models import SubscriberEventRow

    with store.session() as session:
        by_event = {
            kind: set(session.scalars(
                select(SubscriberEventRow.subscriber_id).where(
                    SubscriberEventRow.run_id == run_id, SubscriberEventRow.kind == kind
                )
            ).all())
            for kind in ("bounced", "complained")
        }
        refused = set(session.scalars(
            select(DeliveryRow.subscriber_id)
            .join(SubscriberRow, SubscriberRow.id == DeliveryRow.subscriber_id)
            .where(DeliveryRow.run_id == run_id, DeliveryRow.status == "failed", SubscriberRow.status == "bounced")
        ).all())
    return {"bounced": len(by_event["bounced"] | refused), "complained": len(by_event["complained"])}


def telegram_posts(store: Store, run_id: int, chat_links: dict[str, str] | None = None) -> list[dict]:
    """The run's Telegram posts with a t.me link where the channel has a public username."""
    chat_links = chat_links or {}
    with store.session() as session:
        rows = list(session.scalars(select(TelegramPostRow).where(TelegramPostRow.run_id == run_id).order_by(TelegramPostRow.channel)))
    result = []
    for row in rows:
        base = chat_links.get(row.channel)
        ids = list(row.message_ids or [])
        result.append(
            {
                "channel": row.channel,
                "status": row.status,
                "messages": len(ids),
                "link": f"{base}/{ids[0]}" if base and ids else None,
                "error": row.error,
                "posted_at": row.posted_at,
            }
        )
    return result


def clicks(store: Store, run_id: int) -> dict:
    """Clicks per article (with its title and section) and per section, most first."""
    with store.session() as session:
        rows = session.execute(
            select(TrendingClickRow.article_key, TrendingClickRow.channel, TrendingClickRow.clicks).where(
                TrendingClickRow.run_id == run_id
            )
        ).all()
        keys = sorted({key for key, _, _ in rows})
        articles = {
            a.key: a for a in session.scalars(select(ArticleRow).where(ArticleRow.key.in_(keys)))
        } if keys else {}
    per_article: dict[str, dict] = {}
    per_section: Counter = Counter()
    for key, channel, n in rows:
        article = articles.get(key)
        entry = per_article.setdefault(
            key,
            {"key": key, "title": article.title if article else key, "section": article.section if article else "", "clicks": 0, "by_channel": {}},
        )
        entry["clicks"] += n
        entry["by_channel"][channel] = entry["by_channel"].get(channel, 0) + n
        per_section[entry["section"] or "(unknown)"] += n
    return {
        "total": sum(per_section.values()),
        "articles": sorted(per_article.values(), key=lambda e: (-e["clicks"], e["key"])),
        "sections": [{"section": s, "clicks": n} for s, n in sorted(per_section.items(), key=lambda i: (-i[1], i[0]))],
    }
