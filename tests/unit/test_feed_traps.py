"""Real-world feed traps that used to lose content (issue 9): duplicate items, bad
character references, headline text that looked like markup, tracker pixels as photos.

Each trap is run through both readers: our streaming lxml reader and the feedparser
fallback (which takes over for any feed that is not well-formed XML).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from distributor.ingest import feeds
from distributor.ingest.feeds import parse_feed
from distributor.ingest.images import MediaRef, is_lead_image_candidate
from distributor.ingest.normalise import choose_image, looks_like_html

UTC = timezone.utc
NOW = datetime(2025, 7, 5, 12, 0, tzinfo=UTC)
SITE = "https://www.newsarenaindia.com/"
READERS = {"lxml": parse_feed, "feedparser": feeds._parse_with_feedparser}


def parse(settings, body: bytes, reader=parse_feed):
    return reader(body, settings=settings, source="trap-feed", base_url="file:///srv/feeds/feed.xml", now=NOW)


def rss(items: str, namespaces: str = "") -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><rss version="2.0" {namespaces}><channel>'
        f"<title>T</title><link>{SITE}</link>{items}</channel></rss>"
    ).encode()


def item(title: str, link: str, description: str = "", extra: str = "") -> str:
    return (
        f"<item><title>{title}</title><link>{link}</link><description>{description}</description>"
        f"<pubDate>Fri, 04 Jul 2025 06:00:00 +0000</pubDate>{extra}</item>"
    )


# --- 1. One duplicate item loses the whole feed ----------------------------------------
DUPLICATES = rss(
    item("Monsoon reaches Kerala", SITE + "nation/monsoon?utm_source=rss", "First telling.")
    + item("Other story", SITE + "nation/other")
    + item(
        "Monsoon reaches Kerala early",
        SITE + "nation/monsoon?utm_source=twitter&amp;fbclid=IwAR0abc",
        "Second telling, corrected.",
    )
)


@pytest.mark.parametrize("reader", READERS.values(), ids=READERS.keys())
def test_items_sharing_a_key_become_one_article_the_later_wins(settings, reader):
    parsed = parse(settings, DUPLICATES, reader=reader)
    assert [a.key for a in parsed.articles] == [SITE + "nation/other", SITE + "nation/monsoon"]
    monsoon = parsed.articles[1]
    assert (monsoon.title, monsoon.standfirst) == ("Monsoon reaches Kerala early", "Second telling, corrected.")
    assert parsed.rejected == []
    assert parsed.duplicates == [
        f"item 1 (link '{SITE}nation/monsoon?utm_source=rss'): duplicate in feed of item 3 "
        f"(same key {SITE}nation/monsoon); item 3 kept"
    ]


def test_json_feed_duplicates_collapse_too(settings):
    body = json.dumps(
        {
            "version": "https://jsonfeed.org/version/1.1",
            "title": "T",
            "items": [
                {"id": "a-1", "url": SITE + "nation/a", "title": "First", "date_published": "2025-07-04T06:00:00Z"},
                {"id": "a-1", "url": SITE + "nation/a", "title": "Second", "date_published": "2025-07-04T06:00:00Z"},
            ],
        }
    ).encode()
    parsed = parse(settings, body)
    assert [(a.key, a.title) for a in parsed.articles] == [("a-1", "Second")]
    assert len(parsed.duplicates) == 1


# --- 2. One bad character loses the whole feed -----------------------------------------
SURROGATES = rss(
    item("Bad &#xD800; character", SITE + "nation/bad", "Body &#55296; here &#x110000; and &#0; end")
    + item("Good one", SITE + "nation/good")
)


@pytest.mark.parametrize("reader", READERS.values(), ids=READERS.keys())
def test_lone_surrogate_references_are_replaced_not_fatal(settings, reader):
    parsed = parse(settings, SURROGATES, reader=reader)
    assert parsed.rejected == []
    titles = {a.key: a.title for a in parsed.articles}
    assert titles == {SITE + "nation/bad": "Bad character", SITE + "nation/good": "Good one"}
    bad = parsed.articles[0]
    assert bad.standfirst == "Body here and end"
    bad.content_hash()  # encodable: this is what used to raise UnicodeEncodeError


def test_lone_surrogates_in_a_json_feed_are_replaced(settings):
    body = (
        b'{"version": "https://jsonfeed.org/version/1.1", "title": "T", "items": ['
        b'{"id": "x\\ud800", "url": "https://www.newsarenaindia.com/nation/x", "title": "A \\udc00title",'
        b' "tags": ["t\\ud800ag"], "date_published": "2025-07-04T06:00:00Z"}]}'
    )
    parsed = parse(settings, body)
    assert parsed.rejected == []
    (article,) = parsed.articles
    assert (article.key, article.title, article.tags) == ("x", "A title", ("tag",))
    article.content_hash()


def test_a_crash_inside_one_field_rejects_the_item_naming_the_field(settings, monkeypatch):
    from distributor.ingest import normalise

    def broken(*args, **kwargs):
        raise ZeroDivisionError("planted")

    monkeypatch.setattr(normalise, "related_links", broken)
    parsed = parse(settings, rss(item("Good", SITE + "nation/good")))
    assert parsed.articles == []
    assert [r.reason for r in parsed.rejected] == ["also read: could not be read (ZeroDivisionError: planted)"]


# --- 3. Headline text disappears -------------------------------------------------------
SENSEX_XML = "Sensex &amp;amp; Nifty close at record highs; \"Rally &amp;lt;broad-based&amp;gt;\", say analysts"
SENSEX = 'Sensex & Nifty close at record highs; "Rally <broad-based>", say analysts'


@pytest.mark.parametrize("reader", READERS.values(), ids=READERS.keys())
@pytest.mark.parametrize(
    ("title_xml", "expected"),
    [
        # Escaped once in XML: the publisher's text is literally this.
        ("Sensex &amp; Nifty close at record highs; \"Rally &lt;broad-based&gt;\", say analysts", SENSEX),
        ("&lt;Budget&gt; 2026: what changes for you", "<Budget> 2026: what changes for you"),
        ("x &lt; y &amp;&amp; y &gt; z", "x < y && y > z"),
        # Evidently HTML (a closing tag, or an entity reference after XML decoding).
        ("&lt;b&gt;Breaking&lt;/b&gt;: rains lash Mumbai", "Breaking: rains lash Mumbai"),
        ("<![CDATA[<em>Live</em>: Budget 2026]]>", "Live: Budget 2026"),
        ("Tom &amp;amp; Jerry return", "Tom & Jerry return"),
        (SENSEX_XML, SENSEX),
        ("Caf&amp;eacute; &amp;#8216;culture&amp;#8217;", "Café ‘culture’"),
    ],
)
def test_rss_titles_keep_the_text_the_publisher_wrote(settings, reader, title_xml, expected):
    parsed = parse(settings, rss(item(title_xml, SITE + "economy/sensex")), reader=reader)
    assert [a.title for a in parsed.articles] == [expected]


@pytest.mark.parametrize("reader", READERS.values(), ids=READERS.keys())
@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ('<title type="text">Rally &lt;broad-based&gt; &amp; more</title>', "Rally <broad-based> & more"),
        ('<title>&lt;Budget&gt; 2026</title>', "<Budget> 2026"),  # type defaults to text
        ('<title type="html">&lt;b&gt;Rally&lt;/b&gt; &amp;lt;broad&amp;gt;</title>', "Rally <broad>"),
        (
            '<title type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml"><b>Rally</b> &lt;broad&gt;</div></title>',
            "Rally <broad>",
        ),
    ],
)
def test_atom_title_types_follow_the_spec(settings, reader, title, expected):
    body = (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>T</title>'
        f'<link href="{SITE}"/><id>urn:t</id><updated>2025-07-04T06:00:00Z</updated>'
        f'<entry>{title}<id>urn:e1</id><link href="{SITE}economy/a"/>'
        "<updated>2025-07-04T06:00:00Z</updated></entry></feed>"
    ).encode()
    parsed = parse(settings, body, reader=reader)
    assert [a.title for a in parsed.articles] == [expected]


def test_feedparser_reads_broken_xml_titles_as_text(settings):
    # A bare "&" makes the document not well-formed, so only feedparser reads it.
    body = rss(item("AT&T, P&amp;G &lt;merger&gt; talks", SITE + "economy/att"))
    parsed = parse(settings, body)
    assert [a.title for a in parsed.articles] == ["AT&T, P&G <merger> talks"]


@pytest.mark.parametrize("reader", READERS.values(), ids=READERS.keys())
def test_bylines_and_categories_are_text_too(settings, reader):
    body = rss(
        item(
            "T",
            SITE + "nation/t",
            extra="<dc:creator>Rao &lt;Staff&gt; &amp; PTI</dc:creator><category>R&amp;D &lt;Labs&gt;</category>",
        ),
        namespaces='xmlns:dc="http://purl.org/dc/elements/1.1/"',
    )
    (article,) = parse(settings, body, reader=reader).articles
    assert article.byline == "Rao <Staff> & PTI"
    assert article.tags == ("R&D <Labs>",)


def test_json_feed_and_webhook_titles_are_plain_text(settings):
    from distributor.ingest.normalise import article_from_mapping

    body = json.dumps(
        {
            "version": "https://jsonfeed.org/version/1.1",
            "title": "T",
            "items": [{"id": "j1", "url": SITE + "nation/j", "title": "<Budget> & you", "date_published": "2025-07-04T06:00:00Z"}],
        }
    ).encode()
    assert [a.title for a in parse(settings, body).articles] == ["<Budget> & you"]
    article = article_from_mapping(
        {"url": SITE + "nation/w", "title": "Rally <broad-based> & more", "byline": "A <B>"},
        settings=settings, source="webhook", base_url=SITE, now=NOW,
    )
    assert (article.title, article.byline) == ("Rally <broad-based> & more", "A <B>")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain text", False),
        ("Rally <broad-based>", False),  # no closing tag, no entity
        ("<b>bold</b>", True),
        ("Tom &amp; Jerry", True),
        ("a &#8217; b", True),
        ("<foo>x</foo>", False),  # not an HTML element
        ("<b>x</b> &nosuch;", False),  # not an HTML entity
        ("x &amp y", False),  # no semicolon: not a reference
    ],
)
def test_looks_like_html(text, expected):
    assert looks_like_html(text) is expected


# --- 5. Tracking pixels become lead images ---------------------------------------------
@pytest.mark.parametrize(
    ("media", "expected"),
    [
        (MediaRef("https://img.example/photo.jpg", "content", "image", "image/jpeg"), True),
        (MediaRef("https://img.example/photo.jpg", "content", width=1, height=1), False),
        (MediaRef("https://img.example/photo.jpg", "thumbnail", width=90, height=300), False),  # skyscraper
        (MediaRef("https://img.example/photo.jpg", "thumbnail", width=64, height=64), False),  # icon
        (MediaRef("https://img.example/photo.jpg", "thumbnail", width=144, height=81), True),  # small 16:9
        (MediaRef("https://img.example/photo.jpg", "thumbnail", width=140, height=84), True),
        (MediaRef("https://img.example/banner.jpg", "content", width=1200, height=200), False),  # banner
        (MediaRef("https://img.example/photo.jpg", "content", width=1200, height=675), True),
        (MediaRef("https://img.example/photo.jpg", "content", width=600, height=1000), True),  # portrait
        (MediaRef("https://img.example/photo.jpg", "thumbnail", width=120, height=100), True),
        (MediaRef("https://feeds.feedburner.com/~r/newsarena/~4/abc", "content"), False),
        (MediaRef("https://img.example/1x1.gif", "enclosure", mime_type="image/gif"), False),
        (MediaRef("https://stats.example/pixel.gif?id=3", "content"), False),
        (MediaRef("https://img.example/track/open.png", "content"), False),
        (MediaRef("https://img.example/beacon?x=1", "content"), False),
        (MediaRef("data:image/png;base64,iVBORw0KGgo=", "content"), False),
        (MediaRef("ftp://img.example/photo.jpg", "content"), False),
        (MediaRef("https://img.example/pixelated-art-show.jpg", "content"), True),
        (MediaRef("https://img.example/tracking-the-monsoon.jpg", "content"), True),
    ],
)
def test_lead_image_rules(media, expected):
    assert is_lead_image_candidate(media) is expected


def test_declared_media_beats_an_image_from_the_body(settings):
    image = choose_image(
        [MediaRef("https://img.example/lead.jpg", "thumbnail")],
        content='<p><img src="https://img.example/inline.jpg" width="600" height="400"></p>',
        summary="",
        base=SITE,
    )
    assert (image.url, image.width, image.height) == ("https://img.example/lead.jpg", None, None)


@pytest.mark.parametrize(
    "description",
    [
        '<p>Story.</p><img src="http://feeds.feedburner.com/~r/newsarena/~4/xYz" height="1" width="1" alt=""/>',
        '<p>Story.</p><img src="https://img.example/photo.jpg" width="1" height="1">',
        '<p>Story.</p><img src="https://img.example/photo.jpg" style="width:1px;height:1px">',
        '<p>Story.</p><img src="https://a.example/photo.jpg" onerror="alert(1)">',
        '<p>Story.</p><img src="https://a.example/photo.jpg" width="0">',
        '<p>Story.</p><img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=">',
        '<p>Story.</p><img src="https://stats.example/pixel.gif">',
    ],
)
@pytest.mark.parametrize("reader", READERS.values(), ids=READERS.keys())
def test_tracker_pixels_in_a_description_never_become_the_photo(settings, reader, description):
    from html import escape

    body = rss(item("Story", SITE + "nation/story", escape(description)))
    (article,) = parse(settings, body, reader=reader).articles
    assert article.image_url is None


@pytest.mark.parametrize("reader", READERS.values(), ids=READERS.keys())
def test_an_inline_photo_is_still_the_fallback_lead_image(settings, reader):
    from html import escape

    description = (
        '<img src="http://feeds.feedburner.com/~r/x/~4/a" width="1" height="1">'
        '<p>Story.</p><img src="https://img.example/photo.jpg" width="640" height="360" alt="Rains">'
    )
    body = rss(item("Story", SITE + "nation/story", escape(description)))
    (article,) = parse(settings, body, reader=reader).articles
    assert article.image_url == "https://img.example/photo.jpg"


@pytest.mark.parametrize("reader", READERS.values(), ids=READERS.keys())
def test_a_one_pixel_enclosure_or_media_content_is_skipped(settings, reader):
    extra = (
        '<enclosure url="https://img.example/1x1.gif" type="image/gif" length="43"/>'
        '<media:content url="https://img.example/spacer.jpg" medium="image" width="1" height="1"/>'
        '<media:thumbnail url="https://img.example/real.jpg" width="552" height="311"/>'
    )
    body = rss(item("Story", SITE + "nation/story", extra=extra), namespaces='xmlns:media="http://search.yahoo.com/mrss/"')
    (article,) = parse(settings, body, reader=reader).articles
    assert article.image_url == "https://img.example/real.jpg"
