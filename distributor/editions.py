"""Editions: pick an issue's articles from its window and group them for the renderers.

`assemble` is pure (articles in, Edition out) so grouping and ordering are tested without
a database; `build_edition` is the thin part that reads the store. An issue keeps every
candidate; each reader's or channel's variant (`Edition.for_sections`) applies the limits,
so no chosen section with news is ever left empty by the sections before it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Iterable, Mapping, Sequence

from croniter import croniter

from distributor import trending
from distributor.articles import Article, Section
from distributor.settings import EditionConfig, Settings
from distributor.store import Store
from distributor.store.articles import articles_in_window

# A "since_last" edition with no previous issue looks back this far, so its first issue
# is a normal day's worth rather than the whole archive.
FIRST_ISSUE_LOOKBACK = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class Window:
    """Half-open interval [start, end) in UTC."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("window bounds must be timezone-aware")
        if self.start >= self.end:
            raise ValueError(f"empty window: {self.start.isoformat()} >= {self.end.isoformat()}")

    def contains(self, moment: datetime | None) -> bool:
        return moment is not None and self.start <= moment < self.end


@dataclass(frozen=True, slots=True)
class SectionGroup:
    """One section's articles in an issue, newest first."""

    section: Section
    articles: tuple[Article, ...]


@dataclass(frozen=True, slots=True)
class Limits:
    """How many articles one variant of an issue may show: declared data, stored with a run.

    `max_articles` (None: no cap) counts Trending too; `sections` caps single sections
    (slug, most articles); a section not listed is uncapped.
    """

    max_articles: int | None = None
    sections: tuple[tuple[str, int], ...] = ()

    def for_section(self, slug: str) -> int | None:
        return dict(self.sections).get(slug)

    def as_dict(self) -> dict:
        return {"max_articles": self.max_articles, "sections": dict(self.sections)}

    @classmethod
    def from_dict(cls, data: Mapping | None) -> "Limits":
        if not data:
            return cls()
        cap = data.get("max_articles")
        return cls(
            max_articles=None if cap is None else int(cap),
            sections=tuple(sorted((str(k), int(v)) for k, v in (data.get("sections") or {}).items())),
        )


NO_LIMITS = Limits()


def share_round_robin(groups: Sequence[SectionGroup], budget: int | None, limits: Limits) -> tuple[SectionGroup, ...]:
    """Spend `budget` articles across `groups` fairly: what "round-robin" means here.

    Each group is first cut to its section's limit (newest first, as the group is
    ordered). Then turns are taken in the groups' order (the site's section order): one
    article from each group that still has one, then a second from each, and so on,
    until the budget is spent or every group is exhausted. So every group gets an
    article before any gets a second, and a short last round favours the earlier
    sections. The result keeps the groups' order and each group's newest articles;
    groups left with nothing are dropped. `budget` None means no cap.
    """
    capped = []
    for group in groups:
        cap = limits.for_section(group.section.slug)
        capped.append(group.articles if cap is None else group.articles[: max(cap, 0)])
    if budget is None:
        taken = [len(articles) for articles in capped]
    else:
        taken = [0] * len(capped)
        left = max(budget, 0)
        # Each group's share is min(its length, the round reached), plus one for the
        # earlier groups in a partial last round; walking the rounds keeps that obvious.
        while left > 0:
            moved = False
            for i, articles in enumerate(capped):
                if left and taken[i] < len(articles):
                    taken[i] += 1
                    left -= 1
                    moved = True
            if not moved:
                break
    return tuple(
        SectionGroup(group.section, articles[:n]) for group, articles, n in zip(groups, capped, taken) if n
    )


@dataclass(frozen=True, slots=True)
class Edition:
    """One issue's content, or one variant of it: the value the renderers take.

    An issue built by `assemble` holds every candidate of its window (Trending picked,
    the rest grouped by section) and the `limits` to apply; `for_sections` makes a
    reader's (or channel's) variant with the limits applied. Renderers are given
    variants, never the issue itself. A variant has no limits left (`NO_LIMITS`), so
    making a variant of a variant changes nothing but the section choice.
    """

    name: str
    label: str
    window: Window
    trending: tuple[Article, ...]
    groups: tuple[SectionGroup, ...]
    # Articles of this variant's sections that it does not show ("N more on the site").
    omitted: int = 0
    limits: Limits = NO_LIMITS

    @property
    def articles(self) -> tuple[Article, ...]:
        """Every article once, in reading order: Trending, then sections."""
        return self.trending + tuple(a for g in self.groups for a in g.articles)

    @property
    def count(self) -> int:
        return len(self.trending) + sum(len(g.articles) for g in self.groups)

    @property
    def is_empty(self) -> bool:
        return self.count == 0

    def for_sections(self, slugs: Iterable[str] | None) -> "Edition":
        """The variant for a reader who chose these sections (None or empty: all).

        In this order: keep the chosen sections (Trending keeps only articles of chosen
        sections, so a Sports-only reader is not led by a Politics story); cut Trending
        to max_articles; then share what is left of max_articles across the chosen
        sections with `share_round_robin`, each section within its own limit. So every
        chosen section with articles in the window appears, whatever the day's volume.
        `omitted` counts the articles of the chosen sections left out (plus any an older
        stored issue had already left out).
        """
        chosen = set(slugs or ())
        trending = tuple(a for a in self.trending if not chosen or a.section in chosen)
        groups = tuple(g for g in self.groups if not chosen or g.section.slug in chosen)
        offered = len(trending) + sum(len(g.articles) for g in groups)
        budget = self.limits.max_articles
        if budget is not None:
            trending = trending[: max(budget, 0)]
            budget -= len(trending)
        groups = share_round_robin(groups, budget, self.limits)
        shown = len(trending) + sum(len(g.articles) for g in groups)
        return Edition(
            name=self.name,
            label=self.label,
            window=self.window,
            trending=trending,
            groups=groups,
            omitted=self.omitted + offered - shown,
            limits=NO_LIMITS,
        )

    def layout(self) -> dict:
        """Which article keys go where, and the limits: stored with a run so its issue (and
        every variant of it) never changes later."""
        return {
            "trending": [a.key for a in self.trending],
            "sections": [[g.section.slug, [a.key for a in g.articles]] for g in self.groups],
            "omitted": self.omitted,
            "limits": self.limits.as_dict(),
        }

    @classmethod
    def from_layout(
        cls,
        name: str,
        label: str,
        window: Window,
        layout: dict,
        articles: dict[str, Article],
        sections: Sequence[Section],
    ) -> "Edition":
        """Rebuild a stored issue; articles deleted since are left out, sections kept in order.

        A layout stored before issues kept every candidate has no "limits": its lists
        were already limited, so it loads with none and its stored omitted count.
        """
        by_slug = {s.slug: s for s in sections}
        groups = []
        for slug, keys in layout.get("sections", []):
            picked = tuple(articles[k] for k in keys if k in articles)
            section = by_slug.get(slug) or Section(slug, slug.title(), len(by_slug))
            if picked:
                groups.append(SectionGroup(section, picked))
        return cls(
            name=name,
            label=label,
            window=window,
            trending=tuple(articles[k] for k in layout.get("trending", []) if k in articles),
            groups=tuple(groups),
            omitted=int(layout.get("omitted", 0)),
            limits=Limits.from_dict(layout.get("limits")),
        )

    def as_dict(self) -> dict:
        """A JSON-ready, deterministic description (used by `distributor edition --json`)."""

        def card(article: Article) -> dict:
            return {
                "key": article.key,
                "title": article.title,
                "url": article.url,
                "section": article.section,
                "published_at": article.published_at.isoformat(),
                "updated": article.is_updated,
            }

        return {
            "edition": self.name,
            "label": self.label,
            "window": {"start": self.window.start.isoformat(), "end": self.window.end.isoformat()},
            "count": self.count,
            "omitted": self.omitted,
            "trending": [card(a) for a in self.trending],
            "sections": [
                {"slug": g.section.slug, "label": g.section.label, "articles": [card(a) for a in g.articles]}
                for g in self.groups
            ],
        }


def _moment(article: Article, window: Window) -> datetime:
    """When the article entered this window: its significant update if that is what did."""
    if not window.contains(article.published_at) and window.contains(article.significant_change_at):
        return article.significant_change_at  # type: ignore[return-value]
    return article.published_at


def _newest_first(articles: Iterable[Article], window: Window) -> list[Article]:
    # The key breaks ties so equal timestamps always come out in the same order.
    return sorted(articles, key=lambda a: (-_moment(a, window).timestamp(), a.key))


def _is_pinned(article: Article, pins: Sequence[str]) -> int | None:
    for index, target in enumerate(pins):
        if target in (article.key, article.url):
            return index
    return None


def assemble(
    name: str,
    config: EditionConfig,
    sections: Sequence[Section],
    candidates: Iterable[Article],
    window: Window,
    *,
    pins: Sequence[str] = (),
    section_limits: dict[str, int] | None = None,
    fallback: str | None = None,
    scores: Mapping[str, float] | None = None,
    min_score: float = 0.0,
) -> Edition:
    """Every candidate of the window, grouped: Trending first, then sections in configured order.

    Rules: only articles published or significantly updated inside the window; each
    article at most once (Trending wins); sections in the given order, empty ones left
    out; newest first inside a group, ties broken by key; pinned articles lead Trending
    in pin order. An article whose section is no longer configured is shown under
    `fallback` (default: the first section), never dropped. Nothing else is cut here:
    the per-section limits and max_articles travel with the Edition and are applied per
    variant (`Edition.for_sections`), after the reader's section choice.

    After the pins, Trending takes: without `scores`, the feed-flagged articles, newest
    first; with `scores` (article key -> points now, the editor flag already counted in),
    the articles scoring above zero and at least `min_score`, best first, ties by key.
    Either way at most the edition's trending_limit (and max_articles). A
    `kind = "trending"` edition is its Trending group alone (no sections).
    """
    known = {s.slug for s in sections}
    fallback = fallback or (sections[0].slug if sections else None)
    by_key: dict[str, Article] = {}
    for article in candidates:
        if window.contains(article.published_at) or window.contains(article.significant_change_at):
            by_key[article.key] = article
    ordered = _newest_first(by_key.values(), window)

    pinned = sorted(
        (a for a in ordered if _is_pinned(a, pins) is not None),
        key=lambda a: _is_pinned(a, pins),  # type: ignore[arg-type, return-value]
    )
    if scores is None:
        rest = [a for a in ordered if a.trending and _is_pinned(a, pins) is None]
    else:
        rest = sorted(
            (
                a
                for a in ordered
                if _is_pinned(a, pins) is None and scores.get(a.key, 0.0) > 0 and scores.get(a.key, 0.0) >= min_score
            ),
            key=lambda a: (-scores[a.key], a.key),
        )
    # Trending is one shared pick (the same top stories for every reader); its articles
    # are not repeated in their sections.
    trending = tuple((pinned + rest)[: min(config.trending_limit, config.max_articles)])
    limits = Limits(
        max_articles=config.max_articles,
        sections=tuple(sorted((section_limits or {}).items())),
    )
    if config.kind == "trending":
        return Edition(name=name, label=config.label, window=window, trending=trending, groups=(), limits=limits)
    shown = {a.key for a in trending}

    def home(article: Article) -> str | None:
        return article.section if article.section in known else fallback

    groups: list[SectionGroup] = []
    for section in sections:
        picked = tuple(a for a in ordered if home(a) == section.slug and a.key not in shown)
        if picked:
            groups.append(SectionGroup(section, picked))
    return Edition(
        name=name,
        label=config.label,
        window=window,
        trending=trending,
        groups=tuple(groups),
        limits=limits,
    )


def site_sections(settings: Settings) -> list[Section]:
    return [Section(s.slug, s.label, i) for i, s in enumerate(settings.sections)]


def edition_config(settings: Settings, name: str) -> EditionConfig:
    try:
        return settings.editions[name]
    except KeyError:
        known = ", ".join(sorted(settings.editions)) or "none"
        raise KeyError(f"unknown edition {name!r} (configured: {known})") from None


def previous_slot(config: EditionConfig, at: datetime, tz) -> datetime:  # noqa: ANN001
    """The latest scheduled time at or before `at`, in UTC (the schedule is in `tz`)."""
    local = at.astimezone(tz)
    # croniter's get_prev is exclusive; step a second forward so a slot equal to `at` counts.
    itr = croniter(config.schedule, local + timedelta(seconds=1))
    return itr.get_prev(datetime).astimezone(timezone.utc)


def window_for(
    config: EditionConfig, slot: datetime, *, previous_end: datetime | None = None
) -> Window:
    """The window an issue at `slot` covers."""
    if config.window == "since_last":
        start = previous_end or slot - FIRST_ISSUE_LOOKBACK
        return Window(start, slot)
    return Window(slot - timedelta(hours=int(config.window)), slot)


def build_edition(
    settings: Settings,
    store: Store,
    name: str,
    *,
    at: datetime,
    previous_end: datetime | None = None,
) -> Edition:
    """The issue of edition `name` whose window ends at `at` (read from the store).

    Trending is ranked by the trending scores at `at` (signals decayed to that time, the
    editor flag included), pins first; see distributor.trending.
    """
    config = edition_config(settings, name)
    window = window_for(config, at, previous_end=previous_end)
    candidates = articles_in_window(store, window.start, window.end)
    pins = [target for target, _ in trending.pins_in_force(settings, store)]
    scores = trending.edition_scores(settings, store, candidates, at=at) if config.trending_limit else {}
    return assemble(
        name,
        config,
        site_sections(settings),
        candidates,
        window,
        pins=pins,
        section_limits={s.slug: s.limit for s in settings.sections},
        fallback=settings.site.fallback_section,
        scores=scores,
        min_score=settings.file.trending.min_score,
    )
