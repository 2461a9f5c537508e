"""Console channels of every kind: the page shows each channel's kind and destination
(Telegram chat, Mastodon instance, Bluesky PDS and handle, or the outbox without
credentials) and never a token or an app password; "test" on a Mastodon or Bluesky
channel checks its credentials against the fake instance or PDS and posts nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from distributor.settings import AdminConfig, load_settings
from tests.conftest import CONFIG, settings_for
from tests.fakes import telegram_api
from tests.fakes.bluesky_api import APP_PASSWORD, HANDLE
from tests.fakes.mastodon_api import TOKEN
from tests.integration.admin.conftest import form_token

BOT_TOKEN = telegram_api.TOKEN


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_telegram, fake_mastodon, fake_bluesky):
    """The shipped channels (main and sports on Telegram, fediverse on Mastodon, bluesky
    on Bluesky), the social ones pointed at the fakes, every credential set."""
    monkeypatch.setenv("SECRET_KEY", "console-test-secret-" + "5" * 40)
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("TELEGRAM_API_BASE_URL", fake_telegram.base_url)
    monkeypatch.setenv("MASTODON_FEDIVERSE_TOKEN", TOKEN)
    monkeypatch.setenv("BLUESKY_BLUESKY_HANDLE", HANDLE)
    monkeypatch.setenv("BLUESKY_BLUESKY_APP_PASSWORD", APP_PASSWORD)
    shipped = load_settings(CONFIG).channels
    channels = {**shipped,
                "fediverse": shipped["fediverse"].model_copy(update={"instance_url": fake_mastodon.base_url}),
                "bluesky": shipped["bluesky"].model_copy(update={"service_url": fake_bluesky.base_url})}
    return settings_for(tmp_path, channels=channels, admin=AdminConfig(test_sends_per_hour=50))


def token_of(client) -> str:
    return form_token(client.get("/admin").text)


def secrets_absent(text: str) -> None:
    for secret in (TOKEN, APP_PASSWORD, BOT_TOKEN, "wrong-token-abcdef"):
        assert secret not in text


def test_every_channel_shows_its_kind_and_destination_never_its_credentials(clients, settings, fake_mastodon,
                                                                             fake_bluesky):
    for client in clients.values():
        page = client.get("/admin/channels")
        assert page.status_code == 200
        secrets_absent(page.text)
        secrets_absent(client.get("/admin/channels.json").text)
    twin = clients["viewer"].get("/admin/channels.json").json()
    by = {c["channel"]: c for c in twin["channels"]}
    assert {name: (c["kind"], c["destination"], c["account"], c["via"]) for name, c in by.items()} == {
        "main": ("telegram", "@newsarena", "", "Bot API"),
        "sports": ("telegram", "@newsarena_sports", "", "Bot API"),
        "fediverse": ("mastodon", fake_mastodon.base_url, "", "Mastodon API (token in MASTODON_FEDIVERSE_TOKEN)"),
        "bluesky": ("bluesky", fake_bluesky.base_url, f"@{HANDLE}",
                    "Bluesky API (app password in BLUESKY_BLUESKY_APP_PASSWORD)"),
    }
    page = clients["viewer"].get("/admin/channels").text
    assert f"Mastodon instance {fake_mastodon.base_url}</td>" in page
    assert f"Bluesky PDS {fake_bluesky.base_url} as @{HANDLE}</td>" in page
    assert "Telegram chat @newsarena_sports</td>" in page
    editor = clients["editor"].get("/admin/channels").text
    assert editor.count(">Check credentials</button>") == 2 and editor.count(">Send a test message</button>") == 2
    # Showing the page asked no service anything.
    assert fake_mastodon.calls == [] and fake_bluesky.calls == []


def test_without_credentials_a_channel_shows_its_outbox(clients, settings, monkeypatch):
    for name in ("MASTODON_FEDIVERSE_TOKEN", "BLUESKY_BLUESKY_APP_PASSWORD"):
        monkeypatch.delenv(name)
    by = {c["channel"]: c for c in clients["viewer"].get("/admin/channels.json").json()["channels"]}
    assert by["fediverse"]["via"] == f"outbox: {settings.outbox_dir / 'mastodon'}/" and by["fediverse"]["outbox"]
    # The handle alone is no credential; it is still who the posts would be from.
    assert (by["bluesky"]["account"], by["bluesky"]["via"]) == (f"@{HANDLE}", f"outbox: {settings.outbox_dir / 'bluesky'}/")
    assert not by["main"]["outbox"]
    page = clients["viewer"].get("/admin/channels").text
    assert f"outbox: {settings.outbox_dir / 'mastodon'}/" in page and f"outbox: {settings.outbox_dir / 'bluesky'}/" in page


def test_checking_a_mastodon_or_bluesky_channel_posts_nothing(clients, settings, fake_mastodon, fake_bluesky,
                                                             fake_telegram):
    editor = clients["editor"]
    assert clients["viewer"].post("/admin/channels/fediverse/test",
                                  data={"csrf_token": token_of(clients["viewer"])}).status_code == 403
    host = fake_mastodon.base_url.removeprefix("http://")
    checked = editor.post("/admin/channels/fediverse/test", data={"csrf_token": token_of(editor)})
    assert checked.status_code == 200, checked.text
    assert f"Credentials accepted by {fake_mastodon.base_url} for @news@{host} (nothing posted)" in checked.text
    assert [(c.method, c.path) for c in fake_mastodon.calls] == [("GET", "/api/v1/accounts/verify_credentials")]
    checked = editor.post("/admin/channels/bluesky/test", data={"csrf_token": token_of(editor)})
    assert checked.status_code == 200, checked.text
    assert f"Credentials accepted by {fake_bluesky.base_url} for @{HANDLE} (nothing posted)" in checked.text
    assert ("com.atproto.server.getSession", 200) in fake_bluesky.calls and fake_bluesky.posts == {}
    secrets_absent(checked.text)
    assert fake_mastodon.statuses == {} and fake_telegram.calls_to("sendMessage") == []


def test_a_refused_credential_is_a_failed_check_without_the_secret(clients, settings, monkeypatch, fake_mastodon,
                                                                  fake_telegram):
    editor = clients["editor"]
    monkeypatch.setenv("MASTODON_FEDIVERSE_TOKEN", "wrong-token-abcdef")
    refused = editor.post("/admin/channels/fediverse/test", data={"csrf_token": token_of(editor)})
    assert refused.status_code == 502
    assert f"Credentials check at {fake_mastodon.base_url} failed (unauthorized)" in refused.text
    secrets_absent(refused.text)
    monkeypatch.delenv("MASTODON_FEDIVERSE_TOKEN")
    offline = editor.post("/admin/channels/fediverse/test", data={"csrf_token": token_of(editor)})
    assert offline.status_code == 200
    assert "No credentials (MASTODON_FEDIVERSE_TOKEN not set): posts are written to" in offline.text
    assert not (settings.outbox_dir / "mastodon").exists()  # a check writes nothing
    assert fake_telegram.calls_to("sendMessage") == []
