"""Article and Section: plain frozen values shared by ingest, editions and renderers."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Section:
    """A site section in configured order (`position` 0 comes first)."""

    slug: str
    label: str
    position: int


@dataclass(frozen=True, slots=True)
class RelatedLink:
    """An "Also read" link inside an article."""

    title: str
    url: str


@dataclass(frozen=True, slots=True)
class Article:
    """One published piece, normalised.

    Times are timezone-aware UTC. `key` is the feed guid, else the canonical URL.
    """

    key: str
    url: str
    title: str
    section: str
    published_at: datetime
    standfirst: str = ""
    byline: str = ""
    dateline: str = ""
    updated_at: datetime | None = None
    image_url: str | None = None
    image_caption: str = ""
    # The lead image's size in pixels as its source declared it (media:content or
    # media:thumbnail width/height, <img width height>, the webhook); None when not
    # declared. Used to draw the image no larger than it is, in its own proportions.
    image_width: int | None = None
    image_height: int | None = None
    tags: tuple[str, ...] = ()
    read_minutes: int | None = None
    also_read: tuple[RelatedLink, ...] = ()
    # The feed put the item in the editor's "Trending" category.
    trending: bool = False
    # The item carried no usable date; published_at is the time we first saw it.
    date_missing: bool = False
    source: str = ""
    # Set by the store, not by parsers.
    version: int = 1
    first_seen_at: datetime | None = None
    last_changed_at: datetime | None = None
    significant_change_at: datetime | None = None
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def is_updated(self) -> bool:
        """A newer version of something already published (shown with an "Updated" mark)."""
        return self.version > 1

    def content_hash(self) -> str:
        """Hash of what a reader sees; a change here makes a new version.

        Times are left out on purpose: a CMS that bumps "updated" on a no-op save, or a
        feed re-dated for a demo, has not changed the story. So is the image's declared
        size: the picture (its URL) is what a reader sees, and a feed that starts
        declaring sizes must not mark every stored article "Updated" (the store refreshes
        the size in place instead).
        """
        payload = {
            "url": self.url,
            "title": self.title,
            "standfirst": self.standfirst,
            "section": self.section,
            "byline": self.byline,
            "dateline": self.dateline,
            "image_url": self.image_url,
            "image_caption": self.image_caption,
            "tags": list(self.tags),
            "read_minutes": self.read_minutes,
            "also_read": [asdict(link) for link in self.also_read],
        }
        data = json.dumps(payload, sort_keys=True, ensure_ascii=False).encode("utf-8")
        return hashlib.sha256(data).hexdigest()
