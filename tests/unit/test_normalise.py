"""Normalisation rules, one group per rule, and the webhook payload (article_from_mapping)."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from distributor.articles import RelatedLink
from distributor.errors import RejectedItem
from distributor.ingest import normalise as n
from distributor.ingest.normalise import MediaRef, RawItem
from distributor.settings import SectionConfig, Settings
from distributor.store.models import ArticleRow

UTC = timezone.utc
NOW = datetime(2025, 7, 5, 12, 0, tzinfo=UTC)
SITE = "https://www.newsarenaindia.com/"
# A real tag left in text: "<" then a letter, "/" or "!" ... up to ">".
REAL_TAG = re.compile(r"<[a-zA-Z/!][^>]*>")


def raw(**fields) -> RawItem:
    base = dict(ref="item 1", base_url=SITE, title="A headline", link="https://www.newsarenaindia.com/nation/a")
    return RawItem(**{**base, **fields})


def build(settings, **fields):
    return n.build_article(raw(**fields), settings=settings, source="test", now=NOW)


# --- plain text from HTML ---------------------------------------------------------------
@pytest.mark.parametrize(
    "markup, text",
    [
        ("<p>One</p><p>Two</p>", "One Two"),
        ("Line<br>break<br/>here", "Line break here"),
        ("<b>bold</b> and <i>italic</i>", "bold and italic"),
        ("AT&amp;T &#8217;s &#x2019; &rsquo; a&nbsp;b", "AT&T ’s ’ ’ a b"),
        ("  lots \n\t of   space  ", "lots of space"),
        ("<![CDATA[inside cdata]]> after", "inside cdata after"),
        ("<p>a</p><script>alert('x')</script><style>p{color:red}</style><p>b</p>", "a b"),
        ("before <!-- a comment --> after", "before after"),
        ("Sensex < 80,000 and 5 <3", "Sensex < 80,000 and 5 <3"),
        ("ctrl\x00chars\x07gone\x1b", "ctrlcharsgone"),
        ("lone \ud800surrogate", "lone surrogate"),
        ("&#0;&#x7f;x", "x"),
        ("cut off at the end <a hre", "cut off at the end"),
        ("<noscript>enable JS</noscript>text<template><p>t</p></template>", "text"),
    ],
)
def test_html_to_text(markup, text):
    assert n.html_to_text(markup) == text


@pytest.mark.parametrize(
    "markup",
    [
        "<b>x</b>",
        "<img src=x onerror=alert(1)>",
        '<img src="x" onerror="alert(1)">caption',
        "<a href='javascript:alert(1)'>click</a>",
        "<svg onload=alert(1)><text>t</text></svg>",
        "<scr<script>ipt>alert(1)</script>",
        "<p style='x'>text</p><iframe src='https://evil.example/'></iframe>",
        "<img src=x onerror=alert(1)",
        "<script>never closed",
    ],
)
def test_no_markup_leaks_into_text(markup):
    text = n.html_to_text(markup)
    assert not REAL_TAG.search(text)
    assert not re.search(r"<[A-Za-z/!]", text)  # not even the start of one


@pytest.mark.parametrize(
    "markup, paragraphs, image",
    [
        ('<img alt="a > b" src="/x.jpg">caption', ["caption"], "/x.jpg"),
        ("<IMG SRC=/y.jpg><P>Up</P>", ["Up"], "/y.jpg"),
        ('<img data-src="/lazy.jpg" src="/real.jpg&amp;w=1">', [], "/real.jpg&w=1"),
        ('<a title="x<y">link</a> after', ["link after"], None),
        ("text <!-- a comment that never closes", ["text"], None),
        ("x <b and y> z", ["x z"], None),
        ("<p>a</p><p>b", ["a", "b"], None),
        ("<svg><text>t</text></svg>shown", ["shown"], None),
        ("<br/>x<hr>y", ["x", "y"], None),
        ("<![CDATA[<b>wrapped</b> twice]]>", ["wrapped twice"], None),
    ],
)
def test_html_scanner(markup, paragraphs, image):
    assert n.html_to_paragraphs(markup) == paragraphs
    assert n.first_image_src(markup) == image


@pytest.mark.parametrize(
    "markup, text",
    [
        ("a <b" * 20000, "a"),
        ("<script " * 20000, ""),
        ("<img src " * 20000, ""),
        ("<!-- x" * 20000, ""),
        ("<a title='x>" * 20000, ""),
        ("<style>" + "</styl" * 20000, ""),
        ("< " * 20000, "<" + " <" * 19999),
    ],
)
def test_malformed_markup_is_read_in_one_pass(markup, text):
    # Each of these took html.parser minutes (quadratic time); the scanner reads every
    # character once, so a hostile feed cannot stall ingest.
    assert n.html_to_text(markup) == text
    assert n.count_words(markup) == len(text.split())


def test_escaped_markup_becomes_text_not_a_tag():
    # Decoded to the characters "<script>": text, which every renderer escapes.
    assert n.html_to_text("&lt;script&gt;x&lt;/script&gt;") == "<script>x</script>"


def test_paragraphs_are_kept_apart():
    assert n.html_to_paragraphs("<p>One <b>a</b></p>\n<div>Two</div>tail") == ["One a", "Two", "tail"]


def test_devanagari_and_emoji_survive():
    title = "🏏 भारत ने ऑस्ट्रेलिया को हराया 👩🏽‍💻 &amp; जीत 🇮🇳"
    assert n.html_to_text(title) == "🏏 भारत ने ऑस्ट्रेलिया को हराया 👩🏽‍💻 & जीत 🇮🇳"


def test_escape_text_keeps_plain_text_literal():
    assert n.html_to_paragraphs(n.escape_text("a <b> c\n\nsecond & third")) == ["a <b> c", "second & third"]


# --- truncation -------------------------------------------------------------------------
def test_truncate_short_text_is_unchanged():
    assert n.truncate_text("short text", 20) == "short text"


def test_truncate_at_word_boundary_with_ellipsis():
    text = "The quick brown fox jumps over the lazy dog"
    cut = n.truncate_text(text, 20)
    assert cut == "The quick brown fox…"
    assert len(cut) <= 20


def test_truncate_never_splits_a_letter_from_its_marks():
    word = "कि" * 30  # consonant + vowel sign, no spaces
    cut = n.truncate_text(word, 11)
    assert cut.endswith("…") and len(cut) <= 11
    assert cut[-2] == "ि"  # ends after a complete syllable, not on a bare consonant


def test_standfirst_prefers_the_summary():
    assert n.make_standfirst("<p>The summary.</p>", "<p>Body.</p>") == "The summary."


def test_standfirst_falls_back_to_the_first_paragraph_of_the_body():
    body = "<figure><img src='x.jpg'></figure><p>First paragraph.</p><p>Second.</p>"
    assert n.make_standfirst("  <br> ", body) == "First paragraph."


def test_standfirst_is_cut_to_its_limit():
    long = "word " * 500
    standfirst = n.make_standfirst(long, "")
    assert len(standfirst) <= n.STANDFIRST_MAX_CHARS and standfirst.endswith("…")


# --- URLs -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "url, expected",
    [
        ("/nation/a", SITE + "nation/a"),
        ("nation/a?x=1", SITE + "nation/a?x=1"),
        ("//cdn.example.com/i.jpg", "https://cdn.example.com/i.jpg"),
        ("https://other.example/x", "https://other.example/x"),
        ("  https://other.example/x  ", "https://other.example/x"),
        ("javascript:alert(1)", None),
        ("JavaScript:alert(1)", None),
        ("java\nscript:alert(1)", None),
        ("data:image/png;base64,AAAA", None),
        ("mailto:desk@newsarenaindia.com", None),
        ("ftp://files.example/x", None),
        ("https://", None),
        ("http://[::1", None),
        ("", None),
    ],
)
def test_absolute_http_url(url, expected):
    assert n.absolute_http_url(url, SITE) == expected


def test_choose_base_skips_file_urls_and_falls_back_to_the_site(settings):
    assert n.choose_base([None, "file:///srv/feed.xml", "https://home.example/"], settings) == "https://home.example/"
    assert n.choose_base(["file:///srv/feed.xml", ""], settings) == settings.site.base_url


@pytest.mark.parametrize(
    "url, expected",
    [
        ("HTTPS://WWW.NewsArenaIndia.com/Nation/Story", "https://www.newsarenaindia.com/Nation/Story"),
        ("https://www.newsarenaindia.com/a#comments", "https://www.newsarenaindia.com/a"),
        ("https://www.newsarenaindia.com:443/a", "https://www.newsarenaindia.com/a"),
        ("http://www.newsarenaindia.com:80/a", "http://www.newsarenaindia.com/a"),
        ("https://www.newsarenaindia.com:8443/a", "https://www.newsarenaindia.com:8443/a"),
        ("https://www.newsarenaindia.com", "https://www.newsarenaindia.com/"),
        (
            "https://x.example/a?utm_source=rss&page=2&UTM_Medium=feed&q=a%20b&fbclid=1&z=",
            "https://x.example/a?page=2&q=a%20b&z=",
        ),
        ("https://x.example/a?b=2&a=1", "https://x.example/a?b=2&a=1"),
        ("https://x.example/a?utm_campaign=x", "https://x.example/a"),
    ],
)
def test_canonical_url(url, expected):
    assert n.canonical_url(url) == expected


@pytest.mark.parametrize("param", sorted(n.TRACKING_PARAMS) + ["utm_source", "utm_anything"])
def test_every_tracking_parameter_is_removed(param):
    assert n.canonical_url(f"https://x.example/a?keep=1&{param}=v") == "https://x.example/a?keep=1"


def test_key_is_the_trimmed_guid():
    assert n.article_key("  na-1 ", "https://x.example/a") == "na-1"


def test_key_is_a_permalink_guid_as_given():
    assert n.article_key("https://x.example/a?utm_source=x", "https://x.example/a") == "https://x.example/a?utm_source=x"


def test_key_without_guid_is_the_canonical_url():
    assert n.article_key("  ", "https://X.example/a?utm_source=rss#top") == "https://x.example/a"


# --- sections, trending, tags -----------------------------------------------------------
def classify(settings, categories, url=SITE + "x", explicit=""):
    return n.classify_categories(categories, explicit_section=explicit, url=url, settings=settings)


@pytest.mark.parametrize(
    "category, section",
    [("sports", "sports"), ("Sports", "sports"), ("SPORTS", "sports"), ("cricket", "sports"),
     ("World", "international"), (" Editorial ", "opinion"), ("Business", "economy")],
)
def test_section_from_a_category_slug_label_or_alias(settings, category, section):
    assert classify(settings, [category])[0] == section


def test_first_category_that_names_a_section_wins(settings):
    assert classify(settings, ["Monsoon", "Economy", "Sports"]) == ("economy", False, ("Monsoon", "Sports"))


def test_trending_category_flags_and_is_neither_section_nor_tag(settings):
    assert classify(settings, ["trending", "Cricket", "IPL"]) == ("sports", True, ("IPL",))


def test_section_from_url_path_when_no_category_matches(settings):
    assert classify(settings, ["Monsoon"], url=SITE + "sport/football/x")[0] == "sports"
    assert classify(settings, [], url=SITE + "Business/rupee")[0] == "economy"
    assert classify(settings, [], url=SITE + "sports")[0] == "sports"


def test_longest_path_prefix_wins(settings):
    sections = (
        SectionConfig(slug="nation", label="Nation", aliases=("/news/",)),
        SectionConfig(slug="states", label="States", aliases=("/news/states/",)),
    )
    settings = Settings(settings.file.model_copy(update={"sections": sections}), settings.env, settings.config_path)
    assert n.section_for_url(SITE + "news/states/kerala", settings) == "states"
    assert n.section_for_url(SITE + "news/delhi", settings) == "nation"


def test_fallback_section_when_nothing_matches(settings):
    assert classify(settings, ["Lifestyle"], url=SITE + "lifestyle/x")[0] == settings.site.fallback_section


def test_explicit_section_wins_and_an_unknown_one_falls_through(settings):
    assert classify(settings, ["Cricket"], explicit="Politics")[0] == "politics"
    assert classify(settings, ["Cricket"], explicit="Gardening") == ("sports", False, ())


def test_tags_are_deduplicated_in_order_without_the_section_category(settings):
    tags = classify(settings, ["Cricket", "IPL", "ipl", "<b>Final</b>", "", "cricket", "Final"])[2]
    assert tags == ("IPL", "Final")


def test_merge_tags_caps_and_dedupes():
    assert n.merge_tags(["a", "B"], ["b", "c"]) == ("a", "B", "c")
    assert len(n.merge_tags([f"t{i}" for i in range(50)])) == n.MAX_TAGS


# --- times ------------------------------------------------------------------------------
IST = timezone(timedelta(hours=5, minutes=30))


@pytest.mark.parametrize(
    "value, expected",
    [
        ("Fri, 04 Jul 2025 11:47:00 +0530", datetime(2025, 7, 4, 6, 17, tzinfo=UTC)),
        ("Fri, 04 Jul 2025 06:17:00 GMT", datetime(2025, 7, 4, 6, 17, tzinfo=UTC)),
        ("Fri, 04 Jul 2025 06:17:00 -0000", datetime(2025, 7, 4, 6, 17, tzinfo=UTC)),
        # An unknown zone name or none at all: the site's timezone (Asia/Kolkata).
        ("Fri, 04 Jul 2025 11:47:00 IST", datetime(2025, 7, 4, 6, 17, tzinfo=UTC)),
        ("Fri, 04 Jul 2025 11:47:00", datetime(2025, 7, 4, 6, 17, tzinfo=UTC)),
        ("Fri, 04 Jul 2025 11:47:00 CEST", datetime(2025, 7, 4, 6, 17, tzinfo=UTC)),
        ("Fri, 04 Jul 2025 01:17:00 EST", datetime(2025, 7, 4, 6, 17, tzinfo=UTC)),
        ("2025-07-04T06:17:00Z", datetime(2025, 7, 4, 6, 17, tzinfo=UTC)),
        ("2025-07-04T11:47:00+05:30", datetime(2025, 7, 4, 6, 17, tzinfo=UTC)),
        ("2025-07-04 11:47:00 +05:30", datetime(2025, 7, 4, 6, 17, tzinfo=UTC)),
        ("2025-07-04T11:47:00", datetime(2025, 7, 4, 6, 17, tzinfo=UTC)),
        ("2025-07-04T06:17:00 UTC", datetime(2025, 7, 4, 6, 17, tzinfo=UTC)),
        (datetime(2025, 7, 4, 11, 47, tzinfo=IST), datetime(2025, 7, 4, 6, 17, tzinfo=UTC)),
        ("yesterday", None),
        ("Fri, 32 Jul 2025 11:47:00 +0530", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_time(settings, value, expected):
    parsed = n.parse_time(value, settings.tz)
    assert parsed == expected
    if parsed is not None:
        assert parsed.tzinfo == UTC


def test_missing_or_unreadable_date_is_first_seen_time_flagged(settings):
    for value in (None, "", "not a date"):
        assert n.resolve_times(value, None, now=NOW, tz=settings.tz) == (NOW, None, True)


def test_only_an_updated_time_stands_in_for_published(settings):
    assert n.resolve_times(None, "2025-07-04T06:17:00Z", now=NOW, tz=settings.tz) == (
        datetime(2025, 7, 4, 6, 17, tzinfo=UTC), None, False,
    )


def test_updated_is_kept_only_when_later_than_published(settings):
    published = "2025-07-04T06:00:00Z"
    assert n.resolve_times(published, "2025-07-04T07:00:00Z", now=NOW, tz=settings.tz)[1] == datetime(
        2025, 7, 4, 7, tzinfo=UTC
    )
    assert n.resolve_times(published, published, now=NOW, tz=settings.tz)[1] is None
    assert n.resolve_times(published, "2025-07-04T05:00:00Z", now=NOW, tz=settings.tz)[1] is None


def test_far_future_dates_count_as_missing(settings):
    far = (NOW + n.FUTURE_TOLERANCE + timedelta(minutes=1)).isoformat()
    assert n.resolve_times(far, None, now=NOW, tz=settings.tz) == (NOW, None, True)
    published = "2025-07-04T06:00:00Z"
    assert n.resolve_times(published, far, now=NOW, tz=settings.tz)[1] is None


def test_slightly_future_dates_are_kept(settings):
    soon = NOW + timedelta(hours=3)
    assert n.resolve_times(soon.isoformat(), None, now=NOW, tz=settings.tz) == (soon, None, False)


# --- read time --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "value, minutes",
    [(2, 2), ("2", 2), ("2 min read", 2), (" 12 minutes", 12), (2.6, 3), ("0", None), (0, None),
     (-1, None), (n.MAX_READ_MINUTES + 1, None), ("soon", None), ("2.5 min", None), (True, None),
     (None, None), ([2], None)],
)
def test_parse_read_minutes(value, minutes):
    assert n.parse_read_minutes(value) == minutes


@pytest.mark.parametrize("words, minutes", [(1, 1), (99, 1), (300, 2), (450, 2), (500, 3), (2000, 10)])
def test_read_time_estimated_at_200_words_a_minute(words, minutes):
    assert n.estimate_read_minutes("<p>" + "word " * words + "</p>") == minutes


def test_no_body_no_estimate():
    assert n.estimate_read_minutes("") is None
    assert n.estimate_read_minutes("<script>var a = 1;</script><img src=x>") is None


def test_stated_read_time_beats_the_estimate(settings):
    body = "<p>" + "word " * 2000 + "</p>"
    assert build(settings, content=body, read_minutes="2 min read").read_minutes == 2
    assert build(settings, content=body, read_minutes="soon").read_minutes == 10
    assert build(settings).read_minutes is None


# --- image ------------------------------------------------------------------------------
def pick(media=(), content="", summary="", item_caption=""):
    """(URL, caption) of the chosen image, (None, "") when there is none."""
    image = n.choose_image(media, content=content, summary=summary, base=SITE, item_caption=item_caption)
    return (image.url, image.caption) if image else (None, "")


def pick_size(media=(), content="", summary=""):
    image = n.choose_image(media, content=content, summary=summary, base=SITE)
    return image.url, image.width, image.height


def test_image_precedence_media_content_thumbnail_enclosure_img():
    media = [
        MediaRef("/enclosure.jpg", "enclosure", mime_type="image/jpeg"),
        MediaRef("/thumb.jpg", "thumbnail"),
        MediaRef("/content.jpg", "content", medium="image", caption="Own caption"),
    ]
    body = '<p><img src="/body.jpg"></p>'
    assert pick(media, body) == (SITE + "content.jpg", "Own caption")
    assert pick(media[:2], body)[0] == SITE + "thumb.jpg"
    assert pick(media[:1], body)[0] == SITE + "enclosure.jpg"
    assert pick([], body)[0] == SITE + "body.jpg"
    assert pick([], "<p>no image</p>", '<img data-src="/lazy.jpg" src="/summary.jpg">')[0] == SITE + "summary.jpg"


def test_non_images_and_unsafe_urls_are_skipped():
    media = [
        MediaRef("https://x.example/v.mp4", "content", medium="video"),
        MediaRef("https://x.example/v.mp4", "content", mime_type="video/mp4"),
        MediaRef("https://x.example/a.mp3", "enclosure", mime_type="audio/mpeg"),
        MediaRef("data:image/png;base64,AAAA", "content", medium="image"),
        MediaRef("javascript:alert(1)", "thumbnail"),
        MediaRef("https://x.example/ok.jpg", "enclosure", mime_type="IMAGE/JPEG"),
    ]
    assert pick(media) == ("https://x.example/ok.jpg", "")


def test_media_content_without_medium_or_type_counts_as_the_image():
    assert pick([MediaRef("/lead.jpg", "content")])[0] == SITE + "lead.jpg"


def test_caption_falls_back_to_the_items_caption_and_is_plain_text():
    assert pick([MediaRef("/a.jpg", "thumbnail")], item_caption="<b>Item</b> caption") == (SITE + "a.jpg", "Item caption")


def test_no_image_no_caption():
    assert pick([], "<p>text</p>", item_caption="orphan caption") == (None, "")
    assert n.choose_image([], content="<p>text</p>", summary="", base=SITE) is None


def test_the_chosen_image_keeps_the_size_it_declares():
    # media:content and media:thumbnail width/height, <img> attributes and style: the
    # size of the image chosen, never of another candidate.
    thumb = MediaRef("/thumb.jpg", "thumbnail", width=192, height=108)
    content = MediaRef("/content.jpg", "content", medium="image", width=1200, height=675)
    assert pick_size([thumb, content]) == (SITE + "content.jpg", 1200, 675)
    assert pick_size([thumb]) == (SITE + "thumb.jpg", 192, 108)
    assert pick_size([MediaRef("/plain.jpg", "content"), thumb]) == (SITE + "plain.jpg", None, None)
    assert pick_size([], '<p><img src="/a.jpg" width="400" height="300"></p>') == (SITE + "a.jpg", 400, 300)
    assert pick_size([], '<img src="/b.jpg" style="width: 320px; height:180px">') == (SITE + "b.jpg", 320, 180)
    assert pick_size([], '<img src="/c.jpg" width="100%" height="240">') == (SITE + "c.jpg", None, 240)
    # A skipped candidate's size is not carried over to the next one.
    tiny = MediaRef("/icon.png", "content", width=16, height=16)
    assert pick_size([tiny], '<img src="/d.jpg">') == (SITE + "d.jpg", None, None)
    # A side beyond any real image is junk: the image may lead, its size is not kept.
    assert pick_size([MediaRef("/e.jpg", "content", width=999999, height=675)]) == (SITE + "e.jpg", None, 675)


def test_built_article_carries_the_image_size(settings):
    article = build(settings, media=[MediaRef("/thumb.jpg", "thumbnail", width=192, height=108)])
    assert (article.image_url, article.image_width, article.image_height) == (SITE + "thumb.jpg", 192, 108)
    article = build(settings, media=[MediaRef("/lead.jpg", "content")])
    assert (article.image_width, article.image_height) == (None, None)


# --- byline, dateline, related links ------------------------------------------------------
def test_byline_joins_authors_once_each():
    assert n.make_byline(["News Arena Network", "", "<b>Priya</b> Nair", "News Arena Network"]) == (
        "News Arena Network, Priya Nair"
    )


def test_dateline_is_plain_text(settings):
    assert build(settings, dateline="<span>नई दिल्ली</span>&nbsp;").dateline == "नई दिल्ली"


def test_also_read_links():
    links = n.related_links(
        [
            ("Russia rains missiles on Kyiv", "/international/kyiv?utm_source=x"),
            ("Again, same link", "https://www.newsarenaindia.com/international/kyiv"),
            ("Bad scheme", "javascript:alert(1)"),
            ("", "https://x.example/untitled"),
            ("Itself", "https://www.newsarenaindia.com/nation/a"),
            ("<b>Devanagari</b> बाढ़", "https://x.example/b"),
        ],
        base=SITE,
        article_url="https://www.newsarenaindia.com/nation/a",
    )
    assert links == (
        RelatedLink("Russia rains missiles on Kyiv", "https://www.newsarenaindia.com/international/kyiv"),
        RelatedLink("Devanagari बाढ़", "https://x.example/b"),
    )


# --- the whole item: rejections and what is kept ------------------------------------------
def test_a_good_item(settings):
    article = build(
        settings,
        guid="na-1",
        link="/international/story?utm_source=rss",
        title="Russia &amp; the Taliban",
        summary="<p>Standfirst.</p>",
        categories=["International", "Trending", "Afghanistan"],
        published="Fri, 04 Jul 2025 11:47:00 +0530",
        authors=["News Arena Network"],
    )
    assert (article.key, article.url, article.title, article.section) == (
        "na-1", SITE + "international/story", "Russia & the Taliban", "international",
    )
    assert (article.trending, article.tags, article.source, article.date_missing) == (True, ("Afghanistan",), "test", False)
    assert article.published_at == datetime(2025, 7, 4, 6, 17, tzinfo=UTC)


def test_reject_missing_title(settings):
    with pytest.raises(RejectedItem, match=r"^item 1: title: missing$"):
        build(settings, title=None)
    with pytest.raises(RejectedItem, match="title: missing"):
        build(settings, title="   \n ")


def test_reject_title_that_is_only_markup(settings):
    with pytest.raises(RejectedItem, match="title: nothing left after removing markup"):
        build(settings, title="<br/><img src=x onerror=alert(1)> &nbsp; ")


@pytest.mark.parametrize("link", ["javascript:alert(1)", "mailto:desk@example.com", "data:text/html,hi", "ftp://x.example/a"])
def test_reject_link_that_is_not_http(settings, link):
    with pytest.raises(RejectedItem, match=r"link: .* is not an http\(s\) URL"):
        build(settings, link=link)


def test_reject_no_link_and_no_url_guid(settings):
    with pytest.raises(RejectedItem, match=r"link: missing, and no guid that is an http\(s\) URL"):
        build(settings, link="", guid="na-123")
    with pytest.raises(RejectedItem, match="link: missing"):
        build(settings, link="", guid="")


def test_a_url_guid_stands_in_for_a_missing_link(settings):
    article = build(settings, link="", guid="https://www.newsarenaindia.com/nation/b?utm_source=x")
    assert article.url == "https://www.newsarenaindia.com/nation/b"
    assert article.key == "https://www.newsarenaindia.com/nation/b?utm_source=x"


def test_reject_key_or_url_too_long_for_the_store(settings):
    with pytest.raises(RejectedItem, match="guid: longer than"):
        build(settings, guid="g" * (n.MAX_KEY_CHARS + 1))
    with pytest.raises(RejectedItem, match="link: longer than"):
        build(settings, link=SITE + "a" * n.MAX_URL_CHARS)


def test_rejection_names_the_field_the_source_uses(settings):
    with pytest.raises(RejectedItem, match=r"^item 1: url: "):
        build(settings, link="javascript:x", link_field="url")


def test_item_ref_says_how_to_find_the_item():
    assert n.item_ref(3, guid="na-3", link="https://x/a") == "item 3 (guid 'na-3')"
    assert n.item_ref(3, link="https://x/a") == "item 3 (link 'https://x/a')"
    assert n.item_ref(3, title="<b>Headline</b>") == "item 3 (title 'Headline')"
    assert n.item_ref(3) == "item 3"


def test_limits_fit_the_store_columns():
    columns = ArticleRow.__table__.c
    assert n.MAX_KEY_CHARS <= columns.key.type.length
    assert n.MAX_URL_CHARS <= columns.url.type.length
    assert n.MAX_URL_CHARS <= columns.image_url.type.length
    assert n.BYLINE_MAX_CHARS <= columns.byline.type.length
    assert n.DATELINE_MAX_CHARS <= columns.dateline.type.length


# --- the webhook payload --------------------------------------------------------------------
PAYLOAD = {
    "id": "na-47001",
    "url": "https://www.newsarenaindia.com/international/russia-recognises-taliban?utm_source=cms",
    "title": "Russia becomes first country to officially recognise Taliban rule",
    "standfirst": "<p>Russia has become the first country&#8230;</p>",
    "section": "World",
    "categories": ["Trending", "Afghanistan"],
    "byline": "News Arena Network",
    "dateline": "Moscow",
    "published_at": "2025-07-03T23:10:00+05:30",
    "updated_at": "2025-07-04T11:47:00+05:30",
    "image_url": "/images/russia-taliban.jpg",
    "image_caption": "Russian envoy Dmitry Zhirnov hands over credentials in Kabul.",
    "tags": ["Russia"],
    "read_minutes": 2,
    "also_read": [{"title": "Russia rains missiles on Kyiv", "url": "/international/kyiv"}],
    "trending": False,
}


def from_mapping(settings, data):
    return n.article_from_mapping(data, settings=settings, source="webhook", base_url=SITE, now=NOW)


def test_webhook_payload_becomes_an_article(settings):
    article = from_mapping(settings, PAYLOAD)
    assert article.key == "na-47001"
    assert article.url == SITE + "international/russia-recognises-taliban"
    assert article.section == "international"
    assert article.standfirst == "Russia has become the first country…"
    assert article.trending is True  # from the category, although the flag says false
    assert article.tags == ("Afghanistan", "Russia")
    assert article.published_at == datetime(2025, 7, 3, 17, 40, tzinfo=UTC)
    assert article.updated_at == datetime(2025, 7, 4, 6, 17, tzinfo=UTC)
    assert article.image_url == SITE + "images/russia-taliban.jpg"
    assert article.also_read == (RelatedLink("Russia rains missiles on Kyiv", SITE + "international/kyiv"),)
    assert (article.byline, article.dateline, article.read_minutes, article.source) == (
        "News Arena Network", "Moscow", 2, "webhook",
    )


def test_webhook_image_size(settings):
    article = from_mapping(settings, {**PAYLOAD, "image_width": 1200, "image_height": 675})
    assert (article.image_width, article.image_height) == (1200, 675)
    # 0 and null say "not known"; without them nothing is known either.
    article = from_mapping(settings, {**PAYLOAD, "image_width": 0, "image_height": None})
    assert (article.image_url, article.image_width, article.image_height) == (SITE + "images/russia-taliban.jpg", None, None)
    assert from_mapping(settings, PAYLOAD).image_width is None
    # As in feeds, an image declared smaller than an icon does not lead the article.
    assert from_mapping(settings, {**PAYLOAD, "image_width": 40, "image_height": 40}).image_url is None
    # A size without an image is still checked, and then there is nothing to keep.
    no_image = {k: v for k, v in PAYLOAD.items() if k != "image_url"}
    assert from_mapping(settings, {**no_image, "image_width": 800}).image_width is None
    with pytest.raises(RejectedItem, match="image_width: -5 is not a size"):
        from_mapping(settings, {**no_image, "image_width": -5})


def test_webhook_minimal_payload(settings):
    article = from_mapping(settings, {"url": SITE + "sports/x", "title": "Hockey", "id": None, "trending": True})
    assert (article.key, article.section, article.trending, article.date_missing) == (SITE + "sports/x", "sports", True, True)
    assert article.published_at == NOW


def test_webhook_naive_time_is_in_the_site_timezone(settings):
    article = from_mapping(settings, {**PAYLOAD, "published_at": "2025-07-04T11:47:00", "updated_at": None})
    assert article.published_at == datetime(2025, 7, 4, 6, 17, tzinfo=UTC)


def test_webhook_and_feed_agree(settings):
    # The same story pushed by the CMS and read from the feed is the same article.
    from_webhook = from_mapping(settings, PAYLOAD)
    from_feed = build(
        settings,
        guid="na-47001",
        link=PAYLOAD["url"],
        title=PAYLOAD["title"],
        summary=PAYLOAD["standfirst"],
        categories=["World", "Trending", "Afghanistan"],
        tags=["Russia"],
        authors=["News Arena Network"],
        dateline="Moscow",
        published="Thu, 03 Jul 2025 23:10:00 +0530",
        updated="Fri, 04 Jul 2025 11:47:00 +0530",
        media=[MediaRef("/images/russia-taliban.jpg", "content", caption=PAYLOAD["image_caption"])],
        read_minutes="2 min read",
        also_read=[("Russia rains missiles on Kyiv", "/international/kyiv")],
    )
    assert replace(from_feed, source="webhook") == from_webhook


def test_webhook_rejects_unknown_fields_by_name(settings):
    with pytest.raises(RejectedItem, match=r"unknown field\(s\) 'sectoin', 'summary'") as caught:
        from_mapping(settings, {**PAYLOAD, "sectoin": "Sports", "summary": "x"})
    assert "known fields are id, url, title" in caught.value.reason
    assert caught.value.item_ref == "webhook article (guid 'na-47001')"


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("url", 5, "url: expected a string, got a number"),
        ("title", ["x"], "title: expected a string, got a list"),
        ("id", True, "id: expected a string or an integer, got a boolean"),
        ("standfirst", {"html": "x"}, "standfirst: expected a string, got an object"),
        ("section", 3, "section: expected a string"),
        ("categories", "Sports", "categories: expected a list, got a string"),
        ("categories", ["Sports", 3], r"categories\[1\]: expected a string, got a number"),
        ("tags", [None], r"tags\[0\]: expected a string, got null"),
        ("byline", 1.5, "byline: expected a string, got a number"),
        ("dateline", False, "dateline: expected a string"),
        ("published_at", 1720000000, "published_at: expected a string"),
        ("published_at", "4 July 2025", "published_at: '4 July 2025' is not an ISO 8601 date-time"),
        ("updated_at", "soon", "updated_at: 'soon' is not an ISO 8601 date-time"),
        ("image_url", ["a"], "image_url: expected a string"),
        ("image_caption", 7, "image_caption: expected a string"),
        ("image_width", "552", "image_width: expected an integer, got a string"),
        ("image_width", 552.5, "image_width: expected an integer, got a number"),
        ("image_width", True, "image_width: expected an integer, got a boolean"),
        ("image_width", -1, r"image_width: -1 is not a size in pixels \(0 to 100000; 0 or null: not known\)"),
        ("image_height", -311, "image_height: -311 is not a size in pixels"),
        ("image_height", 10**20, "image_height: 100000000000000000000 is not a size in pixels"),
        ("read_minutes", "soon", "read_minutes: 'soon' is not a number of minutes"),
        ("read_minutes", True, "read_minutes: expected an integer or a string, got a boolean"),
        ("also_read", {"title": "x"}, "also_read: expected a list, got an object"),
        ("also_read", ["x"], r"also_read\[0\]: expected an object with title and url, got a string"),
        ("also_read", [{"title": "x", "url": 5}], r"also_read\[0\]\.url: expected a string"),
        ("also_read", [{"title": "x"}], r"also_read\[0\]\.url: missing"),
        ("trending", "yes", "trending: expected true or false, got a string"),
    ],
)
def test_webhook_wrong_types_are_rejected_naming_the_field(settings, field, value, message):
    with pytest.raises(RejectedItem, match=message):
        from_mapping(settings, {**PAYLOAD, field: value})


@pytest.mark.parametrize("field, message", [("url", "url: missing"), ("title", "title: missing")])
def test_webhook_required_fields(settings, field, message):
    data = {k: v for k, v in PAYLOAD.items() if k != field}
    with pytest.raises(RejectedItem, match=message):
        from_mapping(settings, data)


def test_webhook_payload_must_be_an_object(settings):
    with pytest.raises(RejectedItem, match="payload: expected a JSON object, got a list"):
        from_mapping(settings, [PAYLOAD])


def test_webhook_unsafe_links_follow_the_feed_rules(settings):
    with pytest.raises(RejectedItem, match=r"url: 'javascript:alert\(1\)' is not an http\(s\) URL"):
        from_mapping(settings, {**PAYLOAD, "url": "javascript:alert(1)"})
    article = from_mapping(
        settings,
        {**PAYLOAD, "image_url": "data:image/png;base64,AA", "also_read": [{"title": "x", "url": "javascript:y"}]},
    )
    assert (article.image_url, article.image_caption, article.also_read) == (None, "", ())
