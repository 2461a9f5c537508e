"""The fake Bot API server answers the real python-telegram-bot client as Telegram does.

Each test drives `telegram.Bot` over HTTP against the fake (fixture `fake_telegram`) and
checks both sides: the exception the client raises and what the fake recorded.
"""

from __future__ import annotations

import asyncio

import pytest
import telegram
from telegram.error import BadRequest, ChatMigrated, Forbidden, RetryAfter, TimedOut
from telegram.request import HTTPXRequest

from tests.fakes.telegram_api import TOKEN, FakeTelegram

CHANNEL = "@newsarena_test"


def run(fake: FakeTelegram, action, *, read_timeout: float = 5.0):
    """Run `await action(bot)` with a fresh Bot on a fresh event loop, as a Celery task would."""

    async def main():
        request = HTTPXRequest(read_timeout=read_timeout, connect_timeout=5.0)
        async with telegram.Bot(TOKEN, base_url=fake.base_url, request=request) as bot:
            return await action(bot)

    return asyncio.run(main())


def test_get_me_and_base_url_form(fake_telegram):
    me = run(fake_telegram, lambda bot: bot.get_me())
    assert me.username == "fake_news_bot"
    assert fake_telegram.base_url.endswith("/bot")
    assert [c.method for c in fake_telegram.calls] == ["getMe", "getMe"]  # one from `async with`


def test_valid_html_message_is_accepted_and_recorded(fake_telegram):
    text = '<b><a href="https://example.com/a?x=1&amp;y=2">Head &lt;line&gt;</a></b>\nनमस्ते 👋🏽'
    markup = telegram.InlineKeyboardMarkup(
        [[telegram.InlineKeyboardButton("Read more", url="https://example.com/a")]]
    )
    message = run(
        fake_telegram,
        lambda bot: bot.send_message(CHANNEL, text, parse_mode="HTML", reply_markup=markup),
    )
    assert message.message_id == 1
    assert message.text == "Head <line>\nनमस्ते 👋🏽"
    (call,) = fake_telegram.chat_calls
    assert (call.method, call.chat_id, call.status, call.message_id) == ("sendMessage", CHANNEL, 200, 1)
    assert call.params["text"] == text
    assert call.params["reply_markup"] == {
        "inline_keyboard": [[{"text": "Read more", "url": "https://example.com/a"}]]
    }
    stored = fake_telegram.messages(CHANNEL)[0]
    assert {"type": "text_link", "offset": 0, "length": 11, "url": "https://example.com/a?x=1&y=2"} in (
        stored.entities
    )


def test_message_ids_are_per_chat(fake_telegram):
    async def action(bot):
        ids = []
        for chat in (CHANNEL, CHANNEL, -1001234567890, CHANNEL):
            ids.append((await bot.send_message(chat, "hello")).message_id)
        return ids

    assert run(fake_telegram, action) == [1, 2, 1, 3]


def test_photo_with_caption_and_edits(fake_telegram):
    async def action(bot):
        photo = await bot.send_photo(
            CHANNEL, "https://example.com/p.jpg", caption="<i>cap</i>", parse_mode="HTML"
        )
        edited = await bot.edit_message_caption(
            CHANNEL, photo.message_id, caption="<i>new cap</i>", parse_mode="HTML"
        )
        with pytest.raises(BadRequest, match="(?i)message is not modified"):
            await bot.edit_message_caption(
                CHANNEL, photo.message_id, caption="<i>new cap</i>", parse_mode="HTML"
            )
        with pytest.raises(BadRequest, match="(?i)there is no text in the message to edit"):
            await bot.edit_message_text("x", CHANNEL, photo.message_id)
        text = await bot.send_message(CHANNEL, "first")
        await bot.edit_message_text("second", CHANNEL, text.message_id)
        await bot.delete_message(CHANNEL, text.message_id)
        with pytest.raises(BadRequest, match="(?i)message to edit not found"):
            await bot.edit_message_text("third", CHANNEL, text.message_id)
        return edited

    edited = run(fake_telegram, action)
    assert edited.caption == "new cap"
    assert [m.text for m in fake_telegram.messages(CHANNEL)] == ["new cap"]


@pytest.mark.parametrize(
    ("html", "problem"),
    [
        ("<b><i>x</b></i>", 'Unmatched end tag at byte offset 7, expected "</i>", found "</b>"'),
        ("<b>x", 'Can\'t find end tag corresponding to start tag "b"'),
        ("x</b>", "Unexpected end tag at byte offset 1"),
        ("<script>x</script>", 'Unsupported start tag "script" at byte offset 0'),
        ("a < b", 'Unsupported start tag "" at byte offset 2'),
        ("Q&A", 'unescaped "&" at byte offset 1 (strict fake)'),
        ("a&nbsp;b", 'unknown entity "&nbsp;" at byte offset 1 (strict fake)'),
        ("a > b", 'unescaped ">" at byte offset 2 (strict fake)'),
        ('<span class="x">s</span>', 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
        (
            '<a href="javascript:alert(1)">x</a>',
            'unsupported URL "javascript:alert(1)" in tag "a" at byte offset 0 (strict fake)',
        ),
        ("<a href=\"https://a.b\"><a href=\"https://c.d\">x</a></a>", "nested links at byte offset 22 (strict fake)"),
        ("<code><b>x</b></code>", 'tag "b" inside code or pre at byte offset 6 (strict fake)'),
    ],
)
def test_bad_html_is_refused_with_the_parse_error(fake_telegram, html, problem):
    with pytest.raises(BadRequest) as info:
        run(fake_telegram, lambda bot: bot.send_message(CHANNEL, html, parse_mode="HTML"))
    # python-telegram-bot drops "Bad Request: " and lower-cases the rest after the first letter
    assert str(info.value).lower() == f"can't parse entities: {problem}".lower()
    (call,) = fake_telegram.chat_calls
    assert call.status == 400 and call.description.startswith("Bad Request: can't parse entities: ")
    assert fake_telegram.delivered == []


def test_allowed_tags_pass(fake_telegram):
    html = (
        "<b>b</b><strong>s</strong><i>i</i><em>e</em><u>u</u><ins>n</ins><s>s</s><strike>k</strike>"
        "<del>d</del><tg-spoiler>t</tg-spoiler><span class=\"tg-spoiler\">p</span>"
        '<a href="https://x.org">a</a><code>c</code><pre><code class="language-python">x = 1</code></pre>'
        "<blockquote>q</blockquote><blockquote expandable>e</blockquote><b><i><u>nest</u></i></b>"
        "&#128240;&#x1F4F0;&quot;"
    )
    message = run(fake_telegram, lambda bot: bot.send_message(CHANNEL, html, parse_mode="HTML"))
    assert message.text.endswith("nest📰📰\"")
    pre = [e for e in fake_telegram.messages(CHANNEL)[0].entities if e["type"] == "pre"]
    assert pre == [{"type": "pre", "offset": pre[0]["offset"], "length": 5, "language": "python"}]


def test_length_limits_in_utf16_after_parsing(fake_telegram):
    emoji = "📰"  # two UTF-16 code units
    exact = "<b>" + emoji * 2048 + "</b>"  # 4096 units once the tags are gone
    over = "&amp;" + emoji * 2048  # 4097 units: the entity counts as one character

    async def action(bot):
        ok = await bot.send_message(CHANNEL, exact, parse_mode="HTML")
        with pytest.raises(BadRequest, match="Message is too long"):
            await bot.send_message(CHANNEL, over, parse_mode="HTML")
        await bot.send_photo(CHANNEL, "https://example.com/p.jpg", caption="क" * 1024)
        with pytest.raises(BadRequest, match="Message caption is too long"):
            await bot.send_photo(CHANNEL, "https://example.com/p.jpg", caption="क" * 1025)
        return ok

    run(fake_telegram, action)
    assert [c.description for c in fake_telegram.chat_calls] == [
        None,
        "Bad Request: message is too long",
        None,
        "Bad Request: message caption is too long",
    ]


def test_empty_text_is_refused(fake_telegram):
    with pytest.raises(BadRequest, match="Message text is empty"):
        run(fake_telegram, lambda bot: bot.send_message(CHANNEL, "<b> </b>", parse_mode="HTML"))


def test_retry_after(fake_telegram):
    fake_telegram.fail_next("retry_after", retry_after=3, chat_id=CHANNEL)

    async def action(bot):
        with pytest.raises(RetryAfter) as info:
            await bot.send_message(CHANNEL, "one")
        other = await bot.send_message("@other", "not limited")
        again = await bot.send_message(CHANNEL, "one")  # the rule was for one call only
        return info.value, other, again

    error, other, again = run(fake_telegram, action)
    assert error.retry_after in (3, 3.0) or error.retry_after.total_seconds() == 3
    assert (other.message_id, again.message_id) == (1, 1)
    first = fake_telegram.chat_calls[0]
    assert (first.status, first.description) == (429, "Too Many Requests: retry after 3")


@pytest.mark.parametrize(
    ("kind", "exception", "description"),
    [
        ("kicked", Forbidden, "Forbidden: bot was kicked from the channel chat"),
        ("not_member", Forbidden, "Forbidden: bot is not a member of the channel chat"),
        ("need_admin", BadRequest, "Bad Request: need administrator rights in the channel chat"),
        ("chat_not_found", BadRequest, "Bad Request: chat not found"),
    ],
)
def test_permanent_errors_per_chat(fake_telegram, kind, exception, description):
    fake_telegram.fail_chat(CHANNEL, kind)

    async def action(bot):
        for _ in range(2):  # it stays broken until reset
            with pytest.raises(exception) as info:
                await bot.send_message(CHANNEL, "x")
        await bot.send_message("@fine", "other channels go on")
        return info.value

    error = run(fake_telegram, action)
    assert description.split(": ", 1)[1].lower() in str(error).lower()
    assert [(c.chat_id, c.status) for c in fake_telegram.chat_calls] == [
        (CHANNEL, 400 if exception is BadRequest else 403),
    ] * 2 + [("@fine", 200)]
    assert fake_telegram.chat_calls[0].description == description


def test_chat_migrated(fake_telegram):
    fake_telegram.fail_chat(-1001, "migrated", migrate_to_chat_id=-1009999)

    async def action(bot):
        with pytest.raises(ChatMigrated) as info:
            await bot.send_message(-1001, "x")
        with pytest.raises(ChatMigrated):
            await bot.send_message(-1001, "x")
        sent = await bot.send_message(info.value.new_chat_id, "x")
        return info.value, sent

    error, sent = run(fake_telegram, action)
    assert error.new_chat_id == -1009999
    assert sent.chat.id == -1009999


def test_timeout_after_delivery_is_ambiguous(fake_telegram):
    fake_telegram.fail_next("timeout", method="sendMessage")
    with pytest.raises(TimedOut):
        run(fake_telegram, lambda bot: bot.send_message(CHANNEL, "maybe"), read_timeout=0.3)
    fake_telegram.release()
    (call,) = fake_telegram.chat_calls
    assert call.outcome == "timeout" and call.message_id == 1
    assert [m.text for m in fake_telegram.messages(CHANNEL)] == ["maybe"]
    assert fake_telegram.delivered == [call]


def test_fail_next_counts_calls(fake_telegram):
    fake_telegram.fail_next("bad_gateway", count=2)

    async def action(bot):
        outcomes = []
        for _ in range(3):
            try:
                await bot.send_message(CHANNEL, "x")
                outcomes.append("ok")
            except telegram.error.NetworkError:
                outcomes.append("network")
        return outcomes

    assert run(fake_telegram, action) == ["network", "network", "ok"]


def test_flood_control_when_enforced(fake_telegram):
    fake_telegram.enforce_limits(per_chat=(2, 60.0), overall=None)

    async def action(bot):
        await bot.send_message(CHANNEL, "1")
        await bot.send_message(CHANNEL, "2")
        with pytest.raises(RetryAfter):
            await bot.send_message(CHANNEL, "3")
        await bot.send_message("@other", "elsewhere")

    run(fake_telegram, action)
    assert [c.status for c in fake_telegram.chat_calls] == [200, 200, 429, 200]


def test_json_body_and_bad_button_url(fake_telegram):
    import httpx

    url = f"{fake_telegram.base_url}{TOKEN}/sendMessage"
    ok = httpx.post(url, json={"chat_id": CHANNEL, "text": "<b>json</b>", "parse_mode": "HTML"})
    assert ok.json()["result"]["text"] == "json"
    bad = httpx.post(
        url,
        json={
            "chat_id": CHANNEL,
            "text": "x",
            "reply_markup": {"inline_keyboard": [[{"text": "Read", "url": "javascript:x"}]]},
        },
    )
    assert bad.status_code == 400
    assert bad.json() == {"ok": False, "error_code": 400, "description": "Bad Request: BUTTON_URL_INVALID"}
    wrong_token = httpx.post(f"{fake_telegram.base_url}1:nope/getMe")
    assert wrong_token.status_code == 401
