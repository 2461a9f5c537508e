"""Every truncation in the project cuts between whole characters, counted as its target
counts: ingest caps, the email Subject, preheader and text part, Telegram captions,
messages and the lines of split digests.

Each hard text is shifted by 0-3 leading ASCII letters so that the cut falls at every
position inside its clusters; Telegram output is measured by the fake server's own HTML
parser (tests/fakes/telegram_html.py), in UTF-16 units after entity parsing.
"""

from __future__ import annotations

import base64
import re

import pytest

from distributor import text as t
from distributor.ingest import normalise as n
from distributor.render import email as email_render
from distributor.render.telegram import LIMITS, article_post, edition_posts
from tests.fakes.telegram_html import parse_html
from tests.unit.test_render_email import ASHA, NOW, fixture_edition
from tests.unit.test_render_email import article as email_article
from tests.unit.test_render_telegram import article as telegram_article
from tests.unit.test_render_telegram import edition as telegram_edition
from tests.unit.test_text import HARD_CASES

SHIFTS = range(4)


def _words(case: str, units: int) -> str:
    """The case's clusters repeated as one word of at least `units` UTF-16 units."""
    word = "".join(HARD_CASES[case])
    return word * (units // t.utf16_units(word) + 1)


def assert_whole(original: str, shown: str) -> None:
    """`shown` is `original`, or a start of it ending between two clusters, then "…"."""
    if shown == original:
        return
    assert shown.endswith("…"), shown[-20:]
    head = shown[:-1]
    assert original.startswith(head), head[-20:]
    ends, at = {0}, 0
    for cluster in t.clusters(original):
        at += len(cluster)
        ends.add(at)
    assert len(head) in ends, f"cut inside {original[len(head) - 3:len(head) + 3]!r}"


# --- ingest ------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["flags", "zwj families", "skin tones", "devanagari conjuncts", "tamil virama"])
@pytest.mark.parametrize("shift", SHIFTS)
def test_ingest_caps_cut_between_characters(case, shift):
    title = "x" * shift + _words(case, 2 * n.TITLE_MAX_CHARS)
    cut = n.make_title(title)
    assert len(cut) <= n.TITLE_MAX_CHARS
    assert_whole(title, cut)
    name = "y" * shift + _words(case, 2 * n.BYLINE_MAX_CHARS)
    byline = n.make_byline([name])
    assert len(byline) <= n.BYLINE_MAX_CHARS
    assert_whole(name, byline)


# --- email --------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["flags", "zwj families", "devanagari conjuncts", "devanagari nukta"])
@pytest.mark.parametrize("shift", SHIFTS)
def test_subject_headline_is_cut_between_characters(settings, case, shift):
    title = "x" * shift + _words(case, 400)
    edition = fixture_edition(trending=(email_article("long", "nation", title, 14),))
    subject = email_render.render_variant(settings, edition, sections=None, run_id=1, now=NOW).subject
    headline = subject.removeprefix("Morning Brief: ").rsplit(" + ", 1)[0]
    assert t.graphemes(headline) <= settings.file.email.subject_headline_chars
    assert_whole(title, headline)


def test_text_part_never_breaks_a_long_word_inside_a_character(settings):
    # 3 code points a cluster: Jinja's wordwrap(68) broke this word after the virama.
    word = "क्ष" * 40
    edition = fixture_edition(trending=(email_article("long", "nation", "Title", 14, standfirst=word),))
    text = email_render.render_variant(settings, edition, sections=None, run_id=1, now=NOW).text
    assert word in text


def test_preheader_is_bounded_and_whole(settings):
    titles = ["x" * shift + _words("flags", 120) for shift in (1, 2, 3)]
    trending = tuple(email_article(f"t{i}", "nation", title, 14) for i, title in enumerate(["Top", *titles]))
    html = email_render.render_variant(settings, fixture_edition(trending=trending), sections=None,
                                       run_id=1, now=NOW).html
    preheader = re.search(r'<div class="preheader"[^>]*>(.*?)</div>', html, re.S).group(1)
    assert t.graphemes(preheader) <= email_render.PREHEADER_MAX
    assert_whole("Also: " + " · ".join(titles), preheader)


# --- Telegram -----------------------------------------------------------------------------


def _shown_line(html: str) -> str:
    """The one line of the post's visible text that was shortened."""
    [line] = [line for line in parse_html(html).text.split("\n") if line.endswith("…")]
    return line


@pytest.mark.parametrize("case", list(HARD_CASES))
@pytest.mark.parametrize("shift", SHIFTS)
def test_telegram_caption_and_message_cut_between_characters(settings, case, shift):
    standfirst = "x" * shift + _words(case, 5000)
    photo = article_post(settings, telegram_article(standfirst=standfirst))
    assert photo.method == "sendPhoto"
    assert parse_html(photo.params["caption"]).length <= LIMITS.caption_length
    assert_whole(standfirst, _shown_line(photo.params["caption"]))

    text = article_post(settings, telegram_article(standfirst=standfirst, image_url=None))
    assert parse_html(text.params["text"]).length <= LIMITS.message_length
    assert_whole(standfirst, _shown_line(text.params["text"]))


@pytest.mark.parametrize("case", ["flags", "zwj families", "devanagari conjuncts", "tamil virama"])
@pytest.mark.parametrize("shift", SHIFTS)
def test_telegram_digest_line_longer_than_a_part_is_cut_between_characters(settings, case, shift):
    title = "x" * shift + _words(case, 6000)
    calls = edition_posts(settings, telegram_edition(groups=[("nation", "Nation", [telegram_article(title=title)])]))
    [call] = calls
    assert parse_html(call.params["text"]).length <= LIMITS.message_length
    assert_whole(title, _shown_line(call.params["text"]).removeprefix("• "))


@pytest.mark.parametrize("case", ["flags", "zwj families", "devanagari conjuncts", "skin tones"])
@pytest.mark.parametrize("shift", SHIFTS)
def test_subject_encoded_words_hold_whole_characters(settings, case, shift):
    # Some mail clients show each RFC 2047 word on its own: a word may not end in half a flag.
    title = "x" * shift + _words(case, 60)
    edition = fixture_edition(trending=(email_article("long", "nation", title, 14),))
    raw = email_render.render_variant(settings, edition, sections=None, run_id=1, now=NOW).message(ASHA)
    header = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    subject = re.search(r"^Subject:(.*?)\r\n(?=\S)", header, re.S | re.M).group(1)
    words = [base64.b64decode(w).decode("utf-8") for w in re.findall(r"=\?utf-8\?b\?([^?]*)\?=", subject)]
    assert len(words) > 1
    joined = "".join(words)
    assert joined.startswith("Morning Brief: ") and joined.removeprefix("Morning Brief: ").startswith(title[:10])
    ends = set()
    at = 0
    for cluster in t.clusters(joined):
        at += len(cluster)
        ends.add(at)
    at = 0
    for word in words:
        at += len(word)
        assert at in ends, f"an encoded word ends inside {joined[at - 2:at + 2]!r}"
