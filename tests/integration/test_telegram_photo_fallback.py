"""A photo Telegram cannot fetch or use: the article goes out once, as text.

The fake Bot API server answers sendPhoto of chosen URLs with Telegram's own BadRequest
texts (tests/fakes/telegram_api.py PHOTO_REFUSALS); the real python-telegram-bot client
raises, `TelegramChannel` classifies, the ledger (SQLite and PostgreSQL) records the
refusal before the text post goes out. Retries, timeouts and an operator's resend never
send the photo again, nor the text twice.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from distributor.channels.telegram import PHOTO_REFUSED_400, TelegramChannel
from distributor.delivery import ledger
from distributor.delivery import telegram as tg
from distributor.render.telegram import BotCall
from distributor.settings import ChannelConfig
from distributor.store.models import ArticleRow, TelegramPostRow
from tests.fakes.telegram_api import PHOTO_REFUSALS, TOKEN
from tests.integration.test_telegram_delivery import (  # noqa: F401 (make is a fixture)
    MAIN,
    NOW,
    SPORTS,
    article,
    make,
    rows,
    save,
    sender_for,
)


def words(kind: str) -> str:
    """What Telegram said, as it reaches us (python-telegram-bot drops "Bad Request: "
    and capitalises), compared lowercased."""
    return PHOTO_REFUSALS[kind].removeprefix("Bad Request: ").lower()


def photo_url(key: str) -> str:
    return f"https://img.newsarenaindia.com/{key}.jpg"  # as article(image=True) makes it


@pytest.mark.parametrize("kind", list(PHOTO_REFUSALS))
def test_the_client_classifies_each_photo_refusal(fake_telegram, kind):
    fake_telegram.refuse_photo("https://img.example/x.jpg", kind)
    channel = TelegramChannel(TOKEN, base_url=fake_telegram.base_url)
    result = channel.call(SPORTS, BotCall("sendPhoto", {"photo": "https://img.example/x.jpg", "caption": "x"}))
    assert result.outcome == "photo_refused"
    assert words(kind) in result.description.lower()
    # The same call with a photo Telegram can fetch is posted.
    ok = channel.call(SPORTS, BotCall("sendPhoto", {"photo": "https://img.example/y.jpg", "caption": "x"}))
    assert ok.outcome == "ok"


def test_every_refusal_text_is_declared_once_as_data():
    for description in PHOTO_REFUSALS.values():
        lowered = description.lower()
        assert any(marker in lowered for marker in PHOTO_REFUSED_400), description
    assert len(set(PHOTO_REFUSED_400)) == len(PHOTO_REFUSED_400)


@pytest.mark.parametrize("kind", list(PHOTO_REFUSALS))
def test_a_refused_photo_is_posted_once_as_text(store, make, fake_telegram, kind):
    settings = make()
    sender = sender_for(settings)
    [key] = save(store, article("ph1", image=True))
    fake_telegram.refuse_photo(photo_url("ph1"), kind)

    report = tg.post_article(settings, store, key, "sports", now=NOW, sender=sender)

    assert report.status == "sent" and report.photo_refused
    assert words(kind) in report.note.lower()
    photo, text = fake_telegram.calls_to(chat_id=SPORTS)
    assert (photo.method, photo.status, text.method, text.status) == ("sendPhoto", 400, "sendMessage", 200)
    [message] = fake_telegram.messages(SPORTS)
    assert message.kind == "text" and "Headline ph1" in message.text
    assert text.params["reply_markup"] == photo.params["reply_markup"]  # same article, same button
    row = rows(store)[("sports", key)]
    # Both outcomes: the refused photo, and the text post that went out instead.
    assert words(kind) in row.photo_error.lower()
    assert (row.status, row.kind, row.message_ids) == ("sent", "text", [message.message_id])
    assert ledger.status_counts(store)["sports"]["photo_refused"] == 1
    assert [item["target"] for item in ledger.attention(store) if item["photo_error"]] == [key]

    # A redelivered task posts nothing more.
    assert tg.post_article(settings, store, key, "sports", now=NOW, sender=sender).status == "exists"
    assert len(fake_telegram.calls_to(chat_id=SPORTS)) == 2


def test_a_deferred_text_fallback_is_retried_as_text_only(store, make, fake_telegram):
    settings = make()
    sender = sender_for(settings)
    [key] = save(store, article("ph2", image=True))
    fake_telegram.refuse_photo(photo_url("ph2"), "fetch_failed")
    fake_telegram.fail_next("bad_gateway", chat_id=SPORTS, method="sendMessage")

    report = tg.post_article(settings, store, key, "sports", now=NOW, sender=sender)
    assert report.status == "deferred" and words("fetch_failed") in report.note.lower()
    row = rows(store)[("sports", key)]
    assert row.status == "pending" and words("fetch_failed") in row.photo_error.lower()
    assert fake_telegram.messages(SPORTS) == []

    # Meanwhile the image server came back: the photo would now work, but the ledger says
    # this post is a text post, and a text post it stays.
    fake_telegram.bad_photo_urls.clear()
    [later] = tg.retry_deferred(settings, store, now=NOW + timedelta(minutes=5), sender=sender)
    assert later.status == "sent" and later.photo_refused
    assert [(c.method, c.status) for c in fake_telegram.calls_to(chat_id=SPORTS)] == [
        ("sendPhoto", 400), ("sendMessage", 502), ("sendMessage", 200),
    ]
    [message] = fake_telegram.messages(SPORTS)
    assert message.kind == "text"
    assert rows(store)[("sports", key)].kind == "text"
    # And never again.
    assert tg.retry_deferred(settings, store, now=NOW + timedelta(hours=1), sender=sender) == []
    assert tg.post_article(settings, store, key, "sports", now=NOW, sender=sender).status == "exists"
    assert len(fake_telegram.calls_to(chat_id=SPORTS)) == 3


def test_a_text_fallback_that_times_out_is_unknown_and_a_resend_is_text(store, make, fake_telegram):
    settings = make()
    sender = sender_for(settings)
    [key] = save(store, article("ph3", image=True))
    fake_telegram.refuse_photo(photo_url("ph3"), "wrong_type")
    fake_telegram.fail_next("timeout", chat_id=SPORTS, method="sendMessage")
    try:
        report = tg.post_article(settings, store, key, "sports", now=NOW, sender=sender)
    finally:
        fake_telegram.release()
    assert report.status == "unknown"
    assert words("wrong_type") in report.note.lower()
    assert len(fake_telegram.messages(SPORTS)) == 1  # the text did arrive
    assert tg.retry_deferred(settings, store, now=NOW + timedelta(hours=1), sender=sender) == []
    assert tg.post_article(settings, store, key, "sports", now=NOW, sender=sender).status == "exists"

    # The operator looked, deleted the half-known post, and resends: text again, no photo.
    fake_telegram.bad_photo_urls.clear()
    resent = tg.post_article(settings, store, key, "sports", now=NOW, sender=sender, again=True)
    assert resent.status == "sent" and resent.photo_refused
    assert [c.method for c in fake_telegram.calls_to(chat_id=SPORTS)] == ["sendPhoto", "sendMessage", "sendMessage"]


def test_a_post_refused_for_another_reason_is_not_sent_as_text(store, make, fake_telegram):
    settings = make()
    [key] = save(store, article("ph4", image=True))
    fake_telegram.fail_next("chat_not_found", chat_id=SPORTS, method="sendPhoto",
                            description="Bad Request: message caption is too long")
    report = tg.post_article(settings, store, key, "sports", now=NOW, sender=sender_for(settings))
    assert report.status == "failed" and not report.photo_refused
    assert [c.method for c in fake_telegram.calls_to(chat_id=SPORTS)] == ["sendPhoto"]
    assert rows(store)[("sports", key)].photo_error == ""


def test_a_text_fallback_is_edited_as_text(store, make, fake_telegram):
    settings = make()
    sender = sender_for(settings)
    [key] = save(store, article("ph5", image=True))
    fake_telegram.refuse_photo(photo_url("ph5"), "not_an_image")
    assert tg.post_article(settings, store, key, "sports", now=NOW, sender=sender).status == "sent"
    save(store, article("ph5", image=True, title="Corrected: भारत ने सीरीज़ जीती"))
    reports = tg.update_posted_articles(settings, store, [key], now=NOW + timedelta(minutes=30), sender=sender)
    assert [(r.channel, r.status) for r in reports if r.channel == "sports"] == [("sports", "edited")]
    [edit] = fake_telegram.calls_to("editMessageText", SPORTS)
    assert edit.status == 200 and fake_telegram.calls_to("editMessageCaption") == []
    assert "Corrected" in fake_telegram.messages(SPORTS)[0].text


def test_a_worker_that_died_after_the_refusal_leaves_unknown_and_a_resend_is_text(store, make, fake_telegram):
    # The refusal was recorded, then the worker died around the text post: maybe posted.
    settings = make()
    [key] = save(store, article("ph6", image=True))
    with store.session() as session:
        article_id = session.scalar(select(ArticleRow.id).where(ArticleRow.key == key))
        session.add(TelegramPostRow(channel="sports", chat_id=SPORTS, article_id=article_id, status="sending",
                                    claimed_at=datetime.now(timezone.utc) - timedelta(hours=1),
                                    photo_error="Failed to get HTTP URL content"))
    sender = sender_for(settings)
    assert tg.post_article(settings, store, key, "sports", now=NOW, sender=sender).status == "exists"
    assert rows(store)[("sports", key)].status == "unknown" and fake_telegram.chat_calls == []
    resent = tg.post_article(settings, store, key, "sports", now=NOW, sender=sender, again=True)
    assert resent.status == "sent" and resent.photo_refused
    assert [c.method for c in fake_telegram.chat_calls] == ["sendMessage"]


def test_a_held_article_whose_photo_is_refused_goes_out_as_text_after_quiet_hours(store, make, fake_telegram):
    quiet = {"main": ChannelConfig(chat_id=MAIN, instant=True, quiet_hours="23:00-07:00",
                                   silent_hours="06:00-08:00", disable_link_preview=True)}
    settings = make(channels=quiet)
    sender = sender_for(settings)
    night = datetime(2026, 11, 27, 18, 0, tzinfo=timezone.utc)  # 23:30 in Kolkata
    [key] = save(store, article("ph7", section="nation", image=True, published_at=night - timedelta(minutes=5)))
    assert [r.status for r in tg.post_new_articles(settings, store, [key], now=night, sender=sender)] == ["held"]
    fake_telegram.refuse_photo(photo_url("ph7"), "dimensions")

    [report] = tg.flush_quiet_hours(settings, store, now=datetime(2026, 11, 28, 1, 30, tzinfo=timezone.utc), sender=sender)

    assert report.status == "sent" and report.photo_refused and report.target == key
    photo, text = fake_telegram.calls_to(chat_id=MAIN)
    assert (photo.method, photo.status, text.method, text.status) == ("sendPhoto", 400, "sendMessage", 200)
    # The fallback keeps the channel's policies: silent at 07:00, no link preview.
    assert text.params["disable_notification"] is True
    assert text.params["link_preview_options"] == {"is_disabled": True}
    assert rows(store)[("main", key)].kind == "text"
