"""Mastodon statuses for articles and digests (pure: no I/O).

A status is plain text: Mastodon links bare URLs and hashtags itself. Its length is
counted as Mastodon counts it (StatusLengthValidator): grapheme clusters, with every URL
counting 23 whatever its length. The limit is the instance's own `max_characters`
(500 on most instances, more on some), passed in by the caller.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import regex

from distributor.articles import Article
from distributor.ratelimit import Rate
from distributor.settings import Settings
from distributor.text import graphemes, shorten


@dataclass(frozen=True)
class MastodonLimits:
    """What a Mastodon instance allows in one status, and one account in a while."""

    # Characters per status unless the instance says otherwise (/api/v1/instance).
    max_characters: int = 500
    # Every URL counts this many characters, however long (Mastodon's URL placeholder).
    url_length: int = 23
    # Images per status (we attach at most one: the article's).
    max_media: int = 4
    # Alt text of an image, in characters.
    max_alt_text: int = 1500
    # Largest image we upload (bytes); instances accept 16 MB, articles' images are smaller.
    max_image_bytes: int = 8 * 1024 * 1024
    # Statuses one account may post: 300 in any 3 hours (Mastodon's per-account
    # "statuses" limit, whatever app posts them). Every worker takes a slot before a status.
    statuses_per_account: Rate = Rate(300, 3 * 3600.0)
    # Media uploads one account may make: 30 in any 30 minutes (the "media" limit).
    media_per_account: Rate = Rate(30, 30 * 60.0)

    @property
    def budgets(self) -> dict[str, tuple[Rate, ...]]:
        """The per-account budgets by request action (delivery/social_limits.py)."""
        return {"status": (self.statuses_per_account,), "media": (self.media_per_account,)}


LIMITS = MastodonLimits()

# What Mastodon links as a URL: http(s) and a run without spaces.
_URL = re.compile(r"https?://\S+")


def status_length(text: str, *, url_length: int = LIMITS.url_length) -> int:
    """Length of a status as Mastodon counts it: graphemes, each URL as `url_length`."""
    return graphemes(_URL.sub("x" * url_length, text))


def hashtag(label: str) -> str:
    """A section label as a hashtag: words joined in CamelCase ("World news" ->
    "#WorldNews"); "" when nothing of it can be a hashtag."""
    words = regex.findall(r"[\p{L}\p{M}\p{N}]+", label)
    tag = "".join(word[:1].upper() + word[1:] for word in words)
    return f"#{tag}" if tag and not tag.isdigit() else ""


def article_status(
    settings: Settings,
    article: Article,
    *,
    link_url: str | None = None,
    max_characters: int = LIMITS.max_characters,
) -> str:
    """One article's status: headline, standfirst cut to fit, link, section hashtag.

    The standfirst gives way first, then the headline; the link and hashtag always stay.
    """
    link = link_url or article.url
    try:
        tag = hashtag(settings.section(article.section).label)
    except KeyError:
        tag = ""
    tail = "\n\n".join(filter(None, [link, tag]))
    measure = status_length
    # Room for headline (and standfirst) before "\n\n" + tail.
    room = max_characters - measure(tail) - 2
    title = shorten(article.title.strip(), max(room, 0), measure=measure)
    parts = [title] if title else []
    standfirst = article.standfirst.strip()
    if standfirst and title == article.title.strip():
        left = room - measure(title) - 2
        cut = shorten(standfirst, left, measure=measure) if left > 1 else ""
        if cut:
            parts.append(cut)
    return "\n\n".join(parts + [tail])


def thread_statuses(
    heading: str,
    articles: Sequence[Article],
    *,
    link_url: Callable[[Article], str] = lambda article: article.url,
    max_characters: int = LIMITS.max_characters,
) -> list[str]:
    """A digest as a thread: the heading in the first status, then one line per article
    (headline and link), as many per status as fit; "(1/3)" numbering when more than one.

    A headline too long for a status on its own is cut to fit with its link.
    """
    # Room kept for the " (12/12)" numbering added at the end.
    number_room = 8
    limit = max_characters - number_room
    lines = []
    for article in articles:
        link = link_url(article)
        room = limit - status_length(link) - 1
        lines.append(f"{shorten(article.title.strip(), room, measure=status_length)}\n{link}")
    statuses: list[str] = []
    current = shorten(heading.strip(), limit, measure=status_length)
    for line in lines:
        candidate = f"{current}\n\n{line}" if current else line
        if status_length(candidate) <= limit:
            current = candidate
        else:
            statuses.append(current)
            current = line
    if current:
        statuses.append(current)
    if len(statuses) > 1:
        statuses = [f"{text} ({n}/{len(statuses)})" for n, text in enumerate(statuses, 1)]
    return statuses
