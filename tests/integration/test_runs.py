"""Edition runs are unique per (edition, slot, timezone); --force makes a further attempt."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

from distributor.editions import Window
from distributor.runs import get_run, open_run, previous_run_end, set_status

SLOT = datetime(2025, 7, 4, 1, 30, tzinfo=timezone.utc)
WINDOW = Window(SLOT - timedelta(hours=24), SLOT)


def test_same_slot_same_run_and_force_makes_another(store):
    first, created = open_run(store, "morning", SLOT, WINDOW, article_keys=["a", "b"])
    assert created and first.attempt == 0 and first.article_keys == ("a", "b")
    again, created = open_run(store, "morning", SLOT, WINDOW)
    assert not created and again.id == first.id
    forced, created = open_run(store, "morning", SLOT, WINDOW, force=True)
    assert created and forced.attempt == 1 and forced.id != first.id
    other_zone, created = open_run(store, "morning", SLOT, WINDOW, timezone="Europe/London")
    assert created and other_zone.id not in (first.id, forced.id)
    set_status(store, first.id, "sent", finished=True)
    assert get_run(store, first.id).status == "sent"


def test_racing_openers_make_one_run(store):
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: open_run(store, "evening", SLOT, WINDOW), range(8)))
    assert len({run.id for run, _ in results}) == 1
    assert sum(created for _, created in results) == 1


def test_previous_run_end(store):
    assert previous_run_end(store, "breaking", SLOT) is None
    open_run(store, "breaking", SLOT, WINDOW)
    later = SLOT + timedelta(minutes=5)
    assert previous_run_end(store, "breaking", later) == SLOT
