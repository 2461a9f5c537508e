"""Trending, the pure parts: decay arithmetic, score generations, Trending grouping by
score, click tokens and their targets, page-view payloads."""

from __future__ import annotations

import json
import math
import random
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from distributor import trending as t
from distributor.articles import Article, Section
from distributor.editions import Window, assemble
from distributor.ingest.webhook import PayloadError
from distributor.settings import EditionConfig, Environment, Settings, TrendingConfig
from tests.conftest import settings_for

UTC = timezone.utc
H = 3600  # a one-hour half-life, in seconds
WEIGHTS = {"click": 1.0, "view": 0.1}
AT = datetime(2025, 7, 4, 14, 30, tzinfo=UTC)
SECTIONS = [Section(s, s.title(), i) for i, s in enumerate(["nation", "politics", "economy", "sports"])]
DIGEST = EditionConfig(label="Morning Brief", schedule="0 7 * * *", window=24, trending_limit=3)


def read(signals, at: datetime, half_life: int = H, weights=WEIGHTS) -> dict[str, float]:
    """What a scorer would answer at `at`: the increments summed into the generation of
    `at`, converted to points now (the same two functions both scorers use)."""
    epoch = t.generation_of(at.timestamp(), half_life)
    stored: dict[str, float] = {}
    for (generation, key), delta in t.increments(signals, weights, half_life).items():
        if generation == epoch:
            stored[key] = stored.get(key, 0.0) + delta.score
    return {key: t.points_now(value, epoch, at.timestamp(), half_life) for key, value in stored.items()}


def ago(half_lives: float, half_life: int = H) -> datetime:
    return AT - timedelta(seconds=half_lives * half_life)


# --- decay arithmetic ------------------------------------------------------------------


def test_one_click_one_half_life_old_is_worth_half():
    assert t.decayed(1.0, H, H) == 0.5
    assert t.decayed(1.0, 0, H) == 1.0
    assert t.decayed(8.0, 3 * H, H) == 1.0
    assert read([t.Signal("a", "click", ago(1))], AT)["a"] == pytest.approx(0.5, rel=1e-12)


def test_three_signals_at_different_ages_are_summed():
    signals = [
        t.Signal("a", "click", ago(1)),  # 1 x 1.0 x 1/2 = 0.5
        t.Signal("a", "view", ago(2), count=10),  # 10 x 0.1 x 1/4 = 0.25
        t.Signal("a", "click", AT, count=2),  # 2 x 1.0 x 1 = 2.0
    ]
    assert read(signals, AT)["a"] == pytest.approx(2.75, rel=1e-12)
    # Read later, everything has halved once more.
    assert read(signals, AT + timedelta(seconds=H))["a"] == pytest.approx(1.375, rel=1e-12)


def test_half_life_in_hours_from_config(tmp_path):
    s = settings_for(tmp_path, trending=TrendingConfig(half_life_hours=1.5))
    assert t.half_life_seconds(s) == 5400
    article = Article("k", "https://www.newsarenaindia.com/nation/k", "T", "nation", AT - timedelta(hours=1.5), trending=True)
    assert t.editor_points(s, article, AT) == pytest.approx(s.file.trending.weights.editor / 2, rel=1e-12)
    assert t.editor_points(s, Article("n", "https://x/n", "T", "nation", AT), AT) == 0.0


def test_signals_straddling_a_generation_boundary_still_sum():
    length = t.generation_length(H)
    boundary = datetime.fromtimestamp(t.generation_of(AT.timestamp(), H) + length, UTC)
    before = boundary - timedelta(seconds=H)  # last generation
    after = boundary + timedelta(seconds=H)  # read in the next one
    assert t.generation_of(before.timestamp(), H) != t.generation_of(after.timestamp(), H)
    scores = read([t.Signal("a", "click", before), t.Signal("a", "click", boundary)], after)
    assert scores["a"] == pytest.approx(0.25 + 0.5, rel=1e-12)


def test_no_overflow_over_years_with_a_short_half_life():
    # 36-second half-life, signals spread over ten years: 2 ** ((t - E) / h) with one
    # fixed epoch would reach 2 ** 8_760_000. Generations keep every stored value finite.
    half_life = 36
    start = datetime(2020, 1, 1, tzinfo=UTC)
    signals = [t.Signal("a", "click", start + timedelta(days=d), count=10**6) for d in range(0, 3650, 7)]
    deltas = t.increments(signals, WEIGHTS, half_life)
    assert all(math.isfinite(d.score) and d.score < 2.0**600 for d in deltas.values())
    last = signals[-1].at
    assert read(signals, last + timedelta(seconds=half_life), half_life)["a"] == pytest.approx(10**6 / 2, rel=1e-12)


def test_a_signal_older_than_a_whole_generation_is_left_behind():
    length = t.generation_length(H)
    old = AT - timedelta(seconds=2 * length)
    assert "a" not in read([t.Signal("a", "click", old)], AT)


def test_increments_refuse_unknown_kinds_and_empty_counts():
    with pytest.raises(ValueError, match="unknown signal kind"):
        t.increments([t.Signal("a", "editor", AT)], WEIGHTS, H)
    with pytest.raises(ValueError, match="at least 1"):
        t.increments([t.Signal("a", "click", AT, count=0)], WEIGHTS, H)


# --- Trending group by score -----------------------------------------------------------


def art(key: str, section: str, hours_ago: float, **fields) -> Article:
    return Article(key, f"https://www.newsarenaindia.com/{section}/{key}", f"Title {key}", section, AT - timedelta(hours=hours_ago), **fields)


WINDOW = Window(AT - timedelta(hours=24), AT)


def test_trending_by_score_then_key_whatever_the_input_order():
    items = [art(k, "nation", i + 1) for i, k in enumerate(["d", "c", "b", "a", "e"])]
    scores = {"a": 2.0, "b": 5.0, "c": 5.0, "d": 5.0, "e": 0.5}
    seen = set()
    for seed in range(6):
        shuffled = items[:]
        random.Random(seed).shuffle(shuffled)
        edition = assemble("morning", DIGEST, SECTIONS, shuffled, WINDOW, scores=scores, min_score=1.0)
        seen.add(tuple(a.key for a in edition.trending))
    assert seen == {("b", "c", "d")}


def test_pins_lead_then_scores_min_score_and_never_repeated_below():
    items = [
        art("pinned", "economy", 5),
        art("hot", "sports", 3),
        art("warm", "politics", 2),
        art("cold", "nation", 1, trending=True),  # flagged, but its score is below min_score
        art("none", "nation", 4),
    ]
    scores = {"hot": 9.0, "warm": 1.0, "cold": 0.4}
    edition = assemble(
        "morning", DIGEST, SECTIONS, items, WINDOW, pins=["https://www.newsarenaindia.com/economy/pinned"], scores=scores, min_score=1.0
    )
    assert [a.key for a in edition.trending] == ["pinned", "hot", "warm"]
    below = [a.key for g in edition.groups for a in g.articles]
    assert below == ["cold", "none"]
    assert len(edition.articles) == len({a.key for a in edition.articles}) == 5


def test_no_scores_means_nothing_trends_but_pins():
    items = [art("a", "nation", 1, trending=True), art("p", "nation", 2)]
    edition = assemble("morning", DIGEST, SECTIONS, items, WINDOW, pins=["p"], scores={})
    assert [a.key for a in edition.trending] == ["p"]


def test_trending_kind_is_the_trending_group_alone():
    config = EditionConfig(label="Trending now", schedule="0 */3 * * *", window=6, trending_limit=2, max_articles=5, kind="trending")
    items = [art(k, "nation", 1) for k in ("a", "b", "c")]
    edition = assemble("trending", config, SECTIONS, items, Window(AT - timedelta(hours=6), AT), scores={"a": 1.0, "b": 3.0, "c": 2.0})
    assert [a.key for a in edition.trending] == ["b", "c"]
    assert edition.groups == () and edition.omitted == 0 and edition.label == "Trending now"


def test_trending_kind_needs_room_for_trending():
    with pytest.raises(ValueError, match="trending_limit must be at least 1"):
        EditionConfig(label="T", schedule="0 * * * *", kind="trending", trending_limit=0)


# --- click tokens ----------------------------------------------------------------------

SECRET = "click-test-secret"


def keyed(tmp_path: Path, **trending) -> Settings:
    base = settings_for(tmp_path, trending=TrendingConfig(**trending))
    env = Environment(secret_key=SECRET, public_base_url="https://bot.newsarenaindia.com/")
    return Settings(base.file, env, base.config_path)


ARTICLE = Article(
    "na-1", "https://www.newsarenaindia.com/international/russia-taliban", "Russia recognises Taliban", "international", AT
)


def test_tracked_url_carries_article_run_and_channel(tmp_path):
    s = keyed(tmp_path)
    link = t.tracked_url(s, ARTICLE, run_id=42, channel="main")
    assert link.startswith("https://bot.newsarenaindia.com/c/")
    click = t.read_click(s, link.rsplit("/", 1)[1])
    assert click == t.Click("na-1", ARTICLE.url, 42, "main")
    assert t.click_destination(s, click, ARTICLE) == ARTICLE.url


def test_tracked_url_with_click_tracking_off_is_the_article_itself(tmp_path):
    s = keyed(tmp_path, click_tracking=False)
    assert t.tracked_url(s, ARTICLE, run_id=1) == ARTICLE.url
    with_utm = ARTICLE.url + "?utm_source=newsletter"
    assert t.tracked_url(s, ARTICLE, target=with_utm) == with_utm


def test_utm_parameters_on_the_target_are_still_the_article(tmp_path):
    s = keyed(tmp_path)
    target = ARTICLE.url + "?utm_source=newsletter&utm_medium=email"
    click = t.read_click(s, t.tracked_url(s, ARTICLE, target=target).rsplit("/", 1)[1])
    assert t.click_destination(s, click, ARTICLE) == target


def _tamper(token: str) -> list[str]:
    payload, _, signature = token.rpartition(".")
    flip = lambda text, i: text[:i] + ("A" if text[i] != "A" else "B") + text[i + 1 :]  # noqa: E731
    return [flip(payload, 3) + "." + signature, payload + "." + flip(signature, 5), payload, token + "x", ""]


def test_tampered_tokens_other_secrets_and_other_salts_are_refused(tmp_path):
    s = keyed(tmp_path)
    token = t.click_token(s, t.Click("na-1", ARTICLE.url, 1, "email"))
    for bad in _tamper(token):
        with pytest.raises(t.ClickRefused):
            t.read_click(s, bad)
    other = Settings(s.file, Environment(secret_key="another-secret"), s.config_path)
    with pytest.raises(t.ClickRefused):
        t.read_click(other, token)
    from itsdangerous import URLSafeSerializer

    foreign = URLSafeSerializer(SECRET, salt="distributor.subscriber.unsubscribe").dumps(["na-1", ARTICLE.url, 1, "email"])
    with pytest.raises(t.ClickRefused):
        t.read_click(s, foreign)
    with pytest.raises(t.ClickRefused, match="too long"):
        t.read_click(s, "a" * (t.MAX_TOKEN_CHARS + 1))
    shaped_wrong = URLSafeSerializer(SECRET, salt=t.CLICK_SALT, signer_kwargs={"digest_method": __import__("hashlib").sha256}).dumps({"k": 1})
    with pytest.raises(t.ClickRefused):
        t.read_click(s, shaped_wrong)


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/phish",
        "https://www.newsarenaindia.com/international/another-story",  # on the site, not this article
        "javascript:alert(1)",
        "//evil.example/x",
        "https://www.newsarenaindia.com/international/russia-taliban\r\nSet-Cookie: x=1",
        "ftp://www.newsarenaindia.com/international/russia-taliban",
    ],
)
def test_targets_other_than_the_article_page_are_refused(tmp_path, target):
    s = keyed(tmp_path)
    with pytest.raises(t.ClickRefused):
        t.click_destination(s, t.Click("na-1", target), ARTICLE)


@pytest.mark.parametrize(
    ("target", "allowed"),
    [
        ("https://www.newsarenaindia.com/nation/deleted-story", True),
        ("https://newsarenaindia.com/nation/deleted-story", True),
        ("https://m.newsarenaindia.com/nation/deleted-story", True),
        ("https://newsarenaindia.com.evil.example/x", False),
        ("https://evil.example/www.newsarenaindia.com/x", False),
        ("https://notnewsarenaindia.com/x", False),
        ("https://user@evil.example/x", False),
    ],
)
def test_unknown_article_goes_only_to_the_sites_own_domain(tmp_path, target, allowed):
    s = keyed(tmp_path)
    click = t.Click("gone", target)
    if allowed:
        assert t.click_destination(s, click, None) == target
    else:
        with pytest.raises(t.ClickRefused, match="not on the site"):
            t.click_destination(s, click, None)


def test_channel_names_are_checked(settings):
    with pytest.raises(ValueError, match="channel"):
        t.click_token(settings, t.Click("k", "https://x/", None, "Bad Channel"))


# --- page-view payloads ----------------------------------------------------------------

NOW = datetime(2025, 7, 4, 12, 0, tzinfo=UTC)


def body(*entries) -> bytes:
    return json.dumps({"views": list(entries)}).encode()


def test_pageviews_are_canonicalised_and_timed(settings):
    entries, rejected = t.parse_pageviews(
        settings,
        body(
            {"url": "HTTPS://www.NewsArenaIndia.com:443/sports/win/?utm_source=fb&fbclid=x&page=2#top", "count": 3},
            {"url": "https://www.newsarenaindia.com/nation/a", "count": 1, "at": "2025-07-04T15:00:00"},  # IST
            {"url": "https://www.newsarenaindia.com/nation/b", "count": 2, "at": "2025-07-05T00:00:00Z"},  # future
        ),
        now=NOW,
    )
    assert rejected == []
    assert entries[0] == t.PageViews("https://www.newsarenaindia.com/sports/win/?page=2", 3, NOW)
    assert entries[1].at == datetime(2025, 7, 4, 9, 30, tzinfo=UTC)
    assert entries[2].at == NOW


def test_bad_pageview_entries_are_refused_one_by_one(settings):
    entries, rejected = t.parse_pageviews(
        settings,
        body(
            {"url": "https://www.newsarenaindia.com/a", "count": 1},
            {"url": "javascript:alert(1)", "count": 1},
            {"url": "https://www.newsarenaindia.com/b", "count": 0},
            {"url": "https://www.newsarenaindia.com/c", "count": True},
            {"url": "https://www.newsarenaindia.com/d", "count": 1.5},
            {"url": "https://www.newsarenaindia.com/e", "count": 10**7},
            {"url": "https://www.newsarenaindia.com/f", "count": 1, "at": "yesterday"},
            {"url": "https://www.newsarenaindia.com/g", "count": 1, "referrer": "x"},
            "https://www.newsarenaindia.com/h",
        ),
        now=NOW,
    )
    assert [e.url for e in entries] == ["https://www.newsarenaindia.com/a"]
    reasons = {r["index"]: r["reason"] for r in rejected}
    assert set(reasons) == {1, 2, 3, 4, 5, 6, 7, 8}
    assert "http(s)" in reasons[1] and "max_views_per_entry" in reasons[5] and "ISO 8601" in reasons[6]
    assert "referrer" in reasons[7]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xff", "UTF-8"),
        (b"{", "not valid JSON"),
        (b'{"views": NaN}', "not valid JSON"),
        (b"[]", '{"views"'),
        (b'{"views": {}}', '{"views"'),
        (b'{"views": []}', "empty list"),
    ],
)
def test_unusable_pageview_bodies(settings, raw, reason):
    with pytest.raises(PayloadError, match=re.escape(reason)):
        t.parse_pageviews(settings, raw, now=NOW)
