"""Issue 9's "must show": one feed holding every trap, ingested, previewed for three
readers and posted to a fake Telegram channel, on SQLite and PostgreSQL.

tests/fixtures/feeds/traps.xml (made by make_traps_feed.py): 60 stories in the morning
window across all 8 sections, a duplicate story with other tracking parameters, a
lone-surrogate reference, escaped "<" in titles, a tracker pixel, a 1x1 enclosure, and
Devanagari and emoji titles and standfirsts long enough to be cut everywhere.
"""

from __future__ import annotations

import email
import json
from datetime import datetime, timedelta, timezone
from email import policy
from pathlib import Path

import pytest
import regex
from typer.testing import CliRunner

from distributor import subscribers
from distributor.cli import app
from distributor.delivery import telegram as tg
from distributor.ingest.pipeline import ingest_source
from distributor.render.telegram import visible_text
from distributor.settings import ChannelConfig, TelegramConfig
from tests.conftest import CONFIG, FIXTURES, settings_for
from tests.fakes.telegram_api import TOKEN

TRAPS = FIXTURES / "feeds" / "traps.xml"
IST = timezone(timedelta(hours=5, minutes=30))
SLOT = datetime(2025, 7, 4, 7, 0, tzinfo=IST)
SITE = "https://www.newsarenaindia.com"
SECTIONS = ["nation", "states", "international", "politics", "opinion", "economy", "sports", "entertainment"]
MAIN = "@newsarena_traps"


def broken_graphemes(text: str) -> list[str]:
    """Places where a cut split a character: a lone flag half, a ZWJ left dangling, a
    virama or combining mark with nothing before it, right before an ellipsis or at the end."""
    problems = []
    for match in regex.finditer(r"\X", text):
        cluster = match.group()
        if len(cluster) == 1 and 0x1F1E6 <= ord(cluster) <= 0x1F1FF:
            problems.append(f"lone regional indicator at {match.start()}: {text[max(0, match.start() - 20):match.end() + 5]!r}")
        if cluster.endswith("\u200d"):
            problems.append(f"dangling ZWJ at {match.start()}")
    for match in regex.finditer(r"\u094d(?=…)", text):
        problems.append(f"virama cut before an ellipsis at {match.start()}")
    return problems


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store, fake_telegram):
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("TELEGRAM_API_BASE_URL", fake_telegram.base_url)
    monkeypatch.setenv("SECRET_KEY", "traps-test-secret-" + "5" * 40)
    channels = {"main": ChannelConfig(chat_id=MAIN, instant=True, digests=("morning",))}
    settings = settings_for(
        tmp_path, channels=channels,
        telegram=TelegramConfig(connect_timeout_seconds=2.0, write_timeout_seconds=2.0, read_timeout_seconds=2.0,
                                instant_max_age_hours=48),
    )
    report = ingest_source(settings, store, str(TRAPS))
    return settings, store, report


def test_the_trap_feed_loses_nothing(world):
    _, _, report = world
    assert report.ok, report.error
    assert (len(report.new), len(report.rejected), len(report.duplicates)) == (60, 0, 1)
    assert {a.section for a in report.new} == set(SECTIONS)
    titles = {a.title for a in report.new}
    assert 'Sensex & Nifty close at record highs; "Rally <broad-based>", say analysts' in titles
    assert "<Budget> 2026: what changes for the salaried" in titles
    assert "Bad character in a headline" in titles
    by_key = {a.key: a for a in report.new}
    assert by_key[f"{SITE}/economy/story-1"].standfirst.startswith("Corrected after the closing bell")
    assert by_key[f"{SITE}/economy/story-3"].image_url is None  # only a tracker pixel
    assert by_key[f"{SITE}/economy/story-4"].image_url is None  # only a 1x1 enclosure
    for article in report.new:
        assert not broken_graphemes(article.title), article.title
        assert not broken_graphemes(article.standfirst), article.key


def _preview(tmp_path: Path, store, subscriber: str | None) -> dict:
    out = tmp_path / f"preview-{subscriber or 'all'}"
    args = ["--config", str(CONFIG), "preview", "morning", "--at", SLOT.isoformat(), "--out", str(out)]
    if subscriber:
        args += ["--subscriber", subscriber]
    result = CliRunner().invoke(app, args, catch_exceptions=False, env={"DATABASE_URL": store.url})
    assert result.exit_code == 0, result.output
    message = email.message_from_bytes((out / "email.eml").read_bytes(), policy=policy.default)
    return {
        "output": result.output,
        "subject": message["Subject"],
        "text": (out / "email.txt").read_text(encoding="utf-8"),
        "html": (out / "email.html").read_text(encoding="utf-8"),
        "telegram": json.loads((out / "telegram.json").read_text(encoding="utf-8")),
        "message": message,
    }


def test_three_readers_preview_what_they_chose(world, tmp_path, monkeypatch):
    settings, store, _ = world
    monkeypatch.chdir(tmp_path)
    subscribers.subscribe(settings, store, "all@example.org", confirmed=True)
    subscribers.subscribe(settings, store, "sport@example.org", sections="sports", confirmed=True)
    subscribers.subscribe(settings, store, "plain@example.org", format="text", confirmed=True)

    everyone = _preview(tmp_path, store, "all@example.org")
    for slug, label in [(s.slug, s.label) for s in settings.sections]:
        assert label.upper() in everyone["text"] or label in everyone["text"], f"{slug} missing for the all-sections reader"
    assert "Rally <broad-based>" in everyone["text"]
    assert "Rally &lt;broad-based&gt;" in everyone["html"]
    assert not broken_graphemes(everyone["subject"]) and not broken_graphemes(everyone["text"])

    sport = _preview(tmp_path, store, "sport@example.org")
    assert "variant: sports (" in sport["output"] and "(0 article" not in sport["output"]
    assert "India beat Afghanistan" in sport["text"] and "Sports story 2" in sport["text"]
    assert "Nation story" not in sport["text"]
    assert not broken_graphemes(sport["subject"])

    plain = _preview(tmp_path, store, "plain@example.org")
    assert plain["message"].get_content_type() == "text/plain"  # one text part, no HTML
    assert "Rally <broad-based>" in plain["message"].get_content()
    assert not broken_graphemes(plain["message"].get_content())
    for calls in (everyone["telegram"],):
        for call in calls:
            body = visible_text(call["params"].get("text") or call["params"].get("caption") or "")
            assert not broken_graphemes(body)


def test_posted_to_a_fake_channel_with_nothing_split(world, fake_telegram):
    settings, store, report = world
    from distributor.channels.telegram import TelegramChannel
    from distributor.ratelimit import NoLimit

    # No rate limit here: the limiter has its own tests, and 60 posts would wait minutes.
    sender = tg.Sender(TelegramChannel.from_settings(settings), NoLimit())
    reports = tg.post_new_articles(settings, store, [a.key for a in report.new], now=SLOT.astimezone(timezone.utc), sender=sender)
    statuses = {r.status for r in reports}
    assert statuses <= {"sent"}, [r.line() for r in reports if r.status != "sent"]
    photos = fake_telegram.calls_to("sendPhoto", MAIN)
    texts = fake_telegram.calls_to("sendMessage", MAIN)
    assert len(photos) + len(texts) == 60
    photo_urls = {c.params.get("photo") for c in photos}
    assert not any("feedburner" in (u or "") or "1x1" in (u or "") for u in photo_urls)
    for call in photos + texts:
        body = visible_text(call.params.get("caption") or call.params.get("text") or "")
        assert not broken_graphemes(body), body[-80:]
