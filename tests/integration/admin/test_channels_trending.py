"""Console channels (status, last post, pause reason, resume, test message through the fake
Bot API) and trending (ranking with reasons, pin and unpin), for each role."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest

from distributor import trending as signals
from distributor.delivery import ledger, telegram
from distributor.ingest.pipeline import ingest_source
from distributor.settings import PROJECT_ROOT, AdminConfig
from distributor.store.articles import list_articles, pins
from tests.conftest import settings_for
from tests.fakes.telegram_api import TOKEN
from tests.integration.admin.conftest import form_token

SAMPLE = PROJECT_ROOT / "config" / "samples" / "newsarena.xml"


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_telegram):
    monkeypatch.setenv("SECRET_KEY", "console-test-secret-" + "7" * 40)
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("TELEGRAM_API_BASE_URL", fake_telegram.base_url)
    return settings_for(tmp_path, admin=AdminConfig(test_sends_per_hour=2))


def token_of(client) -> str:
    return form_token(client.get("/admin").text)


# --- channels ------------------------------------------------------------------------------


def test_every_role_sees_each_channel_with_its_state_and_last_post(clients, console, settings, fake_telegram):
    _, store = console
    ingest_source(settings, store, str(SAMPLE), redate_dates=True)
    sports = [a for a in list_articles(store) if a.section == "sports"]
    telegram.post_article(settings, store, sports[0].key, "sports")
    fake_telegram.fail_chat("@newsarena_sports", "kicked")
    telegram.post_article(settings, store, sports[1].key, "sports")
    assert ledger.channel_state(settings, store, "sports").paused
    for client in clients.values():
        page = client.get("/admin/channels")
        assert page.status_code == 200
        assert 'id="main"' in page.text and 'id="sports"' in page.text and "@newsarena_sports" in page.text
        assert 'class="alert pause-reason"' in page.text and "kicked" in page.text
        assert "00:00-06:00" in page.text  # the shipped config's quiet hours
    twin = clients["viewer"].get("/admin/channels.json").json()
    by = {c["channel"]: c for c in twin["channels"]}
    assert by["sports"]["paused"] and "kicked" in by["sports"]["reason"] and by["sports"]["paused_at"]
    assert by["sports"]["last_post"]["status"] == "failed" and by["sports"]["posts"] == {"failed": 1, "sent": 1}
    assert by["main"]["last_post"] is None and not by["main"]["paused"]
    assert twin["transport"] == "Bot API"
    # Only an admin sees Resume; a viewer sees no form at all.
    assert "/resume" not in clients["viewer"].get("/admin/channels").text
    assert '/test"' not in clients["viewer"].get("/admin/channels").text  # no test form
    assert "/resume" not in clients["editor"].get("/admin/channels").text
    assert "/admin/channels/sports/resume" in clients["admin"].get("/admin/channels").text


def test_resume_is_for_admins_with_a_csrf_token(clients, console, settings):
    _, store = console
    ledger.pause_channel(store, "sports", "Forbidden: bot was kicked")
    for role in ("viewer", "editor"):
        assert clients[role].post("/admin/channels/sports/resume", data={"csrf_token": token_of(clients[role])}).status_code == 403
    admin = clients["admin"]
    assert admin.post("/admin/channels/sports/resume", data={"csrf_token": "forged"}).status_code == 403
    assert admin.post("/admin/channels/sports/resume", data={}).status_code == 403
    assert ledger.channel_state(settings, store, "sports").paused
    done = admin.post("/admin/channels/sports/resume", data={"csrf_token": token_of(admin)})
    assert done.status_code == 303 and not ledger.channel_state(settings, store, "sports").paused
    assert "Resumed" in admin.get(done.headers["location"]).text
    again = admin.post("/admin/channels/sports/resume", data={"csrf_token": token_of(admin)})
    assert "was not paused" in admin.get(again.headers["location"]).text
    assert admin.post("/admin/channels/nope/resume", data={"csrf_token": token_of(admin)}).status_code == 404


def test_an_editor_sends_a_rate_limited_test_message(clients, console, fake_telegram):
    viewer, editor = clients["viewer"], clients["editor"]
    assert viewer.post("/admin/channels/sports/test", data={"csrf_token": token_of(viewer)}).status_code == 403
    assert editor.post("/admin/channels/sports/test", data={"csrf_token": "forged"}).status_code == 403
    assert fake_telegram.calls_to("sendMessage") == []
    sent = editor.post("/admin/channels/sports/test", data={"csrf_token": token_of(editor)})
    assert sent.status_code == 200 and "Test message sent to @newsarena_sports" in sent.text
    [call] = fake_telegram.calls_to("sendMessage", "@newsarena_sports")
    assert call.params["disable_notification"] is True and "test message" in call.params["text"]
    fake_telegram.fail_chat("@newsarena", "chat_not_found")
    failed = editor.post("/admin/channels/main/test", data={"csrf_token": token_of(editor)})
    assert failed.status_code == 502 and "not sent" in failed.text
    # The third within the hour is refused before anything is sent (limit 2 in this test).
    refused = editor.post("/admin/channels/sports/test", data={"csrf_token": token_of(editor)})
    assert refused.status_code == 429 and "At most 2 test messages an hour" in refused.text
    assert len(fake_telegram.calls_to("sendMessage", "@newsarena_sports")) == 1


def test_without_a_token_the_test_message_goes_to_the_outbox(console, settings, monkeypatch, tmp_path):
    from distributor.web.app import create_app
    from tests.fakes.webserver import serve
    from tests.integration.admin.conftest import sign_in

    monkeypatch.delenv("TELEGRAM_BOT_TOKEN")
    offline = settings_for(tmp_path)
    _, store = console
    with serve(create_app(offline, store)) as client:
        editor = sign_in(str(client.base_url), "editor")
        assert f"outbox: {offline.outbox_dir / 'telegram'}/" in editor.get("/admin/channels").text
        sent = editor.post("/admin/channels/main/test", data={"csrf_token": token_of(editor)})
        assert sent.status_code == 200 and "Test message sent to @newsarena" in sent.text
        editor.close()
    assert list((offline.outbox_dir / "telegram").glob("*.json"))


def test_no_session_no_channel_page_and_no_action(console, fake_telegram):
    base, _ = console
    with httpx.Client(base_url=base, trust_env=False) as anonymous:
        assert anonymous.get("/admin/channels").status_code == 303
        assert anonymous.get("/admin/channels.json").status_code == 401
        assert anonymous.post("/admin/channels/sports/test").status_code == 303
        assert anonymous.get("/admin/trending.json").status_code == 401
        assert anonymous.post("/admin/trending/pin", data={"target": "x"}).status_code == 303
    assert fake_telegram.calls_to("sendMessage") == []


# --- trending ------------------------------------------------------------------------------


def test_the_ranking_shows_scores_and_reasons_to_every_role(clients, console, settings):
    _, store = console
    ingest_source(settings, store, str(SAMPLE), redate_dates=True)
    first, second = [a for a in list_articles(store) if not a.trending][:2]
    now = datetime.now(timezone.utc)
    signals.scorer_for(settings, store).record(
        [signals.Signal(first.key, "click", now, 3), signals.Signal(second.key, "view", now, 1)]
    )
    for client in clients.values():
        page = client.get("/admin/trending")
        assert page.status_code == 200 and "3 clicks" in page.text and "1 view" in page.text
    twin = clients["viewer"].get("/admin/trending.json").json()
    keys = [line["key"] for line in twin["ranking"]]
    assert keys.index(first.key) < keys.index(second.key)
    assert twin["ranking"][keys.index(first.key)]["reasons"][0] == "3 clicks" and twin["scores_in"]
    assert "/admin/trending/pin" not in clients["viewer"].get("/admin/trending").text
    assert "/admin/trending/pin" in clients["editor"].get("/admin/trending").text


def test_editors_pin_and_unpin_viewers_cannot(clients, console, settings):
    _, store = console
    ingest_source(settings, store, str(SAMPLE), redate_dates=True)
    article = [a for a in list_articles(store) if not a.trending][-1]
    viewer, editor = clients["viewer"], clients["editor"]
    assert viewer.post("/admin/trending/pin", data={"csrf_token": token_of(viewer), "target": article.url}).status_code == 403
    assert editor.post("/admin/trending/pin", data={"csrf_token": "forged", "target": article.url}).status_code == 403
    assert pins(store) == []
    pinned = editor.post("/admin/trending/pin", data={"csrf_token": token_of(editor), "target": article.url + "?utm_source=x"})
    assert pinned.status_code == 303 and pins(store) == [article.url]  # kept canonical
    page = editor.get(pinned.headers["location"]).text
    assert "Pinned: it leads every Trending group." in page
    twin = editor.get("/admin/trending.json").json()
    assert twin["ranking"][0]["key"] == article.key and twin["ranking"][0]["reasons"] == ["pinned"]
    assert twin["pins"] == [{"origin": "pinned", "target": article.url}]
    again = editor.post("/admin/trending/pin", data={"csrf_token": token_of(editor), "target": article.url})
    assert "already pinned" in editor.get(again.headers["location"]).text
    waiting = editor.post("/admin/trending/pin", data={"csrf_token": token_of(editor), "target": "https://www.example.com/not-yet"})
    assert "the pin applies when it arrives" in editor.get(waiting.headers["location"]).text
    assert viewer.post("/admin/trending/unpin", data={"csrf_token": token_of(viewer), "target": article.url}).status_code == 403
    assert editor.post("/admin/trending/unpin", data={"csrf_token": "forged", "target": article.url}).status_code == 403
    assert editor.post("/admin/trending/pin", data={"csrf_token": token_of(editor), "target": "  "}).status_code == 303
    assert len(pins(store)) == 2  # a blank target pins nothing
    unpinned = editor.post("/admin/trending/unpin", data={"csrf_token": token_of(editor), "target": article.url})
    assert unpinned.status_code == 303 and pins(store) == ["https://www.example.com/not-yet"]
    missing = editor.post("/admin/trending/unpin", data={"csrf_token": token_of(editor), "target": article.url})
    assert "was not pinned" in editor.get(missing.headers["location"]).text
