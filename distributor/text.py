"""Shortening text without breaking what a reader sees as one character.

Every cut in the project (ingest caps, email Subject and preheader, Telegram captions,
messages and list lines, error excerpts) goes through `shorten`. It cuts only between
extended grapheme clusters (Unicode UAX #29, the `regex` package's `\\X`), so a flag
(🇦🇫), a ZWJ family (👨‍👩‍👧), a hand with its skin tone (👋🏽), a letter with its
combining accents or a Devanagari syllable with its vowel signs is kept whole or
dropped whole. It also never ends right after a virama: `क्` of `क्ष` is half a conjunct
even in scripts and Unicode versions whose cluster rules (GB9c) do not join them.

Each target counts length its own way, so the measure is a parameter: code points
(Python's `len`, our database columns), UTF-16 code units (Telegram), UTF-8 bytes, or
grapheme clusters (what a reader counts). A measure only has to grow with the text
(a longer start never measures less), so a rule like Mastodon's "every URL counts 23"
fits as well.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import regex

Measure = Callable[[str], int]

ELLIPSIS = "…"
# Left at the end of a shortened text these only make it look broken before the ellipsis
# ("word,…", "end.…"). None of them ever continues a cluster, so dropping them from the
# end never splits one.
_TRAILING = " \t\n\r\u00a0,;:-–—."
# Where a word may end (a no-break space is not one).
_SPACES = (" ", "\t", "\n")
# How far back from the cut to look for a space to start segmenting from; beyond it
# (a long run without spaces) the text is segmented from its start.
_ANCHOR_SEARCH = 256
# A word cut is taken when it keeps at least this share of the room; otherwise (one very
# long word, a script written without spaces) the cut falls between clusters.
WORD_CUT_MIN_SHARE = 0.5
# One character as a reader sees it: an extended grapheme cluster (\X), and clusters
# that end in a virama (canonical combining class 9: Devanagari U+094D, Bengali U+09CD,
# Tamil U+0BCD... by property, not by list) joined to the letter that follows them.
_CLUSTER = regex.compile(r"(?:\X(?<=\p{ccc=9})(?=\p{L}))*\X")


def code_points(text: str) -> int:
    """Length in code points (Python's `len`): what database column sizes count."""
    return len(text)


def utf16_units(text: str) -> int:
    """Length in UTF-16 code units: Telegram's unit (an emoji outside the BMP counts 2)."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def utf8_bytes(text: str) -> int:
    """Length in UTF-8 bytes."""
    return len(text.encode("utf-8", "surrogatepass"))


def graphemes(text: str) -> int:
    """Length in user-perceived characters (clusters as `clusters` makes them)."""
    return len(_CLUSTER.findall(text))


def clusters(text: str) -> Iterator[str]:
    """`text` as extended grapheme clusters, a cluster ending in a virama joined to the
    letter after it (the conjunct it starts)."""
    for match in _CLUSTER.finditer(text):
        yield match.group()


def _last_cut(text: str, fit: int) -> int:
    """The last place to cut at or before code point `fit`: between two clusters."""
    # Segment only the stretch before `fit`, from a known cluster start: just after a
    # space that is a cluster on its own (nothing before it changes what follows).
    anchor = 0
    low = max(0, fit - _ANCHOR_SEARCH)
    space = max(text.rfind(c, low, fit) for c in _SPACES)
    while space >= low and space >= 0:
        if _CLUSTER.match(text, space).end() == space + 1:
            anchor = space + 1
            break
        space = max(text.rfind(c, low, space) for c in _SPACES)
    for match in _CLUSTER.finditer(text, anchor):
        if match.end() > fit:
            return match.start()
    return len(text)


def _longest_fit(text: str, room: int, measure: Measure) -> int:
    """The most code points of `text` whose measure is at most `room`."""
    if measure is code_points:
        return min(room, len(text))
    low, high = 0, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if measure(text[:middle]) <= room:
            low = middle
        else:
            high = middle - 1
    return low


def shorten(
    text: str,
    limit: int,
    *,
    measure: Measure = code_points,
    ellipsis: str = ELLIPSIS,
    prefer_words: bool = True,
) -> str:
    """`text` itself when it fits `limit` (by `measure`), else its longest start that fits
    with `ellipsis` appended.

    Cuts only between clusters; with `prefer_words`, at the last space when that keeps at
    least half the room. Trailing spaces and punctuation before the ellipsis are dropped.
    Returns "" when no cluster fits before the ellipsis (an ellipsis alone says nothing).
    """
    if measure(text) <= limit:
        return text
    room = limit - measure(ellipsis)
    if room <= 0:
        return ""
    cut = _last_cut(text, _longest_fit(text, room, measure))
    if prefer_words and cut < len(text) and text[cut] not in _SPACES:
        space = max(text.rfind(c, 0, cut) for c in _SPACES)
        if space > 0 and measure(text[:space]) >= room * WORD_CUT_MIN_SHARE:
            cut = space
    head = text[:cut].rstrip(_TRAILING)
    return head + ellipsis if head else ""
