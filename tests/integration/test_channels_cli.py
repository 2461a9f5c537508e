"""`distributor channels ...` end to end: the shipped config, the sample feed, the fake Bot API."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from distributor.cli import app
from distributor.settings import PROJECT_ROOT
from tests.conftest import CONFIG
from tests.fakes.telegram_api import TOKEN

SAMPLE = PROJECT_ROOT / "config" / "samples" / "newsarena.xml"


@pytest.fixture
def cli(tmp_path, monkeypatch, fake_telegram):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'var' / 'distributor.db'}")
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("TELEGRAM_API_BASE_URL", fake_telegram.base_url)
    # Real posts (a bot token): the CLI refuses the demo key and links to this machine.
    monkeypatch.setenv("SECRET_KEY", "channels-cli-tests-signing-key-0123456789abcdef")
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://www.newsarenaindia.com")
    runner = CliRunner()

    def invoke(*args: str, code: int = 0):
        result = runner.invoke(app, ["--config", str(CONFIG), *args], catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result

    invoke("init")
    invoke("ingest", str(SAMPLE))
    return invoke


def sports_articles(cli) -> list[dict]:
    return json.loads(cli("articles", "--section", "sports", "--json").stdout)


def test_list_test_post_status_resume(cli, fake_telegram):
    listed = cli("channels", "list").output
    assert "main" in listed and "@newsarena_sports" in listed and "quiet 00:00-06:00" in listed
    assert "fediverse    https://mastodon.social" in listed

    out = cli("channels", "test", "sports").output
    assert "test message sent to @newsarena_sports" in out
    [test] = fake_telegram.calls_to("sendMessage", "@newsarena_sports")
    assert test.params["disable_notification"] is True and "test message" in test.params["text"]

    first, second = sports_articles(cli)[:2]
    out = cli("channels", "post", first["url"]).output  # by URL, to every channel carrying Sports
    # main and sports on Telegram, fediverse (Mastodon) and bluesky: no credentials, the outbox.
    assert out.count(" sent ") == 4 and "fediverse" in out and "bluesky" in out
    posted = fake_telegram.messages("@newsarena_sports")[-1].message_id
    assert f"{'sports':<12} {'sent':<9} {first['key']} ids={posted}\n" in out
    outbox = Path(os.getcwd()) / "var" / "outbox"
    assert len(list((outbox / "mastodon").glob("fediverse-status-*.json"))) == 1
    assert len(list((outbox / "bluesky").glob("bluesky-post-*.json"))) == 1
    assert "exists" in cli("channels", "post", first["key"], "--channel", "sports").output

    fake_telegram.fail_chat("@newsarena_sports", "kicked")
    out = cli("channels", "post", second["key"], code=1).output
    assert "failed" in out and "kicked" in out
    status = cli("channels", "status").output
    assert "sports" in status and "PAUSED" in status and "kicked" in status
    data = json.loads(cli("channels", "status", "--json").stdout)
    by = {c["channel"]: c for c in data["channels"]}
    assert by["sports"]["paused"] and not by["main"]["paused"]
    assert by["main"]["posts"] == {"sent": 2} and by["sports"]["posts"] == {"failed": 1, "sent": 1}

    fake_telegram.reset()
    assert "resumed" in cli("channels", "resume", "sports").output
    assert "was not paused" in cli("channels", "resume", "sports").output
    # The failed post is resent only when asked to.
    assert "exists" in cli("channels", "post", second["key"], "--channel", "sports").output
    assert " sent " in cli("channels", "post", second["key"], "--channel", "sports", "--again").output


def test_unknown_channel_and_article(cli):
    assert "unknown channel 'nope'" in cli("channels", "test", "nope", code=2).output
    assert "no stored article" in cli("channels", "post", "https://example.com/none", code=2).output


def test_mastodon_test_status_without_a_token_goes_to_the_outbox(cli, tmp_path):
    out = cli("channels", "test", "fediverse").output
    assert "test status posted to https://mastodon.social" in out
    [written] = (tmp_path / "var" / "outbox" / "mastodon").glob("fediverse-status-*.json")
    payload = json.loads(written.read_text(encoding="utf-8"))
    assert payload["params"]["visibility"] == "direct" and "test status" in payload["params"]["status"]
    assert "logged in to https://bsky.social (nothing posted" in cli("channels", "test", "bluesky").output


def test_without_a_token_the_test_message_goes_to_the_outbox(cli, monkeypatch, tmp_path, fake_telegram):
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN")
    assert "test message sent" in cli("channels", "test", "main").output
    [written] = (tmp_path / "var" / "outbox" / "telegram").glob("*.json")
    payload = json.loads(written.read_text(encoding="utf-8"))
    assert payload["method"] == "sendMessage" and payload["params"]["chat_id"] == "@newsarena"
    assert fake_telegram.calls == []
