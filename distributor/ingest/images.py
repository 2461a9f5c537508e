"""Which picture may lead an article: declared media first, body images only as a fallback,
and never a tracker, a spacer or anything a reader would not call a photo.

Feeds are full of images that are not photos: Feedburner's 1x1 "~r" pixels, open-tracking
beacons, spacer GIFs, data: URIs, `<img onerror=...>` tricks. Shown as a lead image, a 1x1
pixel becomes a 552x311 grey "photo" in the email and a `sendPhoto` on Telegram. The rule
lives here as data (`LEAD_IMAGE_RULES`) so a newsroom meeting a new tracker adds a line,
not code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit



@dataclass(frozen=True)
class MediaRef:
    """An image candidate as the source gave it.

    `kind` is "content" (media:content, JSON image), "thumbnail" (media:thumbnail, JSON
    banner_image), "enclosure", or "inline" (an <img> of the item's HTML).
    `medium`/`mime_type`/`width`/`height` are as declared ("" or None when absent);
    `scripted` marks an <img> carrying an event handler (onerror=, onload=...).
    """

    url: str
    kind: str
    medium: str = ""
    mime_type: str = ""
    caption: str = ""  # HTML
    width: int | None = None
    height: int | None = None
    scripted: bool = False


@dataclass(frozen=True)
class LeadImage:
    """The picture chosen to lead an article: absolute http(s) URL, plain-text caption,
    and the size its source declared (pixels; None for a side not declared)."""

    url: str
    caption: str = ""
    width: int | None = None
    height: int | None = None


@dataclass(frozen=True)
class LeadImageRules:
    """What disqualifies an image from leading an article."""

    # A declared width or height below this (pixels) is an icon, spacer or pixel. Small
    # 16:9 thumbnails are real photos (The Guardian's 140x84, 144x81 elsewhere): the
    # email draws them as thumbnails, never stretched (render/email_images.py).
    min_side: int = 80
    # Longer side over shorter side above this: a banner, divider or skyscraper ad, not
    # a photo (photos run from 1:1 to about 2:1; a 16:9 hero is 1.78).
    max_aspect: float = 3.0
    # A declared side above this (pixels) is junk, not a size: the image may still lead,
    # but its size is not kept (nothing real is that large, and the store's column is an
    # ordinary integer).
    max_side: int = 100_000
    # host + path prefixes of known trackers (lower case, no scheme).
    tracker_prefixes: tuple[str, ...] = (
        "feeds.feedburner.com/~r/",
        "feeds.feedburner.com/~ff/",
        "feedproxy.google.com/~r/",
        "feeds.feedblitz.com/~/i/",
        "pixel.wp.com/",
        "stats.wordpress.com/",
        "www.google-analytics.com/",
        "pixel.quantserve.com/",
        "b.scorecardresearch.com/",
        "sb.scorecardresearch.com/",
        "www.facebook.com/tr",
    )
    # A whole path segment, or a file name without its extension, that says "not a photo".
    # Whole words only: "/pixel.gif" and "/track/open.png" are trackers,
    # "/pixelated-art-show.jpg" and "/tracking-the-monsoon.jpg" are photos.
    tracker_words: frozenset[str] = frozenset(
        {"pixel", "pixels", "beacon", "tracking", "track", "tracker", "1x1", "spacer", "blank", "transparent"}
    )
    # File names that carry a size token, e.g. "spacer_1x1.gif", "img-1x1.png".
    tiny_name: re.Pattern[str] = re.compile(r"(?:^|[-_.])(?:0|1)x(?:0|1)(?:[-_.]|$)", re.IGNORECASE)


LEAD_IMAGE_RULES = LeadImageRules()

# Extensions dropped before a file name is compared with the tracker words.
_EXTENSION = re.compile(r"\.[a-z0-9]{2,5}$", re.IGNORECASE)


def is_tracker_url(url: str, rules: LeadImageRules = LEAD_IMAGE_RULES) -> bool:
    """True for a URL that is a known tracker or is named like one (pixel, beacon, 1x1...)."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return True
    host = (parts.hostname or "").lower()
    path = parts.path or "/"
    where = host + path.lower()
    if any(where.startswith(prefix) for prefix in rules.tracker_prefixes):
        return True
    segments = [s for s in path.lower().split("/") if s]
    for index, segment in enumerate(segments):
        stem = _EXTENSION.sub("", segment) if index == len(segments) - 1 else segment
        if stem in rules.tracker_words or segment in rules.tracker_words:
            return True
    return bool(segments) and rules.tiny_name.search(_EXTENSION.sub("", segments[-1])) is not None


def is_lead_image_candidate(media: MediaRef, rules: LeadImageRules = LEAD_IMAGE_RULES) -> bool:
    """May this image lead an article? Not when it is not http(s) (data:, javascript:),
    declared tiny (either side under `min_side`) or banner-shaped (sides further apart
    than `max_aspect`), a known tracker, or carries script."""
    url = (media.url or "").strip()
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme and scheme not in ("http", "https"):
        return False  # data:, javascript:, ftp:; a relative URL (no scheme) is resolved later
    if media.scripted:
        return False
    for side in (media.width, media.height):
        if side is not None and side < rules.min_side:
            return False
    width, height = kept_side(media.width, rules), kept_side(media.height, rules)
    if width and height and max(width, height) > rules.max_aspect * min(width, height):
        return False
    return not is_tracker_url(url, rules)


def kept_side(value: int | None, rules: LeadImageRules = LEAD_IMAGE_RULES) -> int | None:
    """A declared side worth keeping as the image's size: None when absent, zero or junk."""
    return value if value is not None and 0 < value <= rules.max_side else None


_LENGTH = re.compile(r"^\s*(\d{1,6})(?:\.\d+)?\s*(?:px)?\s*$", re.IGNORECASE)
_STYLE_SIDE = re.compile(r"(?:^|;)\s*(?:max-)?(width|height)\s*:\s*(\d{1,6})(?:\.\d+)?\s*px", re.IGNORECASE)


def declared_side(value: str | None) -> int | None:
    """A width/height attribute in pixels ("1", "1px", " 552 "); None for %, auto or junk."""
    if not value:
        return None
    match = _LENGTH.match(value)
    return int(match.group(1)) if match else None


def media_from_img(src: str, attributes: dict[str, str]) -> MediaRef:
    """An <img> of a feed's HTML as an image candidate, with the size it declares."""
    width = declared_side(attributes.get("width"))
    height = declared_side(attributes.get("height"))
    for side, number in _STYLE_SIDE.findall(attributes.get("style", "")):
        if side.lower() == "width" and width is None:
            width = int(number)
        elif side.lower() == "height" and height is None:
            height = int(number)
    return MediaRef(
        src,
        "inline",
        width=width,
        height=height,
        scripted=any(name.startswith("on") for name in attributes),
    )
