"""The engine: ticks open each slot's run once, catch up within grace, prepare issues."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from distributor import engine, schedules
from distributor.articles import Article
from distributor.store.articles import save_articles
from distributor.store.models import EditionRunRow, FeedStateRow, SubscriberRow

UTC = timezone.utc
# 07:00 IST on 4 July 2025 is 01:30 UTC.
MORNING = datetime(2025, 7, 4, 1, 30, tzinfo=UTC)


def articles(n: int, before: datetime, section: str = "nation") -> list[Article]:
    return [
        Article(
            key=f"{section}-{i}",
            url=f"https://www.newsarenaindia.com/{section}/{i}",
            title=f"Story {i}",
            section=section,
            published_at=before - timedelta(hours=i + 1),
            trending=i == 0,
        )
        for i in range(n)
    ]


def runs(store) -> list[EditionRunRow]:
    with store.session() as session:
        return list(session.scalars(select(EditionRunRow).order_by(EditionRunRow.id)))


def test_tick_opens_each_due_slot_once_even_when_racing(settings, store):
    schedules.set_marker(store, engine.TICK_MARKER, MORNING - timedelta(minutes=1))
    now = MORNING + timedelta(seconds=20)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: engine.tick(settings, store, now), range(4)))
    opened = [r for result in results for r in result.opened]
    # The every-five-minutes "breaking" edition is due at 07:00 IST too.
    assert sorted((r.edition, r.slot) for r in opened) == [("breaking", MORNING), ("morning", MORNING)]
    assert len(runs(store)) == 2
    # A later tick does not reopen it.
    assert engine.tick(settings, store, now + timedelta(seconds=30)).opened == []


def test_restarted_scheduler_catches_up_within_grace_and_skips_older(settings, store):
    # The scheduler was down from 3 July 12:00 UTC to 4 July 13:00 UTC (grace: 120 min).
    schedules.set_marker(store, engine.TICK_MARKER, datetime(2025, 7, 3, 12, tzinfo=UTC))
    now = datetime(2025, 7, 4, 13, 45, tzinfo=UTC)  # 19:15 IST: the evening slot was 15 min ago
    result = engine.tick(settings, store, now)
    assert sorted((r.edition, r.slot) for r in result.opened) == [
        ("breaking", datetime(2025, 7, 4, 13, 45, tzinfo=UTC)),  # only the latest of the missed 5-minute slots
        ("evening", datetime(2025, 7, 4, 13, 30, tzinfo=UTC)),
    ]
    skipped = {(s.edition, s.slot) for s in result.skipped}
    assert ("morning", MORNING) in skipped and ("evening", datetime(2025, 7, 3, 13, 30, tzinfo=UTC)) in skipped
    assert ("breaking", datetime(2025, 7, 4, 13, 40, tzinfo=UTC)) in skipped


def test_paused_edition_is_not_opened_and_change_applies_next_tick(settings, store):
    schedules.set_marker(store, engine.TICK_MARKER, MORNING - timedelta(minutes=1))
    schedules.pause(settings, store, "morning")
    schedules.pause(settings, store, "breaking")
    assert engine.tick(settings, store, MORNING + timedelta(seconds=5)).opened == []
    schedules.resume(settings, store, "morning")
    schedules.set_cron(settings, store, "morning", "0 8 * * *")
    eight = MORNING + timedelta(hours=1)
    assert [r.slot for r in engine.tick(settings, store, eight).opened] == [eight]


def test_local_time_edition_opens_one_run_per_subscriber_zone(settings, store):
    local = settings.editions["morning"].model_copy(update={"local_time": True})
    from distributor.settings import SchedulerConfig, Settings

    s = Settings(
        settings.file.model_copy(
            update={
                "editions": {"morning": local},
                "channels": {},
                "scheduler": SchedulerConfig(grace_minutes=24 * 60),
            }
        ),
        settings.env,
        settings.config_path,
    )
    with store.session() as session:
        for i, zone in enumerate(["Asia/Kolkata", "Europe/London", "Europe/London", "America/New_York"]):
            session.add(SubscriberRow(email=f"r{i}@example.com", status="confirmed", timezone=zone))
        session.add(SubscriberRow(email="pending@example.com", status="pending", timezone="Asia/Tokyo"))
    assert engine.subscriber_zones(s, store) == {"morning": ["America/New_York", "Asia/Kolkata", "Europe/London"]}
    schedules.set_marker(store, engine.TICK_MARKER, datetime(2025, 7, 4, 0, tzinfo=UTC))
    opened = engine.tick(s, store, datetime(2025, 7, 4, 12, tzinfo=UTC)).opened
    assert sorted((r.timezone, r.slot.hour, r.slot.minute) for r in opened) == [
        ("America/New_York", 11, 0),  # 07:00 EDT
        ("Asia/Kolkata", 1, 30),  # 07:00 IST
        ("Europe/London", 6, 0),  # 07:00 BST
    ]


def test_prepare_skips_thin_issue_and_fixes_the_layout(settings, store):
    save_articles(store, articles(2, MORNING))
    thin, _ = engine.open_slot(settings, store, "morning", MORNING)
    prepared = engine.prepare_run(settings, store, thin.id)
    assert not prepared.ready and "fewer than min_articles=3" in prepared.reason
    assert prepared.run.status == "skipped"

    save_articles(store, articles(5, MORNING, "sports"))
    full, _ = engine.open_slot(settings, store, "morning", MORNING, force=True)
    prepared = engine.prepare_run(settings, store, full.id)
    assert prepared.ready and len(prepared.run.article_keys) == 7
    issue = engine.issue_of(settings, store, prepared.run)
    # Articles arriving later never change a prepared issue.
    save_articles(store, articles(3, MORNING, "economy"))
    assert engine.prepare_run(settings, store, full.id).run.article_keys == prepared.run.article_keys
    again = engine.issue_of(settings, store, prepared.run)
    assert again == issue
    assert [a.key for a in issue.trending] == ["nation-0", "sports-0"]
    assert [g.section.slug for g in issue.groups] == ["nation", "sports"]


def test_sources_due_by_poll_interval(settings, store):
    now = MORNING
    assert engine.sources_due(settings, store, now) == ["newsarena-sample"]
    location = settings.source_location(settings.file.sources[0])
    with store.session() as session:
        session.add(FeedStateRow(source=location, last_polled_at=now - timedelta(minutes=3)))
    assert engine.sources_due(settings, store, now) == []
    assert engine.sources_due(settings, store, now + timedelta(minutes=7)) == ["newsarena-sample"]


def test_stalled_runs_are_requeued_once_per_period(settings, store):
    from distributor.store.models import DeliveryRow

    save_articles(store, articles(5, MORNING))
    run, _ = engine.open_slot(settings, store, "morning", MORNING)
    stuck, _ = engine.open_slot(settings, store, "evening", MORNING)
    engine.prepare_run(settings, store, run.id)
    engine.mark_sending(store, run.id)
    with store.session() as session:
        sub = SubscriberRow(email="reader@example.com", status="confirmed")
        session.add(sub)
        session.flush()
        session.add(DeliveryRow(run_id=run.id, subscriber_id=sub.id, status="queued", updated_at=MORNING, created_at=MORNING))
        for row in session.scalars(select(EditionRunRow)):
            row.created_at = MORNING
    later = MORNING + timedelta(minutes=10)
    assert sorted(engine.stale_runs(settings, store, later)) == sorted([run.id, stuck.id])
    # Claimed: the next tick within the period does not re-queue them again.
    assert engine.stale_runs(settings, store, later + timedelta(seconds=30)) == []
    assert sorted(engine.stale_runs(settings, store, later + timedelta(minutes=6))) == sorted([run.id, stuck.id])
    with store.session() as session:
        session.get(DeliveryRow, 1).status = "sent"
    assert engine.stale_runs(settings, store, later + timedelta(minutes=20)) == [stuck.id]


def test_fresh_runs_are_not_stale(settings, store):
    engine.open_slot(settings, store, "morning", MORNING)
    assert engine.stale_runs(settings, store, datetime.now(UTC)) == []


def test_run_opened_without_a_task_is_picked_up_by_the_next_tick(settings, store):
    now = datetime.now(UTC)
    run, _ = engine.run_now(settings, store, "morning", now)  # as the operator API does
    assert engine.stale_runs(settings, store, now + timedelta(seconds=5)) == []
    assert engine.stale_runs(settings, store, now + timedelta(seconds=31)) == [run.id]
    assert engine.stale_runs(settings, store, now + timedelta(seconds=61)) == []
