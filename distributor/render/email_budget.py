"""The size guard: a digest's HTML part must stay under `email.html_budget_bytes`.

Gmail clips a message body near 102 KB and hides the rest, the footer with its
Unsubscribe link included. `render_variant` measures the encoded HTML part of every
variant it renders; when it is over budget it asks `next_trim` for a lighter plan and
renders the variant again (once per variant still: never per recipient). The steps, each
tried before the next, lose the least first:

1. thumbnails of the last cards (a quarter, a half, then all but the lead's hero);
2. standfirsts of the last cards (half, then all);
3. the last articles, which join the "+ N more on the site" line.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from distributor.editions import Edition, SectionGroup

# Bytes kept free for the per-recipient values (greeting and two links, each encoded):
# the budget is checked with the generic values, and a reader's own are longer.
PERSONAL_RESERVE_BYTES = 1536


@dataclass(frozen=True)
class Trim:
    """What a variant leaves out to fit its budget; counts are from the end."""

    thumbnails: int = 0  # last cards shown without their thumbnail
    standfirsts: int = 0  # last cards shown without their standfirst
    articles: int = 0  # last articles left out, counted in "+ N more on the site"

    @property
    def any(self) -> bool:
        return bool(self.thumbnails or self.standfirsts or self.articles)

    def describe(self) -> str:
        return (
            f"{self.thumbnails} thumbnails, {self.standfirsts} standfirsts and "
            f"{self.articles} articles left out"
        )


def next_trim(trim: Trim, articles: int, size: int, budget: int) -> Trim | None:
    """The next, lighter plan for a variant of `articles` articles whose HTML part is
    `size` bytes under `trim`; None when nothing more can go (one article left)."""
    cards = max(articles - 1, 0)  # every article but the lead
    for share in (cards // 4, cards // 2, cards):
        if share > trim.thumbnails:
            return dataclasses.replace(trim, thumbnails=share)
    for share in (cards // 2, cards):
        if share > trim.standfirsts:
            return dataclasses.replace(trim, standfirsts=share)
    shown = articles - trim.articles
    if shown <= 1:
        return None
    # Drop about as many articles as the excess is worth, at least one.
    per_article = max(size // max(shown, 1), 1)
    drop = max((size - budget) // per_article + 1, 1)
    return dataclasses.replace(trim, articles=trim.articles + min(drop, shown - 1))


def keep_first(edition: Edition, count: int) -> Edition:
    """The edition with only its first `count` articles in reading order; the rest are
    added to `omitted` ("+ N more on the site")."""
    if count >= edition.count:
        return edition
    trending = edition.trending[:count]
    left = count - len(trending)
    groups = []
    for group in edition.groups:
        if left <= 0:
            break
        groups.append(SectionGroup(group.section, group.articles[:left]))
        left -= len(groups[-1].articles)
    return dataclasses.replace(
        edition,
        trending=trending,
        groups=tuple(groups),
        omitted=edition.omitted + edition.count - count,
    )
