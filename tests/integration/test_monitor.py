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
