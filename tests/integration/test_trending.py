"""Trending against real stores: the database scorer on SQLite and PostgreSQL, the Redis
scorer on a real Redis, waiting page views, editions built after clicks, the CLI.

Redis comes from TEST_REDIS_URL (default redis://127.0.0.1:6379/15). Each test uses its
own key prefix and deletes its keys afterwards. When Redis cannot be reached the Redis
half is skipped with a loud reason, unless DISTRIBUTOR_REQUIRE_SERVICES=1, which turns the
skip into a failure.
"""

from __future__ import annotations

import json
import random
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from typer.testing import CliRunner

from distributor import trending as t
from distributor.articles import Article
from distributor.editions import build_edition
from distributor.settings import Environment, Settings, TrendingConfig
from distributor.store.articles import pin, save_articles
from tests.conftest import CONFIG, REDIS_URL, redis_or_skip, settings_for

UTC = timezone.utc
# 20:00 IST on 4 July 2025, when the evening issue's 12-hour window ends.
EVENING = datetime(2025, 7, 4, 14, 30, tzinfo=UTC)
WEIGHTS = {"click": 1.0, "view": 0.1}
H = 6 * 3600


@pytest.fixture
def redis_scorer():
    """A RedisScorer on a key prefix of its own, emptied afterwards."""
    client = redis_or_skip("Redis scorer tests")
    scorer = t.RedisScorer(client, WEIGHTS, H, prefix=f"test:trending:{uuid.uuid4().hex}")
    yield scorer
    scorer.clear()
    assert not list(client.scan_iter(match=scorer.key_pattern))


@pytest.fixture(params=["database", "redis"])
def scorer(request, store):
    """The same test once per scorer (and, for the database, once per database)."""
    if request.param == "redis":
        return request.getfixturevalue("redis_scorer")
    return t.DatabaseScorer(store, WEIGHTS, H)


def random_signals(seed: int, articles: int = 60, events: int = 2000) -> list[t.Signal]:
    rng = random.Random(seed)
    keys = [f"https://www.newsarenaindia.com/nation/story-{i:03d}" for i in range(articles)]
    signals = []
    for _ in range(events):
        kind = rng.choice(["click", "click", "view"])
        at = EVENING - timedelta(seconds=rng.randrange(0, 3 * 86400))
        signals.append(t.Signal(rng.choice(keys), kind, at, rng.randint(1, 5) if kind == "view" else 1))
    # Exact ties: three articles with the very same signals.
    for key in ("tie-b", "tie-a", "tie-c"):
        signals += [t.Signal(key, "click", EVENING - timedelta(hours=1)), t.Signal(key, "view", EVENING, 2)]
    return signals


def record_in_batches(scorer: t.Scorer, signals: list[t.Signal], size: int = 250) -> None:
    for start in range(0, len(signals), size):
        scorer.record(signals[start : start + size])


def test_redis_and_database_scorers_rank_the_same(store, redis_scorer):
    signals = random_signals(7)
    database = t.DatabaseScorer(store, WEIGHTS, H)
    record_in_batches(database, signals)
    record_in_batches(redis_scorer, signals)
    for at in (EVENING, EVENING + timedelta(hours=5)):
        from_db, from_redis = database.top(at, 25), redis_scorer.top(at, 25)
        assert [k for k, _ in from_db] == [k for k, _ in from_redis]
        # Bit-identical: both added the same floats in the same order.
        assert from_db == from_redis
        keys = sorted({s.article_key for s in signals})
        assert database.scores(keys, at) == redis_scorer.scores(keys, at)
    total_clicks = sum(s.count for s in signals if s.kind == "click")
    assert sum(tally.clicks for tally in database.scores(keys, EVENING).values()) == total_clicks


def test_scores_match_hand_computed_decay(scorer):
    scorer.record([t.Signal("a", "click", EVENING - timedelta(seconds=H))])
    scorer.record([t.Signal("b", "click", EVENING - timedelta(seconds=H)), t.Signal("b", "view", EVENING - timedelta(seconds=2 * H), 10)])
    scorer.record([t.Signal("b", "click", EVENING, 2)])
    scores = scorer.scores(["a", "b", "missing"], EVENING)
    assert set(scores) == {"a", "b"}
    assert scores["a"].score == pytest.approx(0.5, rel=1e-12)
    assert scores["b"].score == pytest.approx(0.5 + 0.25 + 2.0, rel=1e-12)
    assert (scores["b"].clicks, scores["b"].views) == (3, 10)


def test_ties_are_ordered_by_key_and_cut_by_key(scorer):
    at = EVENING
    for key in ("e", "c", "a", "d", "b"):
        scorer.record([t.Signal(key, "click", at - timedelta(minutes=10))])
    scorer.record([t.Signal("top", "click", at, 3)])
    assert [k for k, _ in scorer.top(at, 3)] == ["top", "a", "b"]
    assert [k for k, _ in scorer.top(at, 10)] == ["top", "a", "b", "c", "d", "e"]


def test_concurrent_recording_loses_nothing(scorer):
    from concurrent.futures import ThreadPoolExecutor

    def click(_):
        scorer.record([t.Signal("same", "click", EVENING)])

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(click, range(80)))
    tally = scorer.scores(["same"], EVENING)["same"]
    assert tally.clicks == 80 and tally.score == pytest.approx(80.0, rel=1e-12)


def test_database_prune_drops_generations_nobody_reads(store):
    scorer = t.DatabaseScorer(store, WEIGHTS, H)
    scorer.record([t.Signal("a", "click", EVENING)])
    later = EVENING + timedelta(seconds=3 * t.generation_length(H))
    scorer.prune(later)
    assert scorer.scores(["a"], EVENING) == {}


# --- editions after clicks -------------------------------------------------------------


def story(key: str, section: str, hours_ago: float, **fields) -> Article:
    return Article(
        key=key,
        url=f"https://www.newsarenaindia.com/{section}/{key}",
        title=f"Story {key}",
        section=section,
        published_at=EVENING - timedelta(hours=hours_ago),
        **fields,
    )


@pytest.fixture
def newsroom(settings, store):
    """Ten stories from the evening window, in four sections."""
    articles = [
        story(f"{section}-{i}", section, 1 + i + 0.1 * n)
        for n, section in enumerate(["nation", "politics", "economy", "sports"])
        for i in range(3)
    ] + [story("flagged", "entertainment", 2, trending=True)]
    save_articles(store, articles)
    return articles


def test_digest_after_simulated_clicks_leads_with_the_most_clicked(settings, store, newsroom):
    clicks = {"sports-2": 9, "economy-0": 6, "nation-1": 4, "politics-2": 1}
    for key, count in clicks.items():
        article = next(a for a in newsroom if a.key == key)
        for minute in range(count):
            t.record_click(settings, store, t.Click(key, article.url, 7, "email"), at=EVENING - timedelta(minutes=30 + minute))
    edition = build_edition(settings, store, "evening", at=EVENING)
    # The flag (20 points, 2 h old: 15.9) leads; politics-2's one click 30 minutes ago is
    # worth 0.5 ** (0.5 / 6) = 0.94 points, under min_score 1.0, so it stays in Politics.
    assert [a.key for a in edition.trending] == ["flagged", "sports-2", "economy-0", "nation-1"]
    below = [a.key for g in edition.groups for a in g.articles]
    assert not set(below) & {a.key for a in edition.trending}
    assert "politics-2" in below and len(below) + len(edition.trending) == len(newsroom)
    assert t.click_counts(store, run_id=7)[0] == {"article_key": "economy-0", "run_id": 7, "channel": "email", "clicks": 6}


def test_pins_lead_the_digest_and_the_ranking(settings, store, newsroom):
    pin(store, "https://www.newsarenaindia.com/opinion-missing")  # no such article: ignored
    pin(store, "https://www.newsarenaindia.com/politics/politics-1?utm_source=x")
    t.record_click(settings, store, t.Click("sports-0", "https://www.newsarenaindia.com/sports/sports-0"), at=EVENING)
    edition = build_edition(settings, store, "evening", at=EVENING)
    assert [a.key for a in edition.trending][:2] == ["politics-1", "flagged"]
    ranked = t.ranking(settings, store, at=EVENING, limit=3)
    assert [r.article_key for r in ranked] == ["politics-1", "flagged", "sports-0"]
    assert ranked[0].pinned and ranked[0].reasons == ("pinned",)
    assert ranked[1].reasons == ("editor flag",) and ranked[2].reasons == ("1 click",)


def test_trending_edition_is_the_top_articles_only(settings, store, newsroom):
    for key in ("nation-0", "economy-1"):
        t.record_click(settings, store, t.Click(key, f"https://www.newsarenaindia.com/{key.split('-')[0]}/{key}"), at=EVENING)
    edition = build_edition(settings, store, "trending", at=EVENING)
    assert edition.label == "Trending now" and edition.groups == ()
    assert [a.key for a in edition.trending] == ["flagged", "economy-1", "nation-0"]


# --- waiting page views ----------------------------------------------------------------


def test_views_for_unknown_urls_wait_and_count_when_the_article_arrives(settings, store):
    url = "https://www.newsarenaindia.com/nation/late-story"
    entries = [
        t.PageViews(url, 30, EVENING - timedelta(hours=6)),
        t.PageViews(url, 10, EVENING - timedelta(hours=6, seconds=-20)),  # same minute: one row
        t.PageViews("https://www.newsarenaindia.com/nation/never", 5, EVENING),
    ]
    report = t.record_pageviews(settings, store, entries, now=EVENING)
    assert (report.counted_views, report.pending_urls, report.pending_views) == (0, 2, 45)
    assert t.apply_pending_views(settings, store, None) == 0  # no article yet

    late = Article("late-guid", url, "Late story", "nation", EVENING - timedelta(hours=7))
    [(stored, _)] = save_articles(store, [late])
    assert t.apply_pending_views(settings, store, [stored]) == 40
    assert t.apply_pending_views(settings, store, [stored]) == 0  # claimed once
    tally = t.scorer_for(settings, store).scores(["late-guid"], EVENING)["late-guid"]
    assert tally.views == 40 and tally.score == pytest.approx(40 * 0.1 * 0.5, rel=1e-9)


def test_ingest_applies_waiting_views_by_itself(settings, store):
    from distributor.ingest.pipeline import IngestReport, store_articles

    url = "https://www.newsarenaindia.com/nation/pushed-before-polled"
    t.record_pageviews(settings, store, [t.PageViews(url, 25, EVENING)], now=EVENING)
    report = store_articles(settings, store, [Article("pushed", url, "Pushed early", "nation", EVENING)], IngestReport("test"))
    assert [a.key for a in report.new] == ["pushed"]
    assert t.scorer_for(settings, store).scores(["pushed"], EVENING)["pushed"].views == 25


def test_ranking_applies_waiting_views_on_its_own(settings, store):
    url = "https://www.newsarenaindia.com/sports/final"
    t.record_pageviews(settings, store, [t.PageViews(url, 100, EVENING)], now=EVENING)
    save_articles(store, [Article("final", url, "Final", "sports", EVENING - timedelta(hours=1))])
    [line] = t.ranking(settings, store, at=EVENING)
    assert (line.article_key, line.views, line.reasons) == ("final", 100, ("100 views",))
    assert line.score == pytest.approx(10.0, rel=1e-9)


def test_old_waiting_views_are_dropped(settings, store):
    url = "https://www.newsarenaindia.com/nation/old"
    t.record_pageviews(settings, store, [t.PageViews(url, 3, EVENING - timedelta(hours=100))], now=EVENING - timedelta(hours=100))
    assert t.prune_pending(settings, store, now=EVENING) == 1


# --- Redis as the configured scorer, end to end ----------------------------------------


def test_redis_url_makes_the_ranking_use_redis(tmp_path, store):
    client = redis_or_skip("Redis scorer tests")
    prefix = f"test:trending:{uuid.uuid4().hex}"
    base = settings_for(tmp_path, trending=TrendingConfig(redis_key_prefix=prefix))
    s = Settings(base.file, Environment(redis_url=REDIS_URL), base.config_path)
    try:
        scorer = t.scorer_for(s, store)
        assert isinstance(scorer, t.RedisScorer) and scorer.prefix == prefix
        save_articles(store, [story("r1", "nation", 1), story("r2", "nation", 2)])
        t.record_click(s, store, t.Click("r2", "https://www.newsarenaindia.com/nation/r2"), at=EVENING)
        assert [r.article_key for r in t.ranking(s, store, at=EVENING)] == ["r2"]
        assert list(client.scan_iter(match=scorer.key_pattern))
    finally:
        t.RedisScorer(client, WEIGHTS, H, prefix=prefix).clear()
    assert not list(client.scan_iter(match=scorer.key_pattern))


# --- CLI -------------------------------------------------------------------------------


def test_cli_shows_the_ranking_and_why(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "var" / "distributor.db"
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{db}")
    runner = CliRunner()
    from distributor.cli import app

    def cli(*args: str) -> str:
        result = runner.invoke(app, ["--config", str(CONFIG), *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    cli("init")
    s = settings_for(tmp_path)
    from distributor.store import Store

    store = Store(f"sqlite:///{db}")
    save_articles(store, [story("hot", "sports", 1), story("flag", "nation", 2, trending=True), story("quiet", "economy", 3)])
    for _ in range(3):
        t.record_click(s, store, t.Click("hot", "https://www.newsarenaindia.com/sports/hot", 1, "email"), at=EVENING)
    t.record_pageviews(s, store, [t.PageViews("https://www.newsarenaindia.com/sports/hot?utm_source=x", 20, EVENING)], now=EVENING)
    cli("trending", "pin", "https://www.newsarenaindia.com/economy/quiet")

    data = json.loads(cli("trending", "--json", "--at", EVENING.isoformat()))
    assert [r["key"] for r in data["ranking"]] == ["quiet", "flag", "hot"]
    hot = data["ranking"][2]
    assert (hot["clicks"], hot["views"], hot["reasons"]) == (3, 20, ["3 clicks", "20 views"])
    assert hot["score"] == pytest.approx(5.0)
    assert data["ranking"][0]["reasons"] == ["pinned"] and data["scores_in"] == "database"

    text = cli("trending", "--at", EVENING.isoformat(), "--limit", "2")
    assert "Story quiet" in text and "pinned" in text and "editor flag" in text and "Story hot" not in text
    assert "https://www.newsarenaindia.com/economy/quiet  (pinned)" in cli("trending", "pins")
    store.dispose()


def test_telegram_posts_link_through_click_tracking_per_channel(settings, store):
    from distributor.delivery.telegram import post_new_articles

    channels = {name: c.model_copy(update={"quiet_hours": ""}) for name, c in settings.channels.items()}
    settings = Settings(settings.file.model_copy(update={"channels": channels}), settings.env, settings.config_path)
    now = datetime.now(UTC)
    url = "https://www.newsarenaindia.com/sports/tracked-post"
    save_articles(store, [Article("tracked", url, "Tracked post", "sports", now - timedelta(minutes=5))])
    post_new_articles(settings, store, ["tracked"], now=now)
    posts = [json.loads(p.read_text(encoding="utf-8")) for p in (settings.outbox_dir / "telegram").glob("*.json")]
    buttons = {p["params"]["chat_id"]: p["params"]["reply_markup"]["inline_keyboard"][0][0]["url"] for p in posts}
    assert set(buttons) == {"@newsarena", "@newsarena_sports"}
    clicks = {chat: t.read_click(settings, link.rsplit("/c/", 1)[1]) for chat, link in buttons.items()}
    assert {c.channel for c in clicks.values()} == {"main", "sports"}
    assert all(c.article_key == "tracked" and c.target == url for c in clicks.values())
