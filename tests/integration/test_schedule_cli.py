"""Operators change schedules from the CLI; the change is in the database for every process."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from distributor import schedules
from distributor.cli import app
from distributor.settings import load_settings
from distributor.store import Store

from tests.conftest import CONFIG


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'var' / 'distributor.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    runner = CliRunner()

    def invoke(*args: str, code: int = 0):
        result = runner.invoke(app, ["--config", str(CONFIG), *args], catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result

    invoke("init")
    invoke.store = Store(url)
    return invoke


def test_list_shows_next_three_runs(cli):
    rows = json.loads(cli("schedule", "list", "--json").stdout)
    morning = next(r for r in rows if r["edition"] == "morning")
    assert morning["cron"] == "0 7 * * *" and len(morning["next"]) == 3
    assert all(t.endswith("+05:30") and "T07:00:00" in t for t in morning["next"])
    assert "morning" in cli("schedule").stdout


def test_set_pause_resume_reset_are_stored(cli):
    assert "takes effect within 30 s" in cli("schedule", "set", "morning", "30 6 * * 1-5").stdout
    cli("schedule", "pause", "weekly")
    stored = {s.edition: s for s in schedules.load(load_settings(CONFIG), cli.store)}
    assert stored["morning"].cron == "30 6 * * 1-5" and stored["morning"].changed_by == "operator"
    assert stored["weekly"].paused
    assert "PAUSED" in cli("schedule", "list").stdout
    cli("schedule", "resume", "weekly")
    cli("schedule", "reset", "morning")
    stored = {s.edition: s for s in schedules.load(load_settings(CONFIG), cli.store)}
    assert stored["morning"].cron == "0 7 * * *" and not stored["weekly"].paused


def test_bad_input_names_the_problem(cli):
    assert "is not a valid 5-field cron" in cli("schedule", "set", "morning", "7am daily", code=2).output
    assert "unknown edition 'noon'" in cli("schedule", "pause", "noon", code=2).output


def test_runs_lists_nothing_then_runs(cli):
    assert "no runs yet" in cli("runs").stdout
