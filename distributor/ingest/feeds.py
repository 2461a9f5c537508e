"""Feed parsing: RSS 2.0 and Atom 1.0 (feedparser), JSON Feed 1.1 (json). Bytes in, articles out."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from distributor.articles import Article
from distributor.errors import RejectedItem
from distributor.settings import Settings


@dataclass
class ParsedFeed:
    """Articles that normalised cleanly, and one RejectedItem per item that did not."""

    articles: list[Article] = field(default_factory=list)
    rejected: list[RejectedItem] = field(default_factory=list)
    format: str = ""  # "rss", "atom" or "json"


def parse_feed(
    body: bytes, *, settings: Settings, source: str, base_url: str, now: datetime
) -> ParsedFeed:
    """Parse a whole feed. Raises distributor.errors.FeedError when it is not a feed at all."""
    raise NotImplementedError
