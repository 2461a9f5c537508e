"""Which language and direction a piece of text is in, from its script.

Feeds rarely say what language each item is in (and we keep no such field), but the
script tells enough for what a reader's client needs: the right font, hyphenation and
screen-reader voice (`lang`) and the reading direction (`dir`). Unknown: the site's.
"""

from __future__ import annotations

import re

# (first code point, last code point, BCP 47 language, direction); the first match in
# reading order wins. Devanagari is Hindi for an Indian news site (also Marathi and
# Nepali, which share it: lang "hi" still picks the right font and voice family).
SCRIPTS: tuple[tuple[int, int, str, str], ...] = (
    (0x0900, 0x097F, "hi", "ltr"),  # Devanagari
    (0x0980, 0x09FF, "bn", "ltr"),  # Bengali
    (0x0A00, 0x0A7F, "pa", "ltr"),  # Gurmukhi
    (0x0A80, 0x0AFF, "gu", "ltr"),  # Gujarati
    (0x0B80, 0x0BFF, "ta", "ltr"),  # Tamil
    (0x0C00, 0x0C7F, "te", "ltr"),  # Telugu
    (0x0C80, 0x0CFF, "kn", "ltr"),  # Kannada
    (0x0D00, 0x0D7F, "ml", "ltr"),  # Malayalam
    (0x0600, 0x06FF, "ur", "rtl"),  # Arabic script: Urdu on an Indian site
    (0x0590, 0x05FF, "he", "rtl"),  # Hebrew
)

# Languages written right to left, by primary subtag.
RTL_LANGUAGES = frozenset({"ar", "fa", "he", "ps", "sd", "ur", "yi"})


def language_of(text: str, default: str) -> tuple[str, str]:
    """(lang, dir) of `text`: from the first letter in a script we know, else
    (`default`, "ltr"). Latin letters before it mean the default language."""
    for ch in text:
        code = ord(ch)
        if code < 0x0590:
            if ch.isalpha():
                return default, "ltr"
            continue
        for first, last, lang, direction in SCRIPTS:
            if first <= code <= last:
                return lang, direction
    return default, "ltr"


def article_language(article: object, default: str) -> tuple[str, str]:
    """An article's (lang, dir): a language its feed gave (`extra["language"]`), else
    the script of its headline."""
    extra = getattr(article, "extra", None) or {}
    given = extra.get("language") if isinstance(extra, dict) else None
    title = getattr(article, "title", "")
    if isinstance(given, str) and given.strip():
        lang = given.strip()
        return lang, "rtl" if lang.split("-")[0].lower() in RTL_LANGUAGES else "ltr"
    return language_of(title, default)


# Links are long runs of Latin letters whatever the language around them.
_URL = re.compile(r"https?://\S+")


def languages_in(text: str, default: str) -> list[str]:
    """The languages of `text`, most letters first (ties: the first seen first).

    For a social post that lists several headlines (a digest thread's status), where
    one `lang` cannot describe it all: Bluesky takes up to three (`langs`), Mastodon one
    (the first). Letters outside every script in SCRIPTS count for `default`; letters
    inside links do not count at all. No letters at all: [`default`]."""
    counts: dict[str, int] = {}
    for ch in _URL.sub(" ", text):
        code = ord(ch)
        if code < 0x0590:
            if ch.isalpha():
                counts[default] = counts.get(default, 0) + 1
            continue
        for first, last, lang, _direction in SCRIPTS:
            if first <= code <= last:
                # Vowel signs and viramas are not "alpha" but are part of the word.
                counts[lang] = counts.get(lang, 0) + 1
                break
        else:
            if ch.isalpha():
                counts[default] = counts.get(default, 0) + 1
    if not counts:
        return [default]
    # dicts keep insertion order, and sorted() is stable: ties stay first-seen first.
    return sorted(counts, key=counts.__getitem__, reverse=True)
