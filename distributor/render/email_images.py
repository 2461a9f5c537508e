"""How an article's picture is drawn in the email: the box it gets, from the size its
source declared (`Article.image_width`/`image_height`) and the rules below.

The lead story's image is a *hero* above its headline, as wide as the column
(`email.image_width`) or, when the image is narrower, at its own width: never upscaled.
An image too small to lead that way (a feed's small media:thumbnail) is drawn as a
*thumbnail* beside the lead's text instead, as in the compact cards. The height always
follows the declared proportions; without them, the configured box
(`email.image_width` x `email.image_height`, the site's 16:9 crops) is used, as before.

Every box is in whole pixels because Outlook (Word) draws an <img> at its width and
height attributes and ignores CSS max-width; other clients scale it down with
max-width and `height:auto` on narrow screens, and CSS aspect-ratio keeps the box's
proportions while the image loads or when it is blocked.
"""

from __future__ import annotations

from dataclasses import dataclass

from distributor.articles import Article


@dataclass(frozen=True)
class EmailImageRules:
    """The limits, as data."""

    # A lead image declared narrower than this (pixels) is drawn as a thumbnail beside
    # the lead story's text, not as a hero: stretched to 552 px it would be a blur, and
    # drawn at its own size it would be a stamp in a wide blank band. 300 px is over
    # half the column: below it a picture no longer reads as the story's photo.
    min_hero_width: int = 300
    # Thumbnails (compact cards, and a lead whose image is too small for a hero) are
    # this wide, or as wide as the image when it is narrower.
    thumb_width: int = 120
    # No box is drawn taller than this many times its widest width (the column for a
    # hero, thumb_width for a thumbnail): a portrait photo is drawn narrower instead of
    # a screen tall, and a tall narrow thumbnail does not stretch its card.
    tallest: float = 1.0


EMAIL_IMAGE_RULES = EmailImageRules()


@dataclass(frozen=True)
class ImageBox:
    """An image's box in CSS pixels. `full`: it spans the text column, so narrow
    screens draw it at the column's full width (class `hero-full`)."""

    width: int
    height: int
    full: bool = False

    @property
    def aspect_ratio(self) -> str:
        """The CSS aspect-ratio of the box, e.g. "552 / 311"."""
        return f"{self.width} / {self.height}"


def _ratio(article: Article, box_width: int, box_height: int) -> tuple[int, int]:
    """(width, height) whose proportions the image is drawn in: the declared ones when
    both sides are declared, else the configured box's."""
    if article.image_width and article.image_height:
        return article.image_width, article.image_height
    return box_width, box_height


def _fit(widest: int, ratio: tuple[int, int], tallest: int) -> tuple[int, int]:
    """The largest box at most `widest` wide and `tallest` high in these proportions."""
    ratio_width, ratio_height = ratio
    width = widest
    height = max(width * ratio_height // ratio_width, 1)
    if height > tallest:
        height = tallest
        width = max(tallest * ratio_width // ratio_height, 1)
    return width, height


def hero_box(
    article: Article, column_width: int, box_height: int, rules: EmailImageRules = EMAIL_IMAGE_RULES
) -> ImageBox | None:
    """The lead image's hero box in a column `column_width` wide (`email.image_width`;
    `box_height` is `email.image_height`); None when it is to be drawn as a thumbnail:
    declared, or fitted, narrower than `rules.min_hero_width`."""
    smallest = min(rules.min_hero_width, column_width)
    declared = article.image_width
    if declared is not None and declared < smallest:
        return None
    widest = min(declared, column_width) if declared else column_width
    ratio = _ratio(article, column_width, box_height)
    width, height = _fit(widest, ratio, int(column_width * rules.tallest))
    if width < smallest:
        return None
    return ImageBox(width, height, full=width == column_width)


def thumb_box(
    article: Article, column_width: int, box_height: int, rules: EmailImageRules = EMAIL_IMAGE_RULES
) -> ImageBox:
    """A thumbnail's box: `rules.thumb_width` wide or the image's own width if smaller,
    in the declared proportions (else the configured box's)."""
    declared = article.image_width
    widest = min(declared, rules.thumb_width) if declared else rules.thumb_width
    ratio = _ratio(article, column_width, box_height)
    width, height = _fit(widest, ratio, int(rules.thumb_width * rules.tallest))
    return ImageBox(width, height)
