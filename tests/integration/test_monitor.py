"""What the overview watches, on both databases: health of each part, run progress."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from distributor import monitor, schedules
from distributor.engine import TICK_MARKER

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)


def parts(settings, store, **kwargs):
    return {p.name: p for p in monitor.component_health(settings, store, NOW, **kwargs)}


def test_a_fresh_install_has_a_database_but_no_beat_or_worker(settings, store):
    health = parts(settings, store)
    assert health["database"].ok and health["broker"].ok
    assert not health["beat"].ok and health["beat"].detail == "never ticked"
    assert not health["workers"].ok
    assert health["smtp"].detail == "no success yet"


def test_beat_and_workers_count_while_recent(settings, store):
    schedules.set_marker(store, TICK_MARKER, NOW - timedelta(seconds=20))
    monitor.worker_seen(store, "worker-a@host", NOW - timedelta(seconds=10))
    monitor.worker_seen(store, "worker-b@host", NOW - timedelta(minutes=5))
    health = parts(settings, store)
    assert health["beat"].ok and "20 s ago" in health["beat"].detail
    assert health["workers"].ok and health["workers"].detail == "1 seen in the last minute: worker-a@host"
    later = {p.name: p for p in monitor.component_health(settings, store, NOW + timedelta(minutes=10))}
    assert not later["beat"].ok and not later["workers"].ok


def test_the_broker_is_down_when_redis_does_not_answer(settings, store, monkeypatch):
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    from tests.conftest import settings_for

    with_redis = settings_for(settings.var_dir.parent)
    assert not parts(with_redis, store)["broker"].ok
    assert parts(with_redis, store, redis_ping=lambda: True)["broker"].ok


def test_the_worker_heartbeat_signal_stamps_the_database(settings, sqlite_store, monkeypatch):
    import tasks.heartbeat as heartbeat

    monkeypatch.setattr(heartbeat, "context", lambda: (settings, sqlite_store))
    monkeypatch.setattr(heartbeat, "_last", [0.0])
    heartbeat._stamp(sender=None)
    [(name, age)] = monitor.workers(sqlite_store, datetime.now(timezone.utc))
    assert name and age < 60


def _runs_with_deliveries(settings, store, shapes):
    """One run per shape: {status: count} of deliveries, sent ones in the last minute."""
    from distributor import subscribers
    from distributor.store.models import DeliveryRow, EditionRunRow, TelegramPostRow

    people = [subscribers.subscribe(settings, store, f"reader{n}@example.org", confirmed=True)[0].id
              for n in range(max(sum(shape.values()) for shape in shapes))]
    ids = []
    with store.session() as session:
        for day, shape in enumerate(shapes):
            slot = NOW - timedelta(days=day)
            run = EditionRunRow(edition="morning", slot=slot, timezone="", local_slot=slot.strftime("%Y-%m-%dT%H:%M:%S"),
                                attempt=0, window_start=slot, window_end=slot, status="sending", article_keys=[])
            session.add(run)
            session.flush()
            who = iter(people)
            for status, count in shape.items():
                for _ in range(count):
                    session.add(DeliveryRow(run_id=run.id, subscriber_id=next(who), status=status,
                                            updated_at=NOW - timedelta(seconds=30)))
            session.add(TelegramPostRow(channel="news", chat_id="@news", run_id=run.id, status="sent"))
            ids.append(run.id)
    return ids


def test_progress_of_many_runs_is_each_runs_own_in_a_fixed_number_of_queries(settings, store):
    from sqlalchemy import event

    shapes = [{"sent": 3, "queued": 2}, {"sent": 1, "failed": 1, "deferred": 2}, {}, {"sending": 4}]
    ids = _runs_with_deliveries(settings, store, shapes)
    statements = []

    def count(conn, cursor, statement, *rest):  # noqa: ANN001
        statements.append(statement)

    event.listen(store.engine, "before_cursor_execute", count)
    try:
        many = monitor.runs_progress(store, ids + [999_999], NOW)
        counted = len(statements)
        one_by_one = {run_id: monitor.run_progress(store, run_id, NOW) for run_id in ids}
    finally:
        event.remove(store.engine, "before_cursor_execute", count)
    assert many == one_by_one  # 999999 does not exist and is simply absent
    assert counted <= 4, statements[:counted]
    assert [(many[i].total, many[i].sent, many[i].failed, many[i].deferred, many[i].queued) for i in ids] == [
        (5, 3, 0, 0, 2), (4, 1, 1, 2, 0), (0, 0, 0, 0, 0), (4, 0, 0, 0, 4)]
    assert many[ids[0]].per_minute == 3 and many[ids[0]].telegram == {"sent": 1}
    assert monitor.runs_progress(store, [], NOW) == {}
