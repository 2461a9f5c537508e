"""Editions: window selection, grouping in section order, Trending, limits, stable order."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest

from distributor.articles import Article, Section
from distributor.editions import Window, assemble, previous_slot, window_for
from distributor.settings import EditionConfig

UTC = timezone.utc
END = datetime(2025, 7, 4, 14, 30, tzinfo=UTC)  # 20:00 IST
WINDOW = Window(END - timedelta(hours=24), END)
SECTIONS = [
    Section(slug, slug.title(), i)
    for i, slug in enumerate(
        ["nation", "states", "international", "politics", "opinion", "economy", "sports", "entertainment"]
    )
]
CONFIG = EditionConfig(label="Morning Brief", schedule="0 7 * * *", window=24, max_articles=40, trending_limit=3)


def art(key: str, section: str, hours_ago: float, **fields) -> Article:
    return Article(
        key=key,
        url=f"https://www.newsarenaindia.com/{section}/{key}",
        title=f"Title {key}",
        section=section,
        published_at=END - timedelta(hours=hours_ago),
        **fields,
    )


def keys(articles) -> list[str]:
    return [a.key for a in articles]


def test_sections_in_configured_order_and_empty_ones_left_out():
    edition = assemble(
        "morning",
        CONFIG,
        SECTIONS,
        [art("s1", "sports", 1), art("n1", "nation", 2), art("e1", "economy", 3)],
        WINDOW,
    )
    assert [g.section.slug for g in edition.groups] == ["nation", "economy", "sports"]


def test_only_window_articles_and_significant_updates():
    old_but_corrected = art("old", "nation", 30, significant_change_at=END - timedelta(hours=2), version=2)
    old_trivially_changed = art("old2", "nation", 30, version=2)
    too_new = art("future", "nation", -1)
    at_start = art("edge-start", "nation", 24)  # window start is inclusive
    at_end = art("edge-end", "nation", 0)  # window end is exclusive
    edition = assemble(
        "morning", CONFIG, SECTIONS, [old_but_corrected, old_trivially_changed, too_new, at_start, at_end], WINDOW
    )
    assert keys(edition.articles) == ["old", "edge-start"]
    assert edition.articles[0].is_updated


def test_newest_first_with_key_breaking_ties_whatever_the_input_order():
    items = [art(k, "nation", 5) for k in ("c", "a", "b")] + [art("newest", "nation", 1)]
    results = set()
    for seed in range(5):
        shuffled = items[:]
        random.Random(seed).shuffle(shuffled)
        results.add(tuple(keys(assemble("morning", CONFIG, SECTIONS, shuffled, WINDOW).articles)))
    assert results == {("newest", "a", "b", "c")}


def test_trending_first_pins_lead_and_never_repeated_below():
    items = [
        art("t1", "sports", 1, trending=True),
        art("t2", "politics", 3, trending=True),
        art("p1", "economy", 5),
        art("n1", "nation", 2),
    ]
    edition = assemble("morning", CONFIG, SECTIONS, items, WINDOW, pins=["https://www.newsarenaindia.com/economy/p1"])
    assert keys(edition.trending) == ["p1", "t1", "t2"]
    below = keys(a for g in edition.groups for a in g.articles)
    assert below == ["n1"]
    assert len(keys(edition.articles)) == len(set(keys(edition.articles)))


def test_trending_limit_leaves_the_rest_in_their_sections():
    items = [art(f"t{i}", "nation", i + 1, trending=True) for i in range(5)]
    edition = assemble("morning", CONFIG, SECTIONS, items, WINDOW)
    assert keys(edition.trending) == ["t0", "t1", "t2"]
    assert keys(edition.groups[0].articles) == ["t3", "t4"]


def test_pin_outside_the_window_is_not_shown():
    edition = assemble("morning", CONFIG, SECTIONS, [art("p", "nation", 48)], WINDOW, pins=["p"])
    assert edition.is_empty


def test_per_section_limit_and_edition_cap_count_omitted():
    items = [art(f"n{i}", "nation", i + 1) for i in range(6)] + [art(f"s{i}", "sports", i + 1) for i in range(6)]
    capped = CONFIG.model_copy(update={"max_articles": 6})
    edition = assemble("morning", capped, SECTIONS, items, WINDOW, section_limits={"nation": 4, "sports": 4})
    assert keys(edition.groups[0].articles) == ["n0", "n1", "n2", "n3"]
    assert keys(edition.groups[1].articles) == ["s0", "s1"]
    assert edition.omitted == 6


def test_unconfigured_section_goes_to_fallback_not_dropped():
    edition = assemble("morning", CONFIG, SECTIONS, [art("x", "science", 1)], WINDOW, fallback="nation")
    assert [(g.section.slug, keys(g.articles)) for g in edition.groups] == [("nation", ["x"])]


def test_variant_for_sections_filters_trending_too():
    items = [art("t1", "politics", 1, trending=True), art("s1", "sports", 2)]
    edition = assemble("morning", CONFIG, SECTIONS, items, WINDOW)
    sports = edition.for_sections(["sports"])
    assert keys(sports.trending) == [] and keys(sports.articles) == ["s1"]
    assert edition.for_sections(None) is edition


def test_as_dict_is_deterministic():
    items = [art("a", "nation", 1), art("b", "sports", 2, trending=True)]
    one = assemble("morning", CONFIG, SECTIONS, items, WINDOW).as_dict()
    two = assemble("morning", CONFIG, SECTIONS, list(reversed(items)), WINDOW).as_dict()
    assert one == two
    assert one["trending"][0]["key"] == "b" and one["sections"][0]["slug"] == "nation"


def test_window_hours_and_since_last():
    assert window_for(CONFIG, END) == WINDOW
    since = CONFIG.model_copy(update={"window": "since_last"})
    previous = END - timedelta(minutes=5)
    assert window_for(since, END, previous_end=previous) == Window(previous, END)
    assert window_for(since, END).start == END - timedelta(hours=24)


def test_window_rejects_naive_and_empty():
    with pytest.raises(ValueError):
        Window(datetime(2025, 1, 1), datetime(2025, 1, 2))
    with pytest.raises(ValueError, match="empty window"):
        Window(END, END)


def test_previous_slot_in_site_timezone():
    from zoneinfo import ZoneInfo

    ist = ZoneInfo("Asia/Kolkata")
    # 07:00 IST is 01:30 UTC; at 14:30 UTC the latest morning slot is that day's 01:30 UTC.
    assert previous_slot(CONFIG, END, ist) == datetime(2025, 7, 4, 1, 30, tzinfo=UTC)
    exactly = datetime(2025, 7, 4, 1, 30, tzinfo=UTC)
    assert previous_slot(CONFIG, exactly, ist) == exactly
