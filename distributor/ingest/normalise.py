"""Pure normalisation rules: one raw item (from any feed format or the webhook) -> Article.

Nothing here does I/O. Every rule is a small function with its own tests. Feed parsers
(`distributor.ingest.feeds`) and the CMS webhook (`article_from_mapping` below) both fill a
`RawItem` and call `build_article`, so the two ways in can never disagree on what an
article looks like.

Conventions of `RawItem`: every text field holds HTML (a source that declares a field as
plain text escapes it first, see `escape_text`), URLs are as found (relative allowed), and
times are strings or datetimes as found. The rules decide what survives.
"""

from __future__ import annotations

import html
import html.entities
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone, tzinfo
from email.utils import parsedate_tz
from functools import lru_cache
from typing import Any
from urllib.parse import unquote_plus, urljoin, urlsplit, urlunsplit

from distributor.articles import Article, RelatedLink
from distributor.errors import RejectedItem
from distributor.ingest.images import (
    LEAD_IMAGE_RULES,
    LeadImage,
    MediaRef,
    is_lead_image_candidate,
    kept_side,
    media_from_img,
)
from distributor.settings import SectionConfig, Settings
from distributor.text import code_points, shorten

UTC = timezone.utc

# --- Limits (declared once; tests check the store's columns can hold them) -------------
# Standfirsts are a sentence or two in every edition; longer text is cut at a word.
STANDFIRST_MAX_CHARS = 600
# A headline longer than this is junk (a body pasted into the title field).
TITLE_MAX_CHARS = 300
BYLINE_MAX_CHARS = 200  # articles.byline is String(512)
DATELINE_MAX_CHARS = 100  # articles.dateline is String(256)
CAPTION_MAX_CHARS = 600
TAG_MAX_CHARS = 100
MAX_TAGS = 20
MAX_ALSO_READ = 10
# Keys and URLs longer than the store's columns are refused rather than cut: a cut key
# could collide with another article's.
MAX_KEY_CHARS = 1024  # articles.key is String(1024)
MAX_URL_CHARS = 2048  # articles.url and image_url are String(2048)
# Reading speed used to estimate read time when the feed gives none.
WORDS_PER_MINUTE = 200
# A stated read time outside 1..this is a CMS error and is ignored.
MAX_READ_MINUTES = 600
# Dates further ahead of "now" than this are treated as missing. Why: a far-future date is
# a CMS or timezone bug; kept, the article would sit outside every edition window until
# that date (or lead every "latest" list). A few hours ahead is ordinary clock and zone
# skew between the CMS and us, and is kept as given.
FUTURE_TOLERANCE = timedelta(days=1)

# Query parameters that only say where a click came from. Removed from canonical URLs so
# the same story shared with different campaign tags is one article. Compared
# case-insensitively; anything starting with a prefix in TRACKING_PARAM_PREFIXES goes too.
TRACKING_PARAM_PREFIXES: tuple[str, ...] = ("utm_",)
TRACKING_PARAMS: frozenset[str] = frozenset(
    {
        "fbclid",  # Facebook
        "gclid",  # Google Ads
        "gclsrc",
        "dclid",  # Google Display
        "gbraid",  # Google Ads (iOS)
        "wbraid",
        "msclkid",  # Microsoft Ads
        "mc_cid",  # Mailchimp
        "mc_eid",
        "igshid",  # Instagram
        "yclid",  # Yandex
        "_ga",  # Google Analytics cross-domain
        "_gl",
        "ref_src",  # Twitter/X
        "ref_url",
        "twclid",
        "ttclid",  # TikTok
        "li_fat_id",  # LinkedIn
        "_hsenc",  # HubSpot
        "_hsmi",
        "mkt_tok",  # Marketo
        "oly_anon_id",  # Omeda
        "oly_enc_id",
        "vero_id",  # Vero
        "wickedid",
        "rb_clickid",
        "s_cid",  # Adobe
    }
)

_HTTP_SCHEMES = ("http", "https")
_DEFAULT_PORTS = {"http": ":80", "https": ":443"}


# --- Raw item -------------------------------------------------------------------------
@dataclass
class RawItem:
    """One item as read, before any rule is applied (see the module docstring)."""

    ref: str  # how an operator finds it: "item 3 (guid 'abc')"
    base_url: str  # absolute http(s) URL relative links are resolved against
    guid: str = ""
    link: str = ""
    link_field: str = "link"  # the source's name for the link, for rejection messages
    title: str | None = None
    summary: str = ""
    content: str = ""  # the article body, when the source carries one
    published: str | datetime | None = None
    updated: str | datetime | None = None
    categories: Sequence[str] = ()
    section: str = ""  # an explicit section (JSON Feed extension, webhook)
    tags: Sequence[str] = ()  # explicit tags, after the ones left over from categories
    authors: Sequence[str] = ()
    dateline: str = ""
    read_minutes: Any = None  # "2", "2 min read", 2 or None
    media: Sequence[MediaRef] = ()
    image_caption: str = ""  # item-level caption, used when the image has none of its own
    also_read: Sequence[tuple[str, str]] = ()  # (title HTML, url)
    trending: bool = False  # an explicit flag, on top of the trending category


# --- Text -----------------------------------------------------------------------------
# Our own small HTML-to-text scanner rather than html.parser: feeds are untrusted input, and
# html.parser (as shipped with Python 3.11) takes quadratic time on some malformed input
# ("<b" or "<script" repeated without ">"): minutes for one 100 kB field. This scanner
# only moves forward; where a browser would swallow the rest of the text (an unclosed
# tag, comment or <script>), it drops the rest too and stops.

# Elements whose boundaries separate words and paragraphs.
_BLOCK_TAGS = frozenset(
    "address article aside blockquote br dd details div dl dt figcaption figure footer "
    "form h1 h2 h3 h4 h5 h6 header hr li main nav ol p pre section summary table tbody td "
    "tfoot th thead tr ul".split()
)
# Elements whose content is raw text (no tags inside) and never reader text.
_RAW_TEXT_TAGS = frozenset("script style iframe noembed noframes noscript xmp textarea title".split())
# Elements whose content is markup but never reader text.
_HIDDEN_TAGS = frozenset("head template object svg math".split())
# Control characters (C0 except whitespace, DEL, C1), lone surrogates and non-characters:
# PostgreSQL refuses NUL, UTF-8 encoders refuse surrogates, mail clients choke on the rest.
# U+FFFD too: it only says that some earlier decoder lost a character.
_UNPRINTABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffd\ufffe\uffff]")
_TAG_NAME = re.compile(r"</?([A-Za-z][A-Za-z0-9:-]*)")
# Inside a tag: its closing ">", or the opening quote of an attribute value.
_TAG_STOP = re.compile(r">|=\s*[\"']")
_ATTRIBUTE = re.compile(r"""([^\s"'>/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+)))?""")
# Body images looked at for a fallback lead image: trackers often come first, a photo
# rarely later than this.
_MAX_BODY_IMAGES = 8
_RAW_TEXT_END = {name: re.compile(rf"</{name}(?=[\s/>])", re.IGNORECASE) for name in _RAW_TEXT_TAGS}


@dataclass(frozen=True)
class _HtmlText:
    paragraphs: tuple[str, ...]
    images: tuple[MediaRef, ...]  # the first few <img> with a src, in document order


def _img_attributes(markup: str, start: int, end: int) -> dict[str, str]:
    """An <img> tag's attributes (names lower-cased, values entity-decoded; first wins)."""
    attributes: dict[str, str] = {}
    for match in _ATTRIBUTE.finditer(markup, start, end - 1):
        name = match.group(1).lower()
        value = next((g for g in match.groups()[1:] if g is not None), "")
        attributes.setdefault(name, html.unescape(value).strip() if "&" in value else value.strip())
    return attributes


def _tag_end(markup: str, pos: int) -> int:
    """Index just past the ">" that closes a tag, skipping quoted attribute values; -1 if
    the tag never closes."""
    while True:
        stop = _TAG_STOP.search(markup, pos)
        if stop is None:
            return -1
        if stop.group() == ">":
            return stop.end()
        close = markup.find(stop.group()[-1], stop.end())
        if close < 0:
            return -1
        pos = close + 1


def _clean_chars(text: str) -> str:
    return _UNPRINTABLE.sub("", text)


@lru_cache(maxsize=8)  # build_article asks several questions of the same body
def _read_html(markup: str) -> _HtmlText:
    markup = _clean_chars(markup)
    if "<![CDATA[" in markup:
        # A CMS wrapping CDATA twice: the inside is markup like the rest.
        markup = markup.replace("<![CDATA[", "").replace("]]>", "")
    paragraphs: list[str] = []
    pieces: list[str] = []
    images: list[MediaRef] = []
    hidden = 0

    def flush() -> None:
        text = "".join(pieces)
        pieces.clear()
        if "&" in text:
            # Entities can decode to control characters (&#0;, &#x7f;): clean once more.
            text = _clean_chars(html.unescape(text))
        text = " ".join(text.split())  # every Unicode space, &nbsp; included
        if text:
            paragraphs.append(text)

    pos, size = 0, len(markup)
    while pos < size:
        lt = markup.find("<", pos)
        if lt < 0:
            lt = size
        if lt > pos and not hidden:
            pieces.append(markup[pos:lt])
        if lt >= size:
            break
        name = _TAG_NAME.match(markup, lt)
        if name is None:
            if markup.startswith("<!--", lt):
                end = markup.find("-->", lt + 4)
                pos = size if end < 0 else end + 3
            elif markup.startswith(("<!", "<?", "</"), lt):  # doctype, bogus comment
                end = markup.find(">", lt)
                pos = size if end < 0 else end + 1
            else:  # "a < b", "<3": a lone "<" is text
                if not hidden:
                    pieces.append("<")
                pos = lt + 1
            continue
        end = _tag_end(markup, name.end())
        if end < 0:
            break  # an unclosed tag swallows the rest, as in a browser
        tag = name.group(1).lower()
        closing = markup[lt + 1] == "/"
        self_closing = markup[end - 2] == "/"
        pos = end
        if tag in _BLOCK_TAGS:
            flush()
        if closing:
            if tag in _HIDDEN_TAGS and hidden:
                hidden -= 1
        elif tag in _RAW_TEXT_TAGS and not self_closing:
            close = _RAW_TEXT_END[tag].search(markup, end)
            if close is None:
                break
            after = markup.find(">", close.end())
            pos = size if after < 0 else after + 1
        elif tag in _HIDDEN_TAGS and not self_closing:
            hidden += 1
        elif tag == "img" and len(images) < _MAX_BODY_IMAGES:
            attributes = _img_attributes(markup, name.end(), end)
            if attributes.get("src"):
                images.append(media_from_img(attributes["src"], attributes))
    flush()
    return _HtmlText(tuple(paragraphs), tuple(images))


def html_to_paragraphs(markup: str | None) -> list[str]:
    """Plain-text paragraphs of an HTML fragment: tags removed, entities decoded,
    script/style contents dropped, whitespace collapsed within each paragraph."""
    if not markup:
        return []
    if "<" not in markup and "&" not in markup:
        # Plain text already (most titles): skip the scanner, it is the hot path.
        text = " ".join(_clean_chars(markup).split())
        return [text] if text else []
    return list(_read_html(markup).paragraphs)


def html_to_text(markup: str | None) -> str:
    """One line of plain text from an HTML fragment (see `html_to_paragraphs`)."""
    return " ".join(html_to_paragraphs(markup))


def escape_text(text: str | None) -> str:
    """Turn a field the source declares as plain text into the HTML `RawItem` expects.

    Blank lines become paragraph breaks, so a plain-text body still has paragraphs.
    """
    if not text:
        return ""
    blocks = re.split(r"\n\s*\n", text)
    return "".join(f"<p>{html.escape(block, quote=False)}</p>" for block in blocks)


# HTML elements a headline, name or category may carry when a feed uses HTML there. A
# "tag" outside this set ("<broad-based>", "<Budget>") is the publisher's text.
_HTML_ELEMENTS = frozenset(
    "a abbr acronym address b bdi bdo big blockquote br center cite code del dfn div em font "
    "h1 h2 h3 h4 h5 h6 hr i img ins kbd li mark ol p pre q s samp small span strike strong "
    "sub sup time tt u ul var wbr".split()
)
# Evidence of markup: a closing tag, or a tag with attributes or a self-closing slash.
_CLOSING_TAG = re.compile(r"</\w+\s*>|<\w+(?:\s+[\w:-]+\s*=|\s*/>)")
_ANY_TAG = re.compile(r"</?(\w+)")
_ENTITY_REF = re.compile(r"&(#[0-9]+|#[xX][0-9a-fA-F]+|\w+);")


def looks_like_html(text: str) -> bool:
    """Does text of an undeclared type (an RSS title, author or category) use HTML?

    RSS never says, so we guess much as feedparser does: only with a closing tag, a tag
    with attributes or "/>", or an entity reference, and only when every tag is a real
    HTML element and every named entity a real HTML entity. `Rally <broad-based>` and
    `<Budget> 2026` are text; `<b>Live</b>` and `Tom &amp; Jerry` (escaped twice by the
    CMS) are HTML.
    """
    if "<" not in text and "&" not in text:
        return False
    if not (_CLOSING_TAG.search(text) or _ENTITY_REF.search(text)):
        return False
    if any(name.lower() not in _HTML_ELEMENTS for name in _ANY_TAG.findall(text)):
        return False
    return all(
        name.startswith("#") or f"{name};" in html.entities.html5 for name in _ENTITY_REF.findall(text)
    )


def text_as_html(text: str | None) -> str:
    """A field of undeclared type as the HTML `RawItem` holds: kept when it evidently is
    HTML (`looks_like_html`), else escaped, so a literal "<", ">" or "&" survives."""
    if not text:
        return ""
    return text if looks_like_html(text) else html.escape(text, quote=False)


def plain_as_html(text: str | None) -> str:
    """A field the source declares as plain text (JSON Feed, webhook, Atom type="text")."""
    return html.escape(text, quote=False) if text else ""


def truncate_text(text: str, limit: int) -> str:
    """Cut `text` to at most `limit` characters at a word boundary, ending with "…";
    never inside a grapheme cluster (see `distributor.text.shorten`)."""
    return shorten(text, limit, measure=code_points)


def plain_text(markup: str | None, limit: int) -> str:
    """The plain-text rule for short fields (byline, dateline, caption, tags)."""
    return truncate_text(html_to_text(markup), limit)


def make_title(markup: str | None) -> str:
    """The headline as plain text, or "" when nothing readable is left."""
    return truncate_text(html_to_text(markup), TITLE_MAX_CHARS)


def make_standfirst(summary: str | None, content: str | None) -> str:
    """Plain-text standfirst: the summary, else the body's first paragraph; cut to size."""
    text = html_to_text(summary)
    if not text:
        paragraphs = html_to_paragraphs(content)
        text = paragraphs[0] if paragraphs else ""
    return truncate_text(text, STANDFIRST_MAX_CHARS)


def count_words(markup: str | None) -> int:
    """Words a reader sees in an HTML body (for the read-time estimate)."""
    return sum(len(paragraph.split()) for paragraph in html_to_paragraphs(markup))


def body_images(markup: str | None) -> tuple[MediaRef, ...]:
    """The first few <img> of an HTML fragment (src as written, entities decoded), with
    the size and attributes they declare."""
    if not markup or "<" not in markup:
        return ()
    return _read_html(markup).images


def first_image_src(markup: str | None) -> str | None:
    """The src of the first <img> of an HTML fragment (as written, entities decoded)."""
    images = body_images(markup)
    return images[0].url if images else None


# --- URLs -----------------------------------------------------------------------------
def is_http_url(url: str | None) -> bool:
    """True for an absolute http(s) URL with a host."""
    if not url:
        return False
    try:
        parts = urlsplit(url.strip())
        return parts.scheme.lower() in _HTTP_SCHEMES and bool(parts.hostname)
    except ValueError:  # e.g. a broken IPv6 literal
        return False


def absolute_http_url(url: str | None, base: str) -> str | None:
    """`url` resolved against `base`, or None unless the result is http(s).

    javascript:, data:, mailto: and the like come back as None: nothing we send may carry
    them.
    """
    if not url or not url.strip():
        return None
    url = url.strip()
    if url[:8].lower().startswith(("http://", "https://")):
        # Already absolute (nearly every feed link): joining would return it unchanged.
        return url if is_http_url(url) else None
    try:
        joined = urljoin(base, url)
    except ValueError:
        return None
    return joined if is_http_url(joined) else None


def choose_base(candidates: Iterable[str | None], settings: Settings) -> str:
    """The first absolute http(s) URL among `candidates` (xml:base, the feed's own URL,
    the feed's home page), else the site's base URL. A file:// feed URL is skipped: its
    relative links point at the site, not at the disk."""
    for candidate in candidates:
        if is_http_url(candidate):
            return candidate.strip()  # type: ignore[union-attr]
    return settings.site.base_url


def is_tracking_param(name: str) -> bool:
    """True for a query parameter that only tracks a click (see TRACKING_PARAMS)."""
    name = name.lower()
    return name in TRACKING_PARAMS or name.startswith(TRACKING_PARAM_PREFIXES)


def canonical_url(url: str) -> str:
    """Scheme and host lowercased, default port and fragment dropped, tracking parameters
    removed; the path and the other parameters are kept as written, in their order."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    userinfo, at, hostport = parts.netloc.rpartition("@")
    hostport = hostport.lower()
    default_port = _DEFAULT_PORTS.get(scheme)
    if default_port and hostport.endswith(default_port):
        hostport = hostport[: -len(default_port)]
    kept = [
        segment
        for segment in parts.query.split("&")
        if segment and not is_tracking_param(unquote_plus(segment.split("=", 1)[0]))
    ]
    return urlunsplit(
        (scheme, f"{userinfo}{at}{hostport}", parts.path or "/", "&".join(kept), "")
    )


def article_key(guid: str | None, url: str) -> str:
    """The guid when there is one (a permalink guid too: it is still the guid), else the
    canonical URL."""
    guid = (guid or "").strip()
    return guid if guid else canonical_url(url)


# --- Sections, trending, tags ---------------------------------------------------------
@lru_cache(maxsize=16)
def _section_names(sections: tuple[SectionConfig, ...]) -> dict[str, str]:
    # casefolded slug, label or category alias -> slug; the first section in configured
    # order wins a name two sections share.
    names: dict[str, str] = {}
    for section in sections:
        for name in (section.slug, section.label, *section.category_aliases):
            names.setdefault(name.strip().casefold(), section.slug)
    return names


def section_for_category(category: str, settings: Settings) -> str | None:
    """The section slug a category names (slug, label or alias; case-insensitive)."""
    return _section_names(settings.sections).get(category.strip().casefold())


def section_for_url(url: str, settings: Settings) -> str | None:
    """The section whose URL path prefix (e.g. "/sports/") matches; the longest wins."""
    try:
        path = urlsplit(url).path.lower()
    except ValueError:
        return None
    if not path.endswith("/"):
        path += "/"  # "/sports" is in "/sports/"
    best: tuple[int, str] | None = None
    for section in settings.sections:
        for prefix in section.path_aliases:
            if path.startswith(prefix.lower()) and (best is None or len(prefix) > best[0]):
                best = (len(prefix), section.slug)
    return best[1] if best else None


def is_trending_category(category: str, settings: Settings) -> bool:
    """The editor's "Trending" category marks an article; it is never a section."""
    return category.strip().casefold() == settings.site.trending_category.strip().casefold()


def classify_categories(
    categories: Iterable[str], *, explicit_section: str, url: str, settings: Settings
) -> tuple[str, bool, tuple[str, ...]]:
    """(section slug, trending, tags) from an item's categories.

    Section: the explicit one if it names a section, else the first category naming a
    section, else a URL path prefix, else the fallback section; an item is never dropped
    for want of a section. Tags: the categories left over (not the one that chose the
    section, not the trending one), de-duplicated case-insensitively, order kept.
    """
    names = [c for c in (plain_text(c, TAG_MAX_CHARS) for c in categories) if c]
    trending = any(is_trending_category(c, settings) for c in names)
    section = section_for_category(explicit_section, settings) if explicit_section else None
    used: str | None = None
    if section is None:
        for name in names:
            if is_trending_category(name, settings):
                continue
            section = section_for_category(name, settings)
            if section:
                used = name.casefold()
                break
    if section is None:
        section = section_for_url(url, settings) or settings.site.fallback_section
    seen: set[str] = set()
    tags: list[str] = []
    for name in names:
        folded = name.casefold()
        if folded == used or folded in seen or is_trending_category(name, settings):
            continue
        seen.add(folded)
        tags.append(name)
    return section, trending, tuple(tags)


def merge_tags(*groups: Iterable[str]) -> tuple[str, ...]:
    """Tags from several lists of plain text, de-duplicated case-insensitively, capped.

    The lists hold text already (see `classify_categories`): running the HTML rules a
    second time would eat a literal "<Labs>" the first run decoded.
    """
    seen: set[str] = set()
    tags: list[str] = []
    for group in groups:
        for tag in group:
            if tag and tag.casefold() not in seen:
                seen.add(tag.casefold())
                tags.append(tag)
    return tuple(tags[:MAX_TAGS])


# --- Times ----------------------------------------------------------------------------
_ISO_ZONE_SPACE = re.compile(r"\s+(?=[+-]\d\d:?\d\d$)")
_ISO_UTC_WORD = re.compile(r"\s*(?:UTC|GMT)$", re.IGNORECASE)


def _parse_iso(value: str) -> datetime | None:
    text = _ISO_UTC_WORD.sub("+00:00", _ISO_ZONE_SPACE.sub("", value.strip()))
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


# The zones RFC 822 knows. parsedate_tz() reports 0 for a missing or unknown zone
# ("IST"), which would read local times as UTC, so we look for one ourselves.
_RFC822_ZONE = re.compile(r"(?<![A-Za-z])(?:[+-]\d{4}|UT|UTC|GMT|Z|[ECMP][SD]T)\s*$", re.IGNORECASE)


def _parse_rfc822(value: str) -> datetime | None:
    parsed = parsedate_tz(value)
    if parsed is None:
        return None
    try:
        moment = datetime(*parsed[:6])
    except (ValueError, OverflowError):
        return None
    if not _RFC822_ZONE.search(value):
        return moment  # naive: the caller applies the site's timezone
    # "-0000" (RFC 5322: UTC, sender's zone unknown) comes back as offset 0 too.
    return moment.replace(tzinfo=timezone(timedelta(seconds=parsed[9] or 0)))


def to_utc(moment: datetime, tz: tzinfo) -> datetime:
    """An aware UTC datetime. A naive one is taken to be in `tz` (the site's timezone):
    a CMS that writes no zone writes its own local time."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        moment = moment.replace(tzinfo=tz)
    return moment.astimezone(UTC)


def parse_iso_time(value: str, tz: tzinfo) -> datetime | None:
    """An ISO 8601 date-time (the webhook's format) as aware UTC, or None."""
    moment = _parse_iso(value)
    return to_utc(moment, tz) if moment else None


def parse_time(value: str | datetime | None, tz: tzinfo) -> datetime | None:
    """A feed date (ISO 8601 or RFC 822, or a datetime) as aware UTC, or None when it
    cannot be read. Naive times are in `tz`, see `to_utc`."""
    if isinstance(value, datetime):
        return to_utc(value, tz)
    if not isinstance(value, str) or not value.strip():
        return None
    moment = _parse_iso(value) or _parse_rfc822(value)
    if moment is None:
        return None
    try:
        return to_utc(moment, tz)
    except (ValueError, OverflowError):  # year 1 minus an offset
        return None


def resolve_times(
    published: str | datetime | None,
    updated: str | datetime | None,
    *,
    now: datetime,
    tz: tzinfo,
) -> tuple[datetime, datetime | None, bool]:
    """(published_at, updated_at, date_missing).

    No usable published date: the updated one stands in (Atom allows an entry with only
    <updated>), else `now`, the time we first saw it, flagged date_missing. Dates more
    than FUTURE_TOLERANCE ahead of now count as missing. updated_at is None unless it is
    later than published_at.
    """
    horizon = now + FUTURE_TOLERANCE
    published_at = parse_time(published, tz)
    updated_at = parse_time(updated, tz)
    if published_at is not None and published_at > horizon:
        published_at = None
    if updated_at is not None and updated_at > horizon:
        updated_at = None
    date_missing = False
    if published_at is None:
        published_at, date_missing = (updated_at, False) if updated_at else (now, True)
    if updated_at is not None and updated_at <= published_at:
        updated_at = None
    return published_at, updated_at, date_missing


# --- Read time, image, related links ---------------------------------------------------
_LEADING_NUMBER = re.compile(r"\s*(\d{1,6})(?!\d|[.,]\d)")


def parse_read_minutes(value: Any) -> int | None:
    """A stated read time: 2, "2" or "2 min read" -> 2; anything else or out of range -> None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and math.isfinite(value):
        value = round(value)
    if isinstance(value, str):
        match = _LEADING_NUMBER.match(value)
        value = int(match.group(1)) if match else None
    if isinstance(value, int) and 1 <= value <= MAX_READ_MINUTES:
        return value
    return None


def estimate_read_minutes(body: str | None) -> int | None:
    """Read time from the body at WORDS_PER_MINUTE (at least 1), None without a body."""
    words = count_words(body)
    if not words:
        return None
    return max(1, int(words / WORDS_PER_MINUTE + 0.5))


def is_image_media(media: MediaRef) -> bool:
    """media:content with medium="image", an image/* type, or neither declared (a news
    feed's lone media:content is its picture). Thumbnails are images by definition;
    enclosures only with an image/* type."""
    medium, mime = media.medium.lower().strip(), media.mime_type.lower().strip()
    if media.kind == "thumbnail":
        return True
    if media.kind == "enclosure":
        return mime.startswith("image/")
    if medium:
        return medium == "image"
    return not mime or mime.startswith("image/")


_MEDIA_ORDER = {"content": 0, "thumbnail": 1, "enclosure": 2}


def choose_image(
    media: Sequence[MediaRef],
    *,
    content: str,
    summary: str,
    base: str,
    item_caption: str = "",
) -> LeadImage | None:
    """The first usable of media:content, media:thumbnail, an image enclosure, then (only
    as a fallback) an <img> of the body, then of the summary; None when there is none.

    Usable: an image that may lead an article (`images.is_lead_image_candidate`: not a
    tracker, not declared tiny, not data: or other non-http(s), no script on it) whose
    absolute URL fits the column. Anything else is skipped, never fatal. The caption is
    the chosen image's own, else the item's. The size is the one that image declares
    (width/height attributes, or an <img>'s style), so a small media:thumbnail is never
    drawn as a full-width photo.
    """
    ordered = sorted(
        (m for m in media if is_image_media(m)), key=lambda m: _MEDIA_ORDER.get(m.kind, 9)
    )
    candidates = [*ordered, *body_images(content), *body_images(summary)]
    for candidate in candidates:
        if not is_lead_image_candidate(candidate):
            continue
        absolute = absolute_http_url(candidate.url, base)
        if absolute and len(absolute) <= MAX_URL_CHARS and is_lead_image_candidate(replace(candidate, url=absolute)):
            text = plain_text(candidate.caption, CAPTION_MAX_CHARS) or plain_text(item_caption, CAPTION_MAX_CHARS)
            return LeadImage(absolute, text, kept_side(candidate.width), kept_side(candidate.height))
    return None


def related_links(
    links: Iterable[tuple[str, str]], *, base: str, article_url: str
) -> tuple[RelatedLink, ...]:
    """"Also read" links: absolute http(s) canonical URLs with a plain-text title.

    A link without a title, not http(s), or pointing back at the article is dropped;
    repeats (same canonical URL) are dropped; at most MAX_ALSO_READ are kept.
    """
    seen = {article_url}
    result: list[RelatedLink] = []
    for title_markup, url in links:
        absolute = absolute_http_url(url, base)
        title = make_title(title_markup)
        if not absolute or not title or len(absolute) > MAX_URL_CHARS:
            continue
        canonical = canonical_url(absolute)
        if canonical in seen:
            continue
        seen.add(canonical)
        result.append(RelatedLink(title=title, url=canonical))
    return tuple(result[:MAX_ALSO_READ])


def make_byline(authors: Iterable[str]) -> str:
    """Author names as one plain-text byline ("A, B"), repeats dropped."""
    names: list[str] = []
    for author in authors:
        name = plain_text(author, BYLINE_MAX_CHARS)
        if name and name not in names:
            names.append(name)
    return truncate_text(", ".join(names), BYLINE_MAX_CHARS)


def item_ref(position: int | None, *, guid: str = "", link: str = "", title: str = "") -> str:
    """How a rejection names its item, so an operator can find it in the feed."""
    head = f"item {position}" if position is not None else "webhook article"
    for label, value in (("guid", guid), ("link", link), ("title", title)):
        value = (value or "").strip()
        if label == "title":
            value = html_to_text(value)  # only when there is no guid or link: it is slow
        if value:
            return f"{head} ({label} {truncate_text(value, 80)!r})"
    return head


# --- The whole item -------------------------------------------------------------------
def build_article(raw: RawItem, *, settings: Settings, source: str, now: datetime) -> Article:
    """Apply every rule to one raw item. Raises RejectedItem naming the field at fault.

    An unexpected error inside one rule (a bug, or input nobody foresaw) also becomes a
    RejectedItem naming the field being read, so it stays with this item.
    """
    progress = _Progress()
    try:
        return _build_article_fields(raw, settings=settings, source=source, now=now, progress=progress)
    except RejectedItem:
        raise
    except Exception as exc:
        raise RejectedItem(
            f"{progress.field}: could not be read ({type(exc).__name__}: {exc})", raw.ref
        ) from exc


class _Progress:
    """Which field `build_article` is on, for the rejection message of a crash."""

    __slots__ = ("field",)

    def __init__(self) -> None:
        self.field = "title"


def _build_article_fields(
    raw: RawItem, *, settings: Settings, source: str, now: datetime, progress: _Progress
) -> Article:
    if raw.title is None or not raw.title.strip():
        raise RejectedItem("title: missing", raw.ref)
    title = make_title(raw.title)
    if not title:
        raise RejectedItem("title: nothing left after removing markup", raw.ref)

    progress.field = raw.link_field
    base = raw.base_url or settings.site.base_url
    # Identity fields skip the text rules, so they are cleaned here: a lone surrogate
    # (&#xD800;) in a guid would otherwise reach the database encoder.
    link = _clean_chars(raw.link or "").strip()
    guid = _clean_chars(raw.guid or "").strip()
    if link:
        url = absolute_http_url(link, base)
        if url is None:
            raise RejectedItem(
                f"{raw.link_field}: {truncate_text(link, 80)!r} is not an http(s) URL", raw.ref
            )
    elif is_http_url(guid):
        url = guid  # an absolute guid is the permalink (RSS isPermaLink)
    else:
        raise RejectedItem(
            f"{raw.link_field}: missing, and no guid that is an http(s) URL", raw.ref
        )
    url = canonical_url(url)
    if len(url) > MAX_URL_CHARS:
        raise RejectedItem(f"{raw.link_field}: longer than {MAX_URL_CHARS} characters", raw.ref)
    progress.field = "guid"
    key = article_key(guid, url)
    if len(key) > MAX_KEY_CHARS:
        raise RejectedItem(f"guid: longer than {MAX_KEY_CHARS} characters", raw.ref)

    progress.field = "category"
    section, trending, category_tags = classify_categories(
        raw.categories, explicit_section=raw.section, url=url, settings=settings
    )
    progress.field = "date"
    published_at, updated_at, date_missing = resolve_times(
        raw.published, raw.updated, now=now, tz=settings.tz
    )
    progress.field = "image"
    image = choose_image(
        raw.media, content=raw.content, summary=raw.summary, base=base,
        item_caption=raw.image_caption,
    )
    progress.field = "read time"
    read_minutes = parse_read_minutes(raw.read_minutes)
    if read_minutes is None:
        read_minutes = estimate_read_minutes(raw.content)
    progress.field = "summary"
    standfirst = make_standfirst(raw.summary, raw.content)
    progress.field = "author"
    byline = make_byline(raw.authors)
    progress.field = "dateline"
    dateline = plain_text(raw.dateline, DATELINE_MAX_CHARS)
    progress.field = "tags"
    tags = merge_tags(category_tags, (plain_text(tag, TAG_MAX_CHARS) for tag in raw.tags))
    progress.field = "also read"
    also_read = related_links(raw.also_read, base=base, article_url=url)
    return Article(
        key=key,
        url=url,
        title=title,
        section=section,
        published_at=published_at,
        standfirst=standfirst,
        byline=byline,
        dateline=dateline,
        updated_at=updated_at,
        image_url=image.url if image else None,
        image_caption=image.caption if image else "",
        image_width=image.width if image else None,
        image_height=image.height if image else None,
        tags=tags,
        read_minutes=read_minutes,
        also_read=also_read,
        trending=trending or raw.trending,
        date_missing=date_missing,
        source=source,
    )


# --- Typed reading of JSON objects (JSON Feed items and webhook payloads) ---------------
_TYPE_NAMES = {str: "a string", int: "an integer", bool: "true or false", list: "a list", dict: "an object"}


def _type_name(value: Any) -> str:
    return {
        type(None): "null", bool: "a boolean", int: "a number", float: "a number",
        str: "a string", list: "a list", dict: "an object",
    }.get(type(value), type(value).__name__)


def json_field(
    data: Mapping, name: str, kinds: tuple[type, ...], ref: str, *, label: str | None = None
) -> Any:
    """`data[name]` when it has one of `kinds`, None when absent or null; otherwise
    RejectedItem naming the field. bool is not accepted as an int."""
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) and bool not in kinds:
        ok = False
    else:
        ok = isinstance(value, kinds)
    if not ok:
        wanted = " or ".join(_TYPE_NAMES.get(k, k.__name__) for k in kinds)
        raise RejectedItem(f"{label or name}: expected {wanted}, got {_type_name(value)}", ref)
    return value


def json_string_list(data: Mapping, name: str, ref: str) -> list[str]:
    """A list of strings (tags, categories); RejectedItem naming the bad element."""
    values = json_field(data, name, (list,), ref) or []
    for index, value in enumerate(values):
        if not isinstance(value, str):
            raise RejectedItem(f"{name}[{index}]: expected a string, got {_type_name(value)}", ref)
    return list(values)


# --- The webhook payload --------------------------------------------------------------
# Every field the CMS may send, with its JSON type. Anything else is refused, so that a
# misspelt field ("sectoin") is caught at the first push instead of silently ignored.
WEBHOOK_FIELDS: dict[str, tuple[type, ...]] = {
    "id": (str, int),
    "url": (str,),
    "title": (str,),
    "standfirst": (str,),
    "section": (str,),
    "categories": (list,),
    "byline": (str,),
    "dateline": (str,),
    "published_at": (str,),
    "updated_at": (str,),
    "image_url": (str,),
    "image_caption": (str,),
    "image_width": (int,),
    "image_height": (int,),
    "tags": (list,),
    "read_minutes": (int, str),
    "also_read": (list,),
    "trending": (bool,),
}


def _webhook_time(data: Mapping, name: str, ref: str, tz: tzinfo) -> datetime | None:
    value = json_field(data, name, WEBHOOK_FIELDS[name], ref)
    if value is None or not value.strip():
        return None
    moment = parse_iso_time(value, tz)
    if moment is None:
        raise RejectedItem(f"{name}: {truncate_text(value, 40)!r} is not an ISO 8601 date-time", ref)
    return moment


def _webhook_image_side(data: Mapping, name: str, ref: str) -> int | None:
    """A declared image side: a whole number of pixels, 0 (or null) for "not known"."""
    value = json_field(data, name, WEBHOOK_FIELDS[name], ref)
    limit = LEAD_IMAGE_RULES.max_side
    if value is not None and not 0 <= value <= limit:
        raise RejectedItem(f"{name}: {value} is not a size in pixels (0 to {limit}; 0 or null: not known)", ref)
    return kept_side(value)


def _webhook_also_read(data: Mapping, ref: str) -> list[tuple[str, str]]:
    links = []
    for index, entry in enumerate(json_field(data, "also_read", (list,), ref) or []):
        label = f"also_read[{index}]"
        if not isinstance(entry, Mapping):
            raise RejectedItem(f"{label}: expected an object with title and url, got {_type_name(entry)}", ref)
        title = json_field(entry, "title", (str,), ref, label=f"{label}.title")
        url = json_field(entry, "url", (str,), ref, label=f"{label}.url")
        if not url:
            raise RejectedItem(f"{label}.url: missing", ref)
        links.append((plain_as_html(title), url))
    return links


def article_from_mapping(
    data: Mapping, *, settings: Settings, source: str, base_url: str, now: datetime
) -> Article:
    """Build an Article from the webhook's JSON fields (documented in README).

    Fields: id (optional guid), url and title (required), standfirst (HTML or text),
    (title, byline, dateline, section, categories, tags and also_read titles are plain
    text: a "<" or "&" in them is the publisher's character, never markup),
    section (slug, label or alias), categories, byline, dateline, published_at and
    updated_at (ISO 8601; without a zone the site's timezone is assumed), image_url,
    image_caption, image_width and image_height (the image's size in pixels, 0 when not
    known), tags, read_minutes, also_read ([{title, url}]), trending. Null means
    absent. Raises distributor.errors.RejectedItem naming the bad, missing or unknown field.
    """
    if not isinstance(data, Mapping):
        raise RejectedItem(f"payload: expected a JSON object, got {_type_name(data)}", "webhook article")
    guid = data.get("id")
    ref = item_ref(
        None,
        guid=str(guid) if isinstance(guid, (str, int)) and not isinstance(guid, bool) else "",
        link=data.get("url") if isinstance(data.get("url"), str) else "",
    )
    unknown = sorted(str(name) for name in data if name not in WEBHOOK_FIELDS)
    if unknown:
        raise RejectedItem(
            f"unknown field(s) {', '.join(repr(n) for n in unknown)}; "
            f"known fields are {', '.join(WEBHOOK_FIELDS)}",
            ref,
        )

    def get(name: str) -> Any:
        return json_field(data, name, WEBHOOK_FIELDS[name], ref)

    guid = get("id")
    url = get("url")
    if url is None or not url.strip():
        raise RejectedItem("url: missing", ref)
    read_minutes = get("read_minutes")
    if read_minutes is not None and parse_read_minutes(read_minutes) is None:
        raise RejectedItem(
            f"read_minutes: {read_minutes!r} is not a number of minutes (1 to {MAX_READ_MINUTES})", ref
        )
    image_url = get("image_url")
    image_width = _webhook_image_side(data, "image_width", ref)
    image_height = _webhook_image_side(data, "image_height", ref)
    byline = get("byline")
    raw = RawItem(
        ref=ref,
        base_url=choose_base([base_url], settings),
        guid=str(guid) if guid is not None else "",
        link=url,
        link_field="url",
        title=plain_as_html(get("title")) if get("title") is not None else None,
        summary=get("standfirst") or "",
        published=_webhook_time(data, "published_at", ref, settings.tz),
        updated=_webhook_time(data, "updated_at", ref, settings.tz),
        categories=[plain_as_html(c) for c in json_string_list(data, "categories", ref)],
        section=plain_as_html(get("section")),
        tags=[plain_as_html(t) for t in json_string_list(data, "tags", ref)],
        authors=[plain_as_html(byline)] if byline else [],
        dateline=plain_as_html(get("dateline")),
        read_minutes=read_minutes,
        media=[MediaRef(url=image_url, kind="content", width=image_width, height=image_height)] if image_url else [],
        image_caption=get("image_caption") or "",
        also_read=_webhook_also_read(data, ref),
        trending=bool(get("trending")),
    )
    return build_article(raw, settings=settings, source=source, now=now)
