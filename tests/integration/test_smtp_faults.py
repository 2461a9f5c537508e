"""A refusal is about its recipient; a crash repeats at most one message per connection.

Against the aiosmtpd server of tests/fakes/smtp_server.py (once without and once with
PIPELINING), on SQLite and PostgreSQL: a 421 or a dropped connection in the middle of a
batch costs only the message it hit, the rest go on over a new connection in the same
pass; a server that refuses every connection gets a bounded number of them and charges
no attempt to the deliveries it never saw; and an accepted message is in the ledger
before the connection begins the next one.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from distributor.channels.smtp import SmtpChannel
from distributor.delivery import email as dispatch
from distributor.store.models import DeliveryRow, SubscriberRow
from tests.fakes.smtp_server import DROP
from tests.integration.test_smtp_dispatch import (  # noqa: F401 - fixtures used by name
    NOW,
    SLOT,
    _envelopes,
    add_articles,
    add_subscribers,
    assert_each_once,
    fresh_caches,
    ledger,
    open_run,
    retry_until_settled,
    smtp_settings,
)

BUSY = "421 4.7.0 Try again later, closing connection"


def calm(server) -> SmtpChannel:  # noqa: ANN001
    """A channel on the test server that does not pause between fruitless connections."""
    channel = SmtpChannel(server.url)
    channel.reconnect_pause = 0.0
    return channel


@pytest.mark.parametrize("at", ["RCPT", "DATA"])
def test_a_421_for_one_recipient_among_40_defers_only_that_one(smtp_settings, store, smtp_server, at):
    add_articles(store, SLOT)
    emails = add_subscribers(smtp_settings, store, 40)
    refused = emails[10]
    smtp_server.fail(BUSY, at=at, address=refused)  # every time: it is about this recipient
    run = open_run(smtp_settings, store)

    report = dispatch.dispatch_run(smtp_settings, store, run.id, NOW)

    assert (report.sent, report.deferred, report.failed) == (39, 1, 0)
    rows = ledger(store, run.id)
    assert rows[refused].status == "deferred" and rows[refused].reply.startswith("421 4.7.0")
    assert rows[refused].attempts == 1
    assert rows[refused].next_attempt_at >= NOW + timedelta(minutes=4)
    others = [e for e in emails if e != refused]
    assert {e: (rows[e].status, rows[e].attempts) for e in others} == {e: ("sent", 1) for e in others}
    assert_each_once(smtp_server, others)
    # The 29 after it went on over a second connection, in the same pass.
    assert smtp_server.connections == 2
    assert sorted(m.rcpt_tos[0] for m in smtp_server.messages if m.connection == 2) == emails[11:]

    smtp_server.clear()
    retry_until_settled(smtp_settings, store, NOW)
    assert ledger(store, run.id)[refused].attempts == 2
    assert_each_once(smtp_server, emails)


@pytest.mark.parametrize("where", ["end of DATA", "RCPT"])
def test_a_dropped_connection_mid_batch_goes_on_over_a_new_one(smtp_settings, store, smtp_server, where):
    add_articles(store, SLOT)
    emails = add_subscribers(smtp_settings, store, 12)
    hit = emails[5]
    if where == "RCPT":
        smtp_server.fail(DROP, at="RCPT", address=hit, times=1)
    else:
        smtp_server.drop_after(5)  # the 6th message's data is read, then the line goes dead
    run = open_run(smtp_settings, store)

    report = dispatch.dispatch_run(smtp_settings, store, run.id, NOW)

    assert (report.sent, report.deferred) == (11, 1)
    rows = ledger(store, run.id)
    assert rows[hit].status == "deferred" and "connection lost" in rows[hit].reply and rows[hit].attempts == 1
    assert_each_once(smtp_server, [e for e in emails if e != hit])
    assert smtp_server.connections == 2
    assert sorted(m.rcpt_tos[0] for m in smtp_server.messages if m.connection == 2) == emails[6:]

    retry_until_settled(smtp_settings, store, NOW)
    assert_each_once(smtp_server, emails)


def test_a_421_to_mail_from_is_about_the_server_so_the_message_goes_on_the_next_connection(smtp_settings, store, smtp_server):
    add_articles(store, SLOT)
    emails = add_subscribers(smtp_settings, store, 6)
    smtp_server.fail(BUSY, at="MAIL", nth=3, times=1)  # the third transaction
    run = open_run(smtp_settings, store)

    report = dispatch.dispatch_run(smtp_settings, store, run.id, NOW)

    assert report.sent == 6 and smtp_server.connections == 2
    assert {r.attempts for r in ledger(store, run.id).values()} == {1}
    assert_each_once(smtp_server, emails)


def test_a_421_storm_gets_bounded_reconnects_and_charges_no_innocent_row(smtp_settings, store, smtp_server):
    add_articles(store, SLOT)
    emails = add_subscribers(smtp_settings, store, 40)
    smtp_server.fail(BUSY, at="RCPT")  # every recipient, every connection
    run = open_run(smtp_settings, store)
    channel = calm(smtp_server)

    report = dispatch.dispatch_run(smtp_settings, store, run.id, NOW, channel=channel)

    fruitless = 3  # SmtpChannel.fruitless_connections
    rows = ledger(store, run.id)
    assert (report.sent, report.deferred) == (0, 40)
    # The first recipient of each connection was refused to its face and is charged...
    refused = emails[:fruitless]
    assert {e: (rows[e].attempts, rows[e].reply[:3]) for e in refused} == {e: (1, "421") for e in refused}
    # ...the rest were never tried: deferred, no attempt charged, told why.
    untried = emails[fruitless:]
    assert {rows[e].attempts for e in untried} == {0}
    assert all(rows[e].status == "deferred" and rows[e].reply.startswith("not attempted: 3 connections in a row") for e in untried)
    assert min(rows[e].next_attempt_at for e in untried) >= NOW + timedelta(minutes=4)
    assert smtp_server.messages == []
    assert smtp_server.connections == fruitless == SmtpChannel.fruitless_connections

    # Resting: a further call on the same channel (the batch's other parts, the next
    # batch) skips its envelopes without connecting.
    results = channel.send(_envelopes("a@example.com", "b@example.com"))
    assert [(r.outcome, r.skipped) for r in results] == [("temporary", True)] * 2
    assert smtp_server.connections == fruitless

    smtp_server.clear()  # the storm is over: every row is due within the first backoff
    assert dispatch.retry_deferred(smtp_settings, store, NOW + timedelta(minutes=7)).sent == 40
    assert_each_once(smtp_server, emails)
    rows = ledger(store, run.id)
    assert {rows[e].attempts for e in untried} == {1} and {rows[e].attempts for e in refused} == {2}


def test_the_channel_goes_on_after_a_421_and_keeps_one_result_per_envelope_in_order(smtp_server):
    smtp_server.fail(BUSY, at="RCPT", address="b@example.com")
    results = calm(smtp_server).send(_envelopes("a@example.com", "b@example.com", "c@example.com", "d@example.com"))
    assert [(r.ref, r.outcome, r.skipped) for r in results] == [
        ("ref-a@example.com", "sent", False),
        ("ref-b@example.com", "temporary", False),
        ("ref-c@example.com", "sent", False),
        ("ref-d@example.com", "sent", False),
    ]
    assert results[1].code == 421 and smtp_server.connections == 2
    assert smtp_server.recipients() == ["a@example.com", "c@example.com", "d@example.com"]


def test_a_server_gone_for_good_mid_call_costs_bounded_connections_then_skips(smtp_server):
    smtp_server.fail(BUSY, at="RCPT", address="b@example.com", times=1)
    channel = calm(smtp_server)
    seen = []

    def on_result(result):  # noqa: ANN001
        seen.append(result.ref)
        if result.code == 421:
            smtp_server.stop()  # ...and the server does not come back

    results = channel.send(_envelopes("a@example.com", "b@example.com", "c@example.com", "d@example.com"), on_result=on_result)
    assert [(r.outcome, r.skipped) for r in results] == [("sent", False), ("temporary", False), ("temporary", True), ("temporary", True)]
    assert "Connection refused" in results[2].reply and seen == [r.ref for r in results]
    assert smtp_server.connections == 1


def test_an_accepted_message_is_in_the_ledger_before_its_connection_commits_the_next(smtp_settings, store, smtp_server):
    # The duplicate window: a crash can only repeat a message the ledger does not say was
    # sent. When the server has a message's data (the moment it may take it), every
    # message this connection got accepted before must already be recorded, so at most
    # one per connection is at risk.
    add_articles(store, SLOT)
    emails = add_subscribers(smtp_settings, store, 120)  # two parallel connections of 60
    run = open_run(smtp_settings, store)
    unrecorded: list[tuple[int, list[str]]] = []

    def check(connection: int) -> None:
        accepted = {m.rcpt_tos[0] for m in smtp_server.messages if m.connection == connection}
        if not accepted:
            return
        with store.session() as session:
            recorded = set(
                session.scalars(
                    select(SubscriberRow.email)
                    .join(DeliveryRow, DeliveryRow.subscriber_id == SubscriberRow.id)
                    .where(DeliveryRow.run_id == run.id, DeliveryRow.status == "sent", SubscriberRow.email.in_(accepted))
                )
            )
        if accepted - recorded:
            unrecorded.append((connection, sorted(accepted - recorded)))

    smtp_server.on_data(check)
    report = dispatch.dispatch_run(smtp_settings, store, run.id, NOW)
    smtp_server.on_data(None)

    assert report.sent == 120 and smtp_server.connections == 2
    assert unrecorded == []
    # No message was begun before the previous one's final reply had been read.
    assert smtp_server.sent_past_unanswered_data() == []
    assert_each_once(smtp_server, emails)
