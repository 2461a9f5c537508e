"""Grapheme-aware shortening (distributor.text), and every truncation that uses it.

Each hard case is written as the clusters a reader sees, so where a cut may fall is
stated here, independently of the code under test. Every shortening function in the
project is run at every limit from 0 to just past the text's length, in its own measure,
and must give the longest cluster-boundary start that fits, plus the ellipsis.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from distributor import text as t
from distributor.ingest import normalise as n
from distributor.render import telegram as tg

# name -> the clusters of one long "word" (no spaces: the cut must fall between clusters).
HARD_CASES: dict[str, list[str]] = {
    "flags": ["🇦🇫", "🇮🇳", "🇺🇸", "🇧🇷", "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f"],
    "zwj families": ["👨\u200d👩\u200d👧\u200d👦", "👩\u200d❤\ufe0f\u200d👨", "🧑🏽\u200d💻", "👨\u200d👩\u200d👧"],
    "skin tones": ["👋🏽", "👍🏿", "👋🏻", "🤝🏼"],
    # क्ष, त्रि: consonant + virama + consonant (+ vowel sign) is one conjunct.
    "devanagari conjuncts": ["क्ष", "त्रि", "य", "स्त्री", "दृ", "ष्टि", "ज्ञा", "न"],
    # ज़ (ज + nukta) with virama and a following य: one conjunct ज़्या.
    "devanagari nukta": ["ज़्या", "दा", "क़्ष", "ड़ा", "फ़", "फ़ि"],
    # Tamil's virama (pulli) is not a conjunct linker in Unicode's cluster rules (GB9c):
    # our rule still never leaves a consonant+virama without the letter it joins.
    "tamil virama": ["க்ஷே", "த்தி", "ர", "ம்"],
    "combining accents": ["e\u0301", "a\u0308\u0304", "n\u0303", "o\u0302\u0323", "Z\u0335\u0336"],
}

Shorten = Callable[[str, int], str]

# Every shortening in the project, with the measure it promises to respect.
SHORTENERS: dict[str, tuple[Shorten, t.Measure]] = {
    "code points": (lambda s, limit: t.shorten(s, limit, measure=t.code_points), t.code_points),
    "utf-16 units": (lambda s, limit: t.shorten(s, limit, measure=t.utf16_units), t.utf16_units),
    "utf-8 bytes": (lambda s, limit: t.shorten(s, limit, measure=t.utf8_bytes), t.utf8_bytes),
    "graphemes": (lambda s, limit: t.shorten(s, limit, measure=t.graphemes), t.graphemes),
    "ingest truncate_text": (n.truncate_text, t.code_points),
    "telegram shorten": (tg.shorten, t.utf16_units),
}


def _expected(parts: list[str], limit: int, measure: t.Measure) -> str:
    """The longest start of whole clusters that fits with "…", or "" if none does."""
    whole = "".join(parts)
    if measure(whole) <= limit:
        return whole
    kept = []
    for part in parts:
        if measure("".join(kept + [part]) + "…") > limit:
            break
        kept.append(part)
    while kept and kept[-1] == " ":
        kept.pop()  # spaces before the ellipsis go
    return "".join(kept) + "…" if kept else ""


@pytest.mark.parametrize("case", list(HARD_CASES))
@pytest.mark.parametrize("shortener", list(SHORTENERS))
def test_every_cut_position_keeps_clusters_whole(case, shortener):
    parts = HARD_CASES[case]
    shorten, measure = SHORTENERS[shortener]
    text = "".join(parts)
    wrong = {}
    for limit in range(0, measure(text) + 2):
        got = shorten(text, limit)
        assert measure(got) <= limit, (limit, got)
        if got != _expected(parts, limit, measure):
            wrong[limit] = got
    assert wrong == {}, f"cut inside a cluster at limits {sorted(wrong)}: {wrong}"


MEASURES = {"code points": t.code_points, "utf-16 units": t.utf16_units, "utf-8 bytes": t.utf8_bytes,
            "graphemes": t.graphemes}


@pytest.mark.parametrize("case", list(HARD_CASES))
@pytest.mark.parametrize("measure", list(MEASURES))
def test_cuts_after_many_words_keep_clusters_whole(case, measure):
    # Past a long run of words the cut is found near its end, not from the start: the hard
    # clusters come after spaces, one after a space that carries a combining mark (" \u0301"
    # is one cluster, so segmenting may not start right after that space).
    measure = MEASURES[measure]
    tail = [" "] + [c for part in HARD_CASES[case] for c in (part, " ")] + [" \u0301"] + HARD_CASES[case]
    parts = list("lorem ipsum " * 40) + tail
    text = "".join(parts)
    wrong = {}
    for limit in range(measure(text) - measure("".join(tail)) - 3, measure(text) + 2):
        got = t.shorten(text, limit, measure=measure, prefer_words=False)
        assert measure(got) <= limit
        if got != _expected(parts, limit, measure):
            wrong[limit] = got[-12:]
    assert wrong == {}


@pytest.mark.parametrize("case", list(HARD_CASES))
def test_cases_are_what_the_cluster_rules_say(case):
    # The table above is the test's oracle: check it against the Unicode rules too.
    parts = HARD_CASES[case]
    assert list(t.clusters("".join(parts))) == parts


def test_never_ends_after_a_virama():
    # Whatever the cluster rules say, क् (half of क्ष) and க் are never left on their own.
    for word in ("क्ष", "க்ஷ", "ক্ষ", "ક્ષ"):
        assert t.shorten(word + word, 4, measure=t.code_points, prefer_words=False) == word + "…"
        assert t.shorten(word + word, 3, measure=t.code_points) == ""
    assert list(t.clusters("क् ष")) == ["क्", " ", "ष"]  # a virama before a space stays put


def test_prefers_word_boundaries_when_they_keep_enough():
    title = "Sensex closes at a record high as banks rally"
    assert t.shorten(title, 21) == "Sensex closes at a…"
    assert t.shorten(title, 21, prefer_words=False) == "Sensex closes at a r…"
    # One long word then a short one: cutting at the space would waste the room.
    assert t.shorten("Internationalisation is hard", 20) == "Internationalisatio…"
    # Punctuation and spaces before the ellipsis go.
    assert t.shorten("Rain, then sun. More rain tomorrow", 17) == "Rain, then sun…"
    # A word boundary between two emoji words: the flag word is kept whole or dropped.
    assert t.shorten("India 🇮🇳🇮🇳 wins 🏏", 19, measure=t.utf16_units) == "India 🇮🇳🇮🇳…"
    assert t.shorten("India 🇮🇳🇮🇳 wins 🏏", 14, measure=t.utf16_units) == "India 🇮🇳…"


def test_short_text_is_returned_unchanged_and_tiny_limits_give_nothing():
    assert t.shorten("short", 5) == "short"
    assert t.shorten("  spaced  ", 10) == "  spaced  "
    assert t.shorten("abc", 0) == "" and t.shorten("abc", 1) == ""
    assert t.shorten("abcdef", 3, ellipsis="...") == ""
    assert t.shorten("abcdef", 4, ellipsis="...") == "a..."
    assert t.shorten("abcdef", 3, ellipsis="") == "abc"


@pytest.mark.parametrize(
    "measure, text, size",
    [
        (t.code_points, "🇮🇳क्ष", 5),
        (t.utf16_units, "🇮🇳क्ष", 7),
        (t.utf8_bytes, "🇮🇳क्ष", 17),
        (t.graphemes, "🇮🇳क्ष", 2),
        (t.graphemes, "👨\u200d👩\u200d👧 e\u0301", 3),
    ],
)
def test_measures(measure, text, size):
    assert measure(text) == size
