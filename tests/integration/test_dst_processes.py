"""DST nights with real processes: two schedulers tick through New York's autumn and
spring nights on PostgreSQL, a real `distributor worker` builds and sends what they
open, and every subscriber gets one message per local slot.

As in test_engine_processes' London test, the ticks run in the test process at fixed
times (every five minutes, two at once as two beats would) and queue `build_run` as the
beat's tick task does; the worker, Redis, PostgreSQL and the SMTP server are real.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from distributor import engine, schedules
from distributor.settings import load_settings
from tests.integration import test_engine_processes as harness
from tests.integration.test_engine_processes import add_articles, add_subscribers, make_world  # noqa: F401

pytestmark = pytest.mark.processes

UTC = timezone.utc
NEW_YORK = ZoneInfo("America/New_York")

# 01:30 happens twice on the autumn night; 02:30 does not exist on the spring night.
EDITIONS = """
[editions.night]
label = "Night Desk"
schedule = "30 1,2 * * *"
window = 24
min_articles = 3
default = true

[editions.local]
label = "Night Desk, your time"
schedule = "30 1,2 * * *"
window = 24
min_articles = 3
default = true
local_time = true
"""


def test_two_schedulers_through_new_york_dst_nights_send_one_issue_per_local_slot(make_world, monkeypatch):
    monkeypatch.setattr(harness, "CONFIG", harness.CONFIG.replace('timezone = "Asia/Kolkata"', 'timezone = "America/New_York"'))
    world = make_world(editions=EDITIONS, database="postgres")
    emails = add_subscribers(world.store, 6, ("America/New_York", "Europe/London"))
    nights = [datetime(2026, 3, 7, 18, tzinfo=NEW_YORK), datetime(2026, 10, 31, 18, tzinfo=NEW_YORK)]
    for evening in nights:
        add_articles(world.store, evening.astimezone(UTC))
    from tasks.app import make_app  # imported before the environment changes, as in the London test

    for name in ("DISTRIBUTOR_CONFIG", "DATABASE_URL", "REDIS_URL"):
        monkeypatch.setenv(name, world.env[name])
    settings = load_settings()
    world.procs().worker()
    queue = make_app(settings)

    opened = []
    with ThreadPoolExecutor(2) as beats:
        for evening in nights:  # 18:00 to 06:00 New York time
            start = evening.astimezone(UTC)
            schedules.set_marker(world.store, engine.TICK_MARKER, start)
            now = start
            while now < start + timedelta(hours=12):
                now += timedelta(minutes=5)
                for result in beats.map(lambda _: engine.tick(settings, world.store, now), range(2)):
                    for run in result.opened:
                        opened.append(run)
                        queue.send_task("tasks.editions.build_run", args=[run.id])
    queue.close()

    local = sorted((r.edition, r.timezone, r.slot.astimezone(ZoneInfo(r.timezone or "America/New_York")).isoformat()) for r in opened)
    assert local == [
        ("local", "America/New_York", "2026-03-08T01:30:00-05:00"),
        ("local", "America/New_York", "2026-03-08T03:00:00-04:00"),  # 02:30 is in the gap
        ("local", "America/New_York", "2026-11-01T01:30:00-04:00"),  # the first 01:30 only
        ("local", "America/New_York", "2026-11-01T02:30:00-05:00"),
        ("local", "Europe/London", "2026-03-08T01:30:00+00:00"),
        ("local", "Europe/London", "2026-03-08T02:30:00+00:00"),
        ("local", "Europe/London", "2026-11-01T01:30:00+00:00"),
        ("local", "Europe/London", "2026-11-01T02:30:00+00:00"),
        ("night", "", "2026-03-08T01:30:00-05:00"),
        ("night", "", "2026-03-08T03:00:00-04:00"),
        ("night", "", "2026-11-01T01:30:00-04:00"),
        ("night", "", "2026-11-01T02:30:00-05:00"),
    ], world.describe()
    assert len(world.runs()) == 12, world.describe()
    world.wait(lambda: all(r.status == "sent" for r in world.runs()) and world.ledger().get("sent") == 48, "all twelve runs sent")
    # Each reader: the four site-time issues and the four of their own zone.
    world.assert_each_got(emails, 8)
    assert Counter(r.status for r in world.runs()) == Counter(sent=12)
