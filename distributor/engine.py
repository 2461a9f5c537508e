"""The engine's decisions, free of Celery: what is due, which run to open, what to fan out.

`tasks/` calls these and only turns their answers into queued work; the one-process
`distributor run --once` calls the same functions directly. Every step is idempotent
through the database (unique runs, unique deliveries and posts), so a task that runs
twice, or two schedulers ticking at once, change nothing the second time.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import String, cast, select

from distributor import schedules
from distributor.editions import Edition, build_edition, edition_config, site_sections, window_for
from distributor.runs import RunInfo, get_run, open_run, previous_run_end, set_status
from distributor.settings import Settings
from distributor.store import Store
from distributor.store.models import EditionRunRow, FeedStateRow, SubscriberRow

log = logging.getLogger(__name__)

TICK_MARKER = schedules.TICK_MARKER  # one name; tests and older callers use engine.TICK_MARKER


@dataclass
class TickResult:
    """What one scheduler tick decided."""

    opened: list[RunInfo] = field(default_factory=list)  # new runs to build
    existing: list[RunInfo] = field(default_factory=list)  # already opened elsewhere
    skipped: list[schedules.DueSlot] = field(default_factory=list)  # missed beyond grace
    sources_due: list[str] = field(default_factory=list)
    stale: list[int] = field(default_factory=list)  # runs whose queued work looks lost


def subscriber_zones(settings: Settings, store: Store) -> dict[str, list[str]]:
    """For each local-time edition, the timezones of confirmed subscribers who want it."""
    local = [name for name, config in settings.editions.items() if config.local_time]
    if not local:
        return {}
    defaults = {name for name, config in settings.editions.items() if config.default}
    zones: dict[str, set[str]] = {name: set() for name in local}
    with store.session() as session:
        # Distinct on the JSON's text: PostgreSQL has no equality for json values, and
        # this keeps a large list to one row per (zone, preferences) combination.
        rows = session.execute(
            select(SubscriberRow.timezone, cast(SubscriberRow.editions, String))
            .where(SubscriberRow.status == "confirmed")
            .distinct()
        )
        for zone, editions_json in rows:
            editions = json.loads(editions_json) if editions_json else None
            wanted = set(editions) if editions is not None else defaults
            for name in local:
                if name in wanted:
                    zones[name].add(zone or settings.site.timezone)
    return {name: sorted(found) for name, found in zones.items()}


def open_slot(settings: Settings, store: Store, edition: str, slot: datetime, zone: str = "", *, force: bool = False) -> tuple[RunInfo, bool]:
    """Open the run of `edition` for `slot` (and subscriber zone), with its window."""
    config = edition_config(settings, edition)
    previous = previous_run_end(store, edition, slot, timezone=zone) if config.window == "since_last" else None
    window = window_for(config, slot, previous_end=previous)
    return open_run(store, edition, slot, window, timezone=zone, site_timezone=settings.site.timezone, force=force)


def tick(settings: Settings, store: Store, now: datetime) -> TickResult:
    """Open a run for every slot that came due since the last tick; list sources to poll.

    The last tick time lives in the database, so a restarted scheduler catches up on
    slots missed within the grace period, and skips (with a log line) older ones.
    """
    grace = timedelta(minutes=settings.file.scheduler.grace_minutes)
    current = schedules.seed(settings, store)
    last = schedules.get_marker(store, TICK_MARKER)
    # A brand-new install starts from now: it has nothing to catch up on.
    last = last or now - timedelta(seconds=settings.file.scheduler.tick_seconds)
    plan = schedules.plan_due(
        current,
        settings.editions,
        site_tz=settings.site.timezone,
        local_zones=subscriber_zones(settings, store),
        last_tick=min(last, now),
        now=now,
        grace=grace,
    )
    result = TickResult(skipped=list(plan.skipped) + list(plan.superseded))
    for missed in plan.skipped:
        log.warning(
            "slot missed beyond the grace period: skipped",
            extra={"edition": missed.edition, "slot": missed.slot.isoformat(), "tz": missed.timezone},
        )
    for later in plan.superseded:
        log.info(
            "missed slot superseded by a later one",
            extra={"edition": later.edition, "slot": later.slot.isoformat(), "tz": later.timezone},
        )
    for due in plan.due:
        run, created = open_slot(settings, store, due.edition, due.slot, due.timezone)
        (result.opened if created else result.existing).append(run)
    schedules.set_marker(store, TICK_MARKER, now)
    result.sources_due = sources_due(settings, store, now)
    result.stale = stale_runs(settings, store, now)
    return result


def stale_runs(settings: Settings, store: Store, now: datetime) -> list[int]:
    """Runs whose queued work looks lost, claimed for re-queueing; their ids.

    Two rules find them:
    - stalled (`stall_seconds`, default 60): a prepared run with deliveries or posts
      waiting to be sent, none claimed by a live sender, and no outcome recorded (the
      senders' `progress_at` stamp) for that long: its tasks are gone, e.g. Redis
      restarted without persistence. This is what makes recovery take a minute.
    - idle (`stale_after_seconds`): queued deliveries or posts nobody touched for that
      long, even while other batches of the run progress (one lost task among many).
    A run still building after a tick was opened without a task or lost its task.

    Each run is returned at most once per period (the claim is the `requeued_at` stamp),
    and re-queued work is harmless: sends are claimed in the database.
    """
    from sqlalchemy import and_, exists, func, not_, or_, update

    from distributor.delivery import leases
    from distributor.store.models import DeliveryRow, TelegramPostRow, utcnow

    scheduler = settings.file.scheduler
    stall_cutoff = now - timedelta(seconds=scheduler.stall_seconds)
    cutoff = now - timedelta(seconds=scheduler.stale_after_seconds)
    # The shorter period bounds how often one run is re-queued, whichever rule found it.
    period_cutoff = max(stall_cutoff, cutoff)
    not_recent = or_(EditionRunRow.requeued_at.is_(None), EditionRunRow.requeued_at < period_cutoff)
    prepared = EditionRunRow.status.in_(("ready", "sending"))

    queued_email = and_(DeliveryRow.run_id == EditionRunRow.id, DeliveryRow.status == "queued")
    due_post = and_(
        TelegramPostRow.run_id == EditionRunRow.id,
        TelegramPostRow.status == "pending",
        or_(TelegramPostRow.next_attempt_at.is_(None), TelegramPostRow.next_attempt_at <= now),
    )
    # Rows a live sender holds by an unexpired lease (delivery/leases.py). Leases run on
    # the wall clock, not the tick's `now`, like every lease check.
    wall = utcnow()
    live_email = exists().where(DeliveryRow.run_id == EditionRunRow.id, leases.live(DeliveryRow.__table__, wall))
    live_post = exists().where(TelegramPostRow.run_id == EditionRunRow.id, leases.live(TelegramPostRow.__table__, wall))
    stalled = and_(
        prepared,
        func.coalesce(EditionRunRow.progress_at, EditionRunRow.created_at) < stall_cutoff,
        or_(EditionRunRow.requeued_at.is_(None), EditionRunRow.requeued_at < stall_cutoff),
        or_(exists().where(queued_email), exists().where(due_post)),
        not_(live_email),
        not_(live_post),
    )
    idle_email = exists().where(queued_email, DeliveryRow.updated_at < cutoff)
    idle_posts = exists().where(
        TelegramPostRow.run_id == EditionRunRow.id, TelegramPostRow.status == "pending", TelegramPostRow.created_at < cutoff
    )
    idle = and_(
        prepared,
        EditionRunRow.created_at < cutoff,
        or_(EditionRunRow.requeued_at.is_(None), EditionRunRow.requeued_at < cutoff),
        or_(idle_email, idle_posts),
    )
    # A run still building after a tick was opened without a task (the operator API's
    # run-now) or lost its task: the first pick-up is immediate, later ones periodic.
    tick_ago = now - timedelta(seconds=scheduler.tick_seconds)
    lost_build = and_(
        EditionRunRow.status == "building",
        or_(
            and_(EditionRunRow.requeued_at.is_(None), EditionRunRow.created_at < tick_ago),
            and_(EditionRunRow.created_at < period_cutoff, EditionRunRow.requeued_at < period_cutoff),
        ),
    )
    claimed: list[int] = []
    with store.session() as session:
        candidates = list(session.scalars(select(EditionRunRow.id).where(or_(lost_build, stalled, idle))))
        for run_id in candidates:
            # The conditional update is the claim: two ticks racing re-queue a run once.
            changed = session.execute(
                update(EditionRunRow).where(EditionRunRow.id == run_id, not_recent).values(requeued_at=now)
            ).rowcount
            if changed:
                claimed.append(run_id)
    for run_id in claimed:
        log.warning("run looks stalled: re-queueing its work", extra={"run": run_id})
    return claimed


def sources_due(settings: Settings, store: Store, now: datetime) -> list[str]:
    """Enabled sources whose poll interval has passed since their last poll."""
    with store.session() as session:
        polled = dict(session.execute(select(FeedStateRow.source, FeedStateRow.last_polled_at)).all())
    due = []
    for source in settings.file.sources:
        if not source.enabled:
            continue
        last = polled.get(settings.source_location(source))
        if last is None or now - last >= timedelta(minutes=source.poll_minutes):
            due.append(source.name)
    return due


@dataclass(frozen=True)
class Prepared:
    """A run after building: `ready` runs are dispatched, others say why not."""

    run: RunInfo
    ready: bool
    reason: str = ""


def prepare_run(settings: Settings, store: Store, run_id: int) -> Prepared:
    """Build the issue for a run: fix its article list, or skip it when too few articles.

    Idempotent: a run already prepared keeps its article list (a redelivered task must
    not send a different issue than the first attempt began to send).
    """
    run = get_run(store, run_id)
    if run.status != "building":
        return Prepared(run, ready=run.status in ("ready", "sending", "sent"), reason=run.status)
    config = edition_config(settings, run.edition)
    issue = build_edition(settings, store, run.edition, at=run.window.end, previous_end=run.window.start if config.window == "since_last" else None)
    if issue.count < config.min_articles:
        note = f"{issue.count} article(s) in the window, fewer than min_articles={config.min_articles}"
        set_status(store, run_id, "skipped", note=note, finished=True)
        log.info("edition run skipped", extra={"edition": run.edition, "run": run_id, "reason": note})
        return Prepared(get_run(store, run_id), ready=False, reason=note)
    from sqlalchemy import update

    from distributor.store.models import utcnow

    with store.session() as session:
        # Only from "building": a second builder (a re-queued build racing the first)
        # must not replace the article list the first one began to send. The layout
        # keeps every candidate and the limits, so each variant can be made again later;
        # article_keys are what an all-sections reader gets (the run's count). The
        # progress stamp gives the fan-out that follows its own stall_seconds.
        session.execute(
            update(EditionRunRow)
            .where(EditionRunRow.id == run_id, EditionRunRow.status == "building")
            .values(
                article_keys=[a.key for a in issue.for_sections(None).articles],
                layout=issue.layout(),
                status="ready",
                progress_at=utcnow(),
            )
        )
    run = get_run(store, run_id)
    return Prepared(run, ready=run.status in ("ready", "sending", "sent"), reason="" if run.status == "ready" else run.status)


def issue_of(settings: Settings, store: Store, run: RunInfo) -> Edition:
    """The Edition a run was prepared with: the same articles in the same places."""
    from distributor.store.articles import articles_by_keys

    with store.session() as session:
        layout = session.get(EditionRunRow, run.id).layout or {}
    keys = dict.fromkeys([*run.article_keys, *layout.get("trending", [])])
    for _, section_keys in layout.get("sections", []):
        keys.update(dict.fromkeys(section_keys))
    articles = {a.key: a for a in articles_by_keys(store, list(keys))}
    return Edition.from_layout(
        run.edition,
        edition_config(settings, run.edition).label,
        run.window,
        layout,
        articles,
        site_sections(settings),
    )


def run_now(settings: Settings, store: Store, edition: str, now: datetime, *, force: bool = False) -> tuple[RunInfo, bool]:
    """Open a run for the current minute (operator `run-now`); the same minute twice is one run."""
    slot = now.replace(second=0, microsecond=0)
    return open_slot(settings, store, edition, slot, force=force)


def mark_sending(store: Store, run_id: int) -> None:
    """A prepared run whose deliveries and posts are queued."""
    with store.session() as session:
        row = session.get(EditionRunRow, run_id)
        if row is not None and row.status == "ready":
            row.status = "sending"


def finish_settled_runs(store: Store) -> list[int]:
    """Close every sending run whose deliveries and posts have all settled; their ids.

    A run's last delivery may be settled by a retry pass rather than by the run's own
    batch or post task (which call finish_if_done themselves); the retry tasks call this.
    Only "sending" runs: a "ready" one may still be writing its deliveries.
    """
    with store.session() as session:
        open_runs = session.scalars(select(EditionRunRow.id).where(EditionRunRow.status == "sending")).all()
    return [run_id for run_id in open_runs if finish_if_done(store, run_id)]


# Delivery and post states after which nothing more will happen without an operator.
_SETTLED_EMAIL = ("sent", "failed", "suppressed")
_SETTLED_TELEGRAM = ("sent", "failed", "unknown", "skipped")


def finish_if_done(store: Store, run_id: int) -> bool:
    """Mark a sending run `sent` once every delivery and post has settled."""
    from sqlalchemy import func

    from distributor.store.models import DeliveryRow, TelegramPostRow, utcnow

    with store.session() as session:
        row = session.get(EditionRunRow, run_id)
        if row is None or row.status not in ("ready", "sending"):
            return False
        open_email = session.scalar(
            select(func.count()).where(DeliveryRow.run_id == run_id, DeliveryRow.status.not_in(_SETTLED_EMAIL))
        )
        open_posts = session.scalar(
            select(func.count()).where(TelegramPostRow.run_id == run_id, TelegramPostRow.status.not_in(_SETTLED_TELEGRAM))
        )
        if open_email or open_posts:
            return False
        row.status = "sent"
        row.finished_at = utcnow()
        edition, slot = row.edition, row.slot
        took = (row.finished_at - row.created_at).total_seconds()
    from distributor import metrics

    try:
        metrics.RUN_DURATION.labels(edition=edition).observe(max(took, 0.0))
    except Exception:  # noqa: BLE001 - a metrics problem never fails a run
        log.debug("run duration not observed", exc_info=True)
    # The run's summary line: what operators grep for after each issue.
    from distributor.runs import delivery_counts, telegram_counts

    log.info(
        "edition run finished",
        extra={
            "run": run_id,
            "edition": edition,
            "slot": slot.isoformat(),
            **delivery_counts(store, run_id),
            "telegram": telegram_counts(store, run_id),
        },
    )
    return True
