"""What an operator watches: the health of each part, runs in progress, what comes next.

Read-only queries over the database (and a ping of Redis), shared by the console's
overview, its JSON twin and `/healthz`. Workers leave a mark here as they work
(`worker_seen`), since the database, not the broker, is what every process can reach.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, select, text

from distributor import schedules
from distributor.settings import Settings
from distributor.store import Store
from distributor.store.models import (
    ChannelStateRow,
    DeliveryRow,
    EditionRunRow,
    FeedStateRow,
    SchedulerStateRow,
    TelegramPostRow,
    utcnow,
)

WORKER_PREFIX = "worker:"
# A worker counts as alive when it finished a task this recently.
WORKER_SEEN_WITHIN = timedelta(minutes=1)
IN_PROGRESS = ("building", "ready", "sending")
# The rate of a run is measured over this trailing window.
RATE_WINDOW = timedelta(minutes=1)


@dataclass(frozen=True)
class Component:
    """One part of the system: ok, or not, with a line an operator can act on."""

    name: str
    ok: bool
    detail: str
    age_seconds: float | None = None  # how long since it was last seen working


@dataclass(frozen=True)
class RunProgress:
    id: int
    edition: str
    slot: datetime
    status: str
    total: int
    sent: int
    failed: int
    deferred: int
    queued: int
    per_minute: int
    eta_seconds: int | None
    telegram: dict[str, int] = field(default_factory=dict)

    @property
    def done(self) -> int:
        return self.sent + self.failed

    @property
    def percent(self) -> int:
        if not self.total:
            # No deliveries yet: still being built (0 %), or finished with nobody to send to.
            return 0 if self.status in IN_PROGRESS else 100
        return int(100 * self.done / self.total)


def worker_seen(store: Store, name: str, now: datetime | None = None) -> None:
    """Mark worker `name` (hostname) as alive now."""
    key = (WORKER_PREFIX + name)[:64]
    now = now or utcnow()
    with store.session() as session:
        row = session.get(SchedulerStateRow, key)
        if row is None:
            session.add(SchedulerStateRow(name=key, value=now))
        else:
            row.value = now


def _marker(store: Store, name: str) -> datetime | None:
    with store.session() as session:
        row = session.get(SchedulerStateRow, name)
        return row.value if row else None


def workers(store: Store, now: datetime) -> list[tuple[str, float]]:
    """(worker name, seconds since last seen) for every worker ever seen, newest first."""
    with store.session() as session:
        rows = session.execute(
            select(SchedulerStateRow.name, SchedulerStateRow.value).where(SchedulerStateRow.name.like(WORKER_PREFIX + "%"))
        ).all()
    seen = [(name[len(WORKER_PREFIX):], (now - value).total_seconds()) for name, value in rows]
    return sorted(seen, key=lambda item: (item[1], item[0]))


def component_health(settings: Settings, store: Store, now: datetime | None = None, *, redis_ping=None) -> list[Component]:  # noqa: ANN001
    """Database, broker, beat, workers, and the last success of SMTP and the Bot API.

    `redis_ping()` returns True when the broker answers (default: a real ping of
    REDIS_URL); without REDIS_URL the broker is in-process and always "ok".
    """
    now = now or utcnow()
    parts: list[Component] = []
    try:
        with store.session() as session:
            session.execute(text("SELECT 1"))
        parts.append(Component("database", True, store.engine.dialect.name))
    except Exception as exc:  # noqa: BLE001 - any failure means "down"; the message may name a host
        return [Component("database", False, f"unreachable ({type(exc).__name__})")]

    if settings.redis_url:
        ping = redis_ping or (lambda: _redis_ping(settings.redis_url))
        ok = bool(ping())
        parts.append(Component("broker", ok, "Redis answers" if ok else "Redis does not answer"))
    else:
        parts.append(Component("broker", True, "in process (no REDIS_URL)"))

    tick = _marker(store, schedules.TICK_MARKER)
    tick_age = (now - tick).total_seconds() if tick else None
    limit = 3 * settings.file.scheduler.tick_seconds
    parts.append(
        Component(
            "beat",
            tick_age is not None and tick_age <= limit,
            "never ticked" if tick_age is None else f"last tick {int(tick_age)} s ago (expected every {settings.file.scheduler.tick_seconds} s)",
            tick_age,
        )
    )
    alive = [name for name, age in workers(store, now) if age <= WORKER_SEEN_WITHIN.total_seconds()]
    parts.append(
        Component("workers", bool(alive), f"{len(alive)} seen in the last minute" + (f": {', '.join(alive)}" if alive else ""))
    )
    with store.session() as session:
        last_mail = session.scalar(select(func.max(DeliveryRow.updated_at)).where(DeliveryRow.status == "sent"))
        last_post = session.scalar(select(func.max(TelegramPostRow.posted_at)).where(TelegramPostRow.status == "sent"))
    for name, moment in (("smtp", last_mail), ("telegram", last_post)):
        age = (now - moment).total_seconds() if moment else None
        detail = "no success yet" if moment is None else f"last success {int(age)} s ago"
        # Informational: no mail for a day is normal between editions, so never "down".
        parts.append(Component(name, True, detail, age))
    return parts


def _redis_ping(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1).ping())
    except Exception:  # noqa: BLE001 - any failure means "does not answer"
        return False


def run_progress(store: Store, run_id: int, now: datetime | None = None) -> RunProgress | None:
    """Sent of total, messages a minute over the last minute, and an ETA."""
    return runs_progress(store, [run_id], now).get(run_id)


def runs_progress(store: Store, run_ids: Sequence[int], now: datetime | None = None) -> dict[int, RunProgress]:
    """`run_progress` for many runs in four queries, whatever their number (a page of the
    runs list shows fifty)."""
    now = now or utcnow()
    ids = list(dict.fromkeys(run_ids))
    if not ids:
        return {}
    counts: dict[int, dict[str, int]] = defaultdict(dict)
    recent: dict[int, int] = {}
    posts: dict[int, dict[str, int]] = defaultdict(dict)
    with store.session() as session:
        runs = list(session.scalars(select(EditionRunRow).where(EditionRunRow.id.in_(ids))))
        for run_id, status, count in session.execute(
            select(DeliveryRow.run_id, DeliveryRow.status, func.count())
            .where(DeliveryRow.run_id.in_(ids)).group_by(DeliveryRow.run_id, DeliveryRow.status)
        ):
            counts[run_id][status] = count
        for run_id, count in session.execute(
            select(DeliveryRow.run_id, func.count())
            .where(and_(DeliveryRow.run_id.in_(ids), DeliveryRow.status == "sent", DeliveryRow.updated_at >= now - RATE_WINDOW))
            .group_by(DeliveryRow.run_id)
        ):
            recent[run_id] = count
        for run_id, status, count in session.execute(
            select(TelegramPostRow.run_id, TelegramPostRow.status, func.count())
            .where(TelegramPostRow.run_id.in_(ids)).group_by(TelegramPostRow.run_id, TelegramPostRow.status)
        ):
            posts[run_id][status] = count
    return {run.id: _progress(run, counts[run.id], recent.get(run.id, 0), posts[run.id]) for run in runs}


def _progress(run: EditionRunRow, counts: dict[str, int], recent: int, posts: dict[str, int]) -> RunProgress:
    total = sum(counts.values())
    sent, failed = counts.get("sent", 0), counts.get("failed", 0) + counts.get("suppressed", 0)
    remaining = total - sent - failed
    eta = int(remaining * 60 / recent) if recent and remaining else (0 if not remaining else None)
    return RunProgress(
        id=run.id,
        edition=run.edition,
        slot=run.slot,
        status=run.status,
        total=total,
        sent=sent,
        failed=failed,
        deferred=counts.get("deferred", 0),
        queued=counts.get("queued", 0) + counts.get("sending", 0),
        per_minute=int(recent),
        eta_seconds=eta,
        telegram=dict(posts),
    )


def runs_in_progress(store: Store, now: datetime | None = None) -> list[RunProgress]:
    with store.session() as session:
        ids = list(
            session.scalars(select(EditionRunRow.id).where(EditionRunRow.status.in_(IN_PROGRESS)).order_by(EditionRunRow.id))
        )
    found = runs_progress(store, ids, now)
    return [found[run_id] for run_id in ids if run_id in found]


def upcoming(settings: Settings, store: Store, now: datetime | None = None, count: int = 1) -> list[dict]:
    """Each edition with its schedule and next `count` slots (in the site's zone)."""
    now = now or utcnow()
    tz = ZoneInfo(settings.site.timezone)
    result = []
    for item in schedules.seed(settings, store):
        slots = [] if item.paused else schedules.next_slots(item.cron, tz, now, count)
        result.append(
            {
                "edition": item.edition,
                "label": settings.editions[item.edition].label if item.edition in settings.editions else item.edition,
                "cron": item.cron,
                "paused": item.paused,
                "changed_by": item.changed_by,
                "next": [slot.astimezone(tz) for slot in slots],
            }
        )
    return result


def failing_sources(store: Store) -> list[dict]:
    with store.session() as session:
        rows = session.scalars(select(FeedStateRow).where(FeedStateRow.last_status == "error").order_by(FeedStateRow.source))
        return [{"source": r.source, "error": r.last_error, "polled_at": r.last_polled_at} for r in rows]


def paused_channels(store: Store) -> list[dict]:
    with store.session() as session:
        rows = session.scalars(select(ChannelStateRow).where(ChannelStateRow.paused.is_(True)).order_by(ChannelStateRow.channel))
        return [{"channel": r.channel, "reason": r.reason, "paused_at": r.paused_at} for r in rows]


def audience(settings: Settings, store: Store, edition: str) -> int:
    """Confirmed subscribers who would get `edition` by email now (all zones)."""
    from distributor.store.models import SubscriberRow

    defaults = {name for name, config in settings.editions.items() if config.default}
    total = 0
    after = 0
    while True:
        with store.session() as session:
            page = session.execute(
                select(SubscriberRow.id, SubscriberRow.editions)
                .where(SubscriberRow.status == "confirmed", SubscriberRow.id > after)
                .order_by(SubscriberRow.id)
                .limit(5000)
            ).all()
        if not page:
            return total
        total += sum(1 for _, editions in page if edition in (editions if editions is not None else defaults))
        after = page[-1][0]
