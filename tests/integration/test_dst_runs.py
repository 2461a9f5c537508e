"""One run per local wall-clock slot across DST changes, through the real scheduler tick.

The beat calls `engine.tick` every few seconds; these tests do the same at successive
ticks (every five minutes of UTC) through the autumn and spring nights of three zones,
for a site-zone edition and for a `local_time` edition (one run per subscriber zone).

What the tests pin down:
- fall back: a wall-clock time that happens twice runs once, at its first occurrence
  (the daylight-saving offset), as cron does;
- spring forward (unchanged behaviour, croniter's): a wall-clock time inside the gap
  has no run of its own; a daily slot in the gap runs once at the first minute after
  the gap; a schedule with a slot at that minute anyway runs it once.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, text

from distributor import engine, schedules
from distributor.editions import Window
from distributor.runs import open_run
from distributor.settings import EditionConfig, SchedulerConfig, Settings
from distributor.store import Store
from distributor.store.models import EditionRunRow, SubscriberRow

UTC = timezone.utc

# zone -> (fall-back day, spring-forward day, a daily cron whose time falls in the gap,
# the local wall-clock time that slot runs at on the spring night)
NIGHTS = {
    "America/New_York": (date(2026, 11, 1), date(2026, 3, 8), "30 2 * * *", "03:00"),
    "Europe/London": (date(2026, 10, 25), date(2026, 3, 29), "30 1 * * *", "02:00"),
    "Australia/Sydney": (date(2026, 4, 5), date(2026, 10, 4), "30 2 * * *", "03:00"),
}
CASES = [(zone, night) for zone in NIGHTS for night in ("fall-back", "spring-forward")]


def with_editions(settings: Settings, editions: dict[str, EditionConfig], site_zone: str) -> Settings:
    return Settings(
        settings.file.model_copy(
            update={
                "site": settings.file.site.model_copy(update={"timezone": site_zone}),
                "editions": editions,
                "channels": {},
                "sources": [],
                "scheduler": SchedulerConfig(grace_minutes=60),
            }
        ),
        settings.env,
        settings.config_path,
    )


def tick_through(settings: Settings, store: Store, zone: str, day: date, *, step: timedelta = timedelta(minutes=5)) -> None:
    """Tick every `step` from 21:00 the evening before `day` to 06:00 on it (local)."""
    tz = ZoneInfo(zone)
    start = datetime.combine(day - timedelta(days=1), datetime.min.time().replace(hour=21), tz).astimezone(UTC)
    end = datetime.combine(day, datetime.min.time().replace(hour=6), tz).astimezone(UTC)
    schedules.set_marker(store, engine.TICK_MARKER, start)
    now = start
    while now < end:
        now += step
        engine.tick(settings, store, now)


def stored_runs(store: Store, edition: str, zone: str = "") -> list[EditionRunRow]:
    with store.session() as session:
        return list(
            session.scalars(
                select(EditionRunRow)
                .where(EditionRunRow.edition == edition, EditionRunRow.timezone == zone)
                .order_by(EditionRunRow.slot)
            )
        )


def wall_times(span_start: datetime, span_end: datetime, tz: ZoneInfo, minutes: tuple[int, ...]) -> list[str]:
    """Every existing local wall-clock time on `minutes` whose first occurrence is in the span."""
    seen: list[str] = []
    moment = span_start
    while moment <= span_end:
        local = moment.astimezone(tz)
        wall = local.strftime("%Y-%m-%dT%H:%M")
        if local.minute in minutes and wall not in seen:
            seen.append(wall)
        moment += timedelta(minutes=1)
    return seen


def check_half_hourly(runs: list[EditionRunRow], zone: str, day: date) -> None:
    """One run per existing half-hour wall time, each at that time's first occurrence."""
    tz = ZoneInfo(zone)
    walls = [r.slot.astimezone(tz).strftime("%Y-%m-%dT%H:%M") for r in runs]
    assert len(walls) == len(set(walls)), f"a local slot ran twice: {sorted(walls)}"
    for run in runs:
        first = datetime.fromisoformat(run.slot.astimezone(tz).strftime("%Y-%m-%dT%H:%M")).replace(tzinfo=tz, fold=0)
        assert run.slot == first.astimezone(UTC), f"{run.slot.astimezone(tz)} is not the first occurrence of its wall time"
    # The night's runs: exactly the half-hours that exist on the local clock, each once.
    span = [r.slot for r in runs]
    assert walls == wall_times(span[0], span[-1], tz, (0, 30))


@pytest.mark.parametrize("zone,night", CASES)
def test_site_zone_edition_runs_once_per_local_slot_across_dst(settings, store, zone, night):
    fall_back, spring_forward, gap_cron, shifted = NIGHTS[zone]
    editions = {
        "halfhourly": EditionConfig(label="Every half hour", schedule="*/30 * * * *", min_articles=0),
        "nightly": EditionConfig(label="Nightly", schedule=gap_cron, min_articles=0),
    }
    s = with_editions(settings, editions, zone)
    day = fall_back if night == "fall-back" else spring_forward
    tick_through(s, store, zone, day)

    check_half_hourly(stored_runs(store, "halfhourly"), zone, day)
    nightly = stored_runs(store, "nightly")
    assert len(nightly) == 1
    if night == "spring-forward":
        # Today's behaviour, kept: the gap slot runs at the first minute after the gap.
        assert nightly[0].slot.astimezone(ZoneInfo(zone)).strftime("%H:%M") == shifted
    # Nothing is left to open: ticking the night again changes nothing.
    before = len(stored_runs(store, "halfhourly"))
    tick_through(s, store, zone, day)
    assert len(stored_runs(store, "halfhourly")) == before


@pytest.mark.parametrize("zone,night", CASES)
def test_local_time_edition_runs_once_per_subscriber_zone_and_local_slot(settings, store, zone, night):
    editions = {"local": EditionConfig(label="Local", schedule="*/30 * * * *", local_time=True, default=True, min_articles=0)}
    # The site zone has no DST, so only the subscribers' zones change their clocks.
    s = with_editions(settings, editions, "Asia/Kolkata")
    zones = sorted(NIGHTS) + ["Asia/Kolkata"]
    with store.session() as session:
        for i, reader_zone in enumerate(zones):
            session.add(SubscriberRow(email=f"r{i}@example.com", status="confirmed", timezone=reader_zone))
    fall_back, spring_forward, _, _ = NIGHTS[zone]
    day = fall_back if night == "fall-back" else spring_forward
    tick_through(s, store, zone, day)

    for reader_zone in zones:
        runs = stored_runs(store, "local", reader_zone)
        assert runs, reader_zone
        check_half_hourly(runs, reader_zone, day)


def test_repeated_wall_time_is_one_run_even_when_opened_directly_and_racing(settings, store):
    """The database holds the identity: two beats, or an operator's `send --at`, opening
    the same 01:30 by either of its UTC instants get one run."""
    new_york = ZoneInfo("America/New_York")
    first = datetime(2026, 11, 1, 1, 30, tzinfo=new_york).astimezone(UTC)  # 01:30 EDT
    second = datetime(2026, 11, 1, 1, 30, tzinfo=new_york, fold=1).astimezone(UTC)  # 01:30 EST
    assert second - first == timedelta(hours=1)
    window = Window(first - timedelta(hours=24), first)
    slots = [first, second] * 4
    with ThreadPoolExecutor(8) as pool:
        results = list(
            pool.map(lambda slot: open_run(store, "morning", slot, window, site_timezone="America/New_York"), slots)
        )
    assert sum(created for _, created in results) == 1
    assert len({run.id for run, _ in results}) == 1
    [row] = stored_runs(store, "morning")
    assert row.local_slot == "2026-11-01T01:30:00"
    # A subscriber zone is its own identity; --force is still a further attempt.
    _, created = open_run(store, "morning", second, window, timezone="America/New_York")
    assert created
    forced, created = open_run(store, "morning", second, window, site_timezone="America/New_York", force=True)
    assert created and forced.attempt == 1 and forced.local_slot == row.local_slot


@pytest.fixture(params=["sqlite", "postgres"])
def old_store(request, tmp_path):
    """A database at schema 0005, before runs had a local slot."""
    from tests.conftest import postgres_schema

    drop = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
    else:
        url, drop = postgres_schema("PostgreSQL migration test")
    store = Store(url)
    store.migrate("0005")
    yield store
    store.dispose()
    if drop:
        drop()


def test_migration_backfills_local_slots_and_renumbers_twins(old_store):
    """Runs stored before the local slot existed get one from their UTC slot and zone;
    fall-back twins the old code opened become attempts of one local slot."""
    edt = datetime(2026, 11, 1, 5, 30, tzinfo=UTC)  # 01:30 EDT
    est = datetime(2026, 11, 1, 6, 30, tzinfo=UTC)  # 01:30 EST, the old code's second run
    rows = [
        ("nightly", edt, "", 0),
        ("nightly", est, "", 0),
        ("nightly", est, "", 1),  # a --force of the second twin
        ("local", edt, "America/New_York", 0),
        ("local", datetime(2026, 11, 1, 1, 30, tzinfo=UTC), "Asia/Kolkata", 0),
    ]

    def stored(moment: datetime) -> datetime:
        # SQLite keeps naive UTC, as UTCDateTime writes it.
        return moment.replace(tzinfo=None) if old_store.dialect == "sqlite" else moment

    with old_store.session() as session:
        for edition, slot, zone, attempt in rows:
            session.execute(
                text(
                    "INSERT INTO edition_runs (edition, slot, timezone, attempt, window_start, window_end, status,"
                    " article_keys, created_at, note) VALUES (:e, :s, :z, :a, :w, :s, 'sent', '[]', :s, '')"
                ),
                {"e": edition, "s": stored(slot), "w": stored(slot - timedelta(days=1)), "z": zone, "a": attempt},
            )
    old_store.migrate(site_timezone="America/New_York")
    with old_store.session() as session:
        got = [
            (r.edition, r.timezone, r.local_slot, r.attempt, r.slot)
            for r in session.scalars(select(EditionRunRow).order_by(EditionRunRow.id))
        ]
    assert got == [
        ("nightly", "", "2026-11-01T01:30:00", 0, edt),
        ("nightly", "", "2026-11-01T01:30:00", 1, est),
        ("nightly", "", "2026-11-01T01:30:00", 2, est),
        ("local", "America/New_York", "2026-11-01T01:30:00", 0, edt),
        ("local", "Asia/Kolkata", "2026-11-01T07:00:00", 0, datetime(2026, 11, 1, 1, 30, tzinfo=UTC)),
    ]
    # The next open of that local slot finds the runs instead of making another.
    run, created = open_run(old_store, "nightly", est, Window(edt - timedelta(days=1), edt), site_timezone="America/New_York")
    assert not created and run.attempt == 2
