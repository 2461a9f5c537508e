"""Leases on ledger rows (delivery/leases.py), on SQLite and PostgreSQL, against the real
SMTP test server: renewal by the holder, take-over of a dead holder's rows, a graceful
stop that releases what was not started, and a resumed dispatch.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select, update

from distributor.delivery import email as dispatch
from distributor.delivery import leases
from distributor.runs import delivery_counts
from distributor.settings import DeliveryConfig
from distributor.store.models import DeliveryRow
from tests.conftest import settings_for
from tests.fakes.processes import wait_for
from tests.integration.test_smtp_dispatch import (
    NOW,
    add_articles,
    add_subscribers,
    assert_each_once,
    ledger,
    open_run,
    SLOT,
)

_D = DeliveryRow.__table__


@pytest.fixture(autouse=True)
def fresh_state():
    dispatch.clear_caches()
    leases.clear_stop()
    yield
    leases.clear_stop()
    dispatch.clear_caches()


@pytest.fixture
def smtp_settings(tmp_path, monkeypatch, smtp_server):
    """Settings whose SMTP_URL points at the test server, with a 3-second lease."""
    monkeypatch.setenv("SMTP_URL", smtp_server.url)
    return settings_for(tmp_path, delivery=DeliveryConfig(lease_seconds=3))


@pytest.fixture
def lease_settings(tmp_path):
    """Settings for tests that send nothing (the outbox, never used)."""
    return settings_for(tmp_path, delivery=DeliveryConfig(lease_seconds=3))


def wall() -> datetime:
    return datetime.now(timezone.utc)


def hold(store, run_id: int, holder: str, expires: datetime) -> None:
    """Another sender holds every row of the run, its lease ending at `expires`."""
    with store.session() as session:
        session.execute(
            update(DeliveryRow)
            .where(DeliveryRow.run_id == run_id)
            .values(status="sending", claim=holder, lease_expires_at=expires, attempts=DeliveryRow.attempts + 1)
        )


def test_holder_ids_name_the_host_and_process_and_never_repeat():
    first, second = leases.holder_id(), leases.holder_id()
    host, pid, _ = first.split(":")
    assert pid.isdigit() and host and first != second and len(first) <= leases.HOLDER_MAX


def test_a_holder_renews_only_its_own_unexpired_lease(lease_settings, store):
    add_articles(store, SLOT)
    add_subscribers(lease_settings, store, 4)
    run = open_run(lease_settings, store)
    dispatch.create_deliveries(lease_settings, store, run.id, now=NOW)
    with store.session() as session:
        ids = sorted(session.scalars(select(DeliveryRow.id).where(DeliveryRow.run_id == run.id)))
        session.execute(update(DeliveryRow).where(DeliveryRow.id.in_(ids[:2])).values(status="sending", claim="a", lease_expires_at=wall() + timedelta(seconds=2)))
        session.execute(update(DeliveryRow).where(DeliveryRow.id == ids[2]).values(status="sending", claim="b", lease_expires_at=wall() - timedelta(seconds=1)))

    before = wall()
    assert leases.Lease(store, _D, "a", timedelta(seconds=60)).renew() == 2
    assert leases.Lease(store, _D, "b", timedelta(seconds=60)).renew() == 0  # lapsed: may be taken over, never revived
    rows = {r.id: r for r in ledger(store, run.id).values()}
    assert all(rows[i].lease_expires_at >= before + timedelta(seconds=59) for i in ids[:2])
    assert rows[ids[2]].lease_expires_at < before and rows[ids[3]].lease_expires_at is None


def test_the_heartbeat_keeps_a_lease_alive_past_its_length(lease_settings, store):
    add_articles(store, SLOT)
    add_subscribers(lease_settings, store, 2)
    run = open_run(lease_settings, store)
    dispatch.create_deliveries(lease_settings, store, run.id, now=NOW)
    claimed = wall()
    hold(store, run.id, "me", claimed + timedelta(seconds=3))

    with leases.Lease(store, _D, "me", timedelta(seconds=3)) as lease:
        def renewed_past_first_expiry() -> bool:
            with store.session() as session:
                ends = session.scalar(select(DeliveryRow.lease_expires_at).where(DeliveryRow.run_id == run.id).limit(1))
            return ends > claimed + timedelta(seconds=4.5)

        wait_for(renewed_past_first_expiry, timeout=30, what="the heartbeat to renew the lease twice")
        assert lease.held()
        # Still held: nobody may claim them.
        assert dispatch.retry_deferred(lease_settings, store, NOW).claimed == 0
    assert lease.renewals >= 2


def test_two_senders_racing_for_a_dead_holders_rows_send_each_once(smtp_settings, store, smtp_server):
    add_articles(store, SLOT)
    emails = add_subscribers(smtp_settings, store, 30)
    run = open_run(smtp_settings, store)
    [(first, last)] = dispatch.create_deliveries(smtp_settings, store, run.id, now=NOW)
    hold(store, run.id, "dead-host:1:x", wall() - timedelta(seconds=1))

    with ThreadPoolExecutor(2) as pool:
        reports = list(pool.map(lambda _: dispatch.send_batch(smtp_settings, store, run.id, first, last, now=NOW), range(2)))

    assert sum(r.claimed for r in reports) == 30 and sum(r.sent for r in reports) == 30
    assert_each_once(smtp_server, emails)
    assert {(r.status, r.claim, r.attempts) for r in ledger(store, run.id).values()} == {("sent", None, 2)}


def test_a_stop_request_finishes_the_message_in_flight_and_releases_the_rest(smtp_settings, store, smtp_server):
    """SIGTERM's path: the 6th message is on the wire when the stop comes; it is answered
    and recorded, the 24 never started go back to queued, and a later batch sends them."""
    add_articles(store, SLOT)
    emails = add_subscribers(smtp_settings, store, 30)
    run = open_run(smtp_settings, store)
    [(first, last)] = dispatch.create_deliveries(smtp_settings, store, run.id, now=NOW)
    smtp_server.hold_after(5)

    with ThreadPoolExecutor(1) as pool:
        batch = pool.submit(dispatch.send_batch, smtp_settings, store, run.id, first, last, now=NOW)
        try:
            wait_for(lambda: smtp_server.held == 1, timeout=60, what="the 6th message waiting for its reply")
            leases.request_stop()
        finally:
            smtp_server.release()
        report = batch.result()

    assert (report.claimed, report.sent, report.released) == (30, 6, 24)
    assert delivery_counts(store, run.id) == {"queued": 24, "sent": 6, "deferred": 0, "failed": 0, "suppressed": 0}
    queued = [r for r in ledger(store, run.id).values() if r.status == "queued"]
    assert {(r.claim, r.lease_expires_at, r.attempts) for r in queued} == {(None, None, 0)}  # as if never claimed
    assert len(smtp_server.messages) == 6

    leases.clear_stop()
    assert dispatch.send_batch(smtp_settings, store, run.id, first, last, now=NOW).sent == 24
    assert_each_once(smtp_server, emails)


def test_a_stopped_process_claims_nothing(smtp_settings, store, smtp_server):
    add_articles(store, SLOT)
    add_subscribers(smtp_settings, store, 3)
    run = open_run(smtp_settings, store)
    leases.request_stop()
    report = dispatch.dispatch_run(smtp_settings, store, run.id, NOW)
    assert (report.queued, report.sent, report.sending) == (3, 0, 0) and smtp_server.messages == []


def test_a_resumed_dispatch_waits_for_a_dead_holders_lease_then_sends_its_rows(smtp_settings, store, smtp_server):
    add_articles(store, SLOT)
    emails = add_subscribers(smtp_settings, store, 5)
    run = open_run(smtp_settings, store)
    dispatch.create_deliveries(smtp_settings, store, run.id, now=NOW)
    hold(store, run.id, "killed-send:1:x", wall() + timedelta(seconds=1))

    # Without take-over a dispatch leaves the held rows to their holder.
    assert dispatch.dispatch_run(smtp_settings, store, run.id, NOW).sending == 5
    assert smtp_server.messages == []

    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        import time

        time.sleep(seconds)

    report = dispatch.dispatch_run(smtp_settings, store, run.id, NOW, take_over=True, sleep=sleep)
    assert (report.sent, report.sending) == (5, 0)
    assert waits and all(0 < w <= 1.0 for w in waits)  # at most one heartbeat (3 s / 3) at a time
    assert_each_once(smtp_server, emails)


def test_a_holder_whose_renewals_fail_stops_starting_messages(lease_settings, store):
    """Two heartbeats without a successful renewal: the lease may lapse before a message
    is answered, so the holder starts no more (another may take the rows)."""
    add_articles(store, SLOT)
    add_subscribers(lease_settings, store, 2)
    run = open_run(lease_settings, store)
    dispatch.create_deliveries(lease_settings, store, run.id, now=NOW)
    hold(store, run.id, "me", wall() + timedelta(seconds=3))
    clock = [100.0]
    lease = leases.Lease(store, _D, "me", timedelta(seconds=3), clock=lambda: clock[0])

    clock[0] = 101.9
    assert lease.held()
    clock[0] = 102.0  # a 3 s lease, renewed every 1 s: two renewals missed
    assert not lease.held()
    assert lease.renew() == 2
    assert lease.held()


def test_a_stopped_retry_pass_gives_deferred_rows_back_as_deferred(smtp_settings, store, smtp_server):
    """The retry pass looks only for deferred rows: what it releases must stay deferred
    (and due), or no one would look at it again."""
    add_articles(store, SLOT)
    emails = add_subscribers(smtp_settings, store, 20)
    run = open_run(smtp_settings, store)
    dispatch.create_deliveries(smtp_settings, store, run.id, now=NOW)
    with store.session() as session:
        session.execute(update(DeliveryRow).values(status="deferred", next_attempt_at=NOW, attempts=1))
    smtp_server.hold_after(3)

    with ThreadPoolExecutor(1) as pool:
        retry = pool.submit(dispatch.retry_deferred, smtp_settings, store, NOW)
        try:
            wait_for(lambda: smtp_server.held == 1, timeout=60, what="the 4th message waiting for its reply")
            leases.request_stop()
        finally:
            smtp_server.release()
        report = retry.result()

    assert (report.sent, report.released) == (4, 16)
    rows = [r for r in ledger(store, run.id).values() if r.status != "sent"]
    assert {(r.status, r.next_attempt_at, r.attempts, r.claim) for r in rows} == {("deferred", NOW, 1, None)}

    leases.clear_stop()
    assert dispatch.retry_deferred(smtp_settings, store, NOW).sent == 16
    assert_each_once(smtp_server, emails)


def test_a_redelivered_batch_waits_out_a_dead_holders_lease_once_and_sends_its_rows(smtp_settings, store, smtp_server):
    add_articles(store, SLOT)
    emails = add_subscribers(smtp_settings, store, 6)
    run = open_run(smtp_settings, store)
    [(first, last)] = dispatch.create_deliveries(smtp_settings, store, run.id, now=NOW)
    hold(store, run.id, "killed-child:7:x", wall() + timedelta(seconds=1))
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        import time

        time.sleep(seconds)

    report = dispatch.send_batch(smtp_settings, store, run.id, first, last, now=NOW, wait_for_leases=True, sleep=sleep)
    assert (report.claimed, report.sent) == (6, 6) and len(waits) == 1 and 0 < waits[0] <= 3.1
    assert_each_once(smtp_server, emails)


def test_a_redelivered_batch_leaves_a_live_holders_rows_alone(lease_settings, store):
    add_articles(store, SLOT)
    add_subscribers(lease_settings, store, 3)
    run = open_run(lease_settings, store)
    [(first, last)] = dispatch.create_deliveries(lease_settings, store, run.id, now=NOW)
    hold(store, run.id, "live:1:x", wall() + timedelta(seconds=2))

    def renewing_sleep(seconds: float) -> None:  # the live holder renews while we wait
        leases.Lease(store, _D, "live:1:x", timedelta(seconds=60)).renew()

    report = dispatch.send_batch(lease_settings, store, run.id, first, last, now=NOW, wait_for_leases=True, sleep=renewing_sleep)
    assert report.claimed == 0
    assert {(r.status, r.claim) for r in ledger(store, run.id).values()} == {("sending", "live:1:x")}
