"""Per-process settings and store for tasks, created after fork on first use."""

from __future__ import annotations

import os

from distributor.settings import Settings, load_settings
from distributor.store import Store

_cache: dict[int, tuple[Settings, Store]] = {}


def context() -> tuple[Settings, Store]:
    """(settings, store) of this process; a forked child gets its own connections."""
    pid = os.getpid()
    if pid not in _cache:
        settings = load_settings()
        _cache.clear()
        _cache[pid] = (settings, Store(settings.database_url))
    return _cache[pid]
