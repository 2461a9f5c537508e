"""Feed parsing: RSS 2.0, Atom 1.0 and JSON Feed 1.1 fixtures, malformed bodies, and the
agreement between our lxml reader and the feedparser fallback."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from distributor.articles import RelatedLink
from distributor.errors import FeedError
from distributor.ingest import feeds
from distributor.ingest.feeds import parse_feed
from distributor.settings import PROJECT_ROOT

FEEDS = Path(__file__).resolve().parent.parent / "fixtures" / "feeds"
UTC = timezone.utc
NOW = datetime(2025, 7, 5, 12, 0, tzinfo=UTC)
SITE = "https://www.newsarenaindia.com/"
WELL_FORMED_XML = ["rss2.xml", "atom.xml", "one-bad-item.xml"]


def parse(settings, body: bytes, base_url: str = "file:///srv/feeds/feed.xml", reader=parse_feed):
    return reader(body, settings=settings, source="test-feed", base_url=base_url, now=NOW)


def parse_fixture(settings, name: str, **kwargs):
    return parse(settings, (FEEDS / name).read_bytes(), **kwargs)


def by_key(parsed):
    return {a.key: a for a in parsed.articles}


def rss(items: str, channel: str = "", namespaces: str = "") -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><rss version="2.0" {namespaces}><channel>'
        f"<title>T</title>{channel}{items}</channel></rss>"
    ).encode()


# --- RSS 2.0 ----------------------------------------------------------------------------
def test_rss_every_field_of_the_seed_article(settings):
    parsed = parse_fixture(settings, "rss2.xml")
    assert parsed.format == "rss"
    article = by_key(parsed)["na-47001"]
    assert article.url == (
        SITE + "international/russia-becomes-first-country-to-officially-recognise-taliban-govt?page=2"
    )
    assert article.title == "Russia becomes first country to officially recognise Taliban rule"
    assert article.standfirst.startswith("Russia has become the first country to officially recognise Afghanistan’s")
    assert "Moscow’s growing confrontation" in article.standfirst
    assert (article.section, article.trending, article.tags) == ("international", True, ("Afghanistan", "Russia"))
    assert (article.byline, article.dateline, article.read_minutes) == ("News Arena Network", "Moscow", 2)
    assert article.published_at == datetime(2025, 7, 3, 17, 40, tzinfo=UTC)
    assert article.updated_at == datetime(2025, 7, 4, 6, 17, tzinfo=UTC)  # na:updated
    assert article.image_url == SITE + "images/article/2025/07/russia-taliban.jpg"
    assert article.image_caption == "Russian envoy Dmitry Zhirnov hands over credentials in Kabul."
    assert article.also_read == (
        RelatedLink(
            "Russia rains missiles on Kyiv hours after Putin-Trump phone call",
            SITE + "international/russia-rains-missiles-on-kyiv-hours-after-putin-trump-phone-call",
        ),
    )
    assert (article.source, article.date_missing) == ("test-feed", False)


def test_rss_devanagari_and_emoji_survive_intact(settings):
    article = by_key(parse_fixture(settings, "rss2.xml"))[SITE + "sports/india-beat-australia-five-wickets"]
    assert article.title == "🏏 भारत ने ऑस्ट्रेलिया को 5 विकेट से हराया 🎉"
    assert article.standfirst == "कप्तान की शानदार पारी 🙌 से भारत ने सीरीज़ में 2-0 की बढ़त ली।"
    assert (article.byline, article.dateline, article.tags) == ("खेल डेस्क", "मेलबर्न", ("क्रिकेट",))
    assert article.section == "sports"  # "Cricket" is an alias of Sports


def test_rss_entities_and_cdata_are_decoded(settings):
    article = by_key(parse_fixture(settings, "rss2.xml"))["na-47003"]
    assert article.title == "Sensex & Nifty rally 2% as IT stocks gain"
    assert article.standfirst == "Markets closed ‘higher’ & broad-based."  # &nbsp; is a space, script dropped
    assert article.url == SITE + "economy/sensex-nifty-rally-it-stocks"  # relative, against the home page
    assert article.section == "economy"  # no category: the URL path decides
    assert article.image_url == SITE + "images/article/sensex.jpg"  # the body's first <img>
    assert (article.byline, article.read_minutes) == ("", 1)  # estimated from the body


def test_rss_enclosure_trending_no_date_and_broken_extensions(settings):
    article = by_key(parse_fixture(settings, "rss2.xml"))["na-47004"]
    assert article.image_url == SITE + "images/kaagaz-ki-naav.jpg"  # audio enclosure skipped
    assert (article.section, article.trending) == ("entertainment", True)
    assert (article.published_at, article.date_missing, article.updated_at) == (NOW, True, None)
    assert article.read_minutes is None  # "soon" ignored, and there is no body to estimate from
    assert article.also_read == ()  # javascript: and href-less na:alsoRead dropped


def test_rss_permalink_guid_stands_in_for_the_link_and_fallback_section(settings):
    article = by_key(parse_fixture(settings, "rss2.xml"))[SITE + "lifestyle/small-town-libraries"]
    assert article.url == SITE + "lifestyle/small-town-libraries"
    assert (article.section, article.tags) == (settings.site.fallback_section, ("Lifestyle", "Books"))
    assert article.published_at == datetime(2025, 7, 4, 2, 30, tzinfo=UTC)


def test_media_description_never_becomes_the_standfirst(settings):
    article = by_key(parse_fixture(settings, "rss2.xml"))["na-47008"]
    assert article.standfirst == "The specials will run on routes where waiting lists have crossed 300."
    assert article.image_caption == "Passengers board a train at New Delhi railway station."
    assert article.title == "Railways to run 120 monsoon special trains"


def test_rss_rejections_name_the_item_and_the_field(settings):
    rejected = [str(r) for r in parse_fixture(settings, "rss2.xml").rejected]
    assert rejected == [
        "item 5 (guid 'na-47005'): link: \"javascript:void(window.open('https://quiz.example.com/'))\" "
        "is not an http(s) URL",
        "item 6 (guid 'na-47006'): title: missing",
    ]


def test_one_bad_item_never_stops_the_rest(settings):
    parsed = parse_fixture(settings, "one-bad-item.xml")
    assert [a.title for a in parsed.articles] == ["First good item", "Third good item"]
    assert [(r.item_ref, r.reason) for r in parsed.rejected] == [
        ("item 2 (guid 'na-51002')", "title: nothing left after removing markup")
    ]


def test_an_item_that_crashes_a_rule_is_rejected_not_fatal(settings, monkeypatch):
    # A bug cannot be provoked on purpose, so one is planted for the first item.
    real = feeds.build_article

    def flaky(raw, **kwargs):
        if raw.guid == "na-51001":
            raise KeyError("surprise")
        return real(raw, **kwargs)

    monkeypatch.setattr(feeds, "build_article", flaky)
    parsed = parse_fixture(settings, "one-bad-item.xml")
    assert [a.key for a in parsed.articles] == ["na-51003"]
    assert str(parsed.rejected[0]) == "item 1 (guid 'na-51001'): could not be read (KeyError: 'surprise')"
    assert len(parsed.rejected) == 2


# --- Atom 1.0 ---------------------------------------------------------------------------
def test_atom(settings):
    parsed = parse_fixture(settings, "atom.xml")
    assert parsed.format == "atom" and parsed.rejected == []
    rupee, hockey, monsoon = parsed.articles
    assert rupee.key == "tag:newsarenaindia.com,2025:politics/48001"
    assert rupee.url == SITE + "politics/rupee-86-dollar"  # against xml:base
    assert rupee.title == "Rupee < 86 per dollar & falling"  # type="text": literal "<"
    assert rupee.standfirst == "The rupee slid for a third day. Dealers blamed crude."
    assert (rupee.published_at, rupee.updated_at) == (
        datetime(2025, 7, 4, 3, 30, tzinfo=UTC), datetime(2025, 7, 4, 5, 0, tzinfo=UTC),
    )
    assert (rupee.byline, rupee.section, rupee.tags) == ("Business Desk, Aditya Menon", "politics", ("Currency",))
    assert rupee.image_url == SITE + "images/rupee.png"  # link rel="enclosure"
    assert (rupee.dateline, rupee.read_minutes) == ("Mumbai", 4)
    assert rupee.also_read == (RelatedLink("Crude climbs to $80", SITE + "economy/crude-oil-prices"),)

    assert hockey.title == "Hockey: India beat Belgium 3–2"  # type="html" entity
    assert (hockey.published_at, hockey.updated_at) == (datetime(2025, 7, 3, 18, 50, tzinfo=UTC), None)
    assert (hockey.section, hockey.image_url) == ("sports", SITE + "images/thumb/hockey.jpg")

    assert monsoon.standfirst == "Half the country's farmland is still rain-fed."
    assert (monsoon.section, monsoon.url) == ("opinion", SITE + "opinion/monsoon-growth")


# --- JSON Feed 1.1 ----------------------------------------------------------------------
def test_json_feed(settings):
    parsed = parse_fixture(settings, "jsonfeed.json", base_url="https://cdn.newsarenaindia.com/feed.json")
    assert parsed.format == "json"
    articles = by_key(parsed)
    russia = articles["na-49001"]
    assert russia.url == SITE + "international/russia-recognises-taliban"  # fbclid removed
    assert russia.standfirst == "Russia has become the first country to officially recognise Afghanistan’s Taliban-led government."
    assert (russia.section, russia.dateline, russia.read_minutes, russia.trending) == ("international", "Moscow", 2, True)
    assert russia.image_caption == "Russian envoy Dmitry Zhirnov hands over credentials in Kabul."
    assert russia.tags == ("Afghanistan", "Russia")
    assert russia.updated_at == datetime(2025, 7, 4, 6, 17, tzinfo=UTC)
    assert russia.also_read == (
        RelatedLink("Russia rains missiles on Kyiv hours after Putin-Trump phone call",
                    "https://cdn.newsarenaindia.com/international/russia-rains-missiles-on-kyiv"),
    )

    chess = articles["49002"]  # a numeric id is the guid as text
    assert chess.title == "♟️ अर्जुन राघवन ने प्राग ओपन जीता"
    assert chess.url == "https://cdn.newsarenaindia.com/sports/chess-prague-open"  # against the feed URL
    assert chess.standfirst == "The Grandmaster scored 7.5 from 8."  # first paragraph of content_text
    assert (chess.byline, chess.section, chess.tags) == ("Sports Desk", "sports", ("Chess",))
    assert chess.image_url == "https://cdn.newsarenaindia.com/images/chess-banner.jpg"
    assert (chess.dateline, chess.read_minutes) == ("", 1)  # bad extension values ignored
    assert chess.published_at == datetime(2025, 7, 3, 8, 50, tzinfo=UTC)  # naive: site timezone

    upi = articles["na-49005"]
    assert upi.url == SITE + "economy/upi-volumes-june"  # external_url when there is no url
    assert upi.section == "economy"

    assert [str(r) for r in parsed.rejected] == [
        "item 3: item: expected a JSON object, got str",
        "item 4 (guid 'na-49004'): title: expected a string, got a number",
    ]


def test_json_feed_relative_urls_use_the_home_page_for_file_sources(settings):
    parsed = parse_fixture(settings, "jsonfeed.json")
    assert by_key(parsed)["49002"].url == SITE + "sports/chess-prague-open"


def test_json_feed_1_0_is_accepted(settings):
    body = b'{"version": "https://jsonfeed.org/version/1", "items": [{"id": "1", "url": "https://x.example/a", "title": "T"}]}'
    assert [a.key for a in parse(settings, body).articles] == ["1"]


# --- malformed bodies ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, reason",
    [
        ("truncated.xml", "not a readable feed: malformed XML with no items"),
        ("page.html", "not a feed: the body is an HTML page"),
        ("truncated.json", "not a readable feed: invalid JSON"),
        ("not-a-jsonfeed.json", 'not a JSON Feed: "version" must start with https://jsonfeed.org/version/'),
    ],
)
def test_malformed_feed_raises_feed_error(settings, name, reason):
    with pytest.raises(FeedError) as caught:
        parse_fixture(settings, name)
    assert caught.value.source == "test-feed"
    assert caught.value.reason.startswith(reason)


@pytest.mark.parametrize(
    "body, reason",
    [
        (b"", "empty body"),
        (b"  \n ", "empty body"),
        (b"[1, 2]", "not a JSON Feed: the JSON document is not an object"),
        (b'{"version": "https://jsonfeed.org/version/1.1", "items": {}}', '"items" is missing or not a list'),
        (b'<?xml version="1.0"?><catalog><book>x</book></catalog>', "not an RSS, Atom or JSON feed (root element <catalog>)"),
        (b"just some text", "not a readable feed"),
        # A body naming a local file must not make the parser read that file.
        (b"/etc/hostname", "not a readable feed"),
    ],
)
def test_not_a_feed_raises_feed_error(settings, body, reason):
    with pytest.raises(FeedError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        parse(settings, body)


def test_empty_but_valid_feed_is_no_error(settings):
    parsed = parse(settings, rss(""))
    assert (parsed.articles, parsed.rejected, parsed.format) == ([], [], "rss")


def test_slightly_broken_xml_still_yields_its_items(settings):
    parsed = parse_fixture(settings, "broken-but-readable.xml")
    heatwave, teesta = parsed.articles
    assert heatwave.title == "Heatwave grips southern Europe"
    assert heatwave.standfirst == "Temperatures above 40°C in Italy and Spain."
    assert (heatwave.section, heatwave.dateline) == ("international", "Rome")  # na: from our own parse
    assert (teesta.section, teesta.dateline) == ("international", "Dhaka")
    assert teesta.published_at == datetime(2025, 7, 4, 2, 0, tzinfo=UTC)


# --- safety of our own XML parse -------------------------------------------------------------
@pytest.mark.parametrize("reader", [parse_feed, feeds._parse_with_feedparser])
def test_external_entities_are_never_expanded(settings, tmp_path, reader):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    body = (
        f'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY s SYSTEM "{secret.as_uri()}">]>'
        '<rss version="2.0"><channel><title>T</title><item><title>Leak &s; here</title>'
        "<link>https://x.example/a</link><description>&s;</description></item></channel></rss>"
    ).encode()
    article = parse(settings, body, reader=reader).articles[0]
    assert "TOP-SECRET" not in article.title + article.standfirst
    assert article.title == "Leak here"


def test_entity_expansion_bomb_is_harmless(settings):
    levels = "".join(f'<!ENTITY e{i} "{("&e%d;" % (i - 1)) * 10}">' for i in range(1, 10))
    body = (
        f'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY e0 "lol">{levels}]>'
        '<rss version="2.0"><channel><title>T</title><item><title>Bomb &e9;</title>'
        "<link>https://x.example/a</link></item></channel></rss>"
    ).encode()
    parsed = parse(settings, body)
    assert all(len(a.title) < 100 for a in parsed.articles)


# --- the two readers agree ------------------------------------------------------------------
@pytest.mark.parametrize("name", WELL_FORMED_XML)
def test_feedparser_fallback_reads_well_formed_feeds_like_our_reader(settings, name):
    body = (FEEDS / name).read_bytes()
    ours = parse(settings, body)
    fallback = parse(settings, body, reader=feeds._parse_with_feedparser)
    assert ours.articles == fallback.articles
    assert [str(r) for r in ours.rejected] == [str(r) for r in fallback.rejected]


def test_shipped_sample_reads_the_same_both_ways(settings):
    data = (PROJECT_ROOT / "config" / "samples" / "newsarena.xml").read_bytes()
    ours = parse(settings, data)
    assert ours.articles == parse(settings, data, reader=feeds._parse_with_feedparser).articles
    assert {a.section for a in ours.articles} == {s.slug for s in settings.sections}


@pytest.mark.parametrize("reader", [parse_feed, feeds._parse_with_feedparser])
def test_exotic_dates_are_read_by_feedparser_when_our_rules_cannot(settings, reader):
    body = rss("<item><title>T</title><link>https://x.example/a</link><pubDate>2025-07</pubDate></item>")
    article = parse(settings, body, reader=reader).articles[0]
    assert (article.published_at, article.date_missing) == (datetime(2025, 7, 1, tzinfo=UTC), False)


@pytest.mark.parametrize("reader", [parse_feed, feeds._parse_with_feedparser])
def test_the_lead_images_declared_size_is_kept(settings, reader):
    ns = 'xmlns:media="http://search.yahoo.com/mrss/" xmlns:content="http://purl.org/rss/1.0/modules/content/"'
    body = rss(
        "<item><title>Thumbnail only</title><link>https://x.example/1</link>"
        '<media:thumbnail url="https://img.example/t1.jpg" width="192" height="108"/></item>'
        "<item><title>Content and thumbnail</title><link>https://x.example/2</link>"
        '<media:content url="https://img.example/c2.jpg" medium="image" width="1200" height="675"/>'
        '<media:thumbnail url="https://img.example/t2.jpg" width="192" height="108"/></item>'
        "<item><title>Body image</title><link>https://x.example/3</link>"
        '<content:encoded><![CDATA[<p><img src="https://img.example/b3.jpg" width="400" height="300"></p>]]></content:encoded></item>'
        "<item><title>No size</title><link>https://x.example/4</link>"
        '<media:content url="https://img.example/c4.jpg" medium="image"/></item>',
        namespaces=ns,
    )
    parsed = parse(settings, body, reader=reader)
    assert [(a.image_url, a.image_width, a.image_height) for a in parsed.articles] == [
        ("https://img.example/t1.jpg", 192, 108),
        ("https://img.example/c2.jpg", 1200, 675),
        ("https://img.example/b3.jpg", 400, 300),
        ("https://img.example/c4.jpg", None, None),
    ]


def test_json_feed_declares_no_image_size(settings):
    import json

    body = json.dumps(
        {
            "version": "https://jsonfeed.org/version/1.1",
            "title": "T",
            "items": [{"id": "j1", "url": SITE + "nation/j", "title": "J", "image": "https://img.example/j.jpg"}],
        }
    ).encode()
    (article,) = parse(settings, body).articles
    assert (article.image_url, article.image_width, article.image_height) == ("https://img.example/j.jpg", None, None)


# --- bases for relative links -----------------------------------------------------------------
def test_relative_links_resolve_against_xml_base_then_feed_url_then_home_then_site(settings):
    item = "<item><title>T</title><link>/a</link></item>"
    home = "<link>https://home.example/</link>"
    assert parse(settings, rss(item, home), base_url="https://feeds.example/rss").articles[0].url == "https://feeds.example/a"
    assert parse(settings, rss(item, home)).articles[0].url == "https://home.example/a"
    assert parse(settings, rss(item)).articles[0].url == SITE + "a"
    with_base = rss(item.replace("<item>", '<item xml:base="https://base.example/x/">'), home)
    assert parse(settings, with_base, base_url="https://feeds.example/rss").articles[0].url == "https://base.example/a"


def test_extensions_reach_feedparser_entries_on_broken_xml(settings):
    ns = 'xmlns:na="https://www.newsarenaindia.com/ns/distributor/1.0"'
    body = rss(
        "<item><title>A&nbsp;1</title><link>https://x.example/1</link><guid>g1</guid><na:dateline>One</na:dateline></item>"
        "<item><title>B</title><link>https://x.example/2</link><guid>g2</guid><na:dateline>Two</na:dateline></item>",
        namespaces=ns,
    )
    parsed = parse(settings, body)  # &nbsp; is not XML: the feedparser path
    assert [(a.key, a.title, a.dateline) for a in parsed.articles] == [("g1", "A 1", "One"), ("g2", "B", "Two")]


def test_entries_and_elements_pair_by_position_then_guid():
    one, two, three = (feeds._ElementItem(guid=g) for g in ("g1", "g2", ""))
    # Same count: by position, unless the guids disagree (then by guid).
    assert feeds._match_elements(["g1", "g2", ""], [one, two, three]) == [one, two, three]
    assert feeds._match_elements(["g2", "g1", "x"], [one, two, three]) == [two, one, three]
    # Different counts: by guid only; an entry without a match goes without.
    assert feeds._match_elements(["g2", "", "g1", "g9"], [one, two]) == [two, None, one, None]
