"""Edition runs (issues of an edition): one per (edition, zone, local slot), made exactly once.

A run's identity is the slot's wall-clock time in its zone, not the UTC instant: when
clocks go back, 01:30 happens twice an hour apart, and both instants name the same
issue. The unique index in the database, not a check in Python, is what stops a second
run: two processes racing both try to insert, one wins, the other reads the winner's row.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Iterable, Sequence
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError

from distributor.editions import Window
from distributor.store import Store
from distributor.store.models import DeliveryRow, EditionRunRow, TelegramPostRow, utcnow

log = logging.getLogger(__name__)

# Seconds between two progress stamps of one run by one process: a batch records results
# every few milliseconds, and every stamp is a write to the run's one row.
PROGRESS_EVERY = 5.0
_stamped: dict[tuple[str, int], float] = {}  # (database URL, run id) -> monotonic time
_stamped_lock = threading.Lock()


@dataclass(frozen=True)
class RunInfo:
    """A stored edition run, as a plain value."""

    id: int
    edition: str
    slot: datetime
    timezone: str
    attempt: int
    window: Window
    status: str
    article_keys: tuple[str, ...]
    local_slot: str = ""


def local_slot(slot: datetime, zone: str) -> str:
    """The slot on the wall clock of `zone`, to the second: the run's identity with its zone.

    Both instants of a repeated fall-back time give the same string.
    """
    return slot.astimezone(ZoneInfo(zone)).replace(tzinfo=None).isoformat(timespec="seconds")


def _info(row: EditionRunRow) -> RunInfo:
    return RunInfo(
        id=row.id,
        edition=row.edition,
        slot=row.slot,
        timezone=row.timezone,
        attempt=row.attempt,
        window=Window(row.window_start, row.window_end),
        status=row.status,
        article_keys=tuple(row.article_keys or ()),
        local_slot=row.local_slot,
    )


def get_run(store: Store, run_id: int) -> RunInfo:
    with store.session() as session:
        row = session.get(EditionRunRow, run_id)
        if row is None:
            raise LookupError(f"no edition run with id {run_id}")
        return _info(row)


def open_run(
    store: Store,
    edition: str,
    slot: datetime,
    window: Window,
    *,
    timezone: str = "",
    site_timezone: str = "UTC",
    article_keys: Sequence[str] = (),
    force: bool = False,
) -> tuple[RunInfo, bool]:
    """The run for this local slot, creating it if needed; returns (run, created).

    `timezone` is the subscriber zone of a local-time run ("" for site time, whose
    wall clock is `site_timezone`'s). A slot whose wall-clock time already has a run
    (the second 01:30 of a fall-back night) gets that run. With `force`, always creates
    a further attempt for the same local slot (`send --force`).
    """
    wall = local_slot(slot, timezone or site_timezone)
    for _ in range(5):
        with store.session() as session:
            existing = session.scalars(
                select(EditionRunRow)
                .where(
                    EditionRunRow.edition == edition,
                    EditionRunRow.timezone == timezone,
                    EditionRunRow.local_slot == wall,
                )
                .order_by(EditionRunRow.attempt.desc())
            ).first()
            if existing is not None and not force:
                return _info(existing), False
            row = EditionRunRow(
                edition=edition,
                slot=slot,
                timezone=timezone,
                local_slot=wall,
                attempt=(existing.attempt + 1) if existing is not None else 0,
                window_start=window.start,
                window_end=window.end,
                status="building",
                article_keys=list(article_keys),
            )
            session.add(row)
            try:
                session.flush()
            except IntegrityError:
                # Another process made this attempt first; read it on the next pass.
                session.rollback()
                continue
            return _info(row), True
    raise RuntimeError(f"could not open a run for {edition} at {slot.isoformat()}")


def set_status(store: Store, run_id: int, status: str, *, note: str = "", finished: bool = False) -> None:
    with store.session() as session:
        row = session.get(EditionRunRow, run_id)
        if row is None:
            raise LookupError(f"no edition run with id {run_id}")
        row.status = status
        if note:
            row.note = note
        if finished:
            row.finished_at = utcnow()


def previous_run_end(store: Store, edition: str, before: datetime, *, timezone: str = "") -> datetime | None:
    """Window end of the latest run of `edition` before `before` (for "since_last" windows)."""
    with store.session() as session:
        return session.scalar(
            select(func.max(EditionRunRow.window_end)).where(
                EditionRunRow.edition == edition,
                EditionRunRow.timezone == timezone,
                EditionRunRow.slot < before,
                EditionRunRow.status != "skipped",
            )
        )


def delivery_counts(store: Store, run_id: int) -> dict[str, int]:
    """Email deliveries of a run by status (queued, sent, deferred, failed, suppressed)."""
    counts = {"queued": 0, "sent": 0, "deferred": 0, "failed": 0, "suppressed": 0}
    with store.session() as session:
        for status, n in session.execute(
            select(DeliveryRow.status, func.count()).where(DeliveryRow.run_id == run_id).group_by(DeliveryRow.status)
        ):
            counts[status] = n
    return counts


def telegram_counts(store: Store, run_id: int) -> dict[str, int]:
    """Telegram posts of a run by status."""
    with store.session() as session:
        return {
            status: n
            for status, n in session.execute(
                select(TelegramPostRow.status, func.count())
                .where(TelegramPostRow.run_id == run_id)
                .group_by(TelegramPostRow.status)
            )
        }


def note_progress(store: Store, run_ids: Iterable[int | None]) -> None:
    """Senders call this after recording outcomes of a run's deliveries or posts.

    It stamps the run's `progress_at`, which tells the tick the run's work is alive
    (engine.stale_runs). At most one stamp per run per PROGRESS_EVERY from a process;
    a failure is logged, never raised: the outcomes are already recorded, and a missed
    stamp costs at most one harmless re-queue.
    """
    clock = time.monotonic()
    with _stamped_lock:
        due = sorted({i for i in run_ids if i and clock - _stamped.get((store.url, i), -PROGRESS_EVERY) >= PROGRESS_EVERY})
        for run_id in due:
            _stamped[(store.url, run_id)] = clock
        if len(_stamped) > 10_000:  # a long-lived worker: forget old runs
            for key in [k for k, v in _stamped.items() if clock - v > PROGRESS_EVERY]:
                del _stamped[key]
    if not due:
        return
    now = utcnow()
    try:
        with store.session() as session:
            session.execute(
                update(EditionRunRow)
                .where(EditionRunRow.id.in_(due), or_(EditionRunRow.progress_at.is_(None), EditionRunRow.progress_at < now))
                .values(progress_at=now)
            )
    except Exception:  # noqa: BLE001 - advisory: see the docstring
        log.warning("could not stamp run progress", exc_info=True, extra={"runs": due})
