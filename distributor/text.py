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
grapheme clusters (what a reader counts). Measures must add up cluster by cluster,
which all four do.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterator

import regex

Measure = Callable[[str], int]

ELLIPSIS = "…"
# Left at the end of a shortened text these only make it look broken before the ellipsis
# ("word,…", "end.…"); whole clusters are dropped, so nothing attached to them is split.
_TRAILING = frozenset({" ", "\t", "\n", "\r", "\r\n", "\u00a0", ",", ";", ":", "-", "–", "—", "."})
# A word cut is taken when it keeps at least this share of the room; otherwise (one very
# long word, a script written without spaces) the cut falls between clusters.
WORD_CUT_MIN_SHARE = 0.5
# The canonical combining class of viramas (Devanagari U+094D, Bengali U+09CD, Tamil
# U+0BCD, ... all of them, by property rather than by list).
_VIRAMA_CLASS = 9

_CLUSTER = regex.compile(r"\X")


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
    return sum(1 for _ in clusters(text))


def _ends_in_virama(cluster: str) -> bool:
    return unicodedata.combining(cluster[-1]) == _VIRAMA_CLASS


def clusters(text: str) -> Iterator[str]:
    """`text` as extended grapheme clusters, a cluster ending in a virama joined to the
    letter after it (the conjunct it starts)."""
    pending = ""
    for match in _CLUSTER.finditer(text):
        cluster = match.group()
        if pending and unicodedata.category(cluster[0]).startswith("L"):
            cluster = pending + cluster
        elif pending:
            yield pending
        pending = ""
        if _ends_in_virama(cluster):
            pending = cluster
            continue
        yield cluster
    if pending:
        yield pending


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

    Cuts only between clusters; with `prefer_words`, at the last whitespace when that
    keeps at least half the room. Trailing spaces and punctuation before the ellipsis
    are dropped. Returns "" when no cluster fits before the ellipsis (an ellipsis alone
    says nothing).
    """
    if measure(text) <= limit:
        return text
    room = limit - measure(ellipsis)
    if room <= 0:
        return ""
    kept: list[str] = []
    used = 0
    word_end = 0  # clusters before the last whitespace seen
    word_used = 0
    for cluster in clusters(text):
        size = measure(cluster)
        if cluster.isspace():
            word_end, word_used = len(kept), used
        if used + size > room:
            break
        kept.append(cluster)
        used += size
    if prefer_words and 0 < word_end < len(kept) and word_used >= room * WORD_CUT_MIN_SHARE:
        del kept[word_end:]
    while kept and kept[-1] in _TRAILING:
        kept.pop()
    return "".join(kept) + ellipsis if kept else ""
