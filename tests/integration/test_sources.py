"""Feed health: what `source_health`, `distributor sources` and GET /api/sources show after
real polls (a feed server on 127.0.0.1, feed files), on SQLite and PostgreSQL; and the one
warning a source failing polls in a row logs."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from distributor.cli import app
from distributor.ingest import pipeline
from distributor.ingest.health import source_health
from distributor.ingest.pipeline import WARN_AFTER_FAILURES, ingest_source, ingest_sources
from distributor.settings import IngestConfig, SourceConfig
from distributor.store.models import utcnow
from distributor.web.app import create_app
from tests.conftest import CONFIG, settings_for
from tests.fakes.webserver import serve
from tests.integration.test_fetch import FEED, server  # noqa: F401 - the feed server fixture

TOKEN = "operator-token-for-sources"


def _feed(title: str) -> bytes:
    return FEED.replace(b"Monsoon covers the whole country ahead of schedule", title.encode())


@pytest.fixture
def watched(tmp_path: Path, server):  # noqa: F811 - the imported fixture
    """Four sources: a feed over HTTP, a server answering 503, a feed file, a disabled one."""
    wire = tmp_path / "wire.xml"
    wire.write_bytes(FEED.replace(b"na-fetch-", b"wire-"))
    sources = (
        SourceConfig(name="arena", url=server.url("/feed.xml"), poll_minutes=10),
        SourceConfig(name="down", url=server.url("/status/503"), poll_minutes=5),
        SourceConfig(name="wire", url=str(wire), poll_minutes=15),
        SourceConfig(name="paused", url=str(tmp_path / "paused.xml"), enabled=False),
    )
    settings = settings_for(tmp_path, sources=sources, ingest=IngestConfig(allow_private=("127.0.0.1",)))
    return settings, wire


def _by_name(settings, store, now) -> dict:  # noqa: ANN001
    return {h.name: h for h in source_health(settings, store, now)}


def test_health_after_polls(watched, store):
    settings, wire = watched
    before = utcnow()
    reports = ingest_sources(settings, store)
    assert [r.source for r in reports] == ["arena", "down", "wire"]  # not the disabled one
    wire.write_bytes(_feed("Monsoon reaches Delhi").replace(b"na-fetch-", b"wire-"))
    assert ingest_source(settings, store, str(wire), name="wire").updated
    now = utcnow()

    health = source_health(settings, store, now)
    assert [h.name for h in health] == ["arena", "down", "wire", "paused"]
    arena, down, wire_health, paused = health

    assert (arena.status, arena.http_status, arena.new_24h, arena.updated_24h) == ("ok", 200, 2, 0)
    assert arena.last_error == "" and arena.last_error_at is None and arena.failures_in_a_row == 0
    assert before <= arena.last_polled_at <= now and arena.last_success_at == arena.last_polled_at
    assert arena.next_poll_at == arena.last_polled_at + timedelta(minutes=10) and not arena.due

    assert (down.status, down.http_status, down.failures_in_a_row) == ("error", 503, 1)
    assert down.last_error == "HTTP 503 Service Unavailable"
    assert down.last_error_at == down.last_polled_at and down.last_success_at is None
    assert down.next_poll_at == down.last_polled_at + timedelta(minutes=5)

    # A file has no HTTP status; one of its two articles got a second version.
    assert (wire_health.status, wire_health.http_status) == ("ok", None)
    assert (wire_health.new_24h, wire_health.updated_24h) == (2, 1)
    assert wire_health.location == str(wire)

    assert (paused.enabled, paused.status, paused.next_poll_at, paused.due) == (False, "never", None, False)

    # The counts cover the last 24 hours; the schedule says what is due.
    later = _by_name(settings, store, now + timedelta(hours=24, minutes=1))
    assert (later["arena"].new_24h, later["wire"].updated_24h) == (0, 0)
    assert later["arena"].due and later["down"].due and not later["paused"].due


def test_a_source_never_polled_is_due(watched, store):
    settings, _ = watched
    arena = _by_name(settings, store, utcnow())["arena"]
    assert (arena.status, arena.last_polled_at, arena.next_poll_at, arena.due) == ("never", None, None, True)


def test_a_feed_ingested_by_hand_is_listed_after_the_configured_ones(watched, store, tmp_path, server):  # noqa: F811
    settings, _ = watched
    url = server.url("/feed.xml").replace("http://", "http://editor:s3cret@")
    ingest_source(settings, store, url)
    last = source_health(settings, store, utcnow())[-1]
    assert (last.configured, last.name, last.location) == (False, server.url("/feed.xml"), server.url("/feed.xml"))
    assert (last.new_24h, last.due, last.next_poll_at) == (2, False, None)
    assert "s3cret" not in json.dumps(last.as_dict())


def test_three_failures_in_a_row_log_one_warning_and_recovery_one_more(watched, store, caplog):
    settings, wire = watched
    wire.unlink()
    caplog.set_level(logging.DEBUG, logger="distributor.ingest.pipeline")
    for _ in range(WARN_AFTER_FAILURES + 3):
        assert not ingest_source(settings, store, str(wire), name="wire").ok
    records = [r for r in caplog.records if r.name == "distributor.ingest.pipeline"]
    warnings = [r for r in records if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in warnings] == ["source failing: 3 polls in a row"]
    assert warnings[0].source == "wire" and warnings[0].error.startswith("file not found")
    assert [r.levelname for r in records] == ["INFO", "INFO", "WARNING", "DEBUG", "DEBUG", "DEBUG"]
    health = _by_name(settings, store, utcnow())["wire"]
    assert (health.status, health.failures_in_a_row) == ("error", WARN_AFTER_FAILURES + 3)

    caplog.clear()
    wire.write_bytes(FEED)
    assert ingest_source(settings, store, str(wire), name="wire").ok
    [recovered] = [r for r in caplog.records if r.name == "distributor.ingest.pipeline"]
    assert (recovered.levelname, recovered.getMessage(), recovered.failed_polls) == ("WARNING", "source recovered", 6)
    health = _by_name(settings, store, utcnow())["wire"]
    assert (health.status, health.failures_in_a_row) == ("ok", 0)
    # The last error stays visible, with its time, after the recovery.
    assert health.last_error.startswith("file not found") and health.last_error_at < health.last_success_at


def test_a_short_failure_logs_no_warning(watched, store, caplog):
    settings, wire = watched
    content = wire.read_bytes()
    wire.unlink()
    caplog.set_level(logging.INFO, logger="distributor.ingest.pipeline")
    for _ in range(WARN_AFTER_FAILURES - 1):
        ingest_source(settings, store, str(wire), name="wire")
    wire.write_bytes(content)
    ingest_source(settings, store, str(wire), name="wire")
    records = [r for r in caplog.records if r.name == "distributor.ingest.pipeline"]
    assert [(r.levelname, r.getMessage()) for r in records] == [
        ("INFO", "source failed"), ("INFO", "source failed"), ("INFO", "source recovered")
    ]


def test_a_crashing_source_logs_its_traceback_once_per_streak(watched, store, caplog, monkeypatch):
    settings, wire = watched

    def broken(*args, **kwargs):  # noqa: ANN002, ANN003 - stands for a bug in the parser
        raise RuntimeError("parser bug")

    monkeypatch.setattr(pipeline, "parse_feed", broken)
    caplog.set_level(logging.WARNING, logger="distributor.ingest.pipeline")
    for _ in range(WARN_AFTER_FAILURES + 1):
        report = ingest_source(settings, store, str(wire), name="wire")
    assert report.error == "internal error: RuntimeError: parser bug"
    records = [r for r in caplog.records if r.name == "distributor.ingest.pipeline"]
    assert [(r.levelname, bool(r.exc_info)) for r in records] == [("ERROR", True), ("WARNING", False)]


# --- the command and the API ---------------------------------------------------------------


@pytest.fixture
def cli(tmp_path, monkeypatch, store):
    """`distributor ...` in-process with the shipped config, on the test's database."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", store.url)
    runner = CliRunner()

    def invoke(*args: str, code: int = 0):
        result = runner.invoke(app, ["--config", str(CONFIG), *args], catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result.stdout

    return invoke


def test_sources_command_json_and_table(cli):
    cli("ingest")
    first = cli("sources", "--json")
    assert cli("sources", "--json") == first  # deterministic for the same state
    [sample] = json.loads(first)
    assert sample["name"] == "newsarena-sample" and sample["status"] == "ok"
    assert sample["location"].endswith("config/samples/newsarena.xml")
    assert sample["new_24h"] >= 24 and sample["updated_24h"] == 0 and sample["http_status"] is None
    assert sample["poll_minutes"] == 10 and sample["due"] is False
    assert set(sample) >= {"last_polled_at", "last_error", "last_error_at", "next_poll_at", "failures_in_a_row"}

    table = cli("sources").splitlines()
    assert table[0].split() == ["SOURCE", "STATUS", "LAST", "POLL", "HTTP", "NEW", "24H", "UPD", "24H", "NEXT", "POLL"]
    row = table[1].split()
    assert row[:2] == ["newsarena-sample", "ok"] and row[4:7] == ["-", str(sample["new_24h"]), "0"]
    assert table[2].strip().endswith("newsarena.xml (every 10 min)")
    assert table[-1] == "(times in Asia/Kolkata)"


def test_sources_table_shows_the_failure_and_its_error(cli, tmp_path):
    cli("ingest", "http://127.0.0.1:9/feed.xml", code=1)
    table = cli("sources")
    assert "http://127.0.0.1:9/feed.xml  FAILING x1" in table
    assert "(not in the config file)" in table and "by hand" in table
    assert ": refused: 127.0.0.1 (loopback address)" in table


def test_operator_api_lists_sources(tmp_path, store, monkeypatch):
    monkeypatch.setenv("OPERATOR_TOKEN", TOKEN)
    settings = settings_for(tmp_path)
    ingest_sources(settings, store)
    with serve(create_app(settings, store)) as client:
        assert client.get("/api/sources").status_code == 401
        response = client.get("/api/sources", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert response.json() == [h.as_dict() for h in source_health(settings, store, utcnow())]
    [sample] = response.json()
    assert sample["name"] == "newsarena-sample" and sample["new_24h"] >= 24
