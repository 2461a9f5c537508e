"""Feed parsing: RSS 2.0 and Atom 1.0 (lxml, feedparser for broken XML), JSON Feed 1.1 (json).

Bytes in, articles out. Each item becomes a `normalise.RawItem` and goes through
`normalise.build_article`, the same rules the webhook uses. A bad item becomes a
RejectedItem and the rest go on; only a body that is not a feed at all raises FeedError.

Two readers for RSS and Atom, on purpose:
- A well-formed RSS 2.0 or Atom 1.0 document (every feed our CMS writes) is streamed
  through a safe lxml parser, item by item (`_parse_stream`, `_read_element`). This
  reader also sees what feedparser loses: the attributes and text of our `na:` elements,
  and media:description / media:title kept apart from the item's own title and summary
  (feedparser folds them in). It is also three to four times faster than feedparser,
  which was the slowest step of ingest, and never holds a large feed as a whole tree.
- Anything else (malformed XML, RSS 0.9x/1.0, Atom 0.3, wrong encodings) goes to
  feedparser, which is lenient where lxml gives up. Its entries are then completed from
  a recovering lxml parse of the same bytes, matched by position or guid.
tests/unit/test_feeds.py parses every well-formed fixture both ways and requires the same
articles, so the two readers cannot drift apart.
"""

from __future__ import annotations

import html
import html.entities
import io
import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from typing import Any

import feedparser
from feedparser.datetimes import _parse_date as _feedparser_date
from lxml import etree

from distributor.articles import Article
from distributor.errors import FeedError, RejectedItem
from distributor.ingest.images import MediaRef, declared_side
from distributor.ingest.normalise import (
    RawItem,
    build_article,
    choose_base,
    escape_text,
    item_ref,
    plain_as_html,
    text_as_html,
    json_field,
    json_string_list,
    parse_time,
)
from distributor.settings import Settings

log = logging.getLogger(__name__)

NA_NS = "https://www.newsarenaindia.com/ns/distributor/1.0"
MEDIA_NS = "http://search.yahoo.com/mrss/"
ATOM_NS = "http://www.w3.org/2005/Atom"
RSS1_NS = "http://purl.org/rss/1.0/"
CONTENT_NS = "http://purl.org/rss/1.0/modules/content/"
DC_NS = "http://purl.org/dc/elements/1.1/"
DCTERMS_NS = "http://purl.org/dc/terms/"
JSON_FEED_VERSION_PREFIX = "https://jsonfeed.org/version/"
# Our JSON Feed extension object (JSON Feed reserves "_"-prefixed keys for extensions).
JSON_FEED_EXTENSION = "_newsarena"


def _ns(namespace: str, name: str) -> str:
    return f"{{{namespace}}}{name}"


_ITEM_TAGS = ("item", _ns(RSS1_NS, "item"), _ns(ATOM_NS, "entry"))
_MEDIA_TEXT_TAGS = (_ns(MEDIA_NS, "description"), _ns(MEDIA_NS, "title"))
_MEDIA_GROUP = _ns(MEDIA_NS, "group")
_MEDIA_CONTENT = _ns(MEDIA_NS, "content")
_MEDIA_THUMBNAIL = _ns(MEDIA_NS, "thumbnail")
# Link types an Atom rel="alternate" link may have to be the article's page.
_HTML_TYPES = ("", "text/html", "application/xhtml+xml")

# Never resolve entities (no XXE, no entity expansion bombs), never touch the network.
_SAFE_XML = {
    "resolve_entities": False,
    "no_network": True,
    "load_dtd": False,
    "dtd_validation": False,
    "huge_tree": False,
    "remove_comments": True,
    "remove_pis": True,
}


@dataclass
class ParsedFeed:
    """Articles that normalised cleanly, one RejectedItem per item that did not, and one
    line per item dropped as a duplicate of a later one in the same feed."""

    articles: list[Article] = field(default_factory=list)
    rejected: list[RejectedItem] = field(default_factory=list)
    format: str = ""  # "rss", "atom", "json" or "webhook"
    duplicates: list[str] = field(default_factory=list)
    items_read: int = 0  # every item seen, whatever became of it
    # key -> (position, ref) of the item that currently holds the key.
    _holders: dict[str, tuple[int, str]] = field(default_factory=dict, repr=False)

    def add(self, article: Article, position: int, ref: str) -> None:
        """Keep `article`; an earlier item with the same key gives way to it.

        Feeds repeat a story (the same guid twice, or links that differ only in tracking
        parameters): the later occurrence in document order wins, as a feed reader shows
        it, and the earlier one is counted, so one article is stored once per batch.
        """
        earlier = self._holders.get(article.key)
        if earlier is not None:
            self.articles = [a for a in self.articles if a.key != article.key]
            where = "batch" if self.format == "webhook" else "feed"
            self.duplicates.append(
                f"{earlier[1]}: duplicate in {where} of item {position} (same key {article.key}); "
                f"item {position} kept"
            )
        self._holders[article.key] = (position, ref)
        self.articles.append(article)


def parse_feed(
    body: bytes, *, settings: Settings, source: str, base_url: str, now: datetime
) -> ParsedFeed:
    """Parse a whole feed. Raises distributor.errors.FeedError when it is not a feed at all.

    `base_url` is where the body came from (an http(s) URL after redirects, or a file://
    URL); relative links resolve against xml:base, then it, then the feed's home page,
    then the site's base URL. `now` is the first-seen time given to undated items.
    """
    # Only the head is stripped: stripping a whole 40 MB body copies it.
    head = body[:1024].lstrip(b"\xef\xbb\xbf \t\r\n")
    if not head and not body.strip():
        raise FeedError(source, "empty body: there is no feed to read")
    if head[:1] in (b"{", b"["):
        return _parse_json_feed(body, settings=settings, source=source, base_url=base_url, now=now)
    parsed = _parse_stream(body, settings=settings, source=source, base_url=base_url, now=now)
    if parsed is None:
        # A reference to a character XML forbids (&#xD800;) fails the whole document in
        # libxml2: with those replaced, our reader may still take it.
        scrubbed = scrub_char_refs(body)
        if scrubbed is not body:
            parsed = _parse_stream(scrubbed, settings=settings, source=source, base_url=base_url, now=now)
            body = scrubbed
    if parsed is not None:
        return parsed
    return _parse_with_feedparser(body, settings=settings, source=source, base_url=base_url, now=now)


_CHAR_REF = re.compile(rb"&#(?:[xX]([0-9a-fA-F]+)|([0-9]+));")
_REPLACEMENT_REF = b"&#xFFFD;"


def _is_xml_char(code: int) -> bool:
    # XML 1.0's Char production: what a character reference may name.
    return (
        code in (0x9, 0xA, 0xD)
        or 0x20 <= code <= 0xD7FF
        or 0xE000 <= code <= 0xFFFD
        or 0x10000 <= code <= 0x10FFFF
    )


def _fix_char_ref(match: re.Match[bytes]) -> bytes:
    hex_digits, digits = match.groups()
    code = int(hex_digits, 16) if hex_digits else int(digits)
    return match.group() if _is_xml_char(code) else _REPLACEMENT_REF


def scrub_char_refs(body: bytes) -> bytes:
    """`body` with each reference to a character XML forbids (lone surrogates, NUL and
    other controls, beyond U+10FFFF) replaced by U+FFFD, which the text rules then drop.

    Such a reference makes libxml2 refuse the document and feedparser crash encoding it
    (UnicodeEncodeError), so one bad character used to lose the whole feed. Returns
    `body` itself when nothing needed replacing.
    """
    if b"&#" not in body:
        return body
    fixed = _CHAR_REF.sub(_fix_char_ref, body)
    return body if fixed == body else fixed


def _add_item(
    parsed: ParsedFeed,
    position: int,
    read: Callable[[], RawItem],
    *,
    settings: Settings,
    source: str,
    now: datetime,
) -> None:
    """Read and build one item into `parsed`; whatever goes wrong stays with this item."""
    parsed.items_read += 1
    raw: RawItem | None = None
    try:
        raw = read()
        parsed.add(build_article(raw, settings=settings, source=source, now=now), position, raw.ref)
    except RejectedItem as exc:
        parsed.rejected.append(exc)
    except Exception as exc:  # a bug on one odd item must not lose the rest of the feed
        log.exception("item %s of %s could not be read", position, source)
        parsed.rejected.append(
            RejectedItem(
                f"could not be read ({type(exc).__name__}: {exc})",
                raw.ref if raw is not None else item_ref(position),
            )
        )


def _feed_date(value: str | None, settings: Settings) -> str | datetime | None:
    """A feed date read by our rules, or by feedparser's when ours cannot (it knows more
    exotic formats, but takes zone-less times as UTC, so it comes second); else as found.

    feedparser has no public name for its date reader; test_feeds covers our use of it.
    """
    if not value:
        return value
    moment = parse_time(value, settings.tz)
    if moment is not None:
        return moment
    parsed = _feedparser_date(value)
    return datetime(*parsed[:6], tzinfo=timezone.utc) if parsed else value


# --- Well-formed RSS 2.0 and Atom 1.0: our own reader -------------------------------------
@dataclass
class _ElementItem:
    """One item as read from the XML tree; text fields hold HTML (see RawItem)."""

    guid: str = ""
    link: str = ""
    xml_base: str | None = None
    title: str | None = None  # None: the item has no title element
    summary: str | None = None  # None: no description/summary element
    content: str = ""
    published: str = ""
    updated: str = ""
    categories: list[str] = field(default_factory=list)
    authors: list[str] = field(default_factory=list)
    media: list[MediaRef] = field(default_factory=list)
    item_caption: str = ""
    dateline: str = ""
    read_time: str = ""
    na_updated: str = ""
    also_read: list[tuple[str, str]] = field(default_factory=list)


def _inner_markup(element: Any, *, escape: bool) -> str:
    """An element's content as an HTML string.

    RSS text elements carry HTML as text (escaped or in CDATA), so their text is used as
    is (`escape=False`). Atom type="text" and type="xhtml" carry text and XML elements,
    so their text is escaped (`escape=True`) and child elements serialised. Unexpanded
    entity references (we never resolve entities) come back as "&name;" for the HTML
    decoder, which knows the HTML ones.
    """
    quote = (lambda s: html.escape(s, quote=False)) if escape else (lambda s: s)
    parts = [quote(element.text or "")]
    for child in element:
        if child.tag is etree.Entity:
            # Only HTML's own entities mean something to a reader; a document's custom
            # ones (never expanded) are dropped rather than shown as "&name;".
            if (child.text or "")[1:] in html.entities.html5:
                parts.append(child.text)
        elif isinstance(child.tag, str):
            parts.append(etree.tostring(child, encoding="unicode", with_tail=False))
        parts.append(quote(child.tail or ""))
    return "".join(parts)


def _atom_text(element: Any) -> str:
    kind = (element.get("type") or "text").lower()
    if kind == "html":
        return _inner_markup(element, escape=False)
    if kind in ("text", "text/plain"):
        return escape_text(element.text or "") if len(element) == 0 else _inner_markup(element, escape=True)
    return _inner_markup(element, escape=True)  # xhtml: markup as XML elements


def _media_caption(element: Any) -> str:
    # media:description is plain text unless it says type="html" (Media RSS spec).
    escape = (element.get("type") or "plain").lower() != "html"
    return _inner_markup(element, escape=escape)


def _text(element: Any) -> str:
    return (element.text or "").strip()


_RSS_AUTHOR_NAME = re.compile(r"\(([^()]+)\)\s*$")


def _rss_author(value: str) -> str:
    """RSS <author> is "email (Name)"; a bare email address is no byline."""
    value = value.strip()
    match = _RSS_AUTHOR_NAME.search(value)
    if match:
        return match.group(1).strip()
    return "" if "@" in value else value


def _read_media(item: Any, result: _ElementItem) -> None:
    for media in item.iter(_MEDIA_CONTENT, _MEDIA_THUMBNAIL):
        url = (media.get("url") or "").strip()
        if not url:
            continue
        caption = _first_caption(media)
        size = {"width": declared_side(media.get("width")), "height": declared_side(media.get("height"))}
        if media.tag == _MEDIA_CONTENT:
            result.media.append(
                MediaRef(url, "content", media.get("medium") or "", media.get("type") or "", caption, **size)
            )
        else:
            result.media.append(MediaRef(url, "thumbnail", caption=caption, **size))
    # A caption on the item or its media:group (not inside one media:content) covers
    # whichever image is chosen.
    for container in (item, *item.iterchildren(_MEDIA_GROUP)):
        result.item_caption = _first_caption(container)
        if result.item_caption:
            return


def _first_caption(container: Any) -> str:
    """The media:description of a media element, else its media:title."""
    for tag in _MEDIA_TEXT_TAGS:
        for text in container.iterchildren(tag):
            caption = _media_caption(text)
            if caption.strip():
                return caption
    return ""


def _read_element(item: Any, *, atom: bool) -> _ElementItem:
    """Everything we use from one <item> or <entry>. A broken extension element is
    skipped, never fatal."""
    result = _ElementItem(xml_base=item.base)
    _read_na(item, result)
    updated_fallback = ""
    for child in item:
        tag = child.tag
        if not isinstance(tag, str):
            continue
        namespace, _, name = tag[1:].partition("}") if tag[0] == "{" else ("", "", tag)
        try:
            if atom and namespace == ATOM_NS:
                if name == "id":
                    result.guid = _text(child)
                elif name == "title" and result.title is None:
                    result.title = _atom_text(child)
                elif name == "summary" and result.summary is None:
                    result.summary = _atom_text(child)
                elif name == "content" and not result.content:
                    result.content = _atom_text(child)
                elif name == "published":
                    result.published = _text(child)
                elif name == "updated":
                    result.updated = _text(child)
                elif name == "author":
                    result.authors += [plain_as_html(_text(n)) for n in child.iterchildren(_ns(ATOM_NS, "name"))]
                elif name == "category":
                    result.categories.append(plain_as_html(child.get("term") or child.get("label") or ""))
                elif name == "link":
                    _read_atom_link(child, result)
            elif not atom and namespace in ("", RSS1_NS):
                if name == "guid":
                    result.guid = _text(child)
                elif name == "link" and not result.link:
                    result.link = _text(child)
                elif name == "title" and result.title is None:
                    result.title = text_as_html(_inner_markup(child, escape=False))
                elif name == "description" and result.summary is None:
                    result.summary = _inner_markup(child, escape=False)
                elif name == "pubDate":
                    result.published = _text(child)
                elif name == "category":
                    result.categories.append(text_as_html(_text(child)))
                elif name == "author":
                    result.authors.append(text_as_html(_rss_author(_text(child))))
                elif name == "enclosure" and child.get("url"):
                    result.media.append(MediaRef(child.get("url"), "enclosure", mime_type=child.get("type") or ""))
            elif not atom and namespace == CONTENT_NS and name == "encoded":
                result.content = result.content or _inner_markup(child, escape=False)
            elif not atom and namespace == DC_NS:
                if name == "creator":
                    result.authors.append(text_as_html(_text(child)))
                elif name == "subject":
                    result.categories.append(text_as_html(_text(child)))
                elif name == "date":
                    updated_fallback = updated_fallback or _text(child)
            elif not atom and namespace == ATOM_NS:
                if name == "updated":
                    result.updated = _text(child)
                elif name == "link" and not result.link:
                    _read_atom_link(child, result)
            elif not atom and namespace == DCTERMS_NS and name == "modified":
                updated_fallback = updated_fallback or _text(child)
        except (ValueError, TypeError, AttributeError):
            continue
    # RSS has no "updated" element; these are the ones feedparser reads as one.
    result.updated = result.updated or updated_fallback
    _read_media(item, result)
    return result


def _read_na(item: Any, result: _ElementItem) -> None:
    # Searched below the item, not only among its children: in a recovered broken
    # document an unclosed tag before them can leave them nested a level down.
    for element in item.iter(f"{{{NA_NS}}}*"):
        name = etree.QName(element).localname
        try:
            if name == "dateline" and not result.dateline:
                result.dateline = text_as_html(_inner_markup(element, escape=False))
            elif name == "readTime" and not result.read_time:
                result.read_time = _text(element)
            elif name == "updated" and not result.na_updated:
                result.na_updated = _text(element)
            elif name == "alsoRead" and (element.get("href") or "").strip():
                result.also_read.append(
                    (text_as_html(_inner_markup(element, escape=False)), element.get("href").strip())
                )
        except (ValueError, TypeError):  # a broken extension element is ignored, not fatal
            continue


def _read_atom_link(link: Any, result: _ElementItem) -> None:
    rel = (link.get("rel") or "alternate").strip().lower()
    href = (link.get("href") or "").strip()
    if not href:
        return
    if rel == "enclosure":
        result.media.append(MediaRef(href, "enclosure", mime_type=link.get("type") or ""))
    elif rel == "alternate" and not result.link and (link.get("type") or "").lower() in _HTML_TYPES:
        result.link = href


def _raw_from_element(
    position: int, element: _ElementItem, *, settings: Settings, bases: Iterable[str | None]
) -> RawItem:
    return RawItem(
        ref=item_ref(position, guid=element.guid, link=element.link, title=element.title or ""),
        base_url=choose_base([element.xml_base, *bases], settings),
        guid=element.guid,
        link=element.link,
        title=element.title,
        summary=element.summary or "",
        content=element.content,
        published=_feed_date(element.published, settings),
        updated=_feed_date(_na_or(element.na_updated, element.updated, settings), settings),
        categories=element.categories,
        authors=element.authors,
        dateline=element.dateline,
        read_minutes=element.read_time,
        media=element.media,
        image_caption=element.item_caption,
        also_read=element.also_read,
    )


def _na_or(na_updated: str, updated: Any, settings: Settings) -> Any:
    # na:updated is the CMS's own "updated" stamp; when broken, the format's one stands.
    return na_updated if na_updated and parse_time(na_updated, settings.tz) else updated


def _is_home_link(element: Any) -> bool:
    """The feed's own <link> (RSS channel/link, Atom feed/link rel=alternate)."""
    parent = element.getparent()
    if element.tag == "link":
        return parent is not None and parent.tag == "channel"
    return (
        parent is not None
        and parent.tag == _ns(ATOM_NS, "feed")
        and (element.get("rel") or "alternate") == "alternate"
        and bool(element.get("href"))
    )


_STREAM_TAGS = (*_ITEM_TAGS, "link", _ns(ATOM_NS, "link"))


def _parse_stream(
    body: bytes, *, settings: Settings, source: str, base_url: str, now: datetime
) -> ParsedFeed | None:
    """Parse a well-formed RSS 2.0 or Atom 1.0 document; None for anything else.

    Streamed: each item becomes an article when its end tag arrives and is then cleared,
    so a large feed never sits in memory as a tree nor as raw items. Any XML error, even
    after the last item, means None: the feedparser path then reads the whole body.
    """
    parsed = ParsedFeed()
    home: str | None = None
    home_seen = False
    waiting: list[_ElementItem] = []  # items before the feed's home link (a base for them)

    def add(element: _ElementItem) -> None:
        position = parsed.items_read + 1
        read = partial(_raw_from_element, position, element, settings=settings, bases=(base_url, home))
        _add_item(parsed, position, read, settings=settings, source=source, now=now)

    context = etree.iterparse(io.BytesIO(body), events=("end",), tag=_STREAM_TAGS, **_SAFE_XML)
    try:
        for _, element in context:
            if not parsed.format:
                root = element.getroottree().getroot()
                if root.tag not in ("rss", _ns(ATOM_NS, "feed")):
                    return None
                parsed.format = "rss" if root.tag == "rss" else "atom"
            if element.tag in _ITEM_TAGS:
                item = _read_element(element, atom=parsed.format == "atom")
                element.clear(keep_tail=True)
                if home_seen:
                    add(item)
                else:
                    waiting.append(item)
            elif not home_seen and _is_home_link(element):
                home = (element.get("href") or element.text or "").strip() or None
                home_seen = True
                for item in waiting:
                    add(item)
                waiting.clear()
    except (etree.XMLSyntaxError, ValueError):
        return None
    root = context.root
    if root is None or root.tag not in ("rss", _ns(ATOM_NS, "feed")):
        return None
    if root.tag == "rss" and root.find("channel") is None:
        return None
    parsed.format = "rss" if root.tag == "rss" else "atom"
    for item in waiting:
        add(item)
    return parsed


# --- Everything else: feedparser ----------------------------------------------------------
def _recovered_root(body: bytes) -> Any:
    """Our parse of a broken document, as far as libxml2 can recover it (None if not)."""
    try:
        return etree.fromstring(body, etree.XMLParser(recover=True, **_SAFE_XML))
    except (etree.XMLSyntaxError, ValueError):
        return None


def _is_rss2_or_atom(root: Any) -> bool:
    if root.tag == "rss":
        return root.find("channel") is not None
    return root.tag == _ns(ATOM_NS, "feed")


def _looks_like_html(body: bytes, root: Any) -> bool:
    if root is not None and isinstance(root.tag, str) and etree.QName(root).localname.lower() == "html":
        return True
    return re.search(rb"<(!doctype\s+html|html[\s>])", body[:4096], re.IGNORECASE) is not None


# A CDATA section (kept as it is), or an "&" that starts no character or entity reference.
_BARE_AMPERSAND = re.compile(rb"(<!\[CDATA\[.*?\]\]>)|&(?!#[0-9]+;|#[xX][0-9a-fA-F]+;|[A-Za-z][A-Za-z0-9]*;)", re.DOTALL)


def _escape_bare_ampersands(body: bytes) -> bytes:
    """"AT&T" in a broken feed is text: feedparser's lenient parser would read "&T" as an
    unknown entity and print "AT&T;", so it gets the "&amp;" the publisher forgot."""
    if b"&" not in body:
        return body
    return _BARE_AMPERSAND.sub(lambda m: m.group(1) or b"&amp;", body)


def _parse_with_feedparser(
    body: bytes, *, settings: Settings, source: str, base_url: str, now: datetime
) -> ParsedFeed:
    body = _escape_bare_ampersands(scrub_char_refs(body))
    # A stream, not the bytes: given bytes, feedparser first tries them as a file name
    # and would read a local file whose path a feed server sent as its body.
    result = feedparser.parse(
        io.BytesIO(body),
        # We keep plain text only, so feedparser's HTML sanitising and link rewriting
        # inside content would be work thrown away (and they are its slowest parts).
        sanitize_html=False,
        resolve_relative_uris=False,
    )
    root = _recovered_root(body)
    entries = result.get("entries", [])
    readable = [e for e in entries if any(e.get(k) for k in ("title", "link", "id", "summary", "content"))]
    if not readable:
        if _looks_like_html(body, root):
            raise FeedError(source, "not a feed: the body is an HTML page")
        if result.get("bozo") and not isinstance(
            result.get("bozo_exception"), feedparser.CharacterEncodingOverride
        ):
            raise FeedError(
                source, f"not a readable feed: malformed XML with no items ({result.get('bozo_exception')})"
            )
        if not result.get("version"):
            root_name = etree.QName(root).localname if root is not None and isinstance(root.tag, str) else "?"
            raise FeedError(source, f"not an RSS, Atom or JSON feed (root element <{root_name}>)")
    atom = (result.get("version") or "").startswith("atom")
    parsed = ParsedFeed(format="atom" if atom else "rss")
    bases = (base_url, result.get("feed", {}).get("link"))

    # Our own reading of the same items, for what feedparser loses (see module docstring).
    elements = [_read_element(item, atom=atom) for item in root.iter(*_ITEM_TAGS)] if root is not None else []
    # In a dialect we do not read (Atom 0.3, RSS 1.0...) our elements lack title and
    # summary, which then come from feedparser.
    known_dialect = root is not None and _is_rss2_or_atom(root)
    matched = _match_elements([(e.get("id") or "").strip() for e in entries], elements)
    for position, (entry, element) in enumerate(zip(entries, matched, strict=True), 1):
        _add_item(
            parsed,
            position,
            partial(
                _raw_from_entry, position, entry, element, atom=atom, known_dialect=known_dialect,
                settings=settings, bases=bases,
            ),
            settings=settings,
            source=source,
            now=now,
        )
    return parsed


def _match_elements(guids: list[str], elements: list[_ElementItem]) -> list[_ElementItem | None]:
    """Pair feedparser's entries (by their guids) with our elements.

    By position when both saw the same number of items, unless the two guids there
    differ; otherwise by guid; otherwise nothing (the item goes without extensions).
    """
    by_guid: dict[str, _ElementItem] = {}
    for element in elements:
        if element.guid:
            by_guid.setdefault(element.guid, element)
    same_count = len(elements) == len(guids)
    matched: list[_ElementItem | None] = []
    for position, guid in enumerate(guids):
        element = None
        if same_count:
            candidate = elements[position]
            if not (guid and candidate.guid and candidate.guid != guid):
                element = candidate
        if element is None and guid:
            element = by_guid.get(guid)
        matched.append(element)
    return matched


def _raw_from_entry(
    position: int,
    entry: Mapping,
    element: _ElementItem | None,
    *,
    atom: bool,
    known_dialect: bool,
    settings: Settings,
    bases: Iterable[str | None],
) -> RawItem:
    guid = (entry.get("id") or "").strip()
    link = (entry.get("link") or "").strip()
    if link and link == guid and entry.get("guidislink") and not atom:
        # feedparser copies an RSS guid into a missing <link>; whether a guid may stand in
        # for the link is the rules' call (only an absolute http(s) one may).
        link = ""

    def detail(name: str) -> Mapping:
        return entry.get(f"{name}_detail") or {}

    contents = [c for c in entry.get("content") or () if c.get("value")]
    content = ""
    if contents:
        first = contents[0]
        content = escape_text(first["value"]) if first.get("type") == "text/plain" else first["value"]

    # The text comes from feedparser: on broken XML its reading beats a recovered tree.
    title = entry.get("title")
    if title is not None and not atom:
        # RSS does not say: feedparser has decoded the text once, and we guess whether
        # it is HTML by our rule, as our own reader does.
        title = text_as_html(title)
    elif title is not None and detail("title").get("type") == "text/plain":
        title = plain_as_html(title)
    as_html = plain_as_html if atom else text_as_html
    summary = entry.get("summary") or ""
    if contents and summary == contents[0]["value"]:
        summary = ""  # feedparser copies the body into a missing summary
    if element is not None and known_dialect:
        # feedparser fills a missing title or summary from media:title/media:description.
        if element.title is None:
            title = None
        if element.summary is None:
            summary = ""

    xml_base = next(
        (detail(n).get("base") for n in ("title", "summary") if detail(n).get("base")),
        contents[0].get("base") if contents else None,
    )
    captions = {m.url: m.caption for m in element.media} if element else {}
    media: list[MediaRef] = []
    for item in entry.get("media_content") or ():
        url = (item.get("url") or "").strip()
        if url:
            media.append(
                MediaRef(
                    url, "content", item.get("medium") or "", item.get("type") or "", captions.get(url, ""),
                    width=declared_side(item.get("width")), height=declared_side(item.get("height")),
                )
            )
    for item in entry.get("media_thumbnail") or ():
        url = (item.get("url") or "").strip()
        if url:
            media.append(
                MediaRef(
                    url, "thumbnail", caption=captions.get(url, ""),
                    width=declared_side(item.get("width")), height=declared_side(item.get("height")),
                )
            )
    for item in entry.get("links") or ():
        if item.get("rel") == "enclosure" and item.get("href"):
            media.append(MediaRef(item["href"], "enclosure", mime_type=item.get("type") or ""))

    return RawItem(
        ref=item_ref(position, guid=guid, link=link, title=title or ""),
        base_url=choose_base([xml_base, *bases], settings),
        guid=guid,
        link=link,
        title=title,
        summary=summary,
        content=content,
        published=_feed_date(entry.get("published"), settings),
        updated=_feed_date(_na_or(element.na_updated if element else "", entry.get("updated"), settings), settings),
        categories=[as_html(t.get("term") or t.get("label") or "") for t in entry.get("tags") or ()],
        authors=[as_html(a.get("name") or "") for a in entry.get("authors") or ()],
        dateline=element.dateline if element else "",
        read_minutes=element.read_time if element else None,
        media=media,
        image_caption=element.item_caption if element else "",
        also_read=element.also_read if element else (),
    )


# --- JSON Feed ----------------------------------------------------------------------------
def _parse_json_feed(
    body: bytes, *, settings: Settings, source: str, base_url: str, now: datetime
) -> ParsedFeed:
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise FeedError(source, f"not a readable feed: invalid JSON ({exc})") from None
    if not isinstance(document, dict):
        raise FeedError(source, "not a JSON Feed: the JSON document is not an object")
    version = document.get("version")
    if not isinstance(version, str) or not version.startswith(JSON_FEED_VERSION_PREFIX):
        raise FeedError(source, f'not a JSON Feed: "version" must start with {JSON_FEED_VERSION_PREFIX}')
    items = document.get("items")
    if not isinstance(items, list):
        raise FeedError(source, 'not a readable JSON Feed: "items" is missing or not a list')
    home = document.get("home_page_url")
    bases = (base_url, home if isinstance(home, str) else None)
    parsed = ParsedFeed(format="json")
    for position, item in enumerate(items, 1):
        _add_item(
            parsed,
            position,
            partial(_raw_from_json_item, position, item, settings=settings, bases=bases),
            settings=settings,
            source=source,
            now=now,
        )
    return parsed


def _ext_str(ext: Mapping, name: str) -> str:
    # Extension fields are advisory, like na: elements: a wrong type is ignored.
    value = ext.get(name)
    return value if isinstance(value, str) else ""


def _json_authors(item: Mapping) -> list[str]:
    people = item.get("authors")
    if not isinstance(people, list):
        people = [item.get("author")]  # JSON Feed 1.0
    return [p["name"] for p in people if isinstance(p, dict) and isinstance(p.get("name"), str)]


def _json_also_read(ext: Mapping) -> list[tuple[str, str]]:
    links = ext.get("also_read")
    if not isinstance(links, list):
        return []
    return [
        (plain_as_html(link["title"]), link["url"])
        for link in links
        if isinstance(link, dict) and isinstance(link.get("title"), str) and isinstance(link.get("url"), str)
    ]


def _raw_from_json_item(
    position: int, item: Any, *, settings: Settings, bases: Iterable[str | None]
) -> RawItem:
    if not isinstance(item, dict):
        kind = "a list" if isinstance(item, list) else type(item).__name__
        raise RejectedItem(f"item: expected a JSON object, got {kind}", item_ref(position))
    raw_id = item.get("id")
    guid = str(raw_id) if isinstance(raw_id, (str, int)) and not isinstance(raw_id, bool) else ""
    ref = item_ref(
        position,
        guid=guid,
        link=item.get("url") if isinstance(item.get("url"), str) else "",
        title=item.get("title") if isinstance(item.get("title"), str) else "",
    )

    def get(name: str, *kinds: type) -> Any:
        return json_field(item, name, kinds or (str,), ref)

    get("id", str, int)  # type check only; the guid is read above
    content_html = get("content_html")
    content_text = get("content_text")
    ext = item.get(JSON_FEED_EXTENSION)
    ext = ext if isinstance(ext, dict) else {}
    image, banner = get("image"), get("banner_image")
    return RawItem(
        ref=ref,
        base_url=choose_base(bases, settings),
        guid=guid,
        link=get("url") or get("external_url") or "",
        link_field="url",
        title=plain_as_html(get("title")) if get("title") is not None else None,
        summary=get("summary") or "",
        content=content_html if content_html else escape_text(content_text),
        published=_feed_date(get("date_published"), settings),
        updated=_feed_date(get("date_modified"), settings),
        categories=[plain_as_html(tag) for tag in json_string_list(item, "tags", ref)],
        section=plain_as_html(_ext_str(ext, "section")),
        authors=[plain_as_html(name) for name in _json_authors(item)],
        dateline=plain_as_html(_ext_str(ext, "dateline")),
        read_minutes=ext.get("read_minutes"),
        media=[MediaRef(url, kind) for url, kind in ((image, "content"), (banner, "thumbnail")) if url],
        image_caption=_ext_str(ext, "image_caption"),
        also_read=_json_also_read(ext),
        trending=ext.get("trending") is True,
    )
