"""Cron expressions: validation and the "times and days" shorthand. No dependencies but croniter."""

from __future__ import annotations

import re
from typing import Sequence

from croniter import croniter

_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def cron_from_times(times: Sequence[str], days: Sequence[str] = ()) -> str:
    """["07:00", "19:30"] on ["mon".."fri"] -> a cron expression (one per minute value set).

    Times with different minutes cannot share one cron line, so they are refused with a
    message suggesting a cron expression instead.
    """
    if not times:
        raise ValueError("times must list at least one HH:MM")
    hours, minutes = [], set()
    for value in times:
        match = _TIME.match(value.strip())
        if not match:
            raise ValueError(f"{value!r} is not a HH:MM time")
        hours.append(int(match.group(1)))
        minutes.add(int(match.group(2)))
    if len(minutes) > 1:
        raise ValueError("times with different minutes need a cron expression (schedule = ...)")
    day_field = "*"
    if days:
        try:
            day_field = ",".join(str(_DAYS.index(d.strip().lower()[:3])) for d in days)
        except ValueError:
            raise ValueError(f"days must be names like mon, tue: got {list(days)!r}") from None
    return f"{minutes.pop()} {','.join(str(h) for h in sorted(set(hours)))} * * {day_field}"


def validate_cron(expression: str) -> str:
    expression = " ".join(expression.split())
    if len(expression.split()) != 5 or not croniter.is_valid(expression):
        raise ValueError(f"{expression!r} is not a valid 5-field cron expression")
    return expression
