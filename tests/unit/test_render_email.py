"""Email rendering: golden digest, per-recipient splicing, headers that cannot be injected,
escaping, variants, UTM links, DKIM and the confirmation email.

Golden files: tests/fixtures/golden/digest.html, digest.txt and digest.eml are compared
whole. After an intended change to templates or rendering, regenerate them with

    UPDATE_GOLDEN=1 .venv/bin/pytest -q tests/unit/test_render_email.py

and review the diff before committing.
"""

from __future__ import annotations

import binascii
import difflib
import email
import os
import random
import re
import shutil
import subprocess
from dataclasses import replace
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from distributor.articles import Article, Section
from distributor.editions import Edition, SectionGroup, Window
from distributor.errors import ConfigError
from distributor.render.email import (
    InvalidAddress,
    Recipient,
    _qp,
    add_utm,
    clean_address,
    envelope_sender,
    fill_html,
    fill_text,
    mailbox_from,
    render_confirmation,
    render_variant,
)
from distributor.settings import EmailConfig, Settings, load_settings
from tests.conftest import CONFIG, FIXTURES, settings_for

GOLDEN = FIXTURES / "golden"
NOW = datetime(2025, 7, 4, 1, 30, tzinfo=UTC)  # 07:00 in Kolkata: the morning slot
RUN_ID = 1234
SITE = "https://www.newsarenaindia.com"


def article(key: str, section: str, title: str, hour: int, **fields) -> Article:
    return Article(
        key=f"{SITE}/{section}/{key}",
        url=f"{SITE}/{section}/{key}",
        title=title,
        section=section,
        published_at=datetime(2025, 7, 3, hour, 0, tzinfo=UTC),
        **fields,
    )


# The seed article, with its real fields (section, byline, dateline, update, read time,
# caption); it was updated, so it carries the "Updated" mark.
SEED = Article(
    key=f"{SITE}/international/russia-becomes-first-country-to-officially-recognise-taliban-govt",
    url=f"{SITE}/international/russia-becomes-first-country-to-officially-recognise-taliban-govt",
    title="Russia becomes first country to officially recognise Taliban rule",
    section="international",
    published_at=datetime(2025, 7, 3, 17, 40, tzinfo=UTC),
    updated_at=datetime(2025, 7, 4, 6, 17, tzinfo=UTC),
    standfirst=(
        "Russia has become the first country to officially recognise Afghanistan’s "
        "Taliban-led government, a move seen as both strategic and ideological amid "
        "Moscow’s growing confrontation with the West."
    ),
    byline="News Arena Network",
    dateline="Moscow",
    image_url=f"{SITE}/images/article/2025/07/russia-recognises-taliban-zhirnov-kabul.jpg",
    image_caption=(
        "Russian envoy Dmitry Zhirnov hands over credentials in Kabul as Afghan Foreign "
        "Minister Amir Khan Muttaqi hails Moscow’s recognition of the Islamic Emirate of Afghanistan."
    ),
    read_minutes=2,
    trending=True,
    version=2,
)
HAWKS = article(
    "hyderabad-hawks-clinch-deccan-t20-title-last-ball-six", "sports",
    "🏏 Hyderabad Hawks clinch Deccan T20 title with last-ball six", 13,
    standfirst="Needing five off the final ball, 21-year-old Rohan Varma cleared long-on.",
    byline="Sports Desk", dateline="Hyderabad", read_minutes=3, trending=True,
    image_url=f"{SITE}/images/article/2025/07/hyderabad-hawks-deccan-t20-final.jpg",
    image_width=1200, image_height=900,  # 4:3, as declared by the feed
)
MONSOON = article(
    "imd-heavy-rain-alert-10-states", "nation",
    "मानसून: मौसम विभाग ने 10 राज्यों में भारी बारिश का अलर्ट जारी किया", 12,
    standfirst="अगले 48 घंटों में 10 राज्यों में भारी बारिश की संभावना 🌧️",
    byline="News Arena Network", dateline="नई दिल्ली", read_minutes=1,
)  # no image
TRAINS = article(
    "railways-120-monsoon-special-trains", "nation",
    "Railways to run 120 monsoon special trains on busiest routes", 10,
    standfirst="Extra services on 30 routes from next week.", byline="Nation Desk",
    image_url=f"{SITE}/images/article/2025/07/monsoon-trains.jpg",
)  # no caption: alt text is the title
SESSION = article(
    "monsoon-session-july-21", "politics",
    "Parliament’s Monsoon Session likely from July 21; all-party meeting next week", 9,
    byline="Political Bureau", dateline="New Delhi", read_minutes=4, version=3,
)
HOCKEY = article(
    "india-women-hockey-beat-belgium", "sports",
    "India women’s hockey team beats Belgium 3-2 in four-nations opener", 8,
    byline="Sports Desk", read_minutes=2,
)
SENSEX = Article(
    key=f"{SITE}/economy/sensex-snaps-losing-streak",
    # A link that already carries tracking: ours replace utm_source/medium/campaign,
    # utm_content and the site's own parameters stay.
    url=f"{SITE}/economy/sensex-snaps-losing-streak?ref=home&utm_source=rss&utm_content=top#chart",
    title="Sensex snaps two-day losing streak, ends 193 points higher as IT stocks rally 📈",
    section="economy",
    published_at=datetime(2025, 7, 3, 11, 0, tzinfo=UTC),
    standfirst="Infosys & TCS led the gains; the rupee ended flat.",
    byline="Markets Desk",
    dateline="Mumbai",
    read_minutes=2,
)


def fixture_edition(**changes) -> Edition:
    """A fixed morning issue: Trending first, then Nation, Politics, Economy, Sports."""
    values = {
        "name": "morning",
        "label": "Morning Brief",
        "window": Window(datetime(2025, 7, 3, 1, 30, tzinfo=UTC), NOW),
        "trending": (SEED, HAWKS),
        "groups": (
            SectionGroup(Section("nation", "Nation", 0), (MONSOON, TRAINS)),
            SectionGroup(Section("politics", "Politics", 3), (SESSION,)),
            SectionGroup(Section("economy", "Economy", 5), (SENSEX,)),
            SectionGroup(Section("sports", "Sports", 6), (HOCKEY,)),
        ),
        "omitted": 14,
    }
    values.update(changes)
    return Edition(**values)


ASHA = Recipient(
    email="asha@example.com",
    name="Asha Rao",
    unsubscribe_url="https://news.example/unsubscribe?t=asha.token-1&x=1",
    preferences_url="https://news.example/preferences?t=asha.prefs-1",
)
RAVI = Recipient(
    email="ravi.kumar@example.org",
    name="रवि कुमार",  # Devanagari: an encoded word in To
    unsubscribe_url="https://news.example/unsubscribe?t=" + "r" * 180,  # longer than a QP line
    preferences_url="https://news.example/preferences?t=ravi.prefs-2",
)


def parse(raw: bytes) -> EmailMessage:
    return email.message_from_bytes(raw, policy=policy.default)  # type: ignore[return-value]


def bodies(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",)).get_content().replace("\r\n", "\n")
    html = message.get_body(("html",)).get_content().replace("\r\n", "\n")
    return text, html


def check_golden(name: str, actual: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(actual.encode("utf-8"))
    expected = path.read_bytes().decode("utf-8")
    if actual != expected:
        diff = "\n".join(
            difflib.unified_diff(expected.splitlines(), actual.splitlines(), "golden/" + name, "rendered", lineterm="")
        )
        pytest.fail(f"{name} differs from the golden file (UPDATE_GOLDEN=1 regenerates):\n{diff[:6000]}")


@pytest.fixture
def variant(settings: Settings):
    return render_variant(settings, fixture_edition(), sections=None, run_id=RUN_ID, now=NOW)


# --- golden -------------------------------------------------------------------------


def test_digest_matches_golden_files(variant):
    check_golden("digest.html", fill_html(variant, ASHA))
    check_golden("digest.txt", fill_text(variant, ASHA))
    check_golden("digest.eml", variant.message(ASHA).decode("ascii"))


def test_rendering_is_deterministic(settings):
    one = render_variant(settings, fixture_edition(), sections=None, run_id=RUN_ID, now=NOW)
    two = render_variant(settings, fixture_edition(), sections=None, run_id=RUN_ID, now=NOW)
    assert (one.html, one.text, one.subject) == (two.html, two.text, two.subject)
    assert one.message(ASHA) == two.message(ASHA)


# --- the message --------------------------------------------------------------------


def test_message_parses_with_each_recipients_own_values(settings, variant):
    for who in (ASHA, RAVI):
        raw = variant.message(who)
        assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")  # CRLF only
        assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
        msg = parse(raw)
        assert msg.defects == [] and all(p.defects == [] for p in msg.walk())
        assert msg["From"] == "News Arena <brief@newsarenaindia.com>"
        assert msg["Reply-To"] == "News Arena Desk <desk@newsarenaindia.com>"
        assert msg["To"].addresses[0].addr_spec == who.email
        assert msg["To"].addresses[0].display_name == who.name
        assert msg["Subject"] == (
            "Morning Brief: Russia becomes first country to officially recognise Taliban rule + 6 more"
        )
        assert msg["Date"] == "Fri, 04 Jul 2025 07:00:00 +0530"
        assert msg["Date"].datetime == NOW
        assert re.fullmatch(r"<1234\.morning\.[0-9a-f]{20}@newsarenaindia\.com>", msg["Message-ID"])
        assert msg["MIME-Version"] == "1.0"
        assert msg["List-Id"] == "News Arena Morning Brief <morning.editions.newsarenaindia.com>"
        assert msg["List-Unsubscribe"] == (
            f"<{who.unsubscribe_url}>, <mailto:unsubscribe@newsarenaindia.com?subject=unsubscribe>"
        )
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert msg.get_content_type() == "multipart/alternative"
        parts = list(msg.iter_parts())
        assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
        assert all(p.get_content_charset() == "utf-8" for p in parts)
        assert all(p["Content-Transfer-Encoding"] == "quoted-printable" for p in parts)
        text, html = bodies(msg)
        assert text == fill_text(variant, who)
        assert html == fill_html(variant, who)
        greeting = f"Hi {who.name},"
        assert greeting in text and greeting in html
        assert f"Unsubscribe:\n{who.unsubscribe_url}\n" in text
        assert f'href="{who.unsubscribe_url.replace("&", "&amp;")}"' in html
        assert f'href="{who.preferences_url}"' in html
    assert parse(variant.message(ASHA))["Message-ID"] != parse(variant.message(RAVI))["Message-ID"]


def test_two_recipients_differ_only_in_their_own_parts(variant):
    """Every line that differs between two messages is a per-recipient header or a
    quoted-printable line holding (part of) that recipient's own value."""
    one, two = variant.message(ASHA).split(b"\r\n"), variant.message(RAVI).split(b"\r\n")

    def own_values(who: Recipient) -> list[str]:
        values = [f"Hi {who.name},", who.unsubscribe_url, who.preferences_url]
        return values + [v.replace("&", "&amp;") for v in values]

    def allowed(line: bytes, who: Recipient, header: bool) -> bool:
        if header:
            return line.startswith((b"To:", b"Message-ID:", b"List-Unsubscribe:", b" "))
        # A line may end inside a multi-byte character: drop partial ones.
        decoded = binascii.a2b_qp(line).decode("utf-8", errors="ignore")
        return bool(decoded) and any(decoded in value for value in own_values(who))

    blank_one, blank_two = one.index(b""), two.index(b"")  # end of the headers
    matcher = difflib.SequenceMatcher(None, one, two, autojunk=False)
    differing = 0
    for op, a0, a1, b0, b1 in matcher.get_opcodes():
        if op == "equal":
            continue
        for index in range(a0, a1):
            differing += 1
            assert allowed(one[index], ASHA, index < blank_one), one[index]
        for index in range(b0, b1):
            assert allowed(two[index], RAVI, index < blank_two), two[index]
    assert differing > 0


def test_quoted_printable_segments_join_and_decode_exactly():
    """Static segments and per-recipient values are encoded separately and joined; the
    result must decode to the joined text with no line over 76 characters."""
    rng = random.Random(20250704)
    alphabet = "ab =.\t?&<>\"'\n\r" + "मानसून" + "🏏📈" + "x" * 10
    for _ in range(400):
        pieces = [
            "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 220)))
            for _ in range(rng.randint(1, 6))
        ]
        encoded = b"".join(_qp(p) for p in pieces)
        # Each piece's line ends are normalised on its own (a CR ending one piece and an
        # LF starting the next are two line breaks, as they were two segments).
        expected = "".join(p.replace("\r\n", "\n").replace("\r", "\n") for p in pieces)
        assert binascii.a2b_qp(encoded.replace(b"\r\n", b"\n")).decode("utf-8") == expected
        lines = encoded.split(b"\r\n")
        assert all(len(line) <= 76 for line in lines)
        assert b"\n" not in encoded.replace(b"\r\n", b"")
        # Nothing ends in bare whitespace that a relay could strip.
        assert not any(line.endswith((b" ", b"\t")) for line in lines)


def test_message_is_fast_path_without_rendering(variant, monkeypatch):
    """message() never calls Jinja, premailer or the email package."""
    import jinja2
    import premailer

    def boom(*args, **kwargs):
        raise AssertionError("rendering work in message()")

    monkeypatch.setattr(premailer.Premailer, "transform", boom)
    monkeypatch.setattr(jinja2.Template, "render", boom)
    monkeypatch.setattr(EmailMessage, "__init__", boom)
    assert variant.message(ASHA).startswith(b"From: ")


# --- injection and escaping ----------------------------------------------------------


def test_crlf_in_title_and_name_never_makes_a_header(settings):
    evil = article(
        "evil", "nation", "Evil\r\nBcc: victim@example.com\r\n\r\nInjected body\x00", 14,
    )
    edition = fixture_edition(trending=(evil,) + fixture_edition().trending)
    variant = render_variant(settings, edition, sections=None, run_id=RUN_ID, now=NOW)
    who = Recipient(
        email="asha@example.com",
        name="Asha\nBcc: victim@example.com\u2028X-Evil: 1",
        unsubscribe_url="https://news.example/u?t=1\r\nX-Evil: 2",
        message_id="",
    )
    raw = variant.message(who)
    head = raw.split(b"\r\n\r\n", 1)[0]
    names = [line.split(b":", 1)[0] for line in head.split(b"\r\n") if not line.startswith(b" ")]
    assert names == [
        b"From", b"Reply-To", b"To", b"Subject", b"Date", b"Message-ID", b"List-Id",
        b"List-Unsubscribe", b"List-Unsubscribe-Post", b"Feedback-ID", b"MIME-Version", b"Content-Type",
    ]
    assert b"\x00" not in raw
    msg = parse(raw)
    assert msg["Bcc"] is None and msg["X-Evil"] is None
    assert msg["Subject"].startswith("Morning Brief: Evil Bcc: victim@example.com Injected body")
    assert [a.addr_spec for a in msg["To"].addresses] == ["asha@example.com"]
    assert msg["To"].addresses[0].display_name == "Asha Bcc: victim@example.com X-Evil: 1"
    assert msg["List-Unsubscribe"].startswith("<https://news.example/u?t=1X-Evil:2>")


@pytest.mark.parametrize(
    "address",
    ["asha@example.com\r\nBcc: victim@example.com", "a@b.com, c@d.com", "<a@b.com>", "no-at-sign", "a\x00@b.com>x"],
)
def test_bad_addresses_are_refused(variant, address):
    with pytest.raises(InvalidAddress):
        variant.message(Recipient(email=address))


def test_address_cleaning():
    assert clean_address(" asha@example.com\n") == "asha@example.com"
    assert clean_address("user@münchen.de") == "user@xn--mnchen-3ya.de"
    with pytest.raises(InvalidAddress):
        clean_address("आशा@example.com")  # would need SMTPUTF8


def test_markup_in_title_is_escaped_in_html_plain_in_text_and_header(settings):
    nasty = article("nasty", "nation", "</b><script>x</script> & \"quotes\"", 14,
                    image_url=f"{SITE}/i.jpg", image_caption='"><img src=x onerror=alert(1)>')
    edition = fixture_edition(trending=(nasty,))
    variant = render_variant(settings, edition, sections=None, run_id=RUN_ID, now=NOW)
    msg = parse(variant.message(ASHA))
    text, html = bodies(msg)
    assert "<script>" not in html and "onerror=alert(1)>" not in html
    assert "&lt;/b&gt;&lt;script&gt;x&lt;/script&gt; &amp; \"quotes\"" in html
    # lxml quotes with ' when the value holds a ", and escapes < > &.
    assert "alt='\"&gt;&lt;img src=x onerror=alert(1)&gt;'" in html
    assert "* </b><script>x</script> & \"quotes\"" in text
    assert msg["Subject"] == "Morning Brief: </b><script>x</script> & \"quotes\" + 5 more"


def test_placeholder_lookalikes_in_articles_stay_text(settings):
    fake = article("fake", "nation", "DST000000000000_unsubscribe_ and DST_greeting_", 14)
    variant = render_variant(settings, fixture_edition(trending=(fake,)), sections=None, run_id=1, now=NOW)
    text, _ = bodies(parse(variant.message(ASHA)))
    assert "DST000000000000_unsubscribe_ and DST_greeting_" in text


# --- content of the digest --------------------------------------------------------------


def test_html_layout_and_cards(variant, settings):
    html = fill_html(variant, ASHA)
    assert '<html lang="en"' in html
    assert '<meta name="color-scheme" content="light dark">' in html
    style = re.search(r"<style>(.*?)</style>", html, re.DOTALL).group(1)
    # Dark mode survives inlining, with !important kept so it beats inline styles.
    assert "@media (prefers-color-scheme: dark)" in style and "!important" in style
    assert "max-width:600px" in html
    assert "Morning Brief · Friday, 4 July 2025" in html
    assert f'href="http://127.0.0.1:8000/archive/{RUN_ID}"' in html and "View in browser" in html
    # The masthead is the one h1; the sections of the issue are listed under it.
    assert html.count("<h1") == 1 and '<h1 class="masthead"' in html
    assert ">Trending · Nation · Politics · Economy · Sports</p>" in html
    # The lead (first Trending) comes first, with its hero image; then Trending (numbered),
    # then sections in configured order.
    body = html[html.index("<body"):]
    order = [body.index(SEED.title)] + [
        body.index(f">{label}</h2>") for label in ("Trending", "Nation", "Politics", "Economy", "Sports")
    ]
    assert order == sorted(order)
    assert body.count(SEED.title) == 1  # the lead is not repeated in Trending
    assert re.search(r'class="rank"[^>]*>1</td>.{0,1200}' + re.escape(HAWKS.title), body, re.DOTALL)
    # Hero: alt is the caption; thumbnails are decorative (alt empty) and 120 px wide;
    # no image is a link, so each card has exactly one link (its headline).
    # Without declared sizes, the configured 552x311 box and a 120x67 thumbnail; with
    # them (HAWKS, 4:3), the image's own proportions.
    assert f'<img class="hero hero-full" src="{SEED.image_url}" alt="{SEED.image_caption}" width="552" height="311"' in html
    assert f'<img class="thumb" src="{TRAINS.image_url}" alt="" width="120" height="67"' in html
    assert f'<img class="thumb" src="{HAWKS.image_url}" alt="" width="120" height="90"' in html
    assert html.count("<img ") == 3  # the Devanagari story has no image
    assert not re.search(r"<a [^>]*>\s*<img", html)
    for card in re.findall(r'<td class="card[ "].*?</table>', body, re.DOTALL):
        assert card.count("<a ") == 1
    assert html.count(">Updated</span>") == 2  # SEED (version 2) and SESSION (version 3)
    assert "News Arena Network · Moscow · 2 min read" in html
    assert "+ 14 more on the site" in html
    assert "You receive the Morning Brief because you subscribed at News Arena." in html
    assert settings.site.postal_address in html


# --- images: drawn at their declared size, never larger -------------------------------
_IMG = re.compile(r'<img class="([^"]+)" src="([^"]+)" alt="([^"]*)" width="(\d+)" height="(\d+)"[^>]*>')


def drawn(html: str) -> dict[str, tuple[str, int, int]]:
    """Each image's (class, width attribute, height attribute), by URL."""
    return {src: (cls, int(w), int(h)) for cls, src, _, w, h in _IMG.findall(html)}


def lead_html(settings, **image) -> str:
    lead = replace(SEED, **image)
    return fill_html(render_variant(settings, fixture_edition(trending=(lead, HAWKS)), sections=None, run_id=RUN_ID, now=NOW))


def test_a_small_lead_image_is_a_thumbnail_beside_the_text_not_a_stretched_hero(settings):
    # A 200x112 media:thumbnail was drawn as a 552x311 hero: nearly three times its size.
    html = lead_html(settings, image_width=200, image_height=112)
    assert 'class="hero' not in html
    cls, width, height = drawn(html)[SEED.image_url]
    assert (cls, width, height) == ("thumb", 120, 67)
    assert width <= 200
    lead = html[html.index('<td class="lead"'):html.index("</td>\n</tr>\n</table>", html.index('<td class="lead"'))]
    assert SEED.title in lead and f'alt="{SEED.image_caption}"' in lead  # the lead's image keeps its caption
    # The threshold, not the 120 px thumbnail width, decides: 299 px is still too small.
    assert 'class="hero' not in lead_html(settings, image_width=299, image_height=168)


def test_a_lead_image_narrower_than_the_column_is_drawn_at_its_own_size(settings):
    html = lead_html(settings, image_width=400, image_height=300)
    cls, width, height = drawn(html)[SEED.image_url]
    assert (cls, width, height) == ("hero", 400, 300)  # not hero-full: never widened
    assert width <= 400
    assert "width:400px;max-width:100%;aspect-ratio:400/300" in html


def test_a_wide_lead_image_fills_the_column_in_its_own_proportions(settings):
    assert drawn(lead_html(settings, image_width=1200, image_height=800))[SEED.image_url] == ("hero hero-full", 552, 368)
    # Width alone: full width, the configured 16:9 box.
    assert drawn(lead_html(settings, image_width=1200))[SEED.image_url] == ("hero hero-full", 552, 311)
    # A portrait photo is drawn narrower, at most as tall as the column is wide.
    assert drawn(lead_html(settings, image_width=1200, image_height=1600))[SEED.image_url] == ("hero", 414, 552)


def test_thumbnails_keep_their_box_width_and_the_images_proportions(settings):
    small = replace(TRAINS, image_width=100, image_height=100)
    tall = replace(HAWKS, image_width=600, image_height=900)
    edition = fixture_edition(
        trending=(SEED, tall),
        groups=(SectionGroup(Section("nation", "Nation", 0), (MONSOON, small)),),
    )
    images = drawn(fill_html(render_variant(settings, edition, sections=None, run_id=RUN_ID, now=NOW)))
    assert images[TRAINS.image_url] == ("thumb", 100, 100)  # never upscaled to 120
    assert images[HAWKS.image_url] == ("thumb", 80, 120)  # 2:3, at most as tall as 120 px


def test_image_boxes_as_data():
    from distributor.render.email_images import EmailImageRules, hero_box, thumb_box

    plain = replace(SEED, image_width=None, image_height=None)
    assert hero_box(plain, 552, 311) == hero_box(replace(plain, image_height=900), 552, 311)
    assert (hero_box(plain, 552, 311).width, hero_box(plain, 552, 311).height) == (552, 311)
    small = replace(plain, image_width=200, image_height=112)
    assert hero_box(small, 552, 311) is None
    assert hero_box(small, 552, 311, EmailImageRules(min_hero_width=150)).width == 200
    assert thumb_box(small, 552, 311, EmailImageRules(thumb_width=160)).width == 160
    assert thumb_box(small, 552, 311, EmailImageRules(thumb_width=240)).width == 200  # never upscaled
    # A tall, narrow image fitted to the height cap is too narrow for a hero.
    assert hero_box(replace(plain, image_width=400, image_height=2000), 552, 311) is None
    assert hero_box(plain, 552, 311).aspect_ratio == "552 / 311"


def test_each_article_carries_its_language_and_direction(variant):
    html = fill_html(variant, ASHA)
    monsoon = html[: html.index(MONSOON.title, html.index("class=\"lead\""))]
    assert monsoon[monsoon.rindex("<td"):].startswith('<td class="card-text" valign="top" lang="hi" dir="ltr"')
    hawks = html[: html.index(HAWKS.title, html.index("class=\"lead\""))]
    assert 'lang="en" dir="ltr"' in hawks[hawks.rindex("<td"):]


def test_layout_tables_are_presentation(variant):
    html = fill_html(variant, ASHA)
    tables = re.findall(r"<table[^>]*>", html)
    assert tables and all('role="presentation"' in t for t in tables)


def test_text_part_wraps_at_78_columns_except_a_url_on_its_own_line(settings):
    long_title = "Monsoon session: " + " ".join(["opposition demands debate on floods"] * 8)  # ~300 chars
    long_meta = article("long", "nation", long_title, 14, byline="Political Bureau and " * 6, dateline="New Delhi",
                        standfirst="A standfirst " * 20)
    variant = render_variant(settings, fixture_edition(trending=(long_meta, SEED)), sections=None, run_id=RUN_ID, now=NOW)
    text = fill_text(variant, RAVI)  # Ravi's unsubscribe URL is over 200 characters
    for line in text.splitlines():
        assert len(line) <= 78 or re.fullmatch(r"\s*https?://\S+", line), line
    # The headline is whole, only wrapped; URLs are never cut.
    assert " ".join(long_title.split()) in " ".join(text.replace("*", " ").split())
    assert f"\n{RAVI.unsubscribe_url}\n" in text
    assert re.search(r"\n  http://127\.0\.0\.1:8000/c/\S+\n", text)


def test_preview_without_run_has_no_view_in_browser_link(settings):
    variant = render_variant(settings, fixture_edition(), sections=None, run_id=None, now=NOW)
    assert "View in browser" not in variant.html and "View in browser" not in variant.text
    msg = parse(variant.message(Recipient(email="asha@example.com")))
    assert msg["Message-ID"].startswith(f"<preview{int(NOW.timestamp())}.morning.")
    text, _ = bodies(msg)
    # No recipient data: generic greeting and the generic pages.
    assert "Hello," in text and "Unsubscribe:\nhttp://127.0.0.1:8000/unsubscribe\n" in text
    assert msg["To"] == "asha@example.com"


def test_sports_only_variant_has_only_sports(settings):
    variant = render_variant(settings, fixture_edition(), sections=["sports"], run_id=RUN_ID, now=NOW)
    assert (variant.key, variant.sections, variant.count) == ("sports", ("sports",), 2)
    html, text = fill_html(variant, ASHA), fill_text(variant, ASHA)
    # Trending keeps only Sports stories (Edition.for_sections); no other section shows.
    assert HAWKS.title in html and HOCKEY.title in html and HAWKS.title in text
    for other in (SEED, MONSOON, TRAINS, SESSION, SENSEX):
        assert other.title not in html and other.title not in text
    # Hawks, the one Trending story left, leads; Hockey is its section's only card.
    assert ">Nation</h2>" not in html and ">Sports</h2>" in html and ">Trending</h2>" not in html
    body = html[html.index('class="lead"'):]
    assert body.index(HAWKS.title) < body.index(">Sports</h2>") < body.index(HOCKEY.title)
    assert variant.subject == f"Morning Brief: {HAWKS.title} + 1 more"


def test_variant_keys(settings):
    edition = fixture_edition()
    assert render_variant(settings, edition, sections=None, run_id=1, now=NOW).key == "all"
    assert render_variant(settings, edition, sections=[], run_id=1, now=NOW).key == "all"
    both = render_variant(settings, edition, sections=["sports", "nation", "sports"], run_id=1, now=NOW)
    assert (both.key, both.sections) == ("nation+sports", ("nation", "sports"))
    empty = render_variant(settings, edition, sections=["entertainment"], run_id=1, now=NOW)
    assert empty.count == 0 and "No new stories in your sections" in empty.text


def test_subject_is_rfc2047_encoded_when_not_ascii_and_cut_when_long(settings):
    edition = fixture_edition(trending=(MONSOON,), groups=())
    raw = render_variant(settings, edition, sections=None, run_id=1, now=NOW).message(ASHA)
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert head.isascii() and b"=?utf-8?b?" in head
    assert all(len(line) <= 78 for line in head.split(b"\r\n") if not line.startswith(b"List-Unsubscribe"))
    assert parse(raw)["Subject"] == f"Morning Brief: {MONSOON.title}"

    long_title = "Word " * 40
    edition = fixture_edition(trending=(article("long", "nation", long_title, 14),))
    subject = render_variant(settings, edition, sections=None, run_id=1, now=NOW).subject
    headline = subject.removeprefix("Morning Brief: ").rsplit(" + ", 1)[0]
    assert headline.endswith("…") and len(headline) <= settings.file.email.subject_headline_chars


# --- links ---------------------------------------------------------------------------


def test_add_utm_replaces_ours_and_keeps_the_rest():
    params = (("utm_source", "newsletter"), ("utm_medium", "email"), ("utm_campaign", "morning"))
    assert add_utm(f"{SITE}/a", params) == f"{SITE}/a?utm_source=newsletter&utm_medium=email&utm_campaign=morning"
    assert add_utm(f"{SITE}/a?ref=home&utm_source=rss&utm_content=top&q=a%20b#chart", params) == (
        f"{SITE}/a?ref=home&utm_content=top&q=a%20b&utm_source=newsletter&utm_medium=email&utm_campaign=morning#chart"
    )
    assert add_utm(f"{SITE}/a?x=1", ()) == f"{SITE}/a?x=1"


def test_html_and_text_carry_the_same_utm_links_without_click_tracking(settings):
    from distributor.settings import Settings, TrendingConfig

    untracked = Settings(
        settings.file.model_copy(update={"trending": settings.file.trending.model_copy(update={"click_tracking": False})}),
        settings.env,
        settings.config_path,
    )
    assert isinstance(untracked.file.trending, TrendingConfig)
    variant = render_variant(untracked, fixture_edition(), sections=None, run_id=1234, now=NOW)
    html, text = fill_html(variant, ASHA), fill_text(variant, ASHA)
    in_html = {u.replace("&amp;", "&") for u in re.findall(r'href="(https://www\.newsarenaindia\.com[^"]*)"', html)}
    in_text = set(re.findall(r"https://www\.newsarenaindia\.com\S*", text))
    assert in_html == in_text
    assert all("utm_source=newsletter&utm_medium=email&utm_campaign=morning" in u for u in in_html)
    assert f"{SITE}/economy/sensex-snaps-losing-streak?ref=home&utm_content=top&utm_source=newsletter" in text


def test_article_links_are_short_click_links_of_at_most_80_characters(settings, variant):
    from distributor.short_clicks import SHORT_TOKEN, key_ref

    html, text = fill_html(variant, ASHA), fill_text(variant, ASHA)
    links = re.findall(r"http://127\.0\.0\.1:8000/c/[\w.-]+", text)
    assert links and set(links) == set(re.findall(r'href="(http://127\.0\.0\.1:8000/c/[\w.-]+)"', html))
    assert all(len(link) <= 80 for link in links)
    tokens = [link.rsplit("/", 1)[1] for link in links]
    assert all(SHORT_TOKEN.match(token) for token in tokens)
    # Each names this run (base 36) and one article; nothing personal, so every reader
    # of the variant gets the same links.
    assert {token.split("_", 1)[0] for token in tokens} == {"ya"}  # 1234
    assert {SHORT_TOKEN.match(token).group(2) for token in tokens} == {key_ref(a.key) for a in fixture_edition().articles}


def test_previews_without_a_run_keep_signed_links_to_the_utm_target(settings):
    from distributor.trending import read_click

    variant = render_variant(settings, fixture_edition(), sections=None, run_id=None, now=NOW)
    tracked = re.findall(r'href="http://127\.0\.0\.1:8000/c/([\w.-]+)"', fill_html(variant, ASHA))
    clicks = [read_click(settings, token) for token in tracked]
    assert clicks and all(c.run_id is None and c.channel == "email" for c in clicks)
    assert all("utm_source=newsletter&utm_medium=email&utm_campaign=morning" in c.target for c in clicks)


# --- identity and config ----------------------------------------------------------------


def test_mail_from_env_overrides_config(tmp_path, monkeypatch):
    monkeypatch.setenv("MAIL_FROM", "Desk <desk@example.com>")
    settings = settings_for(tmp_path)
    assert mailbox_from(settings) == "Desk <desk@example.com>"
    assert envelope_sender(settings) == "desk@example.com"
    variant = render_variant(settings, fixture_edition(), sections=None, run_id=1, now=NOW)
    assert parse(variant.message(ASHA))["From"] == "Desk <desk@example.com>"
    monkeypatch.setenv("MAIL_FROM", "not an address")
    with pytest.raises(ConfigError, match="MAIL_FROM"):
        mailbox_from(settings_for(tmp_path))


@pytest.mark.parametrize(
    ("old", "new", "key", "reason"),
    [
        ('from_address = "News Arena <brief@newsarenaindia.com>"', 'from_address = "brief"', "email.from_address", "not a mailbox"),
        ('list_id = "{edition}.editions.newsarenaindia.com"', 'list_id = "{slot}.example.com"', "email.list_id", "placeholder"),
        ('utm_campaign = "{edition}"', 'utm_campaign = "a b"', "email.utm_campaign", "spaces"),
        ('greeting = "Hi {name},"', 'greeting = "Hi,"', "email.greeting", "{name}"),
        ('dkim_selector = ""', 'dkim_selector = "s1"', "email", "missing dkim_domain"),
        ('message_id_domain = "newsarenaindia.com"', 'message_id_domain = "not a domain"', "email.message_id_domain", "domain"),
    ],
)
def test_bad_email_config_names_key_and_reason(tmp_path, old, new, key, reason):
    shipped = CONFIG.read_text(encoding="utf-8")
    assert old in shipped
    path = tmp_path / "distributor.toml"
    path.write_text(shipped.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert key in str(info.value) and reason in str(info.value)


# --- DKIM --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dkim_key(tmp_path_factory) -> tuple[Path, bytes]:
    """A throwaway RSA key made with the openssl CLI; (private key file, DNS TXT record)."""
    if not shutil.which("openssl"):
        pytest.skip("openssl CLI not found: cannot make a DKIM test key")
    folder = tmp_path_factory.mktemp("dkim")
    key = folder / "dkim.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
    public = subprocess.run(
        ["openssl", "rsa", "-in", str(key), "-pubout", "-outform", "DER"], check=True, capture_output=True
    ).stdout
    import base64

    return key, b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)


def dkim_settings(tmp_path: Path, key: Path) -> Settings:
    base = load_settings(CONFIG).file.email.model_dump()
    base.update(dkim_selector="news2025", dkim_domain="newsarenaindia.com", dkim_private_key_file=str(key))
    return settings_for(tmp_path, email=EmailConfig(**base))


def test_dkim_signature_verifies_and_covers_list_unsubscribe(tmp_path, dkim_key):
    import dkim

    key, record = dkim_key
    settings = dkim_settings(tmp_path, key)
    variant = render_variant(settings, fixture_edition(), sections=None, run_id=RUN_ID, now=NOW)

    def dns(name, timeout=5):
        assert name == b"news2025._domainkey.newsarenaindia.com."
        return record

    for who in (ASHA, RAVI):
        raw = variant.message(who)
        assert raw.startswith(b"DKIM-Signature: ")
        assert dkim.verify(raw, dnsfunc=dns)
        signed = parse(raw)["DKIM-Signature"]
        covered = re.search(r"h=([^;]+)", signed.replace(" ", "")).group(1).lower().split(":")
        for header in ("from", "to", "subject", "date", "message-id", "list-id", "list-unsubscribe", "list-unsubscribe-post"):
            assert header in covered
        tampered = raw.replace(who.unsubscribe_url[:30].encode(), b"https://evil.example/unsub", 1)
        assert tampered != raw and not dkim.verify(tampered, dnsfunc=dns)
    confirmation = render_confirmation(settings, email="asha@example.com", confirm_url="https://news.example/c?t=1", now=NOW)
    assert dkim.verify(confirmation, dnsfunc=dns)


def test_dkim_key_problems_are_config_errors(tmp_path):
    missing = dkim_settings(tmp_path, tmp_path / "missing.pem")
    with pytest.raises(ConfigError, match="dkim_private_key_file: cannot read"):
        render_variant(missing, fixture_edition(), sections=None, run_id=1, now=NOW)
    junk = tmp_path / "junk.pem"
    junk.write_text("not a key")
    with pytest.raises(ConfigError, match="not a PEM RSA private key"):
        render_variant(dkim_settings(tmp_path, junk), fixture_edition(), sections=None, run_id=1, now=NOW)


# --- confirmation ---------------------------------------------------------------------


def test_confirmation_email(settings):
    url = "https://news.example/confirm?token=abc.def&x=1"
    raw = render_confirmation(settings, email="asha@example.com", confirm_url=url, now=NOW, valid_hours=72)
    msg = parse(raw)
    assert msg.defects == []
    assert msg["To"] == "asha@example.com" and msg["From"] == "News Arena <brief@newsarenaindia.com>"
    assert msg["Subject"] == "Confirm your subscription to News Arena"
    assert msg["Date"].datetime == NOW
    assert re.fullmatch(r"<confirm\.\d+\.[0-9a-f]{20}@newsarenaindia\.com>", msg["Message-ID"])
    assert msg["List-Unsubscribe"] is None  # a one-off message to someone not yet on the list
    text, html = bodies(msg)
    assert url in text and "asha@example.com" in text and "72 hours" in text
    assert f'href="{url.replace("&", "&amp;")}"' in html and "Confirm my subscription" in html
    assert '<html lang="en"' in html
    other = render_confirmation(settings, email="ravi@example.org", confirm_url=url + "2", now=NOW, valid_hours=72)
    assert parse(other)["Message-ID"] != msg["Message-ID"] and "ravi@example.org" in bodies(parse(other))[0]
    with pytest.raises(InvalidAddress):
        render_confirmation(settings, email="x@y.com\r\nBcc: v@z.com", confirm_url=url, now=NOW)


@pytest.mark.parametrize(
    ("name", "header"),
    [
        ("Asha Rao", "Asha Rao <asha@example.com>"),
        ("रवि कुमार", "रवि कुमार <asha@example.com>"),  # an encoded word
        ('Dr. "Ravi", MD', '"Dr. \\"Ravi\\", MD" <asha@example.com>'),
        ("Evil\r\nBcc: victim@example.com", "\"Evil Bcc: victim@example.com\" <asha@example.com>"),
        ("", "asha@example.com"),
    ],
)
def test_confirmation_email_is_addressed_to_the_name_given(settings, name, header):
    raw = render_confirmation(
        settings, email="asha@example.com", confirm_url="https://news.example/c?t=1", now=NOW, name=name
    )
    msg = parse(raw)
    assert msg.defects == [] and msg["Bcc"] is None
    assert msg["To"].addresses[0].addr_spec == "asha@example.com"
    assert str(msg["To"]) == header


def test_edition_schedules_in_words_for_the_welcome_email(settings):
    from distributor.render.welcome import describe_schedule

    words = {name: describe_schedule(config, "Asia/Kolkata") for name, config in settings.editions.items()}
    assert words["morning"] == "every day at 07:00 (Asia/Kolkata time)"
    assert words["evening"] == "every day at 19:00 (Asia/Kolkata time)"
    assert words["weekly"] == "on Sundays at 09:00 (Asia/Kolkata time)"
    assert words["breaking"] == "as news breaks"
    weekdays = settings.editions["morning"].model_copy(update={"schedule": "30 6 * * 1,3,5"})
    assert describe_schedule(weekdays, "Europe/London") == "on Mondays, Wednesdays and Fridays at 06:30 (Europe/London time)"
