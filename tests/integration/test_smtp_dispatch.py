"""Email dispatch against a real SMTP server on 127.0.0.1, on SQLite and PostgreSQL.

The server (tests/fakes/smtp_server.py, aiosmtpd) records what it accepts and is told
to refuse, defer, drop or go down. Every test ends by checking the one thing that
matters: each subscriber who should get the edition received exactly one message.
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage

import pytest
from sqlalchemy import select, update

from distributor import engine, subscribers
from distributor.articles import Article
from distributor.channels.contracts import Envelope
from distributor.channels.mail import mail_channel
from distributor.channels.outbox import Outbox
from distributor.channels.smtp import SmtpChannel
from distributor.delivery import email as dispatch
from distributor.runs import delivery_counts, get_run
from distributor.store.articles import save_articles
from distributor.store.models import DeliveryRow, SubscriberRow
from tests.conftest import settings_for
from tests.fakes.processes import wait_for
from tests.fakes.smtp_server import FakeSmtpServer, client_context, tls_files

SLOT = datetime(2026, 11, 26, 1, 30, tzinfo=timezone.utc)  # 07:00 in Asia/Kolkata
NOW = SLOT + timedelta(minutes=1)
NEXT_DAY = SLOT + timedelta(days=1)
SECTIONS = ["nation", "states", "international", "politics", "opinion", "economy", "sports", "entertainment"]
PASSWORD = "s3cret-Pa55word"


@pytest.fixture(autouse=True)
def fresh_caches():
    dispatch.clear_caches()
    yield
    dispatch.clear_caches()


@pytest.fixture
def smtp_settings(tmp_path, monkeypatch, smtp_server):
    """Settings whose SMTP_URL points at the test server."""
    monkeypatch.setenv("SMTP_URL", smtp_server.url)
    return settings_for(tmp_path)


def add_articles(store, slot: datetime, count: int = 16, prefix: str = "a") -> None:
    save_articles(
        store,
        [
            Article(
                key=f"{prefix}{i}",
                url=f"https://www.newsarenaindia.com/{SECTIONS[i % 8]}/{prefix}{i}",
                title=f"Story {prefix}{i} in {SECTIONS[i % 8]}",
                section=SECTIONS[i % 8],
                published_at=slot - timedelta(hours=1, minutes=i),
                standfirst=f"What happened in story {i}.",
                byline="News Arena Network",
            )
            for i in range(count)
        ],
    )


def add_subscribers(settings, store, count: int, *, domain: str = "example.com", **prefs) -> list[str]:
    emails = [f"reader{i:03d}@{domain}" for i in range(count)]
    for email in emails:
        subscribers.subscribe(settings, store, email, confirmed=True, source="cli", now=SLOT - timedelta(days=1), **prefs)
    return emails


def open_run(settings, store, slot: datetime = SLOT):
    """Open and prepare the morning run of `slot`, as the scheduler would."""
    run, created = engine.open_slot(settings, store, "morning", slot)
    assert created
    prepared = engine.prepare_run(settings, store, run.id)
    assert prepared.ready, prepared.reason
    return run


def ledger(store, run_id: int) -> dict[str, DeliveryRow]:
    """Deliveries of a run by subscriber email."""
    with store.session() as session:
        rows = session.execute(
            select(SubscriberRow.email, DeliveryRow).join(DeliveryRow, DeliveryRow.subscriber_id == SubscriberRow.id).where(DeliveryRow.run_id == run_id)
        ).all()
        return {email: row for email, row in rows}


def assert_each_once(server: FakeSmtpServer, emails: list[str]) -> None:
    received = sorted(server.recipients())
    assert received == sorted(emails), f"duplicates or missing: {sorted(set(received) ^ set(emails))}"


def retry_until_settled(settings, store, start: datetime, *, rounds: int = 20) -> datetime:
    """Run retry_deferred at each next due time until nothing is deferred; return the time."""
    now = start
    for _ in range(rounds):
        with store.session() as session:
            due = session.scalar(select(DeliveryRow.next_attempt_at).where(DeliveryRow.status == "deferred").order_by(DeliveryRow.next_attempt_at))
        if due is None:
            return now
        now = max(now, due)
        dispatch.retry_deferred(settings, store, now)
    raise AssertionError("deliveries still deferred after many retries")


# --- the happy path and idempotence ---------------------------------------------------


def test_dispatch_sends_each_subscriber_one_message_and_a_second_run_sends_nothing(smtp_settings, store, smtp_server):
    add_articles(store, SLOT)
    everyone = add_subscribers(smtp_settings, store, 5)
    sports = add_subscribers(smtp_settings, store, 2, domain="sports.example.com", sections=["sports"])
    add_subscribers(smtp_settings, store, 1, domain="evening.example.com", editions=["evening"])
    pending, _ = subscribers.subscribe(smtp_settings, store, "pending@example.com", source="web")
    run = open_run(smtp_settings, store)

    report = dispatch.dispatch_run(smtp_settings, store, run.id, NOW)

    assert (report.sent, report.queued, report.deferred, report.failed, report.created) == (7, 0, 0, 0, 7)
    assert_each_once(smtp_server, everyone + sports)
    assert smtp_server.connections == 1  # a small batch goes over one connection
    rows = ledger(store, run.id)
    assert {r.status for r in rows.values()} == {"sent"} and all(r.reply.startswith("250") for r in rows.values())
    assert rows[sports[0]].variant == "sports" and rows[everyone[0]].variant == "all"

    # The sports reader's message carries only Sports; the others every section.
    sports_text = smtp_server.received_by(sports[0])[0].message.get_body(("plain",)).get_content()
    full_text = smtp_server.received_by(everyone[0])[0].message.get_body(("plain",)).get_content()
    assert "SPORTS" in sports_text and "NATION" not in sports_text
    assert "SPORTS" in full_text and "NATION" in full_text
    message: EmailMessage = smtp_server.received_by(everyone[0])[0].message
    assert message["To"] == everyone[0]
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "/unsubscribe/" in message["List-Unsubscribe"]

    again = dispatch.dispatch_run(smtp_settings, store, run.id, NOW + timedelta(minutes=5))
    assert (again.sent, again.created) == (7, 0)
    for first, last in dispatch.batch_ranges(store, run.id):
        assert dispatch.send_batch(smtp_settings, store, run.id, first, last, now=NOW).claimed == 0
    assert_each_once(smtp_server, everyone + sports)
    assert pending.email not in smtp_server.recipients()


def test_batches_by_id_range_each_send_once(smtp_settings, store, smtp_server):
    add_articles(store, SLOT)
    emails = add_subscribers(smtp_settings, store, 7)
    run = open_run(smtp_settings, store)

    ranges = dispatch.create_deliveries(smtp_settings, store, run.id, batch_size=3, now=NOW)
    assert len(ranges) == 3 and [last - first for first, last in ranges[:2]] == [2, 2]
    assert dispatch.create_deliveries(smtp_settings, store, run.id, batch_size=3, now=NOW) == ranges
    for first, last in ranges + ranges:  # every batch twice: a redelivered task
        dispatch.send_batch(smtp_settings, store, run.id, first, last, now=NOW)
    assert_each_once(smtp_server, emails)
    assert delivery_counts(store, run.id)["sent"] == 7


def test_two_workers_on_the_same_batch_send_each_message_once(smtp_settings, store, smtp_server):
    add_articles(store, SLOT)
    emails = add_subscribers(smtp_settings, store, 12)
    run = open_run(smtp_settings, store)
    [(first, last)] = dispatch.create_deliveries(smtp_settings, store, run.id, now=NOW)

    with ThreadPoolExecutor(2) as pool:
        reports = list(pool.map(lambda _: dispatch.send_batch(smtp_settings, store, run.id, first, last, now=NOW), range(2)))

    assert sum(r.claimed for r in reports) == 12 and sum(r.sent for r in reports) == 12
    assert_each_once(smtp_server, emails)


def test_rows_of_a_dead_sender_are_taken_over_once_its_lease_expires(smtp_settings, store, smtp_server):
    add_articles(store, SLOT)
    emails = add_subscribers(smtp_settings, store, 3)
    run = open_run(smtp_settings, store)
    [(first, last)] = dispatch.create_deliveries(smtp_settings, store, run.id, now=NOW)
    live = datetime.now(timezone.utc) + timedelta(seconds=60)
    with store.session() as session:  # another sender holds the rows, its lease still running
        session.execute(update(DeliveryRow).values(status="sending", claim="host:1:live", lease_expires_at=live))

    assert dispatch.send_batch(smtp_settings, store, run.id, first, last, now=NOW).claimed == 0
    assert dispatch.retry_deferred(smtp_settings, store, NOW + timedelta(days=1)).claimed == 0
    assert smtp_server.messages == []

    with store.session() as session:  # it stopped renewing (killed): the lease lapsed
        session.execute(update(DeliveryRow).values(lease_expires_at=datetime.now(timezone.utc) - timedelta(seconds=1)))
    assert dispatch.retry_deferred(smtp_settings, store, NOW).sent == 3
    assert_each_once(smtp_server, emails)
    assert {(r.claim, r.lease_expires_at) for r in ledger(store, run.id).values()} == {(None, None)}


def test_each_result_is_in_the_ledger_while_the_batch_is_still_sending(smtp_settings, store, smtp_server):
    # A crash mid-batch re-sends only what the ledger does not say was sent, so results
    # are written as the server answers, not when the connection's part is done.
    add_articles(store, SLOT)
    emails = add_subscribers(smtp_settings, store, 12)
    run = open_run(smtp_settings, store)
    [(first, last)] = dispatch.create_deliveries(smtp_settings, store, run.id, now=NOW)
    smtp_server.hold_after(7)  # the 8th message's DATA gets no answer until released

    with ThreadPoolExecutor(1) as pool:
        batch = pool.submit(dispatch.send_batch, smtp_settings, store, run.id, first, last, now=NOW)
        try:
            wait_for(lambda: smtp_server.held == 1 and delivery_counts(store, run.id)["sent"] == 7, timeout=60,
                     what="7 messages accepted and recorded while the 8th waits")
            assert delivery_counts(store, run.id)["sending"] == 5
        finally:
            smtp_server.release()
        assert batch.result().sent == 12
    assert_each_once(smtp_server, emails)


def test_retry_waits_come_from_the_settings(tmp_path, monkeypatch, store, smtp_server):
    monkeypatch.setenv("SMTP_URL", smtp_server.url)
    base = settings_for(tmp_path)
    timings = {"retry_first_seconds": 10, "retry_max_seconds": 20}
    settings = settings_for(tmp_path, email=base.file.email.model_copy(update=timings))
    add_articles(store, SLOT)
    emails = add_subscribers(settings, store, 3)
    run = open_run(settings, store)
    dispatch.create_deliveries(settings, store, run.id, now=NOW)
    with store.session() as session:  # a sender claimed the rows, then died: its lease lapsed
        session.execute(update(DeliveryRow).values(status="sending", claim="dead-worker", lease_expires_at=NOW))

    now = NOW + timedelta(seconds=61)
    # Each failure waits retry_first, doubled per attempt, capped at retry_max (+-20% jitter).
    for seconds in (10, 20, 20):
        with smtp_server.down():
            assert dispatch.retry_deferred(settings, store, now).deferred == 3
        waits = [r.next_attempt_at - now for r in ledger(store, run.id).values()]
        assert all(timedelta(seconds=seconds * 0.8) <= w <= timedelta(seconds=seconds * 1.2) for w in waits), waits
        now = max(r.next_attempt_at for r in ledger(store, run.id).values())
    retry_until_settled(settings, store, now)
    assert_each_once(smtp_server, emails)


# --- refusals ------------------------------------------------------------------------


def test_550_5_1_1_fails_the_delivery_marks_the_subscriber_bounced_and_the_next_run_skips_them(smtp_settings, store, smtp_server):
    add_articles(store, SLOT)
    add_articles(store, NEXT_DAY, prefix="b")
    emails = add_subscribers(smtp_settings, store, 4)
    gone = emails[1]
    smtp_server.fail("550 5.1.1 <reader001@example.com>: Recipient address rejected: User unknown", at="RCPT", address=gone)
    run = open_run(smtp_settings, store)

    report = dispatch.dispatch_run(smtp_settings, store, run.id, NOW)

    assert (report.sent, report.failed) == (3, 1)
    row = ledger(store, run.id)[gone]
    assert row.status == "failed" and row.reply.startswith("550 5.1.1") and "User unknown" in row.reply
    assert subscribers.find(store, gone).status == "bounced"
    assert smtp_server.connections == 1  # the refusal did not cost the others their connection

    smtp_server.clear()
    second = open_run(smtp_settings, store, NEXT_DAY)
    dispatch.dispatch_run(smtp_settings, store, second.id, NEXT_DAY + timedelta(minutes=1))
    assert gone not in ledger(store, second.id)
    # The first run's three messages and the second run's three: none to the bounced address.
    assert sorted(smtp_server.recipients()) == sorted([e for e in emails if e != gone] * 2)


def test_other_permanent_refusal_fails_without_bouncing(smtp_settings, store, smtp_server):
    add_articles(store, SLOT)
    emails = add_subscribers(smtp_settings, store, 2)
    smtp_server.fail("554 5.7.1 Message rejected as spam", at="DATA", address=emails[0])
    run = open_run(smtp_settings, store)
    dispatch.dispatch_run(smtp_settings, store, run.id, NOW)
    row = ledger(store, run.id)[emails[0]]
    assert row.status == "failed" and row.reply.startswith("554 5.7.1")
    assert subscribers.find(store, emails[0]).status == "confirmed"
    assert smtp_server.recipients() == [emails[1]]


@pytest.mark.parametrize(
    ("reply", "at"),
    [
        ("451 4.3.0 Temporary local problem, try later", "RCPT"),
        ("451 4.3.0 Temporary local problem, try later", "DATA"),
        ("421 4.7.0 Too many connections, closing", "RCPT"),
        ("421 4.7.0 Too many connections, closing", "DATA"),
    ],
)
def test_temporary_refusal_defers_then_retry_sends_exactly_once(smtp_settings, store, smtp_server, reply, at):
    add_articles(store, SLOT)
    emails = add_subscribers(smtp_settings, store, 5)
    busy = emails[2]
    smtp_server.fail(reply, at=at, address=busy, times=1)
    run = open_run(smtp_settings, store)

    dispatch.dispatch_run(smtp_settings, store, run.id, NOW)

    row = ledger(store, run.id)[busy]
    assert row.status == "deferred" and row.reply.startswith(reply[:3]) and row.attempts == 1
    assert NOW + timedelta(minutes=3) <= row.next_attempt_at <= NOW + timedelta(minutes=7)
    assert row.deadline == NOW + timedelta(hours=smtp_settings.file.email.delivery_deadline_hours)
    deferred = {e for e, r in ledger(store, run.id).items() if r.status == "deferred"}
    # Only the refused recipient is retried; after a 421 (the server hung up) the others
    # went on over a new connection.
    assert deferred == {busy}
    assert smtp_server.connections == (2 if reply.startswith("421") else 1)
    assert busy not in smtp_server.recipients()

    assert dispatch.retry_deferred(smtp_settings, store, NOW + timedelta(minutes=1)).claimed == 0  # not due yet
    retry_until_settled(smtp_settings, store, NOW)
    assert {r.status for r in ledger(store, run.id).values()} == {"sent"}
    assert ledger(store, run.id)[busy].attempts == 2
    assert_each_once(smtp_server, emails)


def test_552_is_deferred_and_fails_only_at_the_deadline(smtp_settings, store, smtp_server):
    add_articles(store, SLOT)
    emails = add_subscribers(smtp_settings, store, 2)
    full = emails[0]
    smtp_server.fail("552 5.2.2 Mailbox full", at="DATA", address=full)
    run = open_run(smtp_settings, store)

    dispatch.dispatch_run(smtp_settings, store, run.id, NOW)
    assert ledger(store, run.id)[full].status == "deferred"

    retry_until_settled(smtp_settings, store, NOW)
    row = ledger(store, run.id)[full]
    assert row.status == "failed" and "deadline" in row.reply and "552 5.2.2" in row.reply
    assert row.updated_at >= NOW + timedelta(hours=smtp_settings.file.email.delivery_deadline_hours)
    assert row.attempts > 3  # retried with backoff until the deadline
    assert subscribers.find(store, full).status == "confirmed"  # a full mailbox is no bounce
    assert smtp_server.recipients() == [emails[1]]


def test_connection_dropped_after_n_messages_defers_the_one_in_flight_and_retry_completes(smtp_settings, store, smtp_server):
    add_articles(store, SLOT)
    emails = add_subscribers(smtp_settings, store, 6)
    smtp_server.drop_after(2)
    run = open_run(smtp_settings, store)

    report = dispatch.dispatch_run(smtp_settings, store, run.id, NOW)

    # The third message was in flight when the line went dead; the rest went on over a
    # new connection (tests/integration/test_smtp_faults.py has more of this).
    assert (report.sent, report.deferred) == (5, 1)
    assert sorted(smtp_server.recipients()) == sorted(emails[:2] + emails[3:])
    assert "connection lost" in ledger(store, run.id)[emails[2]].reply
    retry_until_settled(smtp_settings, store, NOW)
    assert_each_once(smtp_server, emails)


def test_server_down_defers_everything_and_up_again_sends_everything_once(smtp_settings, store, smtp_server):
    add_articles(store, SLOT)
    emails = add_subscribers(smtp_settings, store, 4)
    run = open_run(smtp_settings, store)

    with smtp_server.down():
        report = dispatch.dispatch_run(smtp_settings, store, run.id, NOW)
        assert report.deferred == 4
        assert all("Connection refused" in r.reply for r in ledger(store, run.id).values())
    retry_until_settled(smtp_settings, store, NOW)
    assert_each_once(smtp_server, emails)


def test_partial_rcpt_refusal_retries_only_the_refused(smtp_settings, store, smtp_server):
    add_articles(store, SLOT)
    emails = add_subscribers(smtp_settings, store, 6)
    refused = [emails[1], emails[4]]
    for address in refused:
        smtp_server.fail("450 4.2.1 Mailbox busy", at="RCPT", address=address, times=1)
    run = open_run(smtp_settings, store)

    dispatch.dispatch_run(smtp_settings, store, run.id, NOW)
    assert smtp_server.connections == 1
    assert sorted(e for e, r in ledger(store, run.id).items() if r.status == "deferred") == sorted(refused)

    # Both refused rows are due within the first backoff (5 min +- 20%): one batch, one connection.
    assert dispatch.retry_deferred(smtp_settings, store, NOW + timedelta(minutes=7)).sent == 2
    assert smtp_server.connections == 2
    assert sorted(m.rcpt_tos[0] for m in smtp_server.messages if m.connection == 2) == sorted(refused)
    assert_each_once(smtp_server, emails)


def test_the_nth_message_can_be_refused(smtp_settings, store, smtp_server):
    add_articles(store, SLOT)
    emails = add_subscribers(smtp_settings, store, 3)
    smtp_server.fail("451 4.7.1 Greylisted", at="RCPT", nth=2)
    run = open_run(smtp_settings, store)
    dispatch.dispatch_run(smtp_settings, store, run.id, NOW)
    assert sorted(smtp_server.recipients()) == sorted([emails[0], emails[2]])
    retry_until_settled(smtp_settings, store, NOW)
    assert_each_once(smtp_server, emails)


def test_a_deferred_delivery_found_after_its_deadline_fails_without_sending(smtp_settings, store, smtp_server):
    add_articles(store, SLOT)
    emails = add_subscribers(smtp_settings, store, 2)
    smtp_server.fail("451 4.3.0 try later", at="RCPT", address=emails[0], times=1)
    run = open_run(smtp_settings, store)
    dispatch.dispatch_run(smtp_settings, store, run.id, NOW)

    too_late = NOW + timedelta(hours=smtp_settings.file.email.delivery_deadline_hours) + timedelta(minutes=1)  # the worker was down all day
    report = dispatch.retry_deferred(smtp_settings, store, too_late)

    assert (report.claimed, report.failed, report.sent) == (1, 1, 0)
    row = ledger(store, run.id)[emails[0]]
    assert row.status == "failed" and row.reply == "not sent: deadline passed; last reply: 451 4.3.0 try later"
    assert smtp_server.recipients() == [emails[1]]


def test_a_message_that_cannot_be_built_fails_alone(smtp_settings, store, smtp_server):
    add_articles(store, SLOT)
    emails = add_subscribers(smtp_settings, store, 3)
    with store.session() as session:  # an address the renderer refuses (non-ASCII local part)
        session.execute(update(SubscriberRow).where(SubscriberRow.email == emails[1]).values(email="r\u00e9der@example.com"))
    run = open_run(smtp_settings, store)

    report = dispatch.dispatch_run(smtp_settings, store, run.id, NOW)

    assert (report.sent, report.failed) == (2, 1)
    assert ledger(store, run.id)["r\u00e9der@example.com"].reply.startswith("not sent: could not build the message")
    assert sorted(smtp_server.recipients()) == sorted([emails[0], emails[2]])


# --- who is sent to ------------------------------------------------------------------


def test_unsubscribed_after_queueing_is_suppressed_not_sent(smtp_settings, store, smtp_server):
    add_articles(store, SLOT)
    emails = add_subscribers(smtp_settings, store, 3)
    run = open_run(smtp_settings, store)
    [(first, last)] = dispatch.create_deliveries(smtp_settings, store, run.id, now=NOW)
    subscribers.unsubscribe(store, subscribers.find(store, emails[0]).id, now=NOW)

    report = dispatch.send_batch(smtp_settings, store, run.id, first, last, now=NOW)

    assert (report.sent, report.suppressed) == (2, 1)
    row = ledger(store, run.id)[emails[0]]
    assert row.status == "suppressed" and "unsubscribed" in row.reply
    assert sorted(smtp_server.recipients()) == sorted(emails[1:])


def test_bounced_and_complained_subscribers_are_never_queued(smtp_settings, store, smtp_server):
    add_articles(store, SLOT)
    emails = add_subscribers(smtp_settings, store, 3)
    with store.session() as session:
        session.execute(update(SubscriberRow).where(SubscriberRow.email == emails[0]).values(status="bounced"))
        session.execute(update(SubscriberRow).where(SubscriberRow.email == emails[1]).values(status="complained"))
    run = open_run(smtp_settings, store)
    report = dispatch.dispatch_run(smtp_settings, store, run.id, NOW)
    assert report.created == 1 and smtp_server.recipients() == [emails[2]]


def test_a_variant_with_no_articles_is_suppressed(smtp_settings, store, smtp_server):
    save_articles(
        store,
        [Article(key=f"n{i}", url=f"https://www.newsarenaindia.com/nation/n{i}", title=f"Nation {i}", section="nation", published_at=SLOT - timedelta(hours=2, minutes=i)) for i in range(3)],
    )
    nation = add_subscribers(smtp_settings, store, 1, sections=["nation"])
    sports = add_subscribers(smtp_settings, store, 1, domain="sports.example.com", sections=["sports"])
    run = open_run(smtp_settings, store)
    report = dispatch.dispatch_run(smtp_settings, store, run.id, NOW)
    assert (report.sent, report.suppressed) == (1, 1)
    assert "no articles" in ledger(store, run.id)[sports[0]].reply
    assert_each_once(smtp_server, nation)


# A busy morning: 60 articles, the first four sections full (10 each, over their limit of
# 8), then Opinion 4, Economy 4, Sports 10, Entertainment 2. Spending max_articles = 40 in
# section order used to stop at Economy: Sports and Entertainment were never sent.
BUSY_DAY = {"nation": 10, "states": 10, "international": 10, "politics": 10,
            "opinion": 4, "economy": 4, "sports": 10, "entertainment": 2}


def add_busy_day(store, slot: datetime) -> None:
    items = []
    for s, (section, count) in enumerate(BUSY_DAY.items()):
        for i in range(count):
            items.append(Article(
                key=f"{section}-{i}",
                url=f"https://www.newsarenaindia.com/{section}/{section}-{i}",
                title=f"Busy story {i} of {section}",
                section=section,
                published_at=slot - timedelta(hours=1, minutes=i * 10 + s),
            ))
    assert len(items) == 60
    save_articles(store, items)


def test_busy_day_sports_reader_gets_sports_and_everyone_gets_every_section(smtp_settings, store, smtp_server):
    add_busy_day(store, SLOT)
    everyone = add_subscribers(smtp_settings, store, 1)
    sports = add_subscribers(smtp_settings, store, 1, domain="sports.example.com", sections=["sports"])
    run = open_run(smtp_settings, store)

    report = dispatch.dispatch_run(smtp_settings, store, run.id, NOW)

    assert (report.sent, report.suppressed) == (2, 0)
    assert_each_once(smtp_server, everyone + sports)
    limit = {s.slug: s.limit for s in smtp_settings.sections}
    cap = smtp_settings.editions["morning"].max_articles

    sports_text = smtp_server.received_by(sports[0])[0].message.get_body(("plain",)).get_content()
    shown = [line for line in sports_text.splitlines() if line.startswith("* Busy story")]
    assert len(shown) == limit["sports"] and all(line.endswith(" of sports") for line in shown)
    assert "SPORTS" in sports_text and "NATION" not in sports_text
    assert f"+ {BUSY_DAY['sports'] - limit['sports']} more on the site" in sports_text

    full_text = smtp_server.received_by(everyone[0])[0].message.get_body(("plain",)).get_content()
    for section in smtp_settings.sections:
        assert section.label.upper() in full_text, section.slug
    shown = [line for line in full_text.splitlines() if line.startswith("* Busy story")]
    assert len(shown) == cap and f"+ {60 - cap} more on the site" in full_text
    # The run counts what an all-sections reader gets; the issue keeps every candidate.
    assert len(get_run(store, run.id).article_keys) == cap


def test_a_local_time_run_takes_only_its_zone(smtp_settings, store, smtp_server):
    add_articles(store, SLOT)
    kolkata = add_subscribers(smtp_settings, store, 2)
    london = add_subscribers(smtp_settings, store, 2, domain="uk.example.com", timezone="Europe/London")
    site_run, _ = engine.open_slot(smtp_settings, store, "morning", SLOT, "Asia/Kolkata")
    london_run, _ = engine.open_slot(smtp_settings, store, "morning", SLOT, "Europe/London")
    for run in (site_run, london_run):
        assert engine.prepare_run(smtp_settings, store, run.id).ready
    dispatch.create_deliveries(smtp_settings, store, site_run.id, now=NOW)
    dispatch.create_deliveries(smtp_settings, store, london_run.id, now=NOW)
    assert sorted(ledger(store, site_run.id)) == kolkata
    assert sorted(ledger(store, london_run.id)) == london


# --- outbox mode ---------------------------------------------------------------------


def test_without_smtp_url_messages_go_to_outbox_files(settings, store):
    add_articles(store, SLOT)
    emails = add_subscribers(settings, store, 3)
    run = open_run(settings, store)
    assert isinstance(mail_channel(settings), Outbox)

    report = dispatch.dispatch_run(settings, store, run.id, NOW)

    assert report.sent == 3
    folder = settings.outbox_dir / "email"
    files = sorted(p.name for p in folder.iterdir())
    ids = sorted(subscribers.find(store, e).id for e in emails)
    assert files == sorted(f"{run.id}-{i}.eml" for i in ids)
    import email as email_package
    import email.policy

    parsed = email_package.message_from_bytes((folder / f"{run.id}-{ids[0]}.eml").read_bytes(), policy=email.policy.default)
    assert parsed["To"] == emails[0] and parsed.get_body(("html",)) is not None
    assert all(r.reply.startswith("outbox: ") for r in ledger(store, run.id).values())

    dispatch.dispatch_run(settings, store, run.id, NOW)  # again: nothing new
    assert sorted(p.name for p in folder.iterdir()) == files


# --- the channel on its own: TLS, AUTH, secrets ----------------------------------------


def _envelopes(*recipients: str) -> list[Envelope]:
    return [
        Envelope("brief@newsarenaindia.com", r, f"From: brief@newsarenaindia.com\r\nTo: {r}\r\nSubject: t\r\n\r\n.leading dot\r\nbody\r\n".encode(), f"ref-{r}")
        for r in recipients
    ]


def test_one_connection_per_send_call_and_dot_stuffing(smtp_server):
    channel = SmtpChannel(smtp_server.url)
    results = channel.send(_envelopes("a@example.com", "b@example.com", "c@example.com"))
    assert [r.outcome for r in results] == ["sent"] * 3 and [r.ref for r in results] == ["ref-a@example.com", "ref-b@example.com", "ref-c@example.com"]
    assert smtp_server.connections == 1
    # smtplib stuffed the leading dot ("..") and the server took it back off.
    assert smtp_server.messages[0].data.endswith(b"\r\n.leading dot\r\nbody\r\n")
    assert channel.send([]) == [] and smtp_server.connections == 1


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    return tls_files(tmp_path_factory.mktemp("tls"))


def test_starttls_and_auth(certificate):
    server = FakeSmtpServer(tls=certificate, credentials=("mailer", PASSWORD)).start()
    try:
        channel = SmtpChannel(server.url + "?starttls=required", ssl_context=client_context(certificate[0]))
        [result] = channel.send(_envelopes("a@example.com"))
        assert result.outcome == "sent"
        assert server.messages[0].tls and server.messages[0].login == "mailer"
    finally:
        server.stop()


def test_implicit_tls(certificate):
    server = FakeSmtpServer(tls=certificate, implicit_tls=True).start()
    try:
        channel = SmtpChannel(server.url, ssl_context=client_context(certificate[0]))
        assert server.url.startswith("smtps://")
        assert [r.outcome for r in channel.send(_envelopes("a@example.com"))] == ["sent"]
        assert server.messages[0].tls
    finally:
        server.stop()


def test_untrusted_certificate_is_refused_and_deferred(certificate):
    server = FakeSmtpServer(tls=certificate, implicit_tls=True).start()
    try:
        [result] = SmtpChannel(server.url).send(_envelopes("a@example.com"))  # system CAs only
        assert result.outcome == "temporary" and "CERTIFICATE_VERIFY_FAILED" in result.reply
        assert server.messages == []
    finally:
        server.stop()


def test_starttls_required_but_not_offered_sends_nothing(smtp_server):
    [result] = SmtpChannel(smtp_server.url + "?starttls=required").send(_envelopes("a@example.com"))
    assert result.outcome == "temporary" and "does not offer STARTTLS" in result.reply
    assert smtp_server.messages == []


def test_wrong_password_defers_and_never_shows_the_password(caplog, tmp_path, monkeypatch, store):
    server = FakeSmtpServer(credentials=("mailer", "the-right-one")).start()
    try:
        url = f"smtp://mailer:{PASSWORD}@127.0.0.1:{server.port}"
        monkeypatch.setenv("SMTP_URL", url)
        settings = settings_for(tmp_path)
        add_articles(store, SLOT)
        add_subscribers(settings, store, 2)
        run = open_run(settings, store)
        with caplog.at_level(logging.DEBUG):
            report = dispatch.dispatch_run(settings, store, run.id, NOW)
        assert report.deferred == 2 and server.failed_logins >= 1 and server.messages == []
        replies = [r.reply for r in ledger(store, run.id).values()]
        assert all(r.startswith("AUTH refused: 535") for r in replies)
        channel = mail_channel(settings)
        shown = " ".join(replies) + caplog.text + repr(channel) + repr(channel.target)
        assert PASSWORD not in shown and "mailer@127.0.0.1" in repr(channel)
    finally:
        server.stop()


def test_control_characters_in_an_address_never_reach_the_server(smtp_server):
    envelopes = _envelopes("a@example.com") + [Envelope("brief@newsarenaindia.com", "x@example.com>\r\nRCPT TO:<victim@example.com", b"Subject: t\r\n\r\nb\r\n", "evil")]
    results = SmtpChannel(smtp_server.url).send(envelopes + _envelopes("b@example.com"))
    assert [r.outcome for r in results] == ["sent", "permanent", "sent"]
    assert "control characters" in results[1].reply
    assert smtp_server.recipients() == ["a@example.com", "b@example.com"]


def test_connection_refused_is_temporary_for_every_envelope():
    server = FakeSmtpServer()  # never started: nothing listens on its port
    results = SmtpChannel(server.url + "?timeout=5").send(_envelopes("a@example.com", "b@example.com"))
    assert [r.outcome for r in results] == ["temporary", "temporary"]
    assert all(r.code is None and "Connection refused" in r.reply for r in results)


# --- the commands --------------------------------------------------------------------


def test_preview_writes_files_and_send_sends_a_slot_once(tmp_path, monkeypatch, smtp_server):
    from typer.testing import CliRunner

    from distributor.cli import app
    from distributor.store import Store
    from tests.conftest import CONFIG

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'var' / 'distributor.db'}")
    monkeypatch.setenv("SMTP_URL", smtp_server.url)
    # Real mail: `send` refuses the demo key and links to this machine.
    monkeypatch.setenv("SECRET_KEY", "smtp-cli-tests-signing-key-0123456789abcdef")
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://www.newsarenaindia.com")
    store = Store(f"sqlite:///{tmp_path / 'var' / 'distributor.db'}")
    store.migrate()
    settings = settings_for(tmp_path)
    add_articles(store, SLOT)
    everyone = add_subscribers(settings, store, 3)
    sports = add_subscribers(settings, store, 1, domain="sports.example.com", sections=["sports"])
    runner = CliRunner()

    def cli(*args: str) -> str:
        result = runner.invoke(app, ["--config", str(CONFIG), *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    at = "2026-11-26T09:15:00+05:30"  # after the 07:00 slot of that day
    out = cli("preview", "morning", "--at", "2026-11-26T07:00:00+05:30", "--subscriber", sports[0], "--out", str(tmp_path / "preview"))
    assert "variant: sports" in out
    eml = (tmp_path / "preview" / "email.eml").read_bytes()
    assert b"To: " + sports[0].encode() in eml and (tmp_path / "preview" / "email.html").exists()
    assert "SPORTS" in (tmp_path / "preview" / "email.txt").read_text() and "NATION" not in (tmp_path / "preview" / "email.txt").read_text()
    with store.session() as session:
        assert session.scalar(select(DeliveryRow.id)) is None  # preview touched no ledger
    assert smtp_server.messages == []

    out = cli("send", "morning", "--at", at)
    assert "2026-11-26 07:00 IST: run #1" in out and "sent 4" in out
    assert_each_once(smtp_server, everyone + sports)

    out = cli("send", "morning", "--at", at)
    assert "already done as run #1" in out and "nothing sent" in out
    assert len(smtp_server.messages) == 4

    out = cli("send", "morning", "--at", at, "--force", "--json")
    assert json.loads(out)["run"] == 2 and json.loads(out)["sent"] == 4
    assert sorted(smtp_server.recipients()) == sorted((everyone + sports) * 2)
    store.dispose()


def test_text_format_readers_get_a_single_text_part(smtp_settings, store, smtp_server):
    add_articles(store, SLOT)
    [html_reader] = add_subscribers(smtp_settings, store, 1)
    [text_reader] = add_subscribers(smtp_settings, store, 1, domain="text.example.com", format="text")
    run = open_run(smtp_settings, store)
    dispatch.dispatch_run(smtp_settings, store, run.id, NOW)
    assert_each_once(smtp_server, [html_reader, text_reader])
    plain: EmailMessage = smtp_server.received_by(text_reader)[0].message
    rich: EmailMessage = smtp_server.received_by(html_reader)[0].message
    assert plain.get_content_type() == "text/plain" and not plain.is_multipart()
    assert rich.get_content_type() == "multipart/alternative"
    # Same words (apart from each reader's own signed links), only the HTML part missing.
    import re

    def words(text: str) -> str:
        return re.sub(r"/(unsubscribe|preferences)/[\w.-]+", "/<token>", text)

    assert words(plain.get_content()) == words(rich.get_body(("plain",)).get_content())
    assert plain["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click" and "/unsubscribe/" in plain["List-Unsubscribe"]


def test_batch_size_connections_and_deadline_come_from_config(smtp_settings, store, smtp_server):
    from distributor.settings import Settings

    email = smtp_settings.file.email.model_copy(
        update={"batch_size": 10, "connections": 1, "messages_per_connection": 4, "delivery_deadline_hours": 2}
    )
    tuned = Settings(smtp_settings.file.model_copy(update={"email": email}), smtp_settings.env, smtp_settings.config_path)
    add_articles(store, SLOT)
    emails = add_subscribers(tuned, store, 25)
    run = open_run(tuned, store)
    ranges = dispatch.create_deliveries(tuned, store, run.id, now=NOW)
    assert len(ranges) == 3  # 25 deliveries in batches of at most 10
    assert {r.deadline for r in ledger(store, run.id).values()} == {NOW + timedelta(hours=2)}
    for first, last in ranges:
        dispatch.send_batch(tuned, store, run.id, first, last, now=NOW)
    assert_each_once(smtp_server, emails)
    # One connection at a time, at most 4 messages each: 10 + 10 + 5 messages -> 3 + 3 + 2.
    assert smtp_server.connections == 8
