"""Shared rate limits for outgoing messages: sliding windows per chat and overall.

One limiter serves every worker: in Redis when REDIS_URL is set (a Lua script makes each
decision atomic across processes and machines, on the Redis server's clock), in process
otherwise (a lock makes it atomic across threads).

How a send uses it:

    permit = acquire(limiter, chat_key)      # waits until both windows have room
    ... send the message ...
    limiter.complete(permit)                  # the send's time becomes its finish time

A slot is counted from the moment it is taken and, once the send finishes, from the
moment it finished. Counting from the finish is what makes the limit hold exactly at the
receiving end: a request that left at 0.00 s but reached the server at 0.05 s still
occupies its slot until at least 0.05 s + period, so no window of the server's clock ever
sees more than the limit. Slots whose send never reports back (a crashed worker) expire
`in_flight_seconds` after they were taken.

A 429 RetryAfter holds the whole chat: `hold(chat_key, seconds)` makes every acquire for
that chat wait, in every worker, until the hold ends.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol



@dataclass(frozen=True, slots=True)
class Rate:
    """At most `messages` within any `seconds` long stretch."""

    messages: int
    seconds: float

    def __post_init__(self) -> None:
        if self.messages < 1 or self.seconds <= 0:
            raise ValueError(f"a rate needs messages >= 1 and seconds > 0, not {self}")


@dataclass(frozen=True, slots=True)
class Permit:
    """A taken slot; hand it back to `complete` once the send has finished."""

    key: str
    token: str


class RateWaitTooLong(Exception):
    """The wait for a slot (or a hold) is longer than the caller accepts."""

    def __init__(self, key: str, wait: float) -> None:
        super().__init__(f"{key}: next slot in {wait:.3f} s, longer than allowed")
        self.key = key
        self.wait = wait


class RateLimiter(Protocol):
    """A shared pair of sliding windows: one per key (chat) and one over all keys."""

    per_key: Rate
    overall: Rate

    def try_acquire(self, key: str) -> tuple[Permit | None, float]:
        """Take a slot for `key` now if both windows and any hold allow it: (permit, 0.0);
        otherwise take nothing and return (None, seconds to wait before asking again)."""

    def complete(self, permit: Permit) -> None:
        """The send of `permit` has finished (in whatever way): its slot counts from now."""

    def hold(self, key: str, seconds: float) -> None:
        """Let nothing for `key` through for `seconds` (Telegram's RetryAfter)."""

    def held_for(self, key: str) -> float:
        """Seconds left of the hold on `key` (0.0 if none)."""


def acquire(
    limiter: RateLimiter,
    key: str,
    *,
    max_wait: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Permit:
    """Wait for a slot and take it; raise RateWaitTooLong when the wait would exceed max_wait.

    The total wait is the sum of the waits the limiter asked for, so an injected `sleep`
    that only advances a test clock gives the same decisions as real time.
    """
    waited = 0.0
    while True:
        permit, wait = limiter.try_acquire(key)
        if permit is not None:
            return permit
        if max_wait is not None and waited + wait > max_wait:
            raise RateWaitTooLong(key, wait)
        sleep(wait)
        waited += wait


class NoLimit:
    """A limiter that never waits: for the outbox, where nothing reaches Telegram."""

    def __init__(self) -> None:
        self.per_key = Rate(1_000_000, 1.0)
        self.overall = Rate(1_000_000, 1.0)

    def try_acquire(self, key: str) -> tuple[Permit | None, float]:
        return Permit(key, ""), 0.0

    def complete(self, permit: Permit) -> None:
        return None

    def hold(self, key: str, seconds: float) -> None:
        return None

    def held_for(self, key: str) -> float:
        return 0.0


def _wait_for(times: list[float], rate: Rate, now: float) -> float:
    """Seconds until `times` (slot times, ascending) leave room for one more send."""
    if len(times) < rate.messages:
        return 0.0
    # The slot that must leave the window: with n slots and room for m, the (n-m)th.
    decisive = times[len(times) - rate.messages]
    if decisive > now:
        # Still in flight: it will count from its finish, which is now at the earliest,
        # so one whole period is the least wait (and a better guess than polling).
        return rate.seconds
    return max(decisive + rate.seconds - now, 0.0)


class MemoryLimiter:
    """The limiter for one process: thread-safe, with an injectable monotonic clock."""

    def __init__(
        self,
        per_key: Rate,
        overall: Rate,
        *,
        in_flight_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_key = per_key
        self.overall = overall
        self.in_flight_seconds = in_flight_seconds
        self.clock = clock
        self._lock = threading.Lock()
        # Slot times per key and overall, ascending; in-flight slots carry their expiry.
        self._slots: dict[str, dict[str, float]] = {}
        self._all: dict[str, float] = {}
        self._holds: dict[str, float] = {}

    def _expire(self, slots: dict[str, float], rate: Rate, now: float) -> list[float]:
        for token in [t for t, at in slots.items() if at <= now - rate.seconds]:
            del slots[token]
        return sorted(slots.values())

    def try_acquire(self, key: str) -> tuple[Permit | None, float]:
        """See RateLimiter.try_acquire."""
        with self._lock:
            now = self.clock()
            held = self._holds.get(key, 0.0) - now
            if held > 0:
                return None, held
            mine = self._slots.setdefault(key, {})
            wait = max(
                _wait_for(self._expire(mine, self.per_key, now), self.per_key, now),
                _wait_for(self._expire(self._all, self.overall, now), self.overall, now),
            )
            if wait > 0:
                return None, wait
            token = uuid.uuid4().hex
            mine[token] = self._all[token] = now + self.in_flight_seconds
            return Permit(key, token), 0.0

    def complete(self, permit: Permit) -> None:
        """See RateLimiter.complete."""
        with self._lock:
            now = self.clock()
            mine = self._slots.get(permit.key, {})
            if permit.token in mine:
                mine[permit.token] = min(mine[permit.token], now)
            if permit.token in self._all:
                self._all[permit.token] = min(self._all[permit.token], now)

    def hold(self, key: str, seconds: float) -> None:
        """See RateLimiter.hold."""
        with self._lock:
            until = self.clock() + max(seconds, 0.0)
            self._holds[key] = max(self._holds.get(key, 0.0), until)

    def held_for(self, key: str) -> float:
        """See RateLimiter.held_for."""
        with self._lock:
            return max(self._holds.get(key, 0.0) - self.clock(), 0.0)


# Lua turns numbers into strings with 14 significant digits; counting seconds from this
# epoch (2023-11-14) instead of 1970 keeps microseconds in the sorted-set scores.
_EPOCH = 1_700_000_000

# Every script starts here: `now` is ARGV[1] when the caller injects a clock (tests),
# else the Redis server's own, so all workers share one clock.
_CLOCK = f"""local EPOCH = {_EPOCH}
local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = (tonumber(t[1]) - EPOCH) + tonumber(t[2]) / 1000000
end
"""

# KEYS: per-key window, overall window, per-key hold.
# ARGV: now ("" = the Redis server's clock), per-key messages, per-key seconds,
#       overall messages, overall seconds, token, in-flight seconds.
# Returns {1, "0"} with the slot taken, or {0, wait seconds}.
_ACQUIRE = """
local key_n, key_s = tonumber(ARGV[2]), tonumber(ARGV[3])
local all_n, all_s = tonumber(ARGV[4]), tonumber(ARGV[5])
local in_flight = tonumber(ARGV[7])
local held = tonumber(redis.call('GET', KEYS[3]) or '0')
if held > now then
  return {0, tostring(held - now)}
end
local function wait_for(key, n, s)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - s)
  local count = redis.call('ZCARD', key)
  if count < n then return 0 end
  local decisive = tonumber(redis.call('ZRANGE', key, count - n, count - n, 'WITHSCORES')[2])
  if decisive > now then return s end
  return math.max(decisive + s - now, 0)
end
local wait = math.max(wait_for(KEYS[1], key_n, key_s), wait_for(KEYS[2], all_n, all_s))
if wait > 0 then
  return {0, tostring(wait)}
end
redis.call('ZADD', KEYS[1], now + in_flight, ARGV[6])
redis.call('ZADD', KEYS[2], now + in_flight, ARGV[6])
local ttl = math.ceil((math.max(key_s, all_s) + in_flight) * 1000)
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
return {1, '0'}
"""

# KEYS: per-key window, overall window. ARGV: now ("" = server clock), token.
# Moves the slot to the finish time, never later than where it already is.
_COMPLETE = """
for i = 1, 2 do
  local at = redis.call('ZSCORE', KEYS[i], ARGV[2])
  if at and tonumber(at) > now then
    redis.call('ZADD', KEYS[i], 'XX', now, ARGV[2])
  end
end
return 1
"""

# KEYS: per-key hold. ARGV: now ("" = server clock), seconds. Keeps the later hold.
_HOLD = """
local untl = now + tonumber(ARGV[2])
local held = tonumber(redis.call('GET', KEYS[1]) or '0')
if untl > held then
  redis.call('SET', KEYS[1], tostring(untl), 'PX', math.max(math.ceil(tonumber(ARGV[2]) * 1000), 1))
end
return 1
"""

_HELD_FOR = """
local held = tonumber(redis.call('GET', KEYS[1]) or '0')
return tostring(math.max(held - now, 0))
"""


class RedisLimiter:
    """The limiter shared by every worker through Redis.

    Time is the Redis server's clock (so workers on machines with different clocks agree),
    unless a `clock` is given (tests).
    """

    def __init__(
        self,
        client,
        per_key: Rate,
        overall: Rate,
        *,
        prefix: str = "distributor:telegram",
        in_flight_seconds: float = 60.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.client = client
        self.per_key = per_key
        self.overall = overall
        self.prefix = prefix
        self.in_flight_seconds = in_flight_seconds
        self.clock = clock
        self._acquire, self._complete, self._hold, self._held_for = (
            client.register_script(_CLOCK + script)
            for script in (_ACQUIRE, _COMPLETE, _HOLD, _HELD_FOR)
        )

    @classmethod
    def from_url(cls, url: str, per_key: Rate, overall: Rate, **kwargs) -> RedisLimiter:
        """A limiter on the Redis server at `url`."""
        import redis

        return cls(redis.Redis.from_url(url), per_key, overall, **kwargs)

    def _now(self) -> str:
        return repr(self.clock()) if self.clock else ""

    def _keys(self, key: str) -> list[str]:
        return [f"{self.prefix}:window:{key}", f"{self.prefix}:window:*overall*", f"{self.prefix}:hold:{key}"]

    def try_acquire(self, key: str) -> tuple[Permit | None, float]:
        """See RateLimiter.try_acquire (one atomic script on the Redis server)."""
        token = uuid.uuid4().hex
        taken, wait = self._acquire(
            keys=self._keys(key),
            args=[
                self._now(),
                self.per_key.messages,
                repr(self.per_key.seconds),
                self.overall.messages,
                repr(self.overall.seconds),
                token,
                repr(self.in_flight_seconds),
            ],
        )
        if int(taken) == 1:
            return Permit(key, token), 0.0
        return None, float(wait)

    def complete(self, permit: Permit) -> None:
        """See RateLimiter.complete."""
        self._complete(keys=self._keys(permit.key)[:2], args=[self._now(), permit.token])

    def hold(self, key: str, seconds: float) -> None:
        """See RateLimiter.hold."""
        self._hold(keys=self._keys(key)[2:], args=[self._now(), repr(max(seconds, 0.0))])

    def held_for(self, key: str) -> float:
        """See RateLimiter.held_for."""
        return float(self._held_for(keys=self._keys(key)[2:], args=[self._now()]))


_shared: dict[tuple, RateLimiter] = {}
_shared_lock = threading.Lock()


def shared_limiter(
    redis_url: str | None,
    per_key: Rate,
    overall: Rate,
    *,
    prefix: str,
    in_flight_seconds: float,
) -> RateLimiter:
    """The process's limiter for these limits: Redis-backed when `redis_url` is set.

    Cached per process, so every thread of a worker shares one in-process window (and one
    Redis connection pool).
    """
    identity = (redis_url, per_key, overall, prefix, in_flight_seconds)
    with _shared_lock:
        limiter = _shared.get(identity)
        if limiter is None:
            if redis_url:
                limiter = RedisLimiter.from_url(
                    redis_url, per_key, overall, prefix=prefix, in_flight_seconds=in_flight_seconds
                )
            else:
                limiter = MemoryLimiter(per_key, overall, in_flight_seconds=in_flight_seconds)
            _shared[identity] = limiter
        return limiter
