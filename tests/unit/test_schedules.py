"""Schedule arithmetic: cron in a timezone across DST, local-time zones, catch-up grace."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from distributor.schedules import (
    Schedule,
    cron_from_times,
    next_slots,
    plan_due,
    slots_between,
    validate_cron,
)
from distributor.settings import EditionConfig

UTC = timezone.utc
LONDON = ZoneInfo("Europe/London")
KOLKATA = ZoneInfo("Asia/Kolkata")


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_daily_seven_oclock_follows_london_dst():
    spring = slots_between("0 7 * * *", LONDON, utc(2026, 3, 27), utc(2026, 3, 30))
    assert spring == [utc(2026, 3, 27, 7), utc(2026, 3, 28, 7), utc(2026, 3, 29, 6)]
    autumn = slots_between("0 7 * * *", LONDON, utc(2026, 10, 24), utc(2026, 10, 27))
    assert autumn == [utc(2026, 10, 24, 6), utc(2026, 10, 25, 7), utc(2026, 10, 26, 7)]


def test_nonexistent_and_repeated_local_times_fire_once():
    # 01:30 does not exist in London on 29 March 2026 and happens twice on 25 October.
    spring = slots_between("30 1 * * *", LONDON, utc(2026, 3, 28, 12), utc(2026, 3, 29, 12))
    assert len(spring) == 1
    autumn = slots_between("30 1 * * *", LONDON, utc(2026, 10, 24, 12), utc(2026, 10, 25, 12))
    assert autumn == [utc(2026, 10, 25, 0, 30)]


def test_repeated_local_time_fires_once_across_successive_walks():
    # Each scheduler tick is a new walk: the second 01:30 (GMT) must not fire in the
    # tick after the first (BST) one did.
    found = []
    moment = utc(2026, 10, 24, 22)
    while moment < utc(2026, 10, 25, 4):
        found += slots_between("*/30 * * * *", LONDON, moment, moment + timedelta(minutes=5))
        moment += timedelta(minutes=5)
    walls = [m.astimezone(LONDON).strftime("%H:%M") for m in found]
    assert walls == ["23:30", "00:00", "00:30", "01:00", "01:30", "02:00", "02:30", "03:00", "03:30", "04:00"]
    assert found[3:5] == [utc(2026, 10, 25, 0), utc(2026, 10, 25, 0, 30)]  # the BST occurrences


def test_interval_is_half_open_after_closed_until():
    assert slots_between("0 7 * * *", KOLKATA, utc(2025, 7, 4, 1, 30), utc(2025, 7, 5, 1, 30)) == [utc(2025, 7, 5, 1, 30)]


def test_next_three():
    assert next_slots("0 7 * * *", KOLKATA, utc(2025, 7, 4, 12)) == [
        utc(2025, 7, 5, 1, 30), utc(2025, 7, 6, 1, 30), utc(2025, 7, 7, 1, 30)
    ]


def test_times_and_days_to_cron():
    assert cron_from_times(["07:00", "19:00"]) == "0 7,19 * * *"
    assert cron_from_times(["09:30"], ["sun"]) == "30 9 * * 0"
    assert cron_from_times(["06:15"], ["Mon", "tuesday", "fri"]) == "15 6 * * 1,2,5"
    with pytest.raises(ValueError, match="HH:MM"):
        cron_from_times(["7am"])
    with pytest.raises(ValueError, match="different minutes"):
        cron_from_times(["07:00", "19:30"])
    with pytest.raises(ValueError, match="days"):
        cron_from_times(["07:00"], ["someday"])


def test_validate_cron():
    assert validate_cron("0  7 * *   *") == "0 7 * * *"
    for bad in ("0 7 * *", "61 7 * * *", "every day"):
        with pytest.raises(ValueError, match="cron"):
            validate_cron(bad)


EDITIONS = {
    "morning": EditionConfig(label="Morning", schedule="0 7 * * *", local_time=True),
    "evening": EditionConfig(label="Evening", schedule="0 19 * * *"),
    "weekly": EditionConfig(label="Week", schedule="0 9 * * 0"),
}


def schedules(**paused) -> list[Schedule]:
    return [Schedule(name, c.schedule, paused.get(name, False), "config") for name, c in EDITIONS.items()]


def test_local_time_edition_gets_a_slot_per_subscriber_zone_at_dst_change():
    zones = {"morning": ["Europe/London", "Asia/Kolkata", "America/New_York"]}
    plan = plan_due(
        schedules(),
        EDITIONS,
        site_tz="Asia/Kolkata",
        local_zones=zones,
        last_tick=utc(2026, 10, 24, 12),
        now=utc(2026, 10, 25, 12),
        grace=timedelta(days=2),
    )
    morning = sorted((d.timezone, d.slot) for d in plan.due if d.edition == "morning")
    assert morning == [
        ("America/New_York", utc(2026, 10, 25, 11)),  # 07:00 EDT (New York changes a week later)
        ("Asia/Kolkata", utc(2026, 10, 25, 1, 30)),  # 07:00 IST, no DST
        ("Europe/London", utc(2026, 10, 25, 7)),  # 07:00 GMT: clocks went back that night
    ]
    evening = [d for d in plan.due if d.edition == "evening"]
    assert [(d.timezone, d.slot) for d in evening] == [("", utc(2026, 10, 24, 13, 30))]


def test_paused_and_unknown_editions_do_not_run():
    plan = plan_due(
        schedules(evening=True) + [Schedule("gone", "* * * * *", False, "operator")],
        EDITIONS,
        site_tz="Asia/Kolkata",
        local_zones={},
        last_tick=utc(2025, 7, 4),
        now=utc(2025, 7, 5),
        grace=timedelta(days=1),
    )
    assert {d.edition for d in plan.due} == set()  # morning has no subscriber zones, weekly not due


def test_missed_slots_older_than_grace_are_skipped():
    plan = plan_due(
        schedules(),
        {"evening": EDITIONS["evening"]},
        site_tz="Asia/Kolkata",
        local_zones={},
        last_tick=utc(2025, 7, 1),
        now=utc(2025, 7, 4, 14),
        grace=timedelta(hours=6),
    )
    assert [d.slot for d in plan.due] == [utc(2025, 7, 4, 13, 30)]
    assert [d.slot for d in plan.skipped] == [utc(2025, 7, 1, 13, 30), utc(2025, 7, 2, 13, 30), utc(2025, 7, 3, 13, 30)]
