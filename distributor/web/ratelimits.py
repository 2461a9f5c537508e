"""Rate limits of the public forms: what is counted together, and the counters.

Two limits guard subscribe: attempts per client network and attempts per mailbox. Each
is only as good as its key, so the keys are what one sender or one inbox really is:

- a client network: an IPv4 address (/32), or an IPv6 address's /64 (configurable). One
  IPv6 host usually holds a whole /64 and can pick a new address per request; keyed on the
  full address, it would never be counted twice;
- a mailbox: the address lower-cased, its `+tag` removed, and its dots removed at
  providers that ignore them (gmail.com, googlemail.com). "Reader+1@", "reader+2@" and
  "r.e.a.d.e.r@gmail.com" reach one inbox, so they share its limit on confirmation mail.

The counters are the `limits` library's fixed windows (a window starts at a key's first
hit), in Redis when REDIS_URL is set (shared by every web process), in memory otherwise.
Keys are digests: Redis never holds readers' addresses or IPs.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import math
import time
from typing import Protocol

from limits import RateLimitItemPerSecond
from limits.storage import MemoryStorage, RedisStorage, Storage
from limits.strategies import FixedWindowRateLimiter

log = logging.getLogger(__name__)


class RateLimiter(Protocol):
    """Counts hits per key in a window that starts at the key's first hit."""

    def hit(self, key: str, limit: int, window_seconds: int) -> int | None:
        """Count one hit; None when within `limit`, else the seconds until the window ends."""
        ...


class WindowLimiter:
    """Fixed windows per key on a `limits` storage."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._windows = FixedWindowRateLimiter(storage)

    def hit(self, key: str, limit: int, window_seconds: int) -> int | None:
        """See RateLimiter.hit."""
        item = RateLimitItemPerSecond(limit, window_seconds, namespace="subscribe")
        if self._windows.hit(item, key):
            return None
        reset = self._windows.get_window_stats(item, key).reset_time
        return max(1, math.ceil(reset - time.time()))


class MemoryRateLimiter(WindowLimiter):
    """Counters in this process: right for one web process, which is the default set-up."""

    def __init__(self) -> None:
        super().__init__(MemoryStorage())


class RedisRateLimiter(WindowLimiter):
    """Counters in Redis, shared by every web process."""

    def __init__(self, url: str, prefix: str = "distributor:subscribe") -> None:
        super().__init__(RedisStorage(url, key_prefix=prefix, socket_timeout=2, socket_connect_timeout=2))

    def hit(self, key: str, limit: int, window_seconds: int) -> int | None:
        """See RateLimiter.hit; a Redis failure lets the hit through."""
        try:
            return super().hit(key, limit, window_seconds)
        except Exception as exc:  # noqa: BLE001 - any Redis failure
            # Fail open: losing the limit for a while is better than refusing every reader.
            log.error("subscribe rate limit unavailable, allowing (%s)", type(exc).__name__)
            return None


def _digest(kind: str, value: str) -> str:
    return f"{kind}:" + hashlib.sha256(value.encode()).hexdigest()[:32]


def network_key(host: str, *, ipv6_prefix: int = 64) -> str:
    """The rate-limit key of a client address: its IPv4 address, its IPv6 /`ipv6_prefix`.

    An IPv4-mapped IPv6 address (::ffff:192.0.2.1) counts as its IPv4 address.
    """
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return _digest("ip", host)  # not an address (a test client, a unix socket)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if isinstance(address, ipaddress.IPv6Address):
        network = ipaddress.IPv6Network((address, ipv6_prefix), strict=False)
        return _digest("ip", str(network))
    return _digest("ip", str(address))


def mailbox(address: str, *, tag_separator: str = "+", dotless_domains: tuple[str, ...] = ("gmail.com", "googlemail.com")) -> str:
    """The inbox an address reaches, as far as we can tell: lower-cased, the tag after
    `tag_separator` removed ("" keeps tags), dots removed in `dotless_domains` (whose
    first entry also stands for the others: googlemail.com is gmail.com)."""
    local, _, domain = address.strip().lower().rpartition("@")
    if tag_separator and tag_separator in local:
        local = local.split(tag_separator, 1)[0]
    dotless = tuple(d.lower() for d in dotless_domains)
    if domain in dotless:
        local = local.replace(".", "")
        domain = dotless[0]
    return f"{local}@{domain}"


def mailbox_key(address: str, **rules) -> str:  # noqa: ANN003 - mailbox()'s keywords
    """The rate-limit key of the mailbox an address reaches (see `mailbox`)."""
    return _digest("addr", mailbox(address, **rules))
