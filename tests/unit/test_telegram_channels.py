"""Telegram pieces without a network: channel config, quiet/silent ranges, the policies a
channel applies to a call, and how python-telegram-bot errors are classified."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from telegram.error import BadRequest, ChatMigrated, Forbidden, InvalidToken, NetworkError, RetryAfter, TimedOut

from distributor.channels.telegram import classify
from distributor.delivery.ledger import fingerprint, roundup_title
from distributor.delivery.telegram import decorate, kind_of
from distributor.errors import ConfigError
from distributor.render.telegram import BotCall
from distributor.settings import ChannelConfig, TelegramConfig, load_settings, parse_daily_range
from tests.conftest import CONFIG

KOLKATA = ZoneInfo("Asia/Kolkata")
SHIPPED = CONFIG.read_text(encoding="utf-8")


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, 27, hour, minute, tzinfo=KOLKATA).astimezone(timezone.utc)


# --- config ------------------------------------------------------------------------------


def test_shipped_channels():
    s = load_settings(CONFIG)
    main, sports = s.channels["main"], s.channels["sports"]
    assert main.sections == () and main.instant and main.digests[:2] == ("morning", "evening")
    assert sports.sections == ("sports",) and sports.instant and sports.digests == ()
    assert main.carries("politics") and sports.carries("sports") and not sports.carries("politics")
    assert str(main.quiet) == "00:00-06:00" and sports.quiet is None
    t = s.file.telegram
    assert (t.channel_messages, t.channel_period_seconds, t.overall_messages, t.overall_period_seconds) == (20, 60, 25, 1)


@pytest.mark.parametrize(
    ("change", "key", "reason"),
    [
        (('quiet_hours = "00:00-06:00"', 'quiet_hours = "midnight to six"'), "channels.main.quiet_hours", "range of clock times"),
        (('quiet_hours = "00:00-06:00"', 'quiet_hours = "06:00-06:00"'), "channels.main.quiet_hours", "same time"),
        (('silent_hours = "22:00-07:00"', 'silent_hours = "24:00-07:00"'), "channels.main.silent_hours", "range of clock times"),
        (('digests = ["morning", ', 'digests = ["lunch", '), "channels.main.digests", "unknown edition"),
        (('digests = ["morning", ', 'digests = ["morning", "morning", '), "channels.main.digests", "more than once"),
        (('chat_id = "@newsarena_sports"', 'chat_id = "@NewsArena"'), "channels.sports.chat_id", "already channels.main"),
        (("channel_messages = 20", "channel_messages = 0"), "telegram.channel_messages", "greater than or equal to 1"),
        (("[telegram]\n", "[telegram]\nburst = 3\n"), "telegram.burst", "unknown key"),
    ],
)
def test_bad_channel_and_telegram_values_are_named(tmp_path: Path, change, key, reason):
    old, new = change
    assert old in SHIPPED
    path = tmp_path / "distributor.toml"
    path.write_text(SHIPPED.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert key in str(info.value) and reason in str(info.value)


def test_daily_ranges_over_midnight_and_within_a_day():
    night = parse_daily_range("23:00-07:00")
    assert night.contains(at(23, 30), KOLKATA) and night.contains(at(0, 0), KOLKATA)
    assert night.contains(at(6, 59), KOLKATA) and not night.contains(at(7, 0), KOLKATA)
    assert not night.contains(at(22, 59), KOLKATA)
    assert night.end_after(at(23, 30), KOLKATA) == datetime(2026, 11, 28, 7, 0, tzinfo=KOLKATA)
    assert night.end_after(at(2, 0), KOLKATA) == datetime(2026, 11, 27, 7, 0, tzinfo=KOLKATA)
    day = parse_daily_range(" 13:00 - 14:30 ")
    assert str(day) == "13:00-14:30" and day.contains(at(13, 0), KOLKATA) and not day.contains(at(14, 30), KOLKATA)
    assert parse_daily_range("") is None


def test_decorate_applies_silent_hours_and_the_preview_policy(settings):
    config = ChannelConfig(chat_id="@newsarena", silent_hours="22:00-07:00", disable_link_preview=True)
    post = BotCall("sendMessage", {"text": "x", "parse_mode": "HTML"})
    night = decorate(post, config, settings, at(23))
    assert night.params == {"text": "x", "parse_mode": "HTML", "disable_notification": True,
                            "link_preview_options": {"is_disabled": True}}
    assert "disable_notification" not in decorate(post, config, settings, at(12)).params
    # A preview choice the renderer made is kept; photos and edits never ring.
    chosen = BotCall("sendMessage", {"text": "x", "link_preview_options": {"url": "https://a.example/"}})
    assert decorate(chosen, config, settings, at(12)).params["link_preview_options"] == {"url": "https://a.example/"}
    edit = BotCall("editMessageCaption", {"message_id": 3, "caption": "c"})
    assert decorate(edit, config, settings, at(23)) == edit
    plain = ChannelConfig(chat_id="@newsarena")
    assert decorate(post, plain, settings, at(23)) is post


def test_fingerprint_kind_and_roundup_title():
    from distributor.articles import Article

    a = Article(key="k", url="https://x.example/a", title="T", section="nation", published_at=at(9))
    b = Article(key="k", url="https://x.example/a", title="T", section="nation", published_at=at(9), tags=("x",))
    assert fingerprint(a) == fingerprint(b)  # tags are not shown in a post
    assert fingerprint(a) != fingerprint(replace(a, title="T2"))
    assert fingerprint(a) != fingerprint(replace(a, image_url="https://x.example/a.jpg"))
    assert kind_of(BotCall("sendPhoto", {})) == "photo" and kind_of(BotCall("sendMessage", {})) == "text"
    assert roundup_title(ChannelConfig(chat_id="@newsarena", quiet_hours="23:00-07:00"), 6) == "6 new stories since 23:00"


def test_telegram_config_defaults_are_telegrams_limits():
    t = TelegramConfig()
    assert (t.channel_messages, t.channel_period_seconds) == (20, 60.0)
    assert (t.overall_messages, t.overall_period_seconds) == (25, 1.0)
    assert t.request_seconds == t.connect_timeout_seconds + t.write_timeout_seconds + t.read_timeout_seconds


# --- classifying errors -----------------------------------------------------------------------


def _caused(exc: Exception, cause: Exception) -> Exception:
    exc.__cause__ = cause
    return exc


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (RetryAfter(12), "retry_after"),
        (ChatMigrated(-1009), "migrated"),
        (Forbidden("Forbidden: bot was kicked from the channel chat"), "permanent"),
        (Forbidden("Forbidden: bot is not a member of the channel chat"), "permanent"),
        (BadRequest("Bad Request: chat not found"), "permanent"),
        (BadRequest("Bad Request: need administrator rights in the channel chat"), "permanent"),
        (BadRequest("Bad Request: not enough rights to send text messages to the chat"), "permanent"),
        (BadRequest("Bad Request: can't parse entities: Unsupported start tag \"x\" at byte offset 3"), "formatting"),
        (BadRequest("Bad Request: message is not modified: specified new message content"), "ok"),
        (BadRequest("Bad Request: message to edit not found"), "rejected"),
        (BadRequest("Bad Request: message is too long"), "rejected"),
        (InvalidToken("Unauthorized"), "unauthorized"),
        (_caused(TimedOut(), httpx.ReadTimeout("read")), "ambiguous"),
        (_caused(TimedOut(), httpx.WriteTimeout("write")), "ambiguous"),
        (_caused(TimedOut(), httpx.ConnectTimeout("connect")), "temporary"),
        (_caused(TimedOut("Pool timeout"), httpx.PoolTimeout("pool")), "temporary"),
        (_caused(NetworkError("httpx.ConnectError: refused"), httpx.ConnectError("refused")), "temporary"),
        (_caused(NetworkError("httpx.RemoteProtocolError: gone"), httpx.RemoteProtocolError("gone")), "ambiguous"),
        (NetworkError("Bad Gateway"), "temporary"),  # Telegram answered 502: nothing posted
    ],
)
def test_classify(error, outcome):
    result = classify(error)
    assert result.outcome == outcome
    if outcome == "retry_after":
        assert result.retry_after == 12.0
    if outcome == "migrated":
        assert result.new_chat_id == "-1009"
