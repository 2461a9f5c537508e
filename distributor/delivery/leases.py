"""Leases: how a sender holds ledger rows while it works, for every channel kind.

A claim is a lease. A sender claims rows in one conditional UPDATE that sets status
"sending", its holder id (`hostname:pid:uuid`, new for every claim) and
`lease_expires_at = now + [delivery] lease_seconds`. While it works, a `Lease` renews the
rows it still holds from a background thread, in one UPDATE every lease_seconds / 3. A
row whose lease has passed was held by a sender that stopped renewing: it died (SIGKILL,
a lost machine) or lost its database. Email takes such rows over and sends them again
(`expired` is part of what a sender may claim); the channel ledger (ledger.py: Telegram,
Mastodon, Bluesky) settles them as unknown, since a post cannot be resent blindly. Either way within lease_seconds, not after a timeout that
has to outlast the slowest batch.

Lease times are the wall clock of the process (`utcnow`), never the `now` a caller passes
for the newsroom's day: a lease is about live processes.

A sender stops starting messages when its own lease may have lapsed (`Lease.held`: the
last renewal is older than two heartbeats), so a sender cut off from the database never
sends rows another may already have taken over.

Graceful stop: `request_stop()` (the worker calls it on SIGTERM, `distributor send` on
SIGTERM, SIGHUP and SIGINT) asks every sender in the process to finish the message in
flight, record every answer and release the rows it has not started (`release`), so
that nothing is lost or sent twice and the process exits within seconds.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from datetime import datetime, timedelta
from typing import Callable, Iterable

from sqlalchemy import Table, and_, or_, select, update

from distributor.settings import Settings
from distributor.store import Store
from distributor.store.models import utcnow

log = logging.getLogger("distributor.delivery.leases")

# The default of [delivery] lease_seconds (the settings pass theirs).
LEASE = timedelta(seconds=30)
# Heartbeats per lease: a holder renews every lease / HEARTBEATS, so one or two slow
# renewals (a busy database) do not lose a live holder its rows.
HEARTBEATS = 3
# Longest holder id: the column is String(128).
HOLDER_MAX = 128


def holder_id() -> str:
    """A new holder id, `hostname:pid:uuid`: unique per claim, readable in the ledger."""
    suffix = f":{os.getpid()}:{uuid.uuid4().hex}"
    return (socket.gethostname() or "localhost")[: HOLDER_MAX - len(suffix)] + suffix


def lease_length(settings: Settings) -> timedelta:
    """How long a claim lasts without renewal ([delivery] lease_seconds)."""
    return timedelta(seconds=settings.file.delivery.lease_seconds)


def expired(table: Table, now: datetime | None = None):  # noqa: ANN201 - a SQL condition
    """Rows held by a sender that stopped renewing: "sending" with a lease past `now`.

    A row claimed before leases existed has no lease_expires_at; its holder renews
    nothing, so it counts as expired.
    """
    now = now or utcnow()
    return and_(table.c.status == "sending", or_(table.c.lease_expires_at.is_(None), table.c.lease_expires_at < now))


def live(table: Table, now: datetime | None = None):  # noqa: ANN201 - a SQL condition
    """Rows a live sender holds right now."""
    now = now or utcnow()
    return and_(table.c.status == "sending", table.c.lease_expires_at >= now)


def claim_values(holder: str, length: timedelta, now: datetime | None = None) -> dict:
    """The columns a claim writes (with status "sending")."""
    return {"status": "sending", "claim": holder, "lease_expires_at": (now or utcnow()) + length}


def release(store: Store, table: Table, holder: str, ids: Iterable[int], **values: object) -> int:
    """Give back rows this holder claimed but never started, with `values` (e.g. the
    status they had); returns how many. Rows another holder took over are left alone."""
    ids = sorted(ids)
    if not ids:
        return 0
    released = 0
    with store.session() as session:
        for start in range(0, len(ids), 500):
            released += session.execute(
                update(table)
                .where(table.c.id.in_(ids[start : start + 500]), table.c.claim == holder, table.c.status == "sending")
                .values(claim=None, lease_expires_at=None, **values)
            ).rowcount or 0
    return released


class Lease:
    """The rows one holder claimed in `table`, kept alive by a heartbeat thread.

    Use as a context manager around the work: the heartbeat starts on entry and stops on
    exit. The claim itself is the caller's UPDATE (with `claim_values`), made just before.
    """

    def __init__(
        self, store: Store, table: Table, holder: str, length: timedelta, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.store, self.table, self.holder, self.length = store, table, holder, length
        self.interval = length.total_seconds() / HEARTBEATS
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Clock time of the last claim or renewal known to have been written.
        self._renewed = clock()
        self.renewals = 0

    def __enter__(self) -> "Lease":
        self._renewed = self._clock()
        self._thread = threading.Thread(target=self._beat, name=f"lease-{self.table.name}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def held(self) -> bool:
        """May this holder still start a message? Not once two heartbeats have failed:
        the lease may lapse before the message is answered and another take the row."""
        return self._clock() - self._renewed < self.length.total_seconds() - self.interval

    def renew(self) -> int:
        """Extend the lease of every row this holder still holds; returns how many.

        A lease already expired is not extended: its rows may have been taken over.
        """
        started = self._clock()
        now = utcnow()
        t = self.table
        mine = and_(t.c.claim == self.holder, t.c.status == "sending", t.c.lease_expires_at >= now)
        if self.store.dialect == "postgresql":
            # Rows locked right now are being recorded (settled) by this holder: skip them
            # rather than wait, or the renewal and the recording, locking the same rows
            # in different orders, can deadlock.
            locked = select(t.c.id).where(mine).order_by(t.c.id).with_for_update(skip_locked=True)
            mine = t.c.id.in_(locked.scalar_subquery())
        with self.store.session() as session:
            count = session.execute(update(t).where(mine).values(lease_expires_at=now + self.length)).rowcount or 0
        self._renewed = started
        self.renewals += 1
        return count

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.renew()
            except Exception:  # noqa: BLE001 - the next beat tries again; held() turns false meanwhile
                log.warning("could not renew a lease", extra={"table": self.table.name, "holder": self.holder}, exc_info=True)


# --- graceful stop --------------------------------------------------------------------

_stopping = threading.Event()


def request_stop() -> None:
    """Ask every sender in this process to stop after the messages in flight."""
    if not _stopping.is_set():
        _stopping.set()
        log.warning("stop requested: finishing the messages in flight, releasing the rest")


def stop_requested() -> bool:
    return _stopping.is_set()


def clear_stop() -> None:
    """Forget a stop request (tests; a process that goes on after stopping its senders)."""
    _stopping.clear()
