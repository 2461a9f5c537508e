"""Console preview and test send, against the shipped sample and a real SMTP server."""

from __future__ import annotations

import email
from email import policy
from pathlib import Path

import pytest

from distributor import operators, subscribers
from distributor.ingest.pipeline import ingest_source
from distributor.settings import PROJECT_ROOT
from distributor.store import Store
from distributor.web.app import create_app
from tests.conftest import settings_for
from tests.fakes.smtp_server import FakeSmtpServer
from tests.fakes.webserver import serve
from tests.integration.admin.conftest import PASSWORD, form_token, sign_in

SAMPLE = PROJECT_ROOT / "config" / "samples" / "newsarena.xml"


@pytest.fixture
def smtp():
    server = FakeSmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store: Store, smtp):
    monkeypatch.setenv("SECRET_KEY", "console-test-secret-" + "8" * 40)
    monkeypatch.setenv("SMTP_URL", smtp.url)
    settings = settings_for(tmp_path)
    report = ingest_source(settings, store, str(SAMPLE), redate_dates=True)
    assert report.ok and report.new
    for role in ("viewer", "editor"):
        operators.add(store, role, role, PASSWORD)
    subscribers.subscribe(settings, store, "sports.fan@example.org", sections="sports", confirmed=True, format="text")
    with serve(create_app(settings, store)) as client:
        yield str(client.base_url), settings


def test_preview_shows_subject_frames_text_and_telegram(live):
    base, _ = live
    viewer = sign_in(base, "viewer")
    page = viewer.get("/admin/preview", params={"edition": "morning"})
    assert page.status_code == 200
    assert 'iframe class="desktop" sandbox=""' in page.text and 'iframe class="mobile" sandbox=""' in page.text
    assert 'class="textpart"' in page.text and 'class="subject"' in page.text
    assert "Send test" not in page.text  # a viewer previews but cannot send
    frame_src = page.text.split('iframe class="desktop" sandbox="" src="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    email_page = viewer.get(frame_src)
    assert email_page.status_code == 200 and "<html" in email_page.text.lower()
    assert email_page.headers["content-security-policy"].startswith("default-src 'none'; style-src 'unsafe-inline'")
    assert email_page.headers["x-frame-options"] == "SAMEORIGIN"
    twin = viewer.get("/admin/preview.json", params={"edition": "morning"}).json()
    assert twin["count"] > 0 and twin["subject"]


def test_preview_for_a_subscriber_uses_their_sections_and_format(live):
    base, _ = live
    editor = sign_in(base, "editor")
    twin = editor.get("/admin/preview.json", params={"edition": "morning", "subscriber": "sports.fan@example.org"}).json()
    assert twin["text_only"] is True
    everything = editor.get("/admin/preview.json", params={"edition": "morning"}).json()
    assert 0 < twin["count"] <= everything["count"]
    chosen = editor.get("/admin/preview.json", params=[("edition", "morning"), ("sections", "sports"), ("sections", "nope")]).json()
    assert chosen["choice"]["sections"] == ["sports"]


def test_a_test_send_arrives_prefixed_and_leaves_no_delivery(live, smtp, store):
    from sqlalchemy import func, select

    from distributor.store.models import DeliveryRow

    base, _ = live
    editor = sign_in(base, "editor")
    page = editor.get("/admin/preview", params={"edition": "morning"})
    answer = editor.post(
        "/admin/preview/test-send",
        data={"csrf_token": form_token(page.text), "edition": "morning", "to": "desk@newsroom.example"},
    )
    assert answer.status_code == 200, answer.text
    assert "Test sent to desk@newsroom.example" in answer.text
    [received] = smtp.messages
    assert received.rcpt_tos == ["desk@newsroom.example"]
    message = email.message_from_bytes(received.data, policy=policy.default)
    assert message["Subject"].startswith("[Test] ")
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(DeliveryRow)) == 0


def test_test_sends_are_rate_limited_and_checked(live, smtp, monkeypatch):
    base, settings = live
    editor = sign_in(base, "editor")
    token = form_token(editor.get("/admin/preview").text)
    bad = editor.post("/admin/preview/test-send", data={"csrf_token": token, "edition": "morning", "to": "not an address"})
    assert bad.status_code == 422 and "Test address" in bad.text
    limit = settings.file.admin.test_sends_per_hour
    codes = [
        editor.post("/admin/preview/test-send", data={"csrf_token": token, "edition": "evening", "to": "desk@newsroom.example"}).status_code
        for _ in range(limit + 1)
    ]
    assert codes[-1] == 429 and codes[:-1] == [200] * limit
    assert len(smtp.messages) == limit


def test_a_viewer_cannot_test_send(live, smtp):
    base, _ = live
    viewer = sign_in(base, "viewer")
    token = form_token(viewer.get("/admin").text)
    assert viewer.post("/admin/preview/test-send", data={"csrf_token": token, "edition": "morning", "to": "x@example.org"}).status_code == 403
    assert smtp.messages == []


def test_cli_preview_to_an_address_sends_one_test(tmp_path, monkeypatch, store, smtp):
    from typer.testing import CliRunner

    from distributor.cli import app
    from tests.conftest import CONFIG

    monkeypatch.chdir(tmp_path)
    settings = settings_for(tmp_path)
    assert ingest_source(settings, store, str(SAMPLE), redate_dates=True).ok
    env = {"DATABASE_URL": store.url, "SMTP_URL": smtp.url, "SECRET_KEY": "cli-preview-secret-" + "4" * 40,
           "PUBLIC_BASE_URL": "https://news.newsarenaindia.com"}
    runner = CliRunner()
    result = runner.invoke(app, ["--config", str(CONFIG), "preview", "morning", "--out", str(tmp_path / "p"), "--to", "desk@newsroom.example"],
                           env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "test sent to desk@newsroom.example through SMTP" in result.output
    [received] = smtp.messages
    assert email.message_from_bytes(received.data, policy=policy.default)["Subject"].startswith("[Test] ")
    bad = runner.invoke(app, ["--config", str(CONFIG), "preview", "morning", "--out", str(tmp_path / "p"), "--to", "nope"], env=env)
    assert bad.exit_code == 2 and "--to:" in bad.output


def test_a_test_digest_goes_to_the_channels_test_chat_only(tmp_path, monkeypatch, store, fake_telegram):
    """The preview's digest for a channel, posted to its test chat through the real
    python-telegram-bot client and the fake Bot API; the channel and the ledger untouched."""
    from sqlalchemy import func, select

    from distributor.settings import ChannelConfig
    from distributor.store.models import TelegramPostRow
    from tests.fakes.telegram_api import TOKEN

    monkeypatch.setenv("SECRET_KEY", "console-test-secret-" + "6" * 40)
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("TELEGRAM_API_BASE_URL", fake_telegram.base_url)
    channels = {"main": ChannelConfig(chat_id="@newsarena", digests=("morning",), test_chat_id="@newsdesk_test")}
    settings = settings_for(tmp_path, channels=channels)
    assert ingest_source(settings, store, str(SAMPLE), redate_dates=True).ok
    operators.add(store, "editor", "editor", PASSWORD)
    operators.add(store, "viewer", "viewer", PASSWORD)
    with serve(create_app(settings, store)) as client:
        base = str(client.base_url)
        viewer = sign_in(base, "viewer")
        assert "test-channel" not in viewer.get("/admin/preview").text
        assert viewer.post("/admin/preview/test-channel", data={"csrf_token": form_token(viewer.get("/admin").text),
                                                                "edition": "morning", "channel": "main"}).status_code == 403
        editor = sign_in(base, "editor")
        page = editor.get("/admin/preview", params={"edition": "morning"})
        assert "main → @newsdesk_test" in page.text
        answer = editor.post("/admin/preview/test-channel",
                             data={"csrf_token": form_token(page.text), "edition": "morning", "channel": "main"})
        assert answer.status_code == 200, answer.text
        assert "Test digest posted to @newsdesk_test" in answer.text
        assert editor.post("/admin/preview/test-channel",
                           data={"csrf_token": form_token(page.text), "edition": "morning", "channel": "nope"}).status_code == 422
    assert fake_telegram.calls_to("sendMessage", "@newsdesk_test")
    assert fake_telegram.calls_to(None, "@newsarena") == []
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(TelegramPostRow)) == 0
