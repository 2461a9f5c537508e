"""The shared rate limiter, in process and in a real Redis: limits hold exactly.

Redis comes from TEST_REDIS_URL (default redis://127.0.0.1:6379/15); each test uses its
own key prefix and deletes only those keys. Without a reachable Redis the Redis half is
skipped loudly (a failure under DISTRIBUTOR_REQUIRE_SERVICES=1).

Time is a fake clock passed to the limiter, so "within one window" is exact arithmetic.
"""

from __future__ import annotations

import threading
import uuid

import pytest

from tests.conftest import redis_or_skip

from distributor.ratelimit import (
    MemoryLimiter,
    Rate,
    RateWaitTooLong,
    RedisLimiter,
    acquire,
)



class Clock:
    def __init__(self, start: float = 100.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def redis_client():
    client = redis_or_skip("Redis limiter tests")
    prefixes: list[str] = []
    yield client, prefixes
    for prefix in prefixes:
        for key in client.scan_iter(f"{prefix}:*"):
            client.delete(key)
    client.close()


@pytest.fixture(params=["memory", "redis"])
def make_limiter(request):
    """Build a limiter of the parametrised kind: make_limiter(per_key, overall, clock)."""

    def build(per_key: Rate, overall: Rate, clock: Clock, in_flight: float = 30.0):
        if request.param == "memory":
            return MemoryLimiter(per_key, overall, clock=clock, in_flight_seconds=in_flight)
        client, prefixes = request.getfixturevalue("redis_client")
        prefix = f"test-ratelimit-{uuid.uuid4().hex[:10]}"
        prefixes.append(prefix)
        return RedisLimiter(client, per_key, overall, prefix=prefix, clock=clock, in_flight_seconds=in_flight)

    return build


def most_in_any_window(times: list[float], seconds: float) -> int:
    """The largest number of `times` inside any half-open window [t, t + seconds)."""
    times = sorted(times)
    best, start = 0, 0
    for end, moment in enumerate(times):
        while times[start] <= moment - seconds:
            start += 1
        best = max(best, end - start + 1)
    return best


def test_limits_hold_exactly_under_a_steady_push(make_limiter):
    clock = Clock()
    limiter = make_limiter(Rate(4, 10.0), Rate(6, 1.0), clock)
    keys = ["@a", "@b", "@c"]
    sent: dict[str, list[float]] = {k: [] for k in keys}
    # Every 0.05 s each chat wants to send; 30 s of that.
    for step in range(600):
        clock.now = 100.0 + step * 0.05
        for key in keys:
            permit, wait = limiter.try_acquire(key)
            if permit is None:
                assert wait > 0
                continue
            limiter.complete(permit)
            sent[key].append(clock.now)
    everything = [t for times in sent.values() for t in times]
    # Never more than the limit in any window, and the limit is reached (not just approached).
    assert {most_in_any_window(times, 10.0) for times in sent.values()} == {4}
    assert most_in_any_window(everything, 1.0) <= 6
    # Per-chat limits bind here (3 chats x 4 per 10 s): each chat gets 4 every 10 s.
    assert all(len(times) == 4 * 3 for times in sent.values())


def test_overall_limit_binds_across_many_chats(make_limiter):
    clock = Clock()
    limiter = make_limiter(Rate(20, 60.0), Rate(5, 1.0), clock)
    admitted: list[float] = []
    for step in range(200):
        clock.now = 100.0 + step * 0.01
        for n in range(20):
            permit, _ = limiter.try_acquire(f"@chat{n}")
            if permit is not None:
                limiter.complete(permit)
                admitted.append(clock.now)
    assert most_in_any_window(admitted, 1.0) == 5
    assert len(admitted) == 10  # 2 s of pushing at 5 a second


def test_wait_says_exactly_when_the_next_slot_opens(make_limiter):
    clock = Clock()
    limiter = make_limiter(Rate(2, 10.0), Rate(100, 1.0), clock)
    for _ in range(2):
        limiter.complete(limiter.try_acquire("@a")[0])
        clock.now += 1.0
    permit, wait = limiter.try_acquire("@a")
    assert permit is None and wait == pytest.approx(8.0)
    clock.now += wait
    assert limiter.try_acquire("@a")[0] is not None


def test_slots_count_until_the_send_finishes(make_limiter):
    # A slot is held while its send is in flight, then counts from the finish time: that
    # is what keeps the limit at the receiving end when requests take time.
    clock = Clock()
    limiter = make_limiter(Rate(1, 5.0), Rate(100, 1.0), clock)
    permit, _ = limiter.try_acquire("@a")
    clock.now += 7.0  # a slow request: longer than the window
    blocked, wait = limiter.try_acquire("@a")
    assert blocked is None and wait == pytest.approx(5.0)  # it counts from its finish: >= now
    limiter.complete(permit)  # finished at 107
    blocked, wait = limiter.try_acquire("@a")
    assert blocked is None and wait == pytest.approx(5.0)
    clock.now += 5.0
    assert limiter.try_acquire("@a")[0] is not None


def test_a_slot_never_completed_expires_after_the_in_flight_time(make_limiter):
    clock = Clock()
    limiter = make_limiter(Rate(1, 5.0), Rate(100, 1.0), clock, in_flight=20.0)
    limiter.try_acquire("@a")  # the worker dies without completing
    clock.now += 24.9
    assert limiter.try_acquire("@a")[0] is None
    clock.now += 0.2  # 20 s in flight + 5 s window
    assert limiter.try_acquire("@a")[0] is not None


def test_hold_stops_one_chat_only_and_keeps_the_longer_hold(make_limiter):
    clock = Clock()
    limiter = make_limiter(Rate(20, 60.0), Rate(25, 1.0), clock)
    limiter.hold("@a", 30)
    limiter.hold("@a", 5)  # a shorter answer does not shorten the hold
    permit, wait = limiter.try_acquire("@a")
    assert permit is None and wait == pytest.approx(30.0)
    assert limiter.held_for("@a") == pytest.approx(30.0)
    assert limiter.try_acquire("@b")[0] is not None
    waited = []
    permit = acquire(limiter, "@a", sleep=lambda s: (waited.append(s), clock.sleep(s)))
    assert permit is not None and sum(waited) == pytest.approx(30.0)


def test_acquire_gives_up_beyond_max_wait(make_limiter):
    clock = Clock()
    limiter = make_limiter(Rate(20, 60.0), Rate(25, 1.0), clock)
    limiter.hold("@a", 100)
    with pytest.raises(RateWaitTooLong) as info:
        acquire(limiter, "@a", max_wait=60, sleep=clock.sleep)
    assert info.value.wait == pytest.approx(100.0)


def test_concurrent_workers_never_exceed_the_limit(make_limiter):
    # Twelve threads push at one frozen moment: the atomic check-and-take lets exactly the
    # limit through, whichever thread wins.
    clock = Clock()
    limiter = make_limiter(Rate(7, 60.0), Rate(10, 1.0), clock)
    start = threading.Barrier(12)
    taken: list[str] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        start.wait()
        for _ in range(10):
            permit, _ = limiter.try_acquire("@same" if n % 2 else f"@other{n}")
            if permit is not None:
                with lock:
                    taken.append(permit.key)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(taken) == 10  # the overall limit
    assert taken.count("@same") <= 7


def test_redis_limiter_on_the_server_clock(redis_client):
    client, prefixes = redis_client
    prefix = f"test-ratelimit-{uuid.uuid4().hex[:10]}"
    prefixes.append(prefix)
    limiter = RedisLimiter(client, Rate(3, 30.0), Rate(100, 1.0), prefix=prefix)
    for _ in range(3):
        permit, wait = limiter.try_acquire("@a")
        assert permit is not None and wait == 0.0
        limiter.complete(permit)
    permit, wait = limiter.try_acquire("@a")
    assert permit is None and 29.0 < wait <= 30.0
    # Keys expire on their own: nothing is left behind forever.
    assert all(0 < client.pttl(key) for key in client.scan_iter(f"{prefix}:*"))
