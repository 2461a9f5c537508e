"""Bluesky posts for articles and digests (pure: no I/O).

A post's text holds at most 300 graphemes and 3,000 UTF-8 bytes (app.bsky.feed.post).
Links are not found by Bluesky in the text: each is a facet naming the byte range of its
visible text and the URL it opens. The text shows a short form of the link (host and
path, cut); the facet and the link card (`app.bsky.embed.external`) carry the whole URL.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from distributor.articles import Article
from distributor.ratelimit import Rate
from distributor.render.script import article_language, languages_in
from distributor.settings import Settings
from distributor.text import graphemes, shorten, utf8_bytes


@dataclass(frozen=True)
class BlueskyLimits:
    """What Bluesky allows in one post (the app.bsky lexicons), and one account in a while."""

    max_graphemes: int = 300
    max_bytes: int = 3000
    # The link card's thumbnail blob (app.bsky.embed.external#external.thumb).
    max_thumb_bytes: int = 1_000_000
    # How much of a link the text shows (the facet opens the whole URL).
    link_display_graphemes: int = 32
    # Languages one post may declare (app.bsky.feed.post#langs maxLength).
    max_langs: int = 3
    # Record writes one account (DID) may make on a Bluesky PDS, counted in points:
    # 5,000 in any hour and 35,000 in any day; creating a record costs 3 points (an
    # update 2, a delete 1). Uploading a blob is not a record write.
    points_per_hour: int = 5000
    points_per_day: int = 35000
    create_points: int = 3

    @property
    def creates_per_account(self) -> tuple[Rate, Rate]:
        """The creates those points allow: 1,666 in any hour and 11,666 in any day. Every
        worker takes a slot in both before it creates a post."""
        return (Rate(self.points_per_hour // self.create_points, 3600.0),
                Rate(self.points_per_day // self.create_points, 86_400.0))

    @property
    def budgets(self) -> dict[str, tuple[Rate, ...]]:
        """The per-account budgets by request action (delivery/social_limits.py)."""
        return {"post": self.creates_per_account}


LIMITS = BlueskyLimits()


def measure(text: str) -> int:
    """One measure for both limits: graphemes x 10 or bytes, whichever is nearer its
    limit (300 graphemes and 3,000 bytes are both 3,000 here)."""
    return max(graphemes(text) * (LIMITS.max_bytes // LIMITS.max_graphemes), utf8_bytes(text))


ROOM = LIMITS.max_bytes  # a post fits when measure(text) <= ROOM


def link_text(url: str) -> str:
    """The short form of a link shown in the text: host and path, cut."""
    parts = urlsplit(url)
    shown = (parts.netloc.removeprefix("www.") + parts.path).rstrip("/")
    return shorten(shown, LIMITS.link_display_graphemes, measure=graphemes, prefer_words=False) or parts.netloc


def _link_facet(text_before: str, shown: str, url: str) -> dict[str, Any]:
    start = utf8_bytes(text_before)
    return {"index": {"byteStart": start, "byteEnd": start + utf8_bytes(shown)},
            "features": [{"$type": "app.bsky.richtext.facet#link", "uri": url}]}


def article_post(settings: Settings, article: Article, *, link_url: str | None = None) -> dict[str, Any]:
    """An article's post record (without createdAt): headline, standfirst cut to fit, the
    link as a facet, a link card with title and description; `langs` the article's
    (from its script: a Hindi headline is "hi" on an English site)."""
    link = link_url or article.url
    shown = link_text(link)
    room = ROOM - measure("\n\n" + shown)
    title = shorten(article.title.strip(), room, measure=measure)
    parts = [title] if title else []
    standfirst = article.standfirst.strip()
    if standfirst and title == article.title.strip():
        cut = shorten(standfirst, room - measure(title + "\n\n"), measure=measure)
        if cut:
            parts.append(cut)
    before = "".join(p + "\n\n" for p in parts)
    return {
        "$type": "app.bsky.feed.post",
        "text": before + shown,
        "facets": [_link_facet(before, shown, link)],
        "langs": [article_language(article, settings.site.language)[0]],
        "embed": {"$type": "app.bsky.embed.external",
                  "external": {"uri": link, "title": shorten(article.title.strip(), 300, measure=graphemes),
                               "description": shorten(standfirst, 1000, measure=graphemes)}},
    }


def thread_posts(settings: Settings, heading: str, articles: Sequence[Article], *,
                 link_url: Callable[[Article], str] = lambda article: article.url) -> list[dict[str, Any]]:
    """A digest as a thread of post records: the heading first, then one line per article
    whose headline is its link (a facet), as many per post as fit; "(n/N)" numbering."""
    number_room = measure(" (99/99)")
    limit = ROOM - number_room
    posts: list[tuple[str, list[dict]]] = []
    text = shorten(heading.strip(), limit, measure=measure)
    facets: list[dict] = []
    for article in articles:
        title = shorten(article.title.strip(), limit - measure("• "), measure=measure)
        prefix = "\n\n• " if text else "• "
        if measure(text + prefix + title) > limit:
            posts.append((text, facets))
            text, facets, prefix = "", [], "• "
        facets.append(_link_facet(text + prefix, title, link_url(article)))
        text += prefix + title
    if text:
        posts.append((text, facets))
    if len(posts) > 1:
        posts = [(f"{t} ({n}/{len(posts)})", f) for n, (t, f) in enumerate(posts, 1)]
    # A status listing Hindi and English headlines is in both; Bluesky takes up to three.
    return [{"$type": "app.bsky.feed.post", "text": t, "facets": f,
             "langs": languages_in(t, settings.site.language)[:LIMITS.max_langs]}
            for t, f in posts]
