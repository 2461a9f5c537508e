"""Telegram posts, rendered: Bot API calls in HTML parse mode, split to Telegram's limits.

Pure: articles and editions in, `BotCall`s out (method + JSON-ready parameters, without
`chat_id`, which the sender adds). Nothing here talks to Telegram.

Three rules hold for everything this module returns:

- Only Telegram's HTML subset (b, i, a here), every tag closed in order, and every piece
  of article text escaped. The Jinja environment escapes each `{{ value }}` for Telegram
  (& < >) in its finalize hook, so a template cannot leak raw text even by mistake; links
  are http(s) only and percent-encoded before they reach an attribute.
- Lengths are counted as Telegram counts them: UTF-16 code units of the text after
  entity parsing (tags removed, references decoded), so Devanagari and emoji (two units
  each) never overflow. The limits are declared in `TelegramLimits`.
- Long posts are split between articles, never inside a tag or an entity; each part is
  complete HTML with its own header and "i/n" counter, and the counter is inside the
  budget. Only a single line longer than a whole part is shortened (with an ellipsis).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit, urlunsplit

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from distributor.articles import Article
from distributor.settings import PROJECT_ROOT, Settings
from distributor.text import shorten as shorten_text
from distributor.text import utf16_units

if TYPE_CHECKING:
    from distributor.editions import Edition  # that module reads the store; types only

TEMPLATES = PROJECT_ROOT / "templates" / "telegram"
PARSE_MODE = "HTML"
READ_MORE = "Read more"
TRENDING_LABEL = "Trending"
ELLIPSIS = "…"


@dataclass(frozen=True)
class TelegramLimits:
    """What Telegram accepts, from the Bot API documentation."""

    message_length: int = 4096  # UTF-16 code units of text after entity parsing
    caption_length: int = 1024
    # sendPhoto refuses a photo whose width and height add up to more than this, or whose
    # sides are further apart than `photo_max_aspect` (PHOTO_INVALID_DIMENSIONS).
    photo_max_side_sum: int = 10_000
    photo_max_aspect: float = 20.0


LIMITS = TelegramLimits()


def photo_fits(article: Article, limits: TelegramLimits = LIMITS) -> bool:
    """Can sendPhoto take this article's image, as far as its declared size tells? An
    image without a declared size is tried (the text fallback covers a refusal); one
    declared too large or too thin goes out as text at once, without a refused request."""
    width, height = article.image_width, article.image_height
    if not width or not height:
        return True
    return width + height <= limits.photo_max_side_sum and max(width, height) <= limits.photo_max_aspect * min(width, height)


@dataclass(frozen=True)
class BotCall:
    """One Bot API call to make for a post.

    `params` are JSON-ready, in a fixed key order, and carry no `chat_id`: the sender adds
    it (and `disable_notification` in silent hours). `part`/`parts` number the pieces of
    a split edition or roundup (1/1 for everything else). `text_fallback`, on a photo
    post, is the same article as a text message, for when Telegram cannot fetch or use
    the photo.
    """

    method: str  # "sendMessage" | "sendPhoto" | "editMessageText" | "editMessageCaption"
    params: dict = field(hash=False)
    part: int = 1
    parts: int = 1
    text_fallback: BotCall | None = field(default=None, hash=False)

    def as_dict(self) -> dict:
        """`{"method": ..., "params": {...}}`, the form of the outbox and of `telegram.json`."""
        return {"method": self.method, "params": dict(self.params)}


# ---------------------------------------------------------------------------- counting

_TAG = re.compile(r"<[^>]*>")
_REFERENCE = re.compile(r"&(?:#[xX]([0-9a-fA-F]{1,6})|#([0-9]{1,7})|(lt|gt|amp|quot));")
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}


utf16_len = utf16_units  # Telegram's unit (an emoji outside the BMP counts 2)


def _decode_reference(match: re.Match) -> str:
    hex_code, dec_code, name = match.groups()
    if name:
        return _NAMED[name]
    code = int(hex_code, 16) if hex_code else int(dec_code)
    if code == 0 or code >= 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return match.group(0)  # Telegram leaves invalid references as they are
    return chr(code)


def visible_text(html: str) -> str:
    """The text Telegram shows for `html`: tags removed, then character references decoded.

    Tags go first so that a decoded `&lt;` can never become a tag. Exact for what this
    module renders (its text never holds a raw `<` or `>`).
    """
    return _REFERENCE.sub(_decode_reference, _TAG.sub("", html))


def _length(html: str) -> int:
    return utf16_len(visible_text(html))


# ---------------------------------------------------------------------------- escaping


def escape_text(text: str) -> str:
    """Escape text for Telegram HTML: only &, < and > need it (quotes are fine in text)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def escape_attribute(text: str) -> str:
    """Escape a double-quoted attribute value: & < > and the quote itself."""
    return escape_text(text).replace('"', "&quot;")


def _finalize(value: object) -> object:
    """Every `{{ value }}` passes here: text becomes escaped Markup, Markup stays as it is."""
    if value is None:
        return ""
    if hasattr(value, "__html__"):
        return value
    return Markup(escape_text(str(value)))


def _attr(value: object) -> Markup:
    if hasattr(value, "__html__"):
        value = visible_text(str(value))  # undo Markup's escaping, then escape for an attribute
    return Markup(escape_attribute(str(value)))


@lru_cache(maxsize=4)
def _environment(directory: Path = TEMPLATES) -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(directory)),
        autoescape=True,  # the safety net: even a str that skipped finalize gets escaped
        finalize=_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=StrictUndefined,
        keep_trailing_newline=False,
    )
    env.filters["attr"] = _attr
    return env


def _macros():
    return _environment().get_template("_macros.html").module


def link_href(url: str | None) -> str | None:
    """`url` fit for an href and a URL button: http(s) only, unsafe characters encoded.

    A feed could carry `javascript:` or a quote in a link; such a link is dropped (the
    headline stays, unlinked) or percent-encoded, never passed through.
    """
    if not url:
        return None
    url = url.strip()
    if not re.match(r"^https?://[^/\s]", url, flags=re.IGNORECASE):
        return None
    parts = urlsplit(url)
    host = parts.hostname or ""
    if not host.isascii():
        # An internationalised domain becomes its ASCII (punycode) form; percent-encoding
        # it would name another host.
        try:
            ascii_host = host.encode("idna").decode("ascii")
        except UnicodeError:
            return None
        url = urlunsplit(parts._replace(netloc=parts.netloc.replace(host, ascii_host)))
    return quote(url, safe="/:?#[]@!$&'()*+,;=%~-._")


# ---------------------------------------------------------------------------- shortening


def shorten(text: str, max_units: int) -> str:
    """`text` (stripped) cut to at most `max_units` UTF-16 units, ellipsis included: the
    shared grapheme-aware rule of `distributor.text.shorten`, counted as Telegram counts."""
    return shorten_text(text.strip(), max_units, measure=utf16_units, ellipsis=ELLIPSIS)


def _fit(render: Callable[[str], str], text: str, limit: int) -> str | None:
    """The longest shortening of `text` whose rendering fits `limit`; None if even "" overflows."""
    if _length(render(text)) <= limit:
        return text
    if _length(render("")) > limit:
        return None
    low, high = 0, utf16_len(text)  # longest fitting budget is in [low, high)
    best = ""
    while low < high:
        middle = (low + high + 1) // 2
        candidate = shorten(text, middle)
        if _length(render(candidate)) <= limit:
            best, low = candidate, middle
        else:
            high = middle - 1
    return best


# ---------------------------------------------------------------------------- article posts


def _section_labels(settings: Settings) -> dict[str, str]:
    return {s.slug: s.label for s in settings.sections}


def _section_label(settings: Settings, slug: str) -> str:
    return _section_labels(settings).get(slug) or slug.replace("-", " ").title()


def hashtag(label: str) -> str:
    """"#International" from a section label: spaces and punctuation removed."""
    word = re.sub(r"[^\w]", "", label)
    return f"#{word}" if word else ""


def _meta(article: Article) -> str:
    parts = [
        "Updated" if article.is_updated else "",
        article.byline.strip(),
        article.dateline.strip(),
        f"{article.read_minutes} min read" if article.read_minutes else "",
    ]
    return " · ".join(p for p in parts if p)


def _article_html(settings: Settings, article: Article, href: str | None, title: str, standfirst: str) -> str:
    template = _environment().get_template("article.html")
    html = template.render(
        title=title,
        href=href,
        standfirst=standfirst,
        meta=_meta(article),
        hashtag=hashtag(_section_label(settings, article.section)),
    )
    return str(html).strip()


def _article_body(settings: Settings, article: Article, href: str | None, limit: int, *, keep_title: bool) -> str | None:
    """The post within `limit`: standfirst shortened first, then (unless keep_title) title."""

    def with_standfirst(title: str) -> Callable[[str], str]:
        return lambda standfirst: _article_html(settings, article, href, title, standfirst)

    title = article.title.strip()
    standfirst = _fit(with_standfirst(title), article.standfirst.strip(), limit)
    if standfirst is not None:
        if standfirst == ELLIPSIS:
            standfirst = ""  # a lone ellipsis says nothing: drop the standfirst instead
        return with_standfirst(title)(standfirst)
    if keep_title:
        return None
    short_title = _fit(lambda t: _article_html(settings, article, href, t, ""), title, limit)
    if short_title is None:
        raise ValueError(f"article {article.key!r}: even an empty post exceeds {limit} units")
    return _article_html(settings, article, href, short_title, "")


def _keyboard(href: str | None) -> dict | None:
    if not href:
        return None
    return {"inline_keyboard": [[{"text": READ_MORE, "url": href}]]}


def _preview(href: str | None, disable_preview: bool) -> dict:
    if disable_preview or not href:
        return {"is_disabled": True}
    return {"url": href}


def _with_markup(params: dict, href: str | None) -> dict:
    markup = _keyboard(href)
    if markup:
        params["reply_markup"] = markup
    return params


def article_post(
    settings: Settings,
    article: Article,
    *,
    link_url: str | None = None,
    disable_preview: bool = False,
    limits: TelegramLimits = LIMITS,
) -> BotCall:
    """The post announcing one article: a photo with caption when it fits, else text.

    `link_url` replaces the article URL in the headline link and the Read more button
    (e.g. a click-tracking redirect). With an image, the standfirst is shortened at a word
    boundary until the caption fits `caption_length`; only when even the caption without
    standfirst does not fit does the post become a text message. A photo post carries
    that text message as `text_fallback`, for when Telegram cannot fetch or use the photo.
    """
    href = link_href(link_url or article.url)
    text = _article_body(settings, article, href, limits.message_length, keep_title=False)
    params = {"text": text, "parse_mode": PARSE_MODE, "link_preview_options": _preview(href, disable_preview)}
    text_post = BotCall("sendMessage", _with_markup(params, href))
    if article.image_url and link_href(article.image_url) and photo_fits(article, limits):
        caption = _article_body(settings, article, href, limits.caption_length, keep_title=True)
        if caption is not None:
            params = {"photo": article.image_url, "caption": caption, "parse_mode": PARSE_MODE}
            return BotCall("sendPhoto", _with_markup(params, href), text_fallback=text_post)
    return text_post


def article_edit(
    settings: Settings,
    article: Article,
    *,
    kind: str,
    message_id: int,
    link_url: str | None = None,
    disable_preview: bool = False,
    limits: TelegramLimits = LIMITS,
) -> BotCall:
    """The edit that brings a posted article up to date; `kind` is how it was posted.

    "photo" edits the caption (a text post cannot become a photo post, nor the other way
    round); the caption is shortened as needed, down to the title if it must.
    """
    href = link_href(link_url or article.url)
    if kind == "photo":
        caption = _article_body(settings, article, href, limits.caption_length, keep_title=False)
        params = {"message_id": message_id, "caption": caption, "parse_mode": PARSE_MODE}
        return BotCall("editMessageCaption", _with_markup(params, href))
    if kind != "text":
        raise ValueError(f"kind must be 'text' or 'photo', not {kind!r}")
    text = _article_body(settings, article, href, limits.message_length, keep_title=False)
    params = {
        "message_id": message_id,
        "text": text,
        "parse_mode": PARSE_MODE,
        "link_preview_options": _preview(href, disable_preview),
    }
    return BotCall("editMessageText", _with_markup(params, href))


def plain_text_fallback(call: BotCall) -> BotCall:
    """The same call without parse_mode: tags stripped, references decoded.

    For the one retry after Telegram refused our formatting ("can't parse entities");
    the visible text, and so its length, is unchanged.
    """
    params = {}
    for key, value in call.params.items():
        if key == "parse_mode":
            continue
        if key in ("text", "caption") and isinstance(value, str):
            value = visible_text(value)
        params[key] = value
    return replace(call, params=params)


# ---------------------------------------------------------------------------- lists (editions)


@dataclass
class _Line:
    """One line of a list post (an article, or the closing "+ N more")."""

    group: str | None  # heading label of its group (section or Trending); None: no heading
    opens_group: bool  # first line of its group: its heading goes before it
    render: Callable[[str | None], str]  # the line, with the title replaced by this text
    title: str
    gap_before: bool = False  # a blank line before it (the closing line)
    html: str = ""

    def __post_init__(self) -> None:
        self.html = self.render(None)


def _list_part(header: str, lines: Sequence[_Line]) -> str:
    """Header, then the lines; a group's heading before its first line, and repeated
    ("continued") when a part starts in the middle of a group."""
    macros = _macros()
    rows: list[str] = []
    for index, line in enumerate(lines):
        heading = None
        if line.group is not None and (line.opens_group or index == 0):
            heading = str(macros.section_heading(line.group, continued=not line.opens_group))
        if (heading or line.gap_before) and rows:
            rows.append("")
        if heading:
            rows.append(heading)
        rows.append(line.html)
    return header + "\n\n" + "\n".join(rows)


def _pack(header: Callable[[int, int], str], lines: list[_Line], limit: int) -> list[str]:
    """Split lines into parts of at most `limit` units, counter included.

    Greedy, between lines only. The header (with "i/n") depends on the number of parts,
    so packing is repeated with that number until it no longer changes; more parts only
    ever make headers longer, so this settles.
    """
    guess = 1
    for _ in range(20):
        parts: list[list[_Line]] = []
        current: list[_Line] = []
        for line in lines:
            number = len(parts) + 1
            if current and _length(_list_part(header(number, guess), [*current, line])) <= limit:
                current.append(line)
                continue
            if current:
                parts.append(current)
                number += 1
            alone = _list_part(header(number, guess), [line])
            if _length(alone) > limit:
                _shorten_line(line, lambda h, n=number, g=guess: _length(_list_part(header(n, g), [h])), limit)
            current = [line]
        if current:
            parts.append(current)
        if len(parts) == guess:
            break
        guess = len(parts)
    total = len(parts)
    rendered = [_list_part(header(i, total), part) for i, part in enumerate(parts, start=1)]
    for text in rendered:
        if _length(text) > limit:  # the loop above guarantees this; refuse rather than overflow
            raise AssertionError(f"rendered part of {_length(text)} units exceeds {limit}")
    return rendered


def _shorten_line(line: _Line, measure: Callable[[_Line], int], limit: int) -> None:
    """Shorten the line's title (an ellipsis at the end) until the line fits a part alone."""

    def fits(title: str) -> bool:
        line.html = line.render(title)
        return measure(line) <= limit

    low, high, best = 0, utf16_len(line.title), ""
    while low < high:
        middle = (low + high + 1) // 2
        candidate = shorten(line.title, middle)
        if fits(candidate):
            best, low = candidate, middle
        else:
            high = middle - 1
    if not fits(best):
        raise ValueError(f"a list line does not fit in {limit} units even without its title")


def _article_lines(
    settings: Settings,
    articles: Iterable[Article],
    group: str | None,
    link_url: Callable[[Article], str],
    *,
    show_section: bool,
) -> list[_Line]:
    macros = _macros()
    lines = []
    for index, article in enumerate(articles):
        href = link_href(link_url(article))
        label = _section_label(settings, article.section) if show_section else None

        def render(title: str | None, article=article, href=href, label=label) -> str:
            text = article.title.strip() if title is None else title
            return str(macros.article_line(text, href, label, article.is_updated))

        lines.append(_Line(group, index == 0, render, article.title.strip()))
    return lines


def _closing_line(text_html: str) -> _Line:
    return _Line(None, False, lambda _title: text_html, "", gap_before=True)


def _date_line(moment: datetime, settings: Settings) -> str:
    local = moment.astimezone(settings.tz)
    return f"{local:%A}, {local.day} {local:%B %Y}"


def _list_posts(title: str, date: str, lines: list[_Line], limits: TelegramLimits) -> list[BotCall]:
    macros = _macros()

    def header(part: int, parts: int) -> str:
        return str(macros.header(title, date, part, parts)).strip()

    texts = _pack(header, lines, limits.message_length)
    return [
        BotCall(
            "sendMessage",
            {"text": text, "parse_mode": PARSE_MODE, "link_preview_options": {"is_disabled": True}},
            part=index,
            parts=len(texts),
        )
        for index, text in enumerate(texts, start=1)
    ]


def edition_posts(
    settings: Settings,
    edition: Edition,
    *,
    link_url: Callable[[Article], str] = lambda article: article.url,
    title: str | None = None,
    limits: TelegramLimits = LIMITS,
) -> list[BotCall]:
    """An edition as one post, or several numbered ones ("1/3"...) when over the limit.

    Header (title, date in the site timezone), Trending, then sections in configured
    order, one headline link per article; "+ N more" at the end when the edition left
    articles out. No post at all for an empty edition. Link previews are off: a digest
    would otherwise preview whichever link came first.
    """
    if edition.is_empty:
        return []
    lines = _article_lines(settings, edition.trending, TRENDING_LABEL, link_url, show_section=True)
    for group in edition.groups:
        lines += _article_lines(settings, group.articles, group.section.label, link_url, show_section=False)
    if edition.omitted:
        more = _macros().more(edition.omitted, settings.site.name, link_href(settings.site.base_url))
        lines.append(_closing_line(str(more)))
    heading = title or f"{settings.site.name} · {edition.label}"
    return _list_posts(heading, _date_line(edition.window.end, settings), lines, limits)


def roundup_post(
    settings: Settings,
    articles: Sequence[Article],
    *,
    title: str,
    at: datetime | None = None,
    link_url: Callable[[Article], str] = lambda article: article.url,
    limits: TelegramLimits = LIMITS,
) -> list[BotCall]:
    """The quiet-hours roundup: the held-back articles in one post (split like editions).

    Articles keep the given order, each with its section label; `at` (default: the newest
    article's time) dates the header in the site timezone.
    """
    if not articles:
        return []
    lines = _article_lines(settings, articles, None, link_url, show_section=True)
    moment = at or max(a.published_at for a in articles)
    return _list_posts(title, _date_line(moment, settings), lines, limits)
