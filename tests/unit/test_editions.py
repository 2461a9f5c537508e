"""Editions: window selection, grouping in section order, Trending, limits, stable order."""

from __future__ import annotations

import dataclasses
import json
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


def test_limits_apply_per_variant_and_the_issue_keeps_every_candidate():
    items = [art(f"n{i}", "nation", i + 1) for i in range(6)] + [art(f"s{i}", "sports", i + 1) for i in range(6)]
    capped = CONFIG.model_copy(update={"max_articles": 6})
    edition = assemble("morning", capped, SECTIONS, items, WINDOW, section_limits={"nation": 4, "sports": 4})
    assert len(edition.articles) == 12 and edition.omitted == 0
    variant = edition.for_sections(None)
    assert keys(variant.groups[0].articles) == ["n0", "n1", "n2"]
    assert keys(variant.groups[1].articles) == ["s0", "s1", "s2"]
    assert variant.omitted == 6


def test_unconfigured_section_goes_to_fallback_not_dropped():
    edition = assemble("morning", CONFIG, SECTIONS, [art("x", "science", 1)], WINDOW, fallback="nation")
    assert [(g.section.slug, keys(g.articles)) for g in edition.groups] == [("nation", ["x"])]


def test_variant_for_sections_filters_trending_too():
    items = [art("t1", "politics", 1, trending=True), art("s1", "sports", 2)]
    edition = assemble("morning", CONFIG, SECTIONS, items, WINDOW)
    sports = edition.for_sections(["sports"])
    assert keys(sports.trending) == [] and keys(sports.articles) == ["s1"]
    assert edition.for_sections(None).articles == edition.articles  # under every limit


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


# --- busy days: limits per variant, shared round-robin -------------------------------------

# 60 articles in one morning window, heaviest in the first sections, as on a busy news day.
BUSY_COUNTS = {
    "nation": 12,
    "states": 9,
    "international": 8,
    "politics": 8,
    "opinion": 4,
    "economy": 5,
    "sports": 10,
    "entertainment": 4,
}
# The feed's Trending strip: five stories (the morning edition's trending_limit).
BUSY_TRENDING = {"nation-0", "nation-1", "politics-0", "economy-0", "sports-0"}


def busy_day() -> list[Article]:
    items = []
    for s, (slug, count) in enumerate(BUSY_COUNTS.items()):
        for i in range(count):
            key = f"{slug}-{i}"
            # Minutes apart, interleaved across sections, all inside the 24-hour window.
            items.append(art(key, slug, 1 + i * 0.25 + s * 0.01, trending=key in BUSY_TRENDING))
    assert len(items) == 60
    return items


def shipped_busy_edition(items=None):  # noqa: ANN201 - an Edition
    """The busy day assembled with the shipped config: sections, their limits, morning."""
    from distributor.editions import site_sections
    from distributor.settings import load_settings
    from tests.conftest import CONFIG as SHIPPED

    shipped = load_settings(SHIPPED)
    limits = {s.slug: s.limit for s in shipped.sections}
    assert sum(limits.values()) > shipped.editions["morning"].max_articles  # why busy days bit
    edition = assemble(
        "morning",
        shipped.editions["morning"],
        site_sections(shipped),
        busy_day() if items is None else items,
        WINDOW,
        section_limits=limits,
    )
    return edition, shipped, limits


def per_section(edition) -> dict[str, int]:
    return {g.section.slug: len(g.articles) for g in edition.groups}


def test_busy_day_all_sections_reader_sees_every_section_within_the_cap():
    edition, shipped, _ = shipped_busy_edition()
    variant = edition.for_sections(None)
    cap = shipped.editions["morning"].max_articles
    assert variant.count == cap
    assert sorted(keys(variant.trending)) == sorted(BUSY_TRENDING)
    assert [g.section.slug for g in variant.groups] == list(BUSY_COUNTS)  # all 8, site order
    # 35 after Trending: four rounds of eight, then the first three sections take a fifth.
    assert per_section(variant) == {
        "nation": 5, "states": 5, "international": 5, "politics": 4,
        "opinion": 4, "economy": 4, "sports": 4, "entertainment": 4,
    }
    assert variant.omitted == 60 - cap


def test_busy_day_sports_only_reader_gets_sports_up_to_its_limit():
    edition, _, limits = shipped_busy_edition()
    sports = edition.for_sections(["sports"])
    assert keys(sports.trending) == ["sports-0"]
    assert [g.section.slug for g in sports.groups] == ["sports"]
    assert len(sports.groups[0].articles) == limits["sports"]
    # Newest first: sports-0 leads Trending, so the group starts at sports-1.
    assert keys(sports.groups[0].articles) == [f"sports-{i}" for i in range(1, 1 + limits["sports"])]
    assert all(a.section == "sports" for a in sports.articles)
    assert sports.omitted == BUSY_COUNTS["sports"] - sports.count == 1


def test_busy_day_omitted_is_counted_per_variant():
    edition, _, limits = shipped_busy_edition()
    # Entertainment has 4 articles, under its limit and the cap: nothing left out.
    assert edition.for_sections(["entertainment"]).omitted == 0
    # Nation: 2 in Trending, 10 below, limit 8, so 2 left out.
    nation = edition.for_sections(["nation"])
    assert nation.count == 2 + limits["nation"] and nation.omitted == 2
    # Two sections: each within its own limit, the cap not reached.
    two = edition.for_sections(["nation", "sports"])
    assert per_section(two) == {"nation": 8, "sports": 8}
    assert two.omitted == 22 - two.count


def test_round_robin_takes_one_from_each_section_before_a_second():
    from distributor.editions import Limits, SectionGroup, share_round_robin

    groups = [
        SectionGroup(SECTIONS[0], tuple(art(f"n{i}", "nation", i + 1) for i in range(6))),
        SectionGroup(SECTIONS[4], tuple(art(f"o{i}", "opinion", i + 1) for i in range(1))),
        SectionGroup(SECTIONS[6], tuple(art(f"s{i}", "sports", i + 1) for i in range(6))),
    ]
    limits = Limits(max_articles=None, sections=(("sports", 2),))
    shared = share_round_robin(groups, 6, limits)
    # Rounds: n0 o0 s0 | n1 s1 | n2 (opinion exhausted, sports at its limit).
    assert [(g.section.slug, keys(g.articles)) for g in shared] == [
        ("nation", ["n0", "n1", "n2"]), ("opinion", ["o0"]), ("sports", ["s0", "s1"])
    ]
    # A short last round favours the earlier sections; sections left empty are dropped.
    assert [(g.section.slug, len(g.articles)) for g in share_round_robin(groups, 2, Limits())] == [
        ("nation", 1), ("opinion", 1)
    ]
    assert [len(g.articles) for g in share_round_robin(groups, None, limits)] == [6, 1, 2]


@pytest.mark.parametrize("cap", [8, 9, 13, 20, 35])
def test_round_robin_is_fair_at_any_cap(cap):
    edition, _, limits = shipped_busy_edition()
    variant = dataclasses.replace(edition, limits=dataclasses.replace(edition.limits, max_articles=cap + 5)).for_sections(None)
    sizes = per_section(variant)
    assert sum(sizes.values()) == cap
    # A section the cap cut short has at most one article fewer than any other section.
    for group in edition.groups:
        could = min(len(group.articles), limits[group.section.slug])
        if sizes.get(group.section.slug, 0) < could:
            assert sizes.get(group.section.slug, 0) >= max(sizes.values()) - 1
    assert len(sizes) == 8


def test_busy_day_variants_are_deterministic_and_survive_the_stored_layout():
    from distributor.editions import Edition

    edition, _, _ = shipped_busy_edition()
    shuffled = busy_day()
    random.Random(7).shuffle(shuffled)
    again, _, _ = shipped_busy_edition(shuffled)
    stored = json.loads(json.dumps(edition.layout()))  # as the JSON column keeps it
    by_key = {a.key: a for a in busy_day()}
    loaded = Edition.from_layout("morning", "Morning Brief", WINDOW, stored, by_key, SECTIONS)
    # The stored issue keeps every candidate, so every variant can be made later.
    assert len(loaded.articles) == 60 and loaded.limits == edition.limits
    for choice in (None, ["sports"], ["opinion", "entertainment"], ["nation", "economy"]):
        variant = edition.for_sections(choice)
        assert again.for_sections(choice).as_dict() == variant.as_dict()
        assert loaded.for_sections(choice).as_dict() == variant.as_dict()
        assert variant.for_sections(choice) == variant  # a variant's limits are spent


def test_layout_stored_before_variants_still_loads_as_it_was():
    from distributor.editions import Edition

    old = {  # limits already applied, no "limits" key
        "trending": ["t1"],
        "sections": [["nation", ["n1", "n2"]], ["sports", ["s1"]]],
        "omitted": 7,
    }
    by_key = {a.key: a for a in [art("t1", "politics", 1), art("n1", "nation", 2), art("n2", "nation", 3), art("s1", "sports", 4)]}
    loaded = Edition.from_layout("morning", "Morning Brief", WINDOW, old, by_key, SECTIONS)
    everyone = loaded.for_sections(None)
    assert keys(everyone.articles) == ["t1", "n1", "n2", "s1"] and everyone.omitted == 7
    sports = loaded.for_sections(["sports"])
    assert keys(sports.articles) == ["s1"] and sports.omitted == 7
