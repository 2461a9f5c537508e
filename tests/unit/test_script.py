"""Which language a text is in, from its script (distributor/render/script.py)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from distributor.articles import Article
from distributor.render.script import article_language, language_of, languages_in


@pytest.mark.parametrize(("text", "expected"), [
    ("मानसून: मौसम विभाग ने अलर्ट जारी किया", ("hi", "ltr")),
    ("۔پاکستان میں بارش", ("ur", "rtl")),
    ("2026: मानसून", ("hi", "ltr")),  # digits and punctuation decide nothing
    ("Monsoon: मौसम विभाग", ("en", "ltr")),  # the first letter's script wins
    ("", ("en", "ltr")),
])
def test_language_of_the_first_letter(text, expected):
    assert language_of(text, "en") == expected


def test_an_article_in_hindi_on_an_english_site():
    article = Article(key="k", url="https://example.org/a", title="बिहार: गंगा का जलस्तर बढ़ा", section="states",
                      published_at=datetime(2026, 11, 30, tzinfo=timezone.utc))
    assert article_language(article, "en") == ("hi", "ltr")


def test_languages_in_counts_letters_most_first():
    # Two Hindi headlines and one short English one: mostly Hindi, English too.
    text = "• मानसून: मौसम विभाग ने अलर्ट जारी किया\n\n• Rail fares up\n\n• बिहार: गंगा का जलस्तर बढ़ा"
    assert languages_in(text, "en") == ["hi", "en"]


def test_links_do_not_count_as_english():
    # A Hindi headline followed by its long Latin URL is still Hindi.
    text = "मानसून अलर्ट\nhttps://www.newsarenaindia.com/nation/monsoon-alert-ten-states-heavy-rain-warning"
    assert languages_in(text, "en") == ["hi"]


def test_vowel_signs_count_with_their_letters():
    # "कि" is a consonant and a vowel sign (not str.isalpha): both are Hindi letters.
    assert languages_in("कि कि ab", "en") == ["hi", "en"]


def test_no_letters_is_the_default():
    assert languages_in("123 — 456 https://example.org/x", "en") == ["en"]


def test_ties_keep_the_first_seen_first():
    assert languages_in("ab कख", "en") == ["en", "hi"]
    assert languages_in("कख ab", "en") == ["hi", "en"]
