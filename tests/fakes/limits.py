"""Shared rate limits for social delivery tests: a fake clock, and `SocialLimits` in
process or in the test Redis.

`redis_limits.worker()` makes a new `SocialLimits` each time, sharing nothing with the
others but the Redis server (one key prefix per test, its keys deleted afterwards): two
of them are two workers. The limiters' time is the test's `Clock`, so a hold of 300 s
ends when the test moves the clock on, not after five minutes.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from distributor.delivery.social_limits import SocialLimits
from distributor.ratelimit import MemoryLimiter, Rate, RedisLimiter
from tests.conftest import redis_or_skip

MAX_WAIT = 120.0  # telegram.max_retry_wait_seconds' default


class Clock:
    """The limiters' monotonic clock; `sleep` advances it and records the wait."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


def memory_limits(clock: Clock, **kwargs) -> SocialLimits:
    """One process's limits on the fake clock."""

    def make(per_key: Rate, overall: Rate, prefix: str) -> MemoryLimiter:
        return MemoryLimiter(per_key, overall, clock=clock)

    return SocialLimits(make, max_wait=MAX_WAIT, sleep=clock.sleep, **kwargs)


class RedisLimits:
    def __init__(self, client, clock: Clock) -> None:  # noqa: ANN001 - a redis.Redis
        self.client = client
        self.clock = clock
        self.prefix = f"test-social-{uuid.uuid4().hex[:10]}"

    def worker(self, **kwargs) -> SocialLimits:
        """A worker's limits: its own limiter objects on the shared Redis."""

        def make(per_key: Rate, overall: Rate, prefix: str) -> RedisLimiter:
            return RedisLimiter(self.client, per_key, overall, prefix=f"{self.prefix}:{prefix}", clock=self.clock)

        return SocialLimits(make, max_wait=MAX_WAIT, sleep=self.clock.sleep, **kwargs)

    def keys(self) -> list[str]:
        return sorted(k.decode() for k in self.client.scan_iter(f"{self.prefix}:*"))


@pytest.fixture
def redis_limits() -> Iterator[RedisLimits]:
    client = redis_or_skip("shared social rate limit tests")
    limits = RedisLimits(client, Clock())
    yield limits
    for key in client.scan_iter(f"{limits.prefix}:*"):
        client.delete(key)
    client.close()
