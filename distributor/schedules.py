"""Edition schedules: cron in a timezone, kept in the database so operators can change them live.

The config file seeds the `edition_schedules` table; operators change rows with
`distributor schedule ...` or the operator API; the scheduler's tick reads the table
every time it runs, so a change takes effect at the next tick without a restart.

Slot arithmetic is pure (`slots_between`, `plan_due`) and tested on its own, including
DST transitions: croniter walks local wall-clock time in the zone given.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Iterable, Sequence
from zoneinfo import ZoneInfo

from croniter import croniter
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from distributor.cron import cron_from_times, validate_cron  # noqa: F401  (re-exported)
from distributor.settings import EditionConfig, Settings
from distributor.store import Store
from distributor.store.models import EditionScheduleRow, SchedulerStateRow, utcnow

log = logging.getLogger(__name__)

def _walk(cron: str, tz: ZoneInfo, after: datetime):
    """Yield scheduled UTC times after `after`, each local wall-clock time once.

    A local time that happens twice (fall back) fires only at its first occurrence, as
    cron does. That is decided from the moment alone, not from what this walk yielded
    before, so successive ticks (each a new walk) agree. A local time that does not
    exist (spring forward) is croniter's to place: a daily time in the gap fires once
    at the first minute after it; a time of a schedule that fires again after the gap
    that hour is left out. The database holds the same identity (distributor.runs).
    """
    itr = croniter(cron, after.astimezone(tz))
    while True:
        local = itr.get_next(datetime)
        if _repeated(local, tz):
            continue
        yield local.astimezone(timezone.utc)


def _repeated(local: datetime, tz: ZoneInfo) -> bool:
    """Whether `local` is the second occurrence of its wall-clock time (fall back)."""
    first = local.replace(tzinfo=None).replace(tzinfo=tz, fold=0)
    return first.utcoffset() != local.utcoffset()


def slots_between(cron: str, tz: ZoneInfo, after: datetime, until: datetime) -> list[datetime]:
    """Scheduled times in (after, until], in UTC, walking wall-clock time in `tz`."""
    found: list[datetime] = []
    for moment in _walk(cron, tz, after):
        if moment > until:
            return found
        found.append(moment)
    return found


def next_slots(cron: str, tz: ZoneInfo, after: datetime, count: int = 3) -> list[datetime]:
    """The next `count` scheduled times after `after`, in UTC."""
    walk = _walk(cron, tz, after)
    return [next(walk) for _ in range(count)]


@dataclass(frozen=True)
class Schedule:
    """An edition's schedule in force."""

    edition: str
    cron: str
    paused: bool
    changed_by: str  # "config" or "operator"
    updated_at: datetime | None = None


@dataclass(frozen=True)
class DueSlot:
    """A slot to run: (edition, slot, timezone) is the run's unique identity."""

    edition: str
    slot: datetime
    timezone: str  # "" for site-time editions


@dataclass(frozen=True)
class Plan:
    due: tuple[DueSlot, ...]
    skipped: tuple[DueSlot, ...]  # missed for longer than the grace period
    # Missed within grace but followed by a later due slot of the same edition and zone:
    # the later issue covers them (a 5-minute edition down for an hour sends once).
    superseded: tuple[DueSlot, ...] = ()


def plan_due(
    schedules: Iterable[Schedule],
    editions: dict[str, EditionConfig],
    *,
    site_tz: str,
    local_zones: dict[str, Sequence[str]],
    last_tick: datetime,
    now: datetime,
    grace: timedelta,
) -> Plan:
    """Slots that came due in (last_tick, now]; older than `grace` before now are skipped.

    Only the latest due slot of each edition and zone runs; earlier ones within grace
    are superseded by it.

    `local_zones` maps a local-time edition to the timezones of its subscribers; each
    zone gets its own slot at the edition's wall-clock time there.
    """
    due: list[DueSlot] = []
    skipped: list[DueSlot] = []
    superseded: list[DueSlot] = []
    for schedule in sorted(schedules, key=lambda s: s.edition):
        config = editions.get(schedule.edition)
        if config is None or schedule.paused:
            continue
        zones = sorted(set(local_zones.get(schedule.edition, ()))) if config.local_time else [""]
        for zone in zones:
            tz = ZoneInfo(zone or site_tz)
            in_grace: list[DueSlot] = []
            for slot in slots_between(schedule.cron, tz, last_tick, now):
                target = DueSlot(schedule.edition, slot, zone)
                (in_grace if now - slot <= grace else skipped).append(target)
            if in_grace:
                due.append(in_grace[-1])
                superseded.extend(in_grace[:-1])
    return Plan(tuple(due), tuple(skipped), tuple(superseded))


# --- the database side ---------------------------------------------------------------


def seed(settings: Settings, store: Store) -> list[Schedule]:
    """Make the table agree with the config file where no operator has changed a row.

    A row an operator set keeps the operator's value until `schedule reset`; a row still
    owned by the config follows edits to the file. Two schedulers seeding at once is
    fine: the loser of the insert race finds the rows there and has nothing to do.
    """
    try:
        _seed_rows(settings, store)
    except IntegrityError:
        _seed_rows(settings, store)
    return load(settings, store)


def _seed_rows(settings: Settings, store: Store) -> None:
    with store.session() as session:
        rows = {r.edition: r for r in session.scalars(select(EditionScheduleRow))}
        for name, config in settings.editions.items():
            row = rows.get(name)
            if row is None:
                session.add(
                    EditionScheduleRow(
                        edition=name,
                        cron=config.schedule,
                        paused=config.paused,
                        config_cron=config.schedule,
                        changed_by="config",
                    )
                )
            elif row.changed_by == "config" and (row.cron != config.schedule or row.paused != config.paused):
                row.cron = config.schedule
                row.paused = config.paused
                row.config_cron = config.schedule
                row.updated_at = utcnow()


def load(settings: Settings, store: Store) -> list[Schedule]:
    """Schedules of configured editions, in config order."""
    with store.session() as session:
        rows = {r.edition: r for r in session.scalars(select(EditionScheduleRow))}
    return [
        Schedule(name, rows[name].cron, rows[name].paused, rows[name].changed_by, rows[name].updated_at)
        if name in rows
        else Schedule(name, config.schedule, config.paused, "config")
        for name, config in settings.editions.items()
    ]


def _update(settings: Settings, store: Store, edition: str, **changes) -> Schedule:
    if edition not in settings.editions:
        known = ", ".join(settings.editions) or "none"
        raise KeyError(f"unknown edition {edition!r} (configured: {known})")
    seed(settings, store)
    with store.session() as session:
        row = session.get(EditionScheduleRow, edition)
        for key, value in changes.items():
            setattr(row, key, value)
        row.updated_at = utcnow()
    return next(s for s in load(settings, store) if s.edition == edition)


def set_cron(settings: Settings, store: Store, edition: str, cron: str) -> Schedule:
    return _update(settings, store, edition, cron=validate_cron(cron), changed_by="operator")


def pause(settings: Settings, store: Store, edition: str) -> Schedule:
    return _update(settings, store, edition, paused=True, changed_by="operator")


def resume(settings: Settings, store: Store, edition: str) -> Schedule:
    return _update(settings, store, edition, paused=False, changed_by="operator")


def reset(settings: Settings, store: Store, edition: str) -> Schedule:
    """Back to the config file's schedule."""
    config = settings.editions.get(edition)
    if config is None:
        raise KeyError(f"unknown edition {edition!r}")
    return _update(settings, store, edition, cron=config.schedule, paused=config.paused, changed_by="config")


# The marker the scheduler's tick sets each time it runs: the engine writes it, the
# monitor reads it (here, so the web process need not import the engine to name it).
TICK_MARKER = "scheduler.tick"


def get_marker(store: Store, name: str) -> datetime | None:
    with store.session() as session:
        row = session.get(SchedulerStateRow, name)
        return row.value if row else None


def set_marker(store: Store, name: str, value: datetime) -> None:
    """Move a marker forward (never back: two ticks racing must not rewind it)."""
    with store.session() as session:
        row = session.get(SchedulerStateRow, name, with_for_update=True)
        if row is None:
            session.add(SchedulerStateRow(name=name, value=value))
        elif row.value < value:
            row.value = value
