"""Rendered posts go through the real python-telegram-bot client to the fake Bot API
server, which parses them as Telegram does and accepts every one."""

from __future__ import annotations

import asyncio

import telegram
from telegram.request import HTTPXRequest

from distributor.render.telegram import (
    BotCall,
    article_edit,
    article_post,
    edition_posts,
    plain_text_fallback,
    roundup_post,
)
from tests.fakes.telegram_api import TOKEN
from tests.unit.test_render_telegram import HOSTILE, _many, article, edition

CHANNEL = "@newsarena_live"


async def send(bot: telegram.Bot, chat_id: str, call: BotCall) -> telegram.Message:
    """One BotCall through the client's typed methods (JSON params -> PTB objects)."""
    params = dict(call.params)
    if "reply_markup" in params:
        params["reply_markup"] = telegram.InlineKeyboardMarkup.de_json(params["reply_markup"], bot)
    if "link_preview_options" in params:
        params["link_preview_options"] = telegram.LinkPreviewOptions(**params["link_preview_options"])
    method = {
        "sendMessage": bot.send_message,
        "sendPhoto": bot.send_photo,
        "editMessageText": bot.edit_message_text,
        "editMessageCaption": bot.edit_message_caption,
    }[call.method]
    return await method(chat_id=chat_id, **params)


def send_all(fake, calls: list[BotCall]) -> list[telegram.Message]:
    """Send the calls in order with one Bot on one event loop; return the messages."""

    async def main():
        async with telegram.Bot(TOKEN, base_url=fake.base_url, request=HTTPXRequest()) as bot:
            return [await send(bot, CHANNEL, call) for call in calls]

    return asyncio.run(main())


def test_article_posts_edits_and_fallback_are_accepted(fake_telegram, settings):
    photo = article_post(settings, article("p1"))
    text = article_post(settings, article("t1", image_url=None, title=HOSTILE, standfirst="<b>&amp;</b>"))
    long_caption = article_post(settings, article("c1", standfirst="लंबा 📰 " * 400))
    results = send_all(fake_telegram, [photo, text, long_caption])
    assert [r.message_id for r in results] == [1, 2, 3]
    assert [c.method for c in fake_telegram.chat_calls] == ["sendPhoto", "sendMessage", "sendPhoto"]
    assert all(c.status == 200 for c in fake_telegram.chat_calls)
    assert results[1].text.startswith(HOSTILE + "\n\n<b>&amp;</b>")
    link = {"type": "text_link", "offset": 0, "length": len(HOSTILE), "url": "https://www.newsarenaindia.com/international/t1"}
    assert link in fake_telegram.messages(CHANNEL)[1].entities
    assert fake_telegram.chat_calls[1].params["reply_markup"] == text.params["reply_markup"]

    edits = [
        article_edit(settings, article("p1", title="Corrected headline"), kind="photo", message_id=1),
        article_edit(settings, article("t1", image_url=None, title="Corrected"), kind="text", message_id=2),
        plain_text_fallback(article_post(settings, article("f1", title=HOSTILE, image_url=None))),
    ]
    send_all(fake_telegram, edits)
    assert all(c.status == 200 for c in fake_telegram.chat_calls)
    messages = fake_telegram.messages(CHANNEL)
    assert messages[0].text.startswith("Corrected headline\n")
    assert messages[1].text.startswith("Corrected\n")
    assert messages[3].entities == [] and messages[3].text.startswith(HOSTILE)


def test_three_part_devanagari_emoji_digest_is_accepted(fake_telegram, settings):
    trending = _many(5, "ट्रेंडिंग 🔥 <hot> & \"new\"", "sports")
    nation = _many(60, "राष्ट्र 🇮🇳 समाचार 👨\u200d👩\u200d👧 लंबा शीर्षक " * 2, "nation")
    sports = _many(60, "खेल ⚽ क्रिकेट 👋🏽 " * 3, "sports")
    calls = edition_posts(
        settings, edition(trending, [("nation", "Nation", nation), ("sports", "Sports", sports)], omitted=3)
    )
    assert [(c.part, c.parts) for c in calls] == [(1, 3), (2, 3), (3, 3)]
    results = send_all(fake_telegram, calls)
    assert [c.status for c in fake_telegram.chat_calls] == [200, 200, 200]
    assert [r.message_id for r in results] == [1, 2, 3]
    shown = "\n".join(r.text for r in results)
    for item in trending + nation + sports:
        assert shown.count(item.title.strip()) == 1


def test_roundup_and_limits_at_the_edge_are_accepted(fake_telegram, settings):
    calls = roundup_post(settings, _many(150, "रात की खबर 🌙 " * 3), title="While you were away")
    calls += edition_posts(
        settings, edition(groups=[("nation", "Nation", [article("huge", title="बहुत लंबा 📰 " * 600)])])
    )
    send_all(fake_telegram, calls)
    assert len(calls) >= 3
    assert all(c.status == 200 for c in fake_telegram.chat_calls)
