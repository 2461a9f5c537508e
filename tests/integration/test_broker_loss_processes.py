"""A Redis restart without persistence, with the production recovery timings: the run
finishes within two minutes, rebuilt by the beat's tick from the database.

Real `distributor worker` and `distributor beat` processes on a private redis-server,
mail counted at the aiosmtpd server (see test_engine_processes for the harness). Only
the email batch size is small, so most of the run's batches are still waiting in Redis
when it restarts; stall_seconds (60), stale_after_seconds (300), the claim timeout
(900) and the tick (30 s) are the shipped defaults, so it is the stall rule, not a
claim expiring or the five-minute stale rule, that finds the lost work.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

from tests.integration import test_engine_processes as harness
from tests.integration.test_engine_processes import add_articles, add_subscribers, make_world, only_run, settled  # noqa: F401

pytestmark = pytest.mark.processes

UTC = timezone.utc
# The bound for a lost broker: a wait deadline, not a performance assertion.
RECOVERY_BOUND = 120.0

PRODUCTION_TIMINGS = (
    harness.CONFIG.replace("retry_max_seconds = 2\n", "retry_max_seconds = 2\nbatch_size = 50\n")
    .replace("lease_seconds = 5\n", "lease_seconds = 30\n")
    .replace("tick_seconds = 5\n", "tick_seconds = 30\n")
    .replace("stale_after_seconds = 5\n", "stale_after_seconds = 300\n")
)
# Each replacement must have taken: a harness change would otherwise quietly test
# something else (one batch of 400 loses nothing in Redis).
assert all(line in PRODUCTION_TIMINGS for line in ("batch_size = 50", "lease_seconds = 30", "tick_seconds = 30", "stale_after_seconds = 300"))


def test_redis_restart_loses_queued_batches_and_the_run_still_finishes_within_two_minutes(make_world, monkeypatch, record_property):
    assert PRODUCTION_TIMINGS != harness.CONFIG and "stall_seconds" not in PRODUCTION_TIMINGS
    monkeypatch.setattr(harness, "CONFIG", PRODUCTION_TIMINGS)
    world = make_world()
    add_articles(world.store, datetime.now(UTC) - timedelta(minutes=30))
    emails = add_subscribers(world.store, 400)  # 8 batches of 50
    procs = world.procs()
    procs.beat()
    procs.worker()  # two processes: two batches at a time, the other six wait in Redis

    world.smtp.hold_after(120)
    world.cli("schedule", "run-now", "morning")
    world.wait(lambda: len(world.runs()) == 1, "the run-now run to open")
    run = only_run(world)
    world.wait(lambda: world.ledger(run.id).get("sent", 0) >= 100 and world.smtp.held > 0, "two batches sent, the next two held")

    world.redis.restart()  # same port, empty: the waiting batch tasks are gone
    restarted = time.monotonic()
    world.smtp.release()
    world.wait(lambda: settled(world, run.id, 400), "every delivery sent and the run closed", timeout=RECOVERY_BOUND)
    took = time.monotonic() - restarted
    record_property("recovery_seconds", round(took, 1))
    print(f"\nrun finished {took:.1f} s after the Redis restart")
    world.assert_each_got(emails, 1)
    requeues = [r.requeued_at for r in world.runs()]
    assert requeues[0] is not None, world.describe()  # the tick, not anything else, rebuilt it
