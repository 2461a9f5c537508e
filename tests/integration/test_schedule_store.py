"""Schedules in the database: seeded from config, changed by operators, markers only move forward."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from distributor import schedules
from distributor.settings import Settings

T = datetime(2025, 7, 4, tzinfo=timezone.utc)


def by_name(items):
    return {s.edition: s for s in items}


def test_seed_then_operator_change_survives_reseed(settings, store):
    seeded = by_name(schedules.seed(settings, store))
    assert seeded["morning"].cron == "0 7 * * *" and seeded["morning"].changed_by == "config"
    schedules.set_cron(settings, store, "morning", "30 6 * * *")
    schedules.pause(settings, store, "weekly")
    again = by_name(schedules.seed(settings, store))
    assert again["morning"].cron == "30 6 * * *" and again["morning"].changed_by == "operator"
    assert again["weekly"].paused
    schedules.resume(settings, store, "weekly")
    assert not by_name(schedules.load(settings, store))["weekly"].paused
    back = schedules.reset(settings, store, "morning")
    assert back.cron == "0 7 * * *" and back.changed_by == "config"


def test_config_edit_flows_to_rows_the_operator_did_not_touch(settings, store):
    schedules.seed(settings, store)
    evening = settings.editions["evening"].model_copy(update={"schedule": "0 20 * * *"})
    edited = Settings(
        settings.file.model_copy(update={"editions": {**settings.editions, "evening": evening}}),
        settings.env,
        settings.config_path,
    )
    assert by_name(schedules.seed(edited, store))["evening"].cron == "0 20 * * *"


def test_bad_cron_and_unknown_edition(settings, store):
    with pytest.raises(ValueError, match="cron"):
        schedules.set_cron(settings, store, "morning", "0 25 * * *")
    with pytest.raises(KeyError, match="unknown edition"):
        schedules.pause(settings, store, "noon")


def test_marker_never_moves_back(store):
    assert schedules.get_marker(store, "tick") is None
    schedules.set_marker(store, "tick", T)
    schedules.set_marker(store, "tick", T - timedelta(hours=1))
    assert schedules.get_marker(store, "tick") == T
    schedules.set_marker(store, "tick", T + timedelta(minutes=1))
    assert schedules.get_marker(store, "tick") == T + timedelta(minutes=1)
