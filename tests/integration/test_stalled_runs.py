"""Lost broker work is found within a minute: runs stamp progress as senders record
outcomes, and the tick re-queues a run with waiting work, no live claim and no progress
for `[scheduler] stall_seconds` (60 by default; `stale_after_seconds` stays 300).

Times are read from the stamps the real senders write (wall clock), and the tick's
rule is evaluated at chosen moments after them.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import select, update

from distributor import engine
from distributor.delivery import email as email_delivery
from distributor.delivery import ledger
from distributor.delivery import social as social_delivery
from distributor.delivery import telegram as telegram_delivery
from distributor.store.models import DeliveryRow, EditionRunRow, SubscriberRow, TelegramPostRow
from tests.integration.test_engine import articles
from distributor.store.articles import save_articles

UTC = timezone.utc


def sending_run(settings, store, readers: int = 3) -> tuple[int, list[int]]:
    """A run built and fanned out as build_run does; its id and its subscribers' ids."""
    now = datetime.now(UTC)
    save_articles(store, articles(5, now - timedelta(minutes=5)))
    with store.session() as session:
        subs = [SubscriberRow(email=f"r{i}@example.com", status="confirmed") for i in range(readers)]
        session.add_all(subs)
    run, _ = engine.run_now(settings, store, "morning", now)
    assert engine.prepare_run(settings, store, run.id).ready
    email_delivery.create_deliveries(settings, store, run.id)
    engine.mark_sending(store, run.id)
    return run.id, sorted(s.id for s in subs)


def progress_at(store, run_id: int) -> datetime | None:
    with store.session() as session:
        return session.get(EditionRunRow, run_id).progress_at


def test_run_whose_batches_were_lost_is_requeued_after_stall_seconds(settings, store):
    assert settings.file.scheduler.stall_seconds == 60 and settings.file.scheduler.stale_after_seconds == 300
    run_id, subs = sending_run(settings, store)
    # One batch ran (to the outbox: no SMTP_URL) and recorded its results; the others'
    # tasks were lost with the broker.
    report = email_delivery.send_batch(settings, store, run_id, subs[0], subs[0])
    assert report.sent == 1
    stamp = progress_at(store, run_id)
    assert stamp is not None and datetime.now(UTC) - stamp < timedelta(seconds=30)

    assert engine.stale_runs(settings, store, stamp + timedelta(seconds=30)) == []  # progress is recent
    assert engine.stale_runs(settings, store, stamp + timedelta(seconds=61)) == [run_id]
    # Claimed: not again within the period, then again while still stalled.
    assert engine.stale_runs(settings, store, stamp + timedelta(seconds=62)) == []
    assert engine.stale_runs(settings, store, stamp + timedelta(seconds=122)) == [run_id]

    # The re-queued batches send the rest; a run with nothing waiting is not stalled.
    email_delivery.send_batch(settings, store, run_id, subs[1], subs[-1])
    assert email_delivery.delivery_counts(store, run_id)["sent"] == 3
    assert engine.stale_runs(settings, store, datetime.now(UTC) + timedelta(hours=1)) == []


def test_rows_claimed_by_a_live_sender_keep_the_run_from_being_requeued(settings, store):
    run_id, subs = sending_run(settings, store)
    stamp = progress_at(store, run_id)  # prepare_run's stamp: the fan-out starts
    later = stamp + timedelta(seconds=61)
    # A sender holds the first row by a lease it renews (leases run on the wall clock);
    # the rest wait.
    from distributor.store.models import utcnow

    with store.session() as session:
        session.execute(
            update(DeliveryRow)
            .where(DeliveryRow.run_id == run_id, DeliveryRow.subscriber_id == subs[0])
            .values(status="sending", claim="live-sender", lease_expires_at=utcnow() + timedelta(seconds=30))
        )
    assert engine.stale_runs(settings, store, later) == []
    # The lease lapses (the sender died and stopped renewing): now the run counts as stalled.
    with store.session() as session:
        session.execute(
            update(DeliveryRow).where(DeliveryRow.claim == "live-sender").values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )
    assert engine.stale_runs(settings, store, later) == [run_id]


def test_a_waiting_digest_post_alone_stalls_a_run_and_recording_posts_stamps_progress(settings, store):
    run_id, _ = sending_run(settings, store, readers=1)
    with store.session() as session:  # the email went; the digest post's task was lost
        session.execute(update(DeliveryRow).where(DeliveryRow.run_id == run_id).values(status="sent"))
    [post_id, *_] = ledger.queue_run_posts(settings, store, run_id)
    stamp = progress_at(store, run_id)
    assert engine.stale_runs(settings, store, stamp + timedelta(seconds=61)) == [run_id]

    # A deferred post (flood wait) is the retry pass's, not a lost task.
    with store.session() as session:
        session.execute(
            update(TelegramPostRow)
            .where(TelegramPostRow.run_id == run_id)
            .values(next_attempt_at=stamp + timedelta(hours=1))
        )
    assert engine.stale_runs(settings, store, stamp + timedelta(seconds=200)) == []
    with store.session() as session:
        session.execute(update(TelegramPostRow).where(TelegramPostRow.run_id == run_id).values(next_attempt_at=None))
        session.execute(update(EditionRunRow).where(EditionRunRow.id == run_id).values(progress_at=None, requeued_at=None))

    # Posting (to the outbox: no bot token) records the outcome and stamps the run; the
    # run's Mastodon digest row (the shipped fediverse channel) is owed as well.
    reports = telegram_delivery.post_run(settings, store, run_id) + social_delivery.post_run(settings, store, run_id)
    assert reports and all(r.status == "sent" for r in reports)
    assert progress_at(store, run_id) is not None
    with store.session() as session:
        assert session.scalar(select(TelegramPostRow.status).where(TelegramPostRow.id == post_id)) == "sent"
    assert engine.stale_runs(settings, store, datetime.now(UTC) + timedelta(hours=1)) == []
