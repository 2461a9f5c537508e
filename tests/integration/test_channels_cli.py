"""`distributor channels ...` end to end: the shipped config, the sample feed, the fake Bot
API, and the fake Mastodon instance and Bluesky PDS for `channels test`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from distributor.cli import app
from distributor.settings import PROJECT_ROOT
from tests.conftest import CONFIG
from tests.fakes.bluesky_api import APP_PASSWORD, HANDLE
from tests.fakes.mastodon_api import TOKEN as MASTODON_TOKEN
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


def test_mastodon_and_bluesky_without_credentials_have_nothing_to_check(cli, tmp_path):
    out = cli("channels", "test", "fediverse").output
    assert out == ("fediverse: no credentials (MASTODON_FEDIVERSE_TOKEN not set): "
                   "posts are written to var/outbox/mastodon/; nothing to check\n")
    out = cli("channels", "test", "bluesky").output
    assert "no credentials (BLUESKY_BLUESKY_HANDLE and BLUESKY_BLUESKY_APP_PASSWORD not set)" in out
    assert not (tmp_path / "var" / "outbox" / "mastodon").exists()  # a check writes nothing
    listed = {c["channel"]: c for c in json.loads(cli("channels", "list", "--json").stdout)}
    assert listed["fediverse"]["via"] == "outbox: var/outbox/mastodon/"
    assert listed["main"]["via"] == "Bot API" and listed["main"]["kind"] == "telegram"


@pytest.fixture
def social_cli(tmp_path, monkeypatch, fake_mastodon, fake_bluesky):
    """The CLI on the shipped config with its Mastodon and Bluesky channels pointed at
    the fakes, their credentials in the environment."""
    text = CONFIG.read_text(encoding="utf-8")
    for old, new in (('instance_url = "https://mastodon.social"', f'instance_url = "{fake_mastodon.base_url}"'),
                     ('service_url = "https://bsky.social"', f'service_url = "{fake_bluesky.base_url}"')):
        assert old in text
        text = text.replace(old, new)
    config = tmp_path / "distributor.toml"
    config.write_text(text, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MASTODON_FEDIVERSE_TOKEN", MASTODON_TOKEN)
    monkeypatch.setenv("BLUESKY_BLUESKY_HANDLE", HANDLE)
    monkeypatch.setenv("BLUESKY_BLUESKY_APP_PASSWORD", APP_PASSWORD)
    runner = CliRunner()

    def invoke(*args: str, code: int = 0):
        result = runner.invoke(app, ["--config", str(config), *args], catch_exceptions=False)
        assert result.exit_code == code, result.output
        for secret in (MASTODON_TOKEN, APP_PASSWORD, "wrong-token-abcdef"):
            assert secret not in result.output
        return result

    return invoke


def test_mastodon_and_bluesky_test_checks_the_credentials_and_posts_nothing(social_cli, fake_mastodon, fake_bluesky,
                                                                            monkeypatch):
    host = fake_mastodon.base_url.removeprefix("http://")
    assert social_cli("channels", "test", "fediverse").output == (
        f"fediverse: credentials accepted by {fake_mastodon.base_url} for @news@{host} (nothing posted)\n")
    assert social_cli("channels", "test", "bluesky").output == (
        f"bluesky: credentials accepted by {fake_bluesky.base_url} for @{HANDLE} (nothing posted)\n")
    assert fake_mastodon.statuses == {} and fake_mastodon.media == {} and fake_bluesky.posts == {}
    listed = {c["channel"]: c for c in json.loads(social_cli("channels", "list", "--json").stdout)}
    assert (listed["bluesky"]["account"], listed["bluesky"]["via"]) == (
        f"@{HANDLE}", "Bluesky API (app password in BLUESKY_BLUESKY_APP_PASSWORD)")
    assert f"bluesky as @{HANDLE} via Bluesky API" in social_cli("channels", "list").output
    monkeypatch.setenv("MASTODON_FEDIVERSE_TOKEN", "wrong-token-abcdef")
    refused = social_cli("channels", "test", "fediverse", code=1).output
    assert f"fediverse: credentials check at {fake_mastodon.base_url} failed (unauthorized)" in refused


def test_without_a_token_the_test_message_goes_to_the_outbox(cli, monkeypatch, tmp_path, fake_telegram):
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN")
    assert "test message sent" in cli("channels", "test", "main").output
    [written] = (tmp_path / "var" / "outbox" / "telegram").glob("*.json")
    payload = json.loads(written.read_text(encoding="utf-8"))
    assert payload["method"] == "sendMessage" and payload["params"]["chat_id"] == "@newsarena"
    assert fake_telegram.calls == []
