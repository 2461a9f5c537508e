"""Telegram rendering: Telegram's HTML subset, lengths in UTF-16 units, splitting, escaping.

Every rendered text is parsed with the same checker the fake Bot API server uses
(tests/fakes/telegram_html.py, written independently of the renderer), so "valid" here
means "the fake server, and Telegram, accept it".
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from dataclasses import replace

import pytest

from distributor.articles import Article, Section
from distributor.editions import Edition, SectionGroup, Window
from distributor.render import telegram as tg
from distributor.render.telegram import (
    LIMITS,
    BotCall,
    TelegramLimits,
    article_edit,
    article_post,
    edition_posts,
    plain_text_fallback,
    roundup_post,
    shorten,
    utf16_len,
    visible_text,
)
from tests.fakes.telegram_html import check_html, parse_html

WHEN = datetime(2025, 7, 4, 6, 17, tzinfo=timezone.utc)
WINDOW = Window(WHEN - timedelta(hours=12), WHEN)
HOSTILE = '</b><script>x</script> & <a href="javascript:x">'
DEVANAGARI = "क"  # one UTF-16 unit
EMOJI = "📰"  # two UTF-16 units


def article(key: str = "a1", **changes) -> Article:
    """The seed article (International, Moscow, 2 min read), with changes."""
    fields = dict(
        key=key,
        url=f"https://www.newsarenaindia.com/international/{key}",
        title="Russia becomes first country to officially recognise Taliban rule",
        section="international",
        published_at=WHEN,
        standfirst=(
            "Russia has become the first country to officially recognise Afghanistan’s "
            "Taliban-led government, a move seen as both strategic and ideological amid "
            "Moscow’s growing confrontation with the West."
        ),
        byline="News Arena Network",
        dateline="Moscow",
        read_minutes=2,
        image_url="https://www.newsarenaindia.com/images/taliban.jpg",
    )
    fields.update(changes)
    return Article(**fields)


def edition(trending=(), groups=(), omitted: int = 0) -> Edition:
    return Edition(
        name="morning",
        label="Morning digest",
        window=WINDOW,
        trending=tuple(trending),
        groups=tuple(SectionGroup(Section(slug, label, i), tuple(items)) for i, (slug, label, items) in enumerate(groups)),
        omitted=omitted,
    )


def body(call: BotCall) -> str:
    return call.params.get("text", call.params.get("caption"))


def telegram_length(html: str) -> int:
    """Length as the fake server (Telegram) counts it, from its own parser."""
    return parse_html(html).length


def assert_valid(call: BotCall, limit: int) -> None:
    html = body(call)
    assert check_html(html) == [], html
    assert telegram_length(html) <= limit
    # our counting agrees with the server's
    assert utf16_len(visible_text(html)) == telegram_length(html)


# ---------------------------------------------------------------------------- counting


@pytest.mark.parametrize(
    ("text", "units"),
    [
        ("", 0),
        ("News Arena", 10),
        ("नमस्ते", 6),  # Devanagari: BMP, one unit per code point (marks included)
        ("क्षत्रिय", 8),
        ("📰", 2),  # outside the BMP: a surrogate pair
        ("👋🏽", 4),  # emoji + skin tone modifier
        ("👨\u200d👩\u200d👧", 8),  # ZWJ family: 3 emoji x 2 + 2 joiners
        ("🇮🇳", 4),  # flag: two regional indicators
        ("é", 1),
        ("e\u0301", 2),  # decomposed: two code points
    ],
)
def test_utf16_len(text, units):
    assert utf16_len(text) == units


def test_visible_text_removes_tags_then_decodes_references():
    assert visible_text('<b>A &amp; B</b> <a href="https://x.org/?a=1&amp;b=2">&lt;i&gt;</a>') == "A & B <i>"
    assert visible_text("&amp;lt; &#128240; &#x1F4F0; &quot;") == '&lt; 📰 📰 "'
    assert visible_text("&nbsp;") == "&nbsp;"  # Telegram shows unknown names literally


# ---------------------------------------------------------------------------- article posts


def test_article_post_is_a_photo_with_everything(settings):
    call = article_post(settings, article())
    assert call.method == "sendPhoto"
    assert list(call.params) == ["photo", "caption", "parse_mode", "reply_markup"]
    assert call.params["photo"] == "https://www.newsarenaindia.com/images/taliban.jpg"
    assert call.params["parse_mode"] == "HTML"
    assert call.params["caption"] == (
        '<b><a href="https://www.newsarenaindia.com/international/a1">'
        "Russia becomes first country to officially recognise Taliban rule</a></b>\n"
        "\n"
        "Russia has become the first country to officially recognise Afghanistan’s Taliban-led "
        "government, a move seen as both strategic and ideological amid Moscow’s growing "
        "confrontation with the West.\n"
        "\n"
        "<i>News Arena Network · Moscow · 2 min read</i>\n"
        "#International"
    )
    assert call.params["reply_markup"] == {
        "inline_keyboard": [[{"text": "Read more", "url": "https://www.newsarenaindia.com/international/a1"}]]
    }
    assert (call.part, call.parts) == (1, 1)
    assert_valid(call, LIMITS.caption_length)


def test_article_without_image_is_a_text_post_with_preview_policy(settings):
    call = article_post(settings, article(image_url=None), link_url="https://t.example/c/abc")
    assert call.method == "sendMessage"
    assert list(call.params) == ["text", "parse_mode", "link_preview_options", "reply_markup"]
    assert call.params["link_preview_options"] == {"url": "https://t.example/c/abc"}
    assert '<a href="https://t.example/c/abc">' in call.params["text"]
    assert call.params["reply_markup"]["inline_keyboard"][0][0]["url"] == "https://t.example/c/abc"
    quiet = article_post(settings, article(image_url=None), disable_preview=True)
    assert quiet.params["link_preview_options"] == {"is_disabled": True}
    assert_valid(call, LIMITS.message_length)


def test_section_hashtag_drops_spaces_and_updated_shows(settings):
    assert tg.hashtag("Sports & Games") == "#SportsGames"
    assert tg.hashtag("States") == "#States"
    call = article_post(settings, article(section="economy", version=2, image_url=None))
    assert "\n#Economy" in call.params["text"]
    assert "<i>Updated · News Arena Network · Moscow · 2 min read</i>" in call.params["text"]


def _caption_with_standfirst(settings, standfirst: str) -> BotCall:
    return article_post(settings, article(standfirst=standfirst))


def _standfirst_budget(settings) -> int:
    """Units left for the standfirst in a 1024 caption (measured, not assumed)."""
    with_one = telegram_length(body(_caption_with_standfirst(settings, DEVANAGARI)))
    return LIMITS.caption_length - (with_one - 1)


def test_caption_at_1024_is_kept_whole_and_1025_is_shortened(settings):
    room = _standfirst_budget(settings)
    exact = _caption_with_standfirst(settings, DEVANAGARI * room)
    assert exact.method == "sendPhoto"
    assert telegram_length(exact.params["caption"]) == 1024
    assert DEVANAGARI * room in exact.params["caption"]

    over = _caption_with_standfirst(settings, DEVANAGARI * (room + 1))
    assert over.method == "sendPhoto"  # still a photo: the standfirst gave way
    assert telegram_length(over.params["caption"]) <= 1024
    assert "…" in over.params["caption"]
    assert_valid(over, LIMITS.caption_length)


def test_caption_with_emoji_counts_two_units_each(settings):
    room = _standfirst_budget(settings)
    emojis = EMOJI * (room // 2) + DEVANAGARI * (room % 2)
    exact = _caption_with_standfirst(settings, emojis)
    assert telegram_length(exact.params["caption"]) == 1024
    assert emojis in exact.params["caption"]
    # one more emoji would be 1025 or 1026 units counted like Telegram, though only
    # room/2 + 1 code points: the standfirst is shortened, never split inside the pair
    longer = _caption_with_standfirst(settings, EMOJI * (room // 2 + 1))
    assert telegram_length(longer.params["caption"]) <= 1024
    assert "\ud83d" not in longer.params["caption"]
    assert_valid(longer, LIMITS.caption_length)


def test_long_standfirst_is_cut_at_a_word_boundary(settings):
    standfirst = " ".join(["Moscow’s growing confrontation with the West"] * 60)
    call = _caption_with_standfirst(settings, standfirst)
    assert call.method == "sendPhoto"
    shortened = call.params["caption"].split("\n\n")[1]
    assert shortened.endswith("…")
    assert standfirst.startswith(shortened[:-1])
    assert standfirst[len(shortened) - 1] == " "  # the cut fell on a space
    assert_valid(call, LIMITS.caption_length)


@pytest.mark.parametrize(("width", "height", "method"), [
    (None, None, "sendPhoto"),  # not declared: tried, the text fallback covers a refusal
    (1200, 675, "sendPhoto"),
    (5000, 5000, "sendPhoto"),  # 10,000 together: the most Telegram takes
    (8000, 4500, "sendMessage"),  # a full-resolution original: Telegram refuses it
    (2100, 100, "sendMessage"),  # thinner than 1:20
    (2000, 100, "sendPhoto"),
])
def test_a_photo_declared_beyond_telegrams_dimensions_goes_out_as_text(settings, width, height, method):
    call = article_post(settings, replace(article(), image_width=width, image_height=height))
    assert call.method == method
    if method == "sendMessage":
        assert call == article_post(settings, replace(article(), image_url=None))


def test_photo_falls_back_to_text_when_even_the_minimal_caption_is_too_long(settings):
    title = "शीर्षक " * 200  # 1400 units: no caption can hold it
    call = article_post(settings, article(title=title))
    assert call.method == "sendMessage"
    assert title.strip() in call.params["text"]
    assert_valid(call, LIMITS.message_length)


def test_huge_text_post_is_shortened_not_refused(settings):
    call = article_post(settings, article(image_url=None, standfirst="शब्द " * 2000, title="टाइटल " * 900))
    assert_valid(call, LIMITS.message_length)


def test_hostile_title_and_url_are_escaped(settings):
    hostile = article(
        title=HOSTILE,
        standfirst="S&P <500> \"quoted\" & 'single'",
        byline="<i>Editor</i>",
        dateline="A&B",
        url='https://x.org/a?b=1&c="2"<3>',
        image_url=None,
    )
    call = article_post(settings, hostile)
    html = call.params["text"]
    assert_valid(call, LIMITS.message_length)
    assert "<script" not in html and "javascript" not in html.split(">", 2)[1]
    text = visible_text(html)
    assert HOSTILE in text
    assert "S&P <500> \"quoted\" & 'single'" in text
    assert "<i>Editor</i> · A&B" in text
    href = re.search(r'<a href="([^"]*)">', html).group(1)
    assert href == "https://x.org/a?b=1&amp;c=%222%22%3C3%3E"


def test_link_href():
    assert tg.link_href("https://x.org/a b?q=\"<\">&r=1%20") == "https://x.org/a%20b?q=%22%3C%22%3E&r=1%20"
    assert tg.link_href("https://हिंदी.example/समाचार") == "https://xn--i1b6e8byah.example/%E0%A4%B8%E0%A4%AE%E0%A4%BE%E0%A4%9A%E0%A4%BE%E0%A4%B0"
    assert tg.link_href("javascript:alert(1)") is None
    assert tg.link_href("ftp://x.org/") is None
    assert tg.link_href("") is None


def test_javascript_links_are_dropped(settings):
    call = article_post(settings, article(url="javascript:alert(1)", image_url="javascript:x"))
    assert call.method == "sendMessage"  # an image URL Telegram could not fetch is no photo
    assert "<a " not in call.params["text"]
    assert "reply_markup" not in call.params
    assert call.params["link_preview_options"] == {"is_disabled": True}
    assert_valid(call, LIMITS.message_length)


def test_article_edit_text_and_caption(settings):
    text = article_edit(settings, article(image_url=None, title="Corrected"), kind="text", message_id=7)
    assert text.method == "editMessageText"
    assert list(text.params) == ["message_id", "text", "parse_mode", "link_preview_options", "reply_markup"]
    assert text.params["message_id"] == 7 and "Corrected" in text.params["text"]
    photo = article_edit(settings, article(title="न" * 1500), kind="photo", message_id=8)
    assert photo.method == "editMessageCaption"
    assert list(photo.params) == ["message_id", "caption", "parse_mode", "reply_markup"]
    # a posted photo stays a photo: even the title gives way to fit 1024
    assert_valid(photo, LIMITS.caption_length)
    assert "…" in photo.params["caption"]
    with pytest.raises(ValueError):
        article_edit(settings, article(), kind="video", message_id=1)


def test_plain_text_fallback_keeps_everything_but_the_formatting(settings):
    call = article_post(settings, article(title=HOSTILE))
    plain = plain_text_fallback(call)
    assert plain.method == call.method
    assert "parse_mode" not in plain.params
    assert plain.params["caption"] == visible_text(call.params["caption"])
    assert HOSTILE in plain.params["caption"]
    assert plain.params["photo"] == call.params["photo"]
    assert plain.params["reply_markup"] == call.params["reply_markup"]
    assert utf16_len(plain.params["caption"]) == telegram_length(call.params["caption"])


def test_rendering_is_deterministic(settings):
    assert article_post(settings, article()) == article_post(settings, article())
    one = edition_posts(settings, edition([article("t")], [("sports", "Sports", [article("s")])]))
    two = edition_posts(settings, edition([article("t")], [("sports", "Sports", [article("s")])]))
    assert [c.as_dict() for c in one] == [c.as_dict() for c in two]


# ---------------------------------------------------------------------------- shortening


def test_shorten_respects_clusters():
    assert shorten("abc def", 100) == "abc def"
    assert shorten("👋🏽👋🏽👋🏽", 5) == "👋🏽…"
    assert shorten("👋🏽👋🏽👋🏽", 7) == "👋🏽…"  # never a hand without its skin tone
    assert shorten("👨\u200d👩\u200d👧 x", 9) == "👨\u200d👩\u200d👧…"
    assert shorten("👨\u200d👩\u200d👧", 7) == ""  # a family is never shown in part
    cut = shorten("नमस्ते दुनिया", 4)
    assert cut.endswith("…") and utf16_len(cut) <= 4
    assert "नमस्ते".startswith(cut[:-1]) and cut[:-1] in ("न", "नम", "नमस्ते")  # whole syllables only
    assert shorten("x", 0) == ""


# ---------------------------------------------------------------------------- editions


def test_edition_post_layout(settings):
    calls = edition_posts(
        settings,
        edition(
            trending=[article("t1", title="Hot & new", section="sports")],
            groups=[
                ("international", "International", [article("i1", title="Moscow <move>")]),
                ("sports", "Sports", [article("s1", title="Win", version=2), article("s2", title="Draw")]),
            ],
            omitted=4,
        ),
    )
    assert len(calls) == 1
    (call,) = calls
    assert call.method == "sendMessage"
    assert call.params["link_preview_options"] == {"is_disabled": True}
    base = "https://www.newsarenaindia.com"
    assert call.params["text"] == (
        "<b>News Arena · Morning digest</b>\n"
        "<i>Friday, 4 July 2025</i>\n"
        "\n"
        "<b>Trending</b>\n"
        f'• <a href="{base}/international/t1">Hot &amp; new</a> · <i>Sports</i>\n'
        "\n"
        "<b>International</b>\n"
        f'• <a href="{base}/international/i1">Moscow &lt;move&gt;</a>\n'
        "\n"
        "<b>Sports</b>\n"
        f'• <i>Updated:</i> <a href="{base}/international/s1">Win</a>\n'
        f'• <a href="{base}/international/s2">Draw</a>\n'
        "\n"
        f'<a href="{base}/">+ 4 more on News Arena</a>'
    )
    assert_valid(call, LIMITS.message_length)


def test_empty_edition_posts_nothing(settings):
    assert edition_posts(settings, edition()) == []
    assert roundup_post(settings, [], title="Overnight") == []


def test_edition_date_is_in_the_site_timezone(settings):
    late = Edition("evening", "Evening", Window(WHEN, datetime(2025, 7, 4, 19, 0, tzinfo=timezone.utc)), (article(),), ())
    # 19:00 UTC is 00:30 on the 5th in Asia/Kolkata
    assert "<i>Saturday, 5 July 2025</i>" in edition_posts(settings, late)[0].params["text"]


def _many(count: int, title: str, section: str = "nation") -> list[Article]:
    return [article(f"{section}-{i:03d}", title=f"{title} {i:03d}", section=section) for i in range(count)]


def _exact_edition(settings, target: int) -> tuple[Edition, int]:
    """An edition whose single-part post is exactly `target` units (last title padded)."""
    items = _many(30, "समाचार 📰 खबर")
    probe = edition(groups=[("nation", "Nation", items)])
    big = TelegramLimits(message_length=10**6)
    length = telegram_length(edition_posts(settings, probe, limits=big)[0].params["text"])
    pad = target - length
    assert pad > 0
    items[-1] = article(items[-1].key, title=items[-1].title + DEVANAGARI * pad, section="nation")
    return edition(groups=[("nation", "Nation", items)]), pad


def test_split_exactly_at_the_limit(settings):
    exact, _pad = _exact_edition(settings, 4096)
    calls = edition_posts(settings, exact)
    assert len(calls) == 1
    assert telegram_length(calls[0].params["text"]) == 4096
    assert "(1/" not in calls[0].params["text"]

    items = list(exact.groups[0].articles)
    items[-1] = article(items[-1].key, title=items[-1].title + DEVANAGARI, section="nation")
    calls = edition_posts(settings, edition(groups=[("nation", "Nation", items)]))
    assert [(c.part, c.parts) for c in calls] == [(1, 2), (2, 2)]
    assert calls[0].params["text"].startswith("<b>News Arena · Morning digest</b> (1/2)\n")
    assert calls[1].params["text"].startswith("<b>News Arena · Morning digest</b> (2/2)\n")
    for call in calls:
        assert_valid(call, 4096)


def test_split_with_emoji_counts_surrogate_pairs(settings):
    exact, _pad = _exact_edition(settings, 4096)
    items = list(exact.groups[0].articles)
    # swap one Devanagari unit for an emoji: one more code point's worth of units (2 vs 1)
    items[-1] = article(items[-1].key, title=items[-1].title[:-1] + EMOJI, section="nation")
    calls = edition_posts(settings, edition(groups=[("nation", "Nation", items)]))
    assert len(calls) == 2  # 4097 units although the code point count did not change
    for call in calls:
        assert_valid(call, 4096)


def test_split_never_breaks_an_article_and_keeps_order(settings):
    trending = _many(5, "ट्रेंडिंग 🔥 <hot> & \"new\"", "sports")
    nation = _many(60, "राष्ट्र 🇮🇳 समाचार 👨\u200d👩\u200d👧 लंबा शीर्षक " * 2, "nation")
    sports = _many(60, "खेल ⚽ क्रिकेट 👋🏽 " * 3, "sports-x")
    calls = edition_posts(
        settings,
        edition(trending, [("nation", "Nation", nation), ("sports", "Sports", sports)], omitted=9),
    )
    assert len(calls) >= 3
    texts = [c.params["text"] for c in calls]
    for index, call in enumerate(calls, start=1):
        assert (call.part, call.parts) == (index, len(calls))
        assert call.params["text"].startswith(f"<b>News Arena · Morning digest</b> ({index}/{len(calls)})\n")
        assert_valid(call, 4096)
    # every article line appears exactly once, whole, in reading order
    lines = [line for text in texts for line in visible_text(text).splitlines() if line.startswith("• ")]
    expected = [a.title.strip() for a in trending + nation + sports]
    assert [line[2:].split(" · ")[0] for line in lines] == expected
    assert texts[-1].endswith("+ 9 more on News Arena</a>")
    # a part that starts inside a section repeats its heading
    continued = [t for t in texts[1:] if "<i>(continued)</i>" in t.split("\n")[3]]
    assert continued


def test_part_counter_width_is_in_the_budget(settings):
    small = TelegramLimits(message_length=150)
    calls = edition_posts(settings, edition(groups=[("nation", "Nation", _many(80, "हिन्दी 📰"))]), limits=small)
    assert len(calls) >= 10  # two-digit counters are longer than one-digit ones
    for index, call in enumerate(calls, start=1):
        assert f"({index}/{len(calls)})" in call.params["text"]
        assert_valid(call, 150)


def test_a_line_longer_than_a_part_is_shortened_with_an_ellipsis(settings):
    huge = article("huge", title="बहुत लंबा शीर्षक 📰 " * 400, section="nation")
    calls = edition_posts(settings, edition(groups=[("nation", "Nation", [article("n1"), huge, article("n2")])]))
    for call in calls:
        assert_valid(call, 4096)
    shortened = [c for c in calls if "…</a>" in c.params["text"]]
    assert len(shortened) == 1
    assert 'href="https://www.newsarenaindia.com/international/huge"' in shortened[0].params["text"]


def test_hostile_titles_in_editions_are_escaped(settings):
    calls = edition_posts(
        settings,
        edition([article("x", title=HOSTILE, url="javascript:x")], [("sports", "Sports <b>", [article("y", title=HOSTILE)])]),
    )
    (call,) = calls
    assert_valid(call, 4096)
    text = visible_text(call.params["text"])
    assert text.count(HOSTILE) == 2
    assert "Sports <b>" in text
    hrefs = re.findall(r'<a href="([^"]*)"', call.params["text"])
    assert hrefs == ["https://www.newsarenaindia.com/international/y"]  # the javascript: one is unlinked


def test_custom_title_and_links(settings):
    calls = edition_posts(
        settings,
        edition([article("t")]),
        title="Weekend <special>",
        link_url=lambda a: f"https://t.example/c/{a.key}",
    )
    assert calls[0].params["text"].startswith("<b>Weekend &lt;special&gt;</b>\n")
    assert 'href="https://t.example/c/t"' in calls[0].params["text"]


def test_roundup_is_a_flat_list_with_sections(settings):
    items = [article("r1", section="sports", title="Goal"), article("r2", section="economy", title="Rates")]
    (call,) = roundup_post(settings, items, title="While you were away")
    assert call.params["text"].startswith("<b>While you were away</b>\n<i>Friday, 4 July 2025</i>\n\n• ")
    assert "• <a href=\"https://www.newsarenaindia.com/international/r1\">Goal</a> · <i>Sports</i>" in call.params["text"]
    assert "<b>Sports</b>" not in call.params["text"]
    many = roundup_post(settings, _many(120, "रात की खबर 🌙 " * 3), title="Overnight")
    assert len(many) >= 2
    for call in many:
        assert_valid(call, 4096)
