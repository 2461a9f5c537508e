"""Mastodon and Bluesky rate limits, shared by every worker.

Two things keep a social channel inside its service's limits. Both live in the shared
limiter of `distributor.ratelimit` (in Redis when REDIS_URL is set, so every worker
process and machine sees them; in process otherwise):

- a hold per channel (key "<kind>:<channel>"): after a 429, or after an answer whose
  remaining budget is 0 before its reset (X-RateLimit-Remaining on Mastodon,
  RateLimit-Remaining on Bluesky), nothing goes to that channel from any worker until the
  reset the service gave. A call to a held channel answers "retry_after" with the time
  left, without a request, and the ledger defers the post by that much;
- the per-account budgets the services document, declared with their kind's limits
  (`render.mastodon.MastodonLimits`, `render.bluesky.BlueskyLimits`): a slot is taken
  before each create (a status or a media upload on Mastodon, a post record on Bluesky).
  A slot due within `telegram.max_retry_wait_seconds` is waited for, as Telegram's are; a
  later one defers the post ("retry_after") instead of keeping a worker asleep.

Each budget is a limiter of its own, per channel and kind of request (Redis prefix
"distributor:social:<kind>:<channel>:<action>"), so its "overall" window counts that one
account: its per-key window is the budget's first window and its overall window the
last (Bluesky counts an hour and a day; a one-window budget uses its window for both).

The outbox is never limited: nothing reaches a service.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from distributor.channels.contracts import SocialRequest, SocialResult
from distributor.ratelimit import Rate, RateLimiter, RateWaitTooLong, acquire, shared_limiter
from distributor.render import bluesky as bluesky_render
from distributor.render import mastodon as mastodon_render
from distributor.settings import Settings

log = logging.getLogger(__name__)

# Redis keys of the holds ("distributor:social:hold:<kind>:<channel>") and budgets.
PREFIX = "distributor:social"
# The key of the one account a budget limiter counts.
ACCOUNT = "account"
# Each social kind's declared limits; each declares its `budgets`.
KIND_LIMITS = {"mastodon": mastodon_render.LIMITS, "bluesky": bluesky_render.LIMITS}
# The holds' limiter never takes a slot: only its holds are used.
_NO_WINDOW = Rate(1_000_000, 1.0)

# (per-key window, overall window, key prefix) -> a limiter.
LimiterFactory = Callable[[Rate, Rate, str], RateLimiter]


class Transport(Protocol):
    def call(self, request: SocialRequest) -> SocialResult: ...


def budgets(kind: str) -> dict[str, tuple[Rate, ...]]:
    """A kind's per-account budgets by request action, as its limits declare them
    (Telegram's rates are its own, in delivery/telegram.py)."""
    limits = KIND_LIMITS.get(kind)
    return limits.budgets if limits is not None else {}


def hold_key(kind: str, channel: str) -> str:
    """The key a channel's hold is kept under: "mastodon:<channel>", "bluesky:<channel>"."""
    return f"{kind}:{channel}"


class SocialLimits:
    """The holds and budgets of every social channel, through one limiter factory."""

    def __init__(
        self,
        make: LimiterFactory,
        *,
        max_wait: float,
        sleep: Callable[[float], None] = time.sleep,
        budgets: Callable[[str], dict[str, tuple[Rate, ...]]] = budgets,
    ) -> None:
        self._make = make
        self.max_wait = max_wait
        self.sleep = sleep
        self._budgets = budgets
        self.holds = make(_NO_WINDOW, _NO_WINDOW, PREFIX)
        self._made: dict[tuple[str, str, str], RateLimiter | None] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> SocialLimits:
        """The process's limits: in Redis when REDIS_URL is set, else in process."""
        config = settings.file.telegram

        def make(per_key: Rate, overall: Rate, prefix: str) -> RateLimiter:
            return shared_limiter(settings.redis_url, per_key, overall, prefix=prefix,
                                  in_flight_seconds=config.request_seconds)

        return cls(make, max_wait=config.max_retry_wait_seconds)

    def budget(self, kind: str, channel: str, action: str) -> RateLimiter | None:
        """The limiter of the channel's budget for `action`; None when it has none."""
        with self._lock:
            if (kind, channel, action) not in self._made:
                rates = self._budgets(kind).get(action)
                self._made[kind, channel, action] = (
                    self._make(rates[0], rates[-1], f"{PREFIX}:{kind}:{channel}:{action}") if rates else None)
            return self._made[kind, channel, action]

    def held_for(self, kind: str, channel: str) -> float:
        """Seconds left of the channel's hold (0.0 if none)."""
        return self.holds.held_for(hold_key(kind, channel))

    def hold(self, kind: str, channel: str, seconds: float) -> None:
        """Let nothing reach the channel from any worker for `seconds`."""
        self.holds.hold(hold_key(kind, channel), seconds)

    def call(self, kind: str, channel: str, transport: Transport, request: SocialRequest) -> SocialResult:
        """Make `request` through the channel's hold and budget, and hold the channel when
        the answer says its budget is spent. A held channel or a budget slot too far off
        answer "retry_after" with the wait, and nothing is sent."""
        held = self.held_for(kind, channel)
        if held > 0:
            return SocialResult("retry_after", retry_after=held, description=f"rate limited: held {held:.0f} s more")
        limiter = self.budget(kind, channel, request.action)
        permit = None
        if limiter is not None:
            try:
                permit = acquire(limiter, ACCOUNT, max_wait=self.max_wait, sleep=self.sleep)
            except RateWaitTooLong as exc:
                log.warning("social channel budget spent: request deferred",
                            extra={"channel": channel, "action": request.action, "retry_in": exc.wait})
                return SocialResult("retry_after", retry_after=exc.wait,
                                    description=f"{kind} {request.action} budget spent: next slot in {exc.wait:.0f} s")
        try:
            result = transport.call(request)
        finally:
            if permit is not None:
                limiter.complete(permit)
        self.observe(kind, channel, result)
        return result

    def observe(self, kind: str, channel: str, result: SocialResult) -> None:
        """Hold the channel after a 429, or after an answer that left no budget before its
        reset: the next request, from any worker, would only meet a 429."""
        if result.outcome == "retry_after":
            seconds = result.retry_after
        elif result.remaining is not None and result.remaining <= 0 and result.reset_in > 0:
            seconds = result.reset_in
        else:
            return
        self.hold(kind, channel, seconds)
        log.warning("social channel held: rate limited",
                    extra={"channel": channel, "held_seconds": round(seconds, 3)})


class LimitedTransport:
    """A channel's transport whose every call passes the channel's hold and budgets;
    anything else (the instance's `max_characters`) is the transport's own."""

    def __init__(self, transport: Transport, limits: SocialLimits, kind: str, channel: str) -> None:
        self.transport = transport
        self.limits = limits
        self.kind = kind
        self.channel = channel

    def call(self, request: SocialRequest) -> SocialResult:
        return self.limits.call(self.kind, self.channel, self.transport, request)

    def max_characters(self) -> int | None:
        """The instance's status limit, unless the channel is held: then None (the
        default) without a request, since the post rendered with it is deferred at its
        first request anyway."""
        reader = getattr(self.transport, "max_characters", None)
        if reader is None or self.limits.held_for(self.kind, self.channel) > 0:
            return None
        return reader()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)

    def __repr__(self) -> str:
        return f"LimitedTransport({self.transport!r})"
