"""The size guard and transfer encodings: a Hindi-heavy digest is never clipped.

Gmail clips a message near 102 KB and hides its end, Unsubscribe included. Quoted-
printable makes a Devanagari character 9 bytes; base64 makes it 4. The HTML part of every
variant is measured at render time and trimmed (thumbnails, standfirsts, then articles
into "+ N more on the site") until it fits `email.html_budget_bytes`.
"""

from __future__ import annotations

import binascii
import logging
import random
from datetime import UTC, datetime

import pytest

from distributor.articles import Article, Section
from distributor.editions import Edition, SectionGroup, Window
from distributor.render.email import Recipient, fill_html, render_variant
from distributor.render.transfer import Base64Body, b64_size
from tests.conftest import settings_for
from tests.unit.test_render_email import ASHA, NOW, RAVI, RUN_ID, SITE, bodies, fixture_edition, parse

# Realistic Hindi news words; a headline is ~70 characters, a standfirst ~220.
WORDS = (
    "सरकार ने मानसून सत्र से पहले सर्वदलीय बैठक बुलाई प्रधानमंत्री मंत्रालय राज्यों में भारी "
    "बारिश का अलर्ट जारी किया चुनाव आयोग अदालत सुनवाई किसानों के लिए नई योजना शेयर बाजार "
    "में तेजी रुपया डॉलर के मुकाबले मजबूत क्रिकेट टीम ने जीत दर्ज की राजधानी दिल्ली"
).split()
SECTIONS = [Section("nation", "Nation", 0), Section("states", "States", 1), Section("politics", "Politics", 3),
            Section("economy", "Economy", 5), Section("sports", "Sports", 6)]


def hindi(rng: random.Random, chars: int) -> str:
    out = []
    while sum(len(w) + 1 for w in out) < chars:
        out.append(rng.choice(WORDS))
    return " ".join(out)


def hindi_edition(count: int, *, standfirst_chars: int = 220, seed: int = 40) -> Edition:
    rng = random.Random(seed)
    articles = []
    for i in range(count):
        section = SECTIONS[i % len(SECTIONS)]
        articles.append(Article(
            key=f"{SITE}/{section.slug}/story-{i}",
            url=f"{SITE}/{section.slug}/{'-'.join(['khabar'] * 6)}-{i}",
            title=hindi(rng, 75),
            section=section.slug,
            published_at=datetime(2025, 7, 3, 12, 0, tzinfo=UTC),
            standfirst=hindi(rng, standfirst_chars),
            byline="न्यूज़ एरीना नेटवर्क",
            dateline="नई दिल्ली",
            image_url=f"{SITE}/images/article/2025/07/story-{i}-{'x' * 30}.jpg",
            image_caption=hindi(rng, 90),
            read_minutes=3,
            trending=i < 3,
        ))
    groups = tuple(
        SectionGroup(s, tuple(a for a in articles[3:] if a.section == s.slug)) for s in SECTIONS
    )
    return Edition(
        name="morning", label="Morning Brief",
        window=Window(datetime(2025, 7, 3, 1, 30, tzinfo=UTC), NOW),
        trending=tuple(articles[:3]), groups=tuple(g for g in groups if g.articles),
    )


def html_part(raw: bytes):
    return [p for p in parse(raw).walk() if p.get_content_type() == "text/html"][0]


def test_forty_devanagari_articles_fit_the_budget_with_the_footer(settings, caplog):
    edition = hindi_edition(40)
    budget = settings.file.email.html_budget_bytes
    assert budget == 95 * 1024
    with caplog.at_level(logging.WARNING, logger="distributor.render.email"):
        variant = render_variant(settings, edition, sections=None, run_id=RUN_ID, now=NOW)
    for who in (ASHA, RAVI):
        raw = variant.message(who)
        part = html_part(raw)
        assert part["Content-Transfer-Encoding"] == "base64"  # smaller than QP for Devanagari
        encoded = part.get_payload(decode=False).encode("ascii")
        assert len(encoded) < budget
        assert all(len(line) <= 76 for line in encoded.splitlines())
        _, html = bodies(parse(raw))
        assert html == fill_html(variant, who)
        footer = html[html.index('class="footer"'):]
        assert ">Unsubscribe</a>" in footer
        assert f'href="{who.unsubscribe_url.replace("&", "&amp;")}"' in footer
        assert html.rstrip().endswith("</html>")
    # Every headline is still there; what had to go (thumbnails first) was logged.
    assert variant.count == 40
    assert all(a.title in variant.html for a in edition.articles)
    assert "more on the site" not in variant.html


def test_a_heavier_issue_is_trimmed_in_steps_until_it_fits(settings, caplog):
    edition = hindi_edition(100, standfirst_chars=600)
    budget = settings.file.email.html_budget_bytes
    with caplog.at_level(logging.WARNING, logger="distributor.render.email"):
        variant = render_variant(settings, edition, sections=None, run_id=RUN_ID, now=NOW)
    raw = variant.message(ASHA)
    assert len(html_part(raw).get_payload(decode=False)) < budget
    _, html = bodies(parse(raw))
    assert ">Unsubscribe</a>" in html[html.index('class="footer"'):]
    # Thumbnails and standfirsts went first, then the last articles joined the "more" line.
    assert html.count('class="thumb"') == 0 and html.count('class="hero hero-full"') == 1
    shown = html.count('class="headline"') + html.count('class="lead-headline"')
    assert 1 < shown < 100
    assert f"+ {100 - shown} more on the site" in html
    assert f"+ {100 - shown} more on the site" in variant.text
    warnings = [r.getMessage() for r in caplog.records if "budget" in r.getMessage()]
    assert len(warnings) == 1 and "variant all" in warnings[0] and "articles left out" in warnings[0]


def test_thumbnails_of_the_last_cards_go_first(tmp_path):
    """Just over budget: only some thumbnails go, the first cards keep theirs."""
    settings = settings_for(tmp_path)
    edition = hindi_edition(40)
    roomy = settings_for(tmp_path, email=settings.file.email.model_copy(update={"html_budget_bytes": 10**6}))
    full = render_variant(roomy, edition, sections=None, run_id=RUN_ID, now=NOW)
    size = len(html_part(full.message(ASHA)).get_payload(decode=False))
    email = settings.file.email.model_copy(update={"html_budget_bytes": size})
    tight = settings_for(tmp_path, email=email)
    variant = render_variant(tight, edition, sections=None, run_id=RUN_ID, now=NOW)
    html = fill_html(variant, None)
    assert 0 < html.count('class="thumb"') < full.html.count('class="thumb"')
    assert html.count('class="standfirst"') == full.html.count('class="standfirst"')
    assert variant.count == 40 and "more on the site" not in html
    # The last card lost its thumbnail, the first kept it.
    body = html[html.index('class="lead"'):]  # past the preheader, which names headlines too
    first, second, last = edition.articles[1:3] + edition.articles[-1:]
    assert 'class="thumb"' in body[body.index(first.title):body.index(second.title)]
    assert 'class="thumb"' not in body[body.index(last.title):]


def test_english_parts_stay_quoted_printable(settings):
    variant = render_variant(settings, fixture_edition(), sections=None, run_id=RUN_ID, now=NOW)
    msg = parse(variant.message(ASHA))
    assert [p["Content-Transfer-Encoding"] for p in msg.iter_parts()] == ["quoted-printable"] * 2


def test_base64_segments_join_and_decode_exactly():
    """Static segments pre-encoded at three offsets and per-recipient values joined at any
    length decode to exactly the joined text, in lines of at most 76 characters."""
    from distributor.render.email import _qp

    rng = random.Random(14)
    alphabet = "ab <>&\n" + "मानसून" + "🏏" + "x" * 5
    one_line = alphabet.replace("\n", "")  # per-recipient values never hold a line break
    for _ in range(300):
        parts = []
        for i in range(rng.randint(1, 7)):
            text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 150)))
            parts.append((rng.random() < 0.4, text))
        slots = {f"h:s{i}": "".join(rng.choice(one_line) for _ in range(rng.randint(0, 40))) for i in range(len(parts))}
        body_parts = tuple((is_slot, f"s{i}" if is_slot else text) for i, (is_slot, text) in enumerate(parts))
        body = Base64Body.build(body_parts, "h")
        encoded = body.encode({k: _qp(v) for k, v in slots.items()})
        expected = "".join(slots[f"h:{v}"] if is_slot else v for is_slot, v in body_parts)
        decoded = binascii.a2b_base64(encoded.replace(b"\r\n", b"")).decode("utf-8")
        assert decoded == expected.replace("\n", "\r\n")  # canonical CRLF line ends
        lines = encoded.split(b"\r\n")
        assert all(len(line) <= 76 for line in lines) and lines[-1] == b""
        # Padding only at the very end of the stream.
        assert b"=" not in encoded.rstrip(b"\r\n").rstrip(b"=")


def test_b64_size_matches_encoding():
    from distributor.render.transfer import b64_lines

    for n in (0, 1, 2, 3, 56, 57, 58, 114, 1000):
        assert b64_size(n) == len(b64_lines(b"x" * n))
