"""Trending benchmark: recording 100,000 click events, and ranking 10,000 articles.

    .venv/bin/python benchmarks/bench_trending.py [--events 100000] [--articles 10000]
        [--repeat 3] [--rank-repeat 7] [--batch 1000]
        [--redis-url redis://127.0.0.1:6379/15] [--postgres-url postgresql://...]

Scorers measured: the database scorer on a fresh SQLite file (always), on PostgreSQL
(when --postgres-url, else TEST_POSTGRES_URL or the local default, answers; a schema of
its own, dropped afterwards) and the Redis scorer (when Redis answers; a key prefix of its
own, deleted afterwards).

Recording, through `Scorer.record`, the code path the app uses:
- "click": one event per call, as `GET /c/{token}` records one click per request (one
  transaction, or one MULTI/EXEC, per event). The click tally per (article, run, channel)
  that the endpoint also writes is not part of the scorer and not timed here.
- "batch": `--batch` events per call, as `POST /webhooks/pageviews` records a push.
The events: clicks on --articles articles, popularity Zipf-like (a few stories take most
clicks), times spread over the last day in order; the same seed gives the same events.

Ranking, with --articles articles scored and stored:
- "top": `Scorer.top(at, 20)` (the scores' own index or sorted set);
- "window": `Scorer.scores(all keys, at)` then sorted, what an edition does with its
  window's candidates (here every article is a candidate);
- "ranking": `trending.ranking(settings, store, at=..., limit=20)` end to end (pins,
  editor flags, waiting views, article rows).
Each is the median of --rank-repeat runs after one warm-up.

Prints one JSON object (medians, and every run) and a human line per scorer.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from distributor import trending as t  # noqa: E402
from distributor.articles import Article  # noqa: E402
from distributor.settings import Environment, PathsConfig, Settings, load_settings  # noqa: E402
from distributor.store import Store  # noqa: E402
from distributor.store.articles import save_articles  # noqa: E402

SEED = 20250704
UTC = timezone.utc
AT = datetime(2025, 7, 4, 14, 30, tzinfo=UTC)
SITE = "https://www.newsarenaindia.com"


def make_articles(count: int) -> list[Article]:
    sections = ["nation", "states", "international", "politics", "opinion", "economy", "sports", "entertainment"]
    rng = random.Random(SEED)
    return [
        Article(
            key=f"{SITE}/{sections[i % 8]}/story-{i:05d}",
            url=f"{SITE}/{sections[i % 8]}/story-{i:05d}",
            title=f"Story {i}",
            section=sections[i % 8],
            published_at=AT - timedelta(minutes=rng.randrange(0, 48 * 60)),
            trending=rng.random() < 0.01,
        )
        for i in range(count)
    ]


def make_clicks(articles: list[Article], events: int) -> list[t.Signal]:
    rng = random.Random(SEED + 1)
    # Zipf-like popularity: article i is picked with weight 1 / (i + 1).
    weights = [1.0 / (i + 1) for i in range(len(articles))]
    picked = rng.choices([a.key for a in articles], weights=weights, k=events)
    start = AT - timedelta(days=1)
    step = 86400 / events
    return [t.Signal(key, "click", start + timedelta(seconds=i * step)) for i, key in enumerate(picked)]


def time_recording(make_scorer, signals: list[t.Signal], batch: int) -> float:
    scorer = make_scorer()
    begin = time.perf_counter()
    if batch == 1:
        for signal in signals:
            scorer.record([signal])
    else:
        for start in range(0, len(signals), batch):
            scorer.record(signals[start : start + batch])
    return time.perf_counter() - begin


def median_time(function, repeat: int) -> tuple[float, list[float]]:
    function()  # warm-up: connections, caches
    runs = []
    for _ in range(repeat):
        begin = time.perf_counter()
        function()
        runs.append(time.perf_counter() - begin)
    return statistics.median(runs), runs


class Backend:
    """One scorer's home: how to get a fresh, empty scorer, and how to clean up."""

    def __init__(self, name: str, settings: Settings, store: Store, fresh, cleanup) -> None:  # noqa: ANN001
        self.name, self.settings, self.store, self.fresh, self.cleanup = name, settings, store, fresh, cleanup


def sqlite_backend(base: Settings, folder: Path) -> Backend:
    counter = iter(range(10**6))

    def fresh_store() -> Store:
        store = Store(f"sqlite:///{folder / f'bench-{next(counter)}.db'}")
        store.migrate()
        return store

    state = {"store": fresh_store()}

    def fresh() -> t.Scorer:
        state["store"].dispose()
        state["store"] = fresh_store()
        return t.scorer_for(base, state["store"])

    backend = Backend("sqlite", base, state["store"], fresh, lambda: state["store"].dispose())
    backend.state = state  # type: ignore[attr-defined]
    return backend


def postgres_backend(base: Settings, url: str) -> Backend | None:
    from sqlalchemy import create_engine, text

    try:
        admin = create_engine(Store(url).url)
        with admin.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as exc:  # noqa: BLE001
        print(f"PostgreSQL not reachable at {url} ({type(exc).__name__}); skipped", file=sys.stderr)
        return None
    schemas: list[str] = []
    sep = "&" if "?" in url else "?"
    state: dict = {}

    def fresh_store() -> Store:
        schema = f"bench_{uuid.uuid4().hex[:12]}"
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        schemas.append(schema)
        store = Store(f"{url}{sep}options=-csearch_path%3D{schema}")
        store.migrate()
        return store

    state["store"] = fresh_store()

    def fresh() -> t.Scorer:
        state["store"].dispose()
        state["store"] = fresh_store()
        return t.scorer_for(base, state["store"])

    def cleanup() -> None:
        state["store"].dispose()
        with admin.begin() as conn:
            for schema in schemas:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    backend = Backend("postgresql", base, state["store"], fresh, cleanup)
    backend.state = state  # type: ignore[attr-defined]
    return backend


def redis_backend(base: Settings, url: str, folder: Path) -> Backend | None:
    import redis

    try:
        redis.Redis.from_url(url).ping()
    except Exception as exc:  # noqa: BLE001
        print(f"Redis not reachable at {url} ({type(exc).__name__}); skipped", file=sys.stderr)
        return None
    prefixes: list[str] = []
    store = Store(f"sqlite:///{folder / 'bench-redis.db'}")  # articles, pins, waiting views
    store.migrate()

    def settings_with(prefix: str) -> Settings:
        trending = base.file.trending.model_copy(update={"redis_key_prefix": prefix})
        return Settings(base.file.model_copy(update={"trending": trending}), Environment(redis_url=url), base.config_path)

    state = {"settings": settings_with("bench:trending:unused"), "store": store}

    def fresh() -> t.Scorer:
        prefix = f"bench:trending:{uuid.uuid4().hex}"
        prefixes.append(prefix)
        state["settings"] = settings_with(prefix)
        return t.scorer_for(state["settings"], store)

    def cleanup() -> None:
        client = redis.Redis.from_url(url)
        for prefix in prefixes:
            t.RedisScorer(client, {"click": 1, "view": 1}, 1, prefix=prefix).clear()
        store.dispose()

    backend = Backend("redis", base, store, fresh, cleanup)
    backend.state = state  # type: ignore[attr-defined]
    return backend


def bench_backend(backend: Backend, args: argparse.Namespace, articles, clicks) -> dict:
    result: dict = {"scorer": backend.name}
    for mode, batch in (("click", 1), ("batch", args.batch)):
        runs = [time_recording(backend.fresh, clicks, batch) for _ in range(args.repeat)]
        seconds = statistics.median(runs)
        result[f"record_{mode}"] = {
            "events": len(clicks),
            "batch": batch,
            "seconds_median": round(seconds, 3),
            "events_per_second": round(len(clicks) / seconds),
            "runs_seconds": [round(r, 3) for r in runs],
        }

    # Ranking: a fresh scorer holding every article's clicks, articles in its store.
    scorer = backend.fresh()
    scorer.record(clicks)
    # Every article gets at least one signal, so all --articles are ranked.
    scorer.record([t.Signal(a.key, "view", AT - timedelta(hours=1)) for a in articles])
    state = backend.state  # type: ignore[attr-defined]
    store = state["store"]
    settings = state.get("settings", backend.settings)
    save_articles(store, articles)
    keys = [a.key for a in articles]
    timings = {
        "top": lambda: scorer.top(AT, 20),
        "window": lambda: sorted(scorer.scores(keys, AT).items(), key=lambda kv: (-kv[1].score, kv[0]))[:20],
        "ranking": lambda: t.ranking(settings, store, at=AT, limit=20, scorer=scorer),
    }
    scored = len(scorer.scores(keys, AT))
    for name, function in timings.items():
        seconds, runs = median_time(function, args.rank_repeat)
        result[f"rank_{name}"] = {
            "articles": scored,
            "ms_median": round(seconds * 1000, 2),
            "runs_ms": [round(r * 1000, 2) for r in runs],
        }
    top = t.ranking(settings, store, at=AT, limit=3, scorer=scorer)
    result["top3"] = [(r.article_key.rsplit("/", 1)[1], round(r.score, 3)) for r in top]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--articles", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3, help="recording runs per mode (median)")
    parser.add_argument("--rank-repeat", type=int, default=7, help="ranking runs (median)")
    parser.add_argument("--batch", type=int, default=1000, help="events per call in batch mode")
    parser.add_argument("--redis-url", default=os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15"))
    parser.add_argument(
        "--postgres-url", default=os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
    )
    parser.add_argument("--only", choices=["sqlite", "postgresql", "redis"], action="append")
    args = parser.parse_args()

    shipped = load_settings(Path(__file__).resolve().parent.parent / "config" / "distributor.toml")
    articles = make_articles(args.articles)
    clicks = make_clicks(articles, args.events)
    report: dict = {
        "benchmark": "trending",
        "events": args.events,
        "articles": args.articles,
        "half_life_hours": shipped.file.trending.half_life_hours,
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "scorers": [],
    }
    with tempfile.TemporaryDirectory(prefix="bench-trending-") as tmp:
        folder = Path(tmp)
        base = Settings(
            shipped.file.model_copy(update={"paths": PathsConfig(var_dir=str(folder / "var"))}),
            Environment(),
            shipped.config_path,
        )
        wanted = args.only or ["sqlite", "postgresql", "redis"]
        makers = {
            "sqlite": lambda: sqlite_backend(base, folder),
            "postgresql": lambda: postgres_backend(base, args.postgres_url),
            "redis": lambda: redis_backend(base, args.redis_url, folder),
        }
        for name in wanted:
            backend = makers[name]()
            if backend is None:
                report["scorers"].append({"scorer": name, "skipped": "not reachable"})
                continue
            try:
                report["scorers"].append(bench_backend(backend, args, articles, clicks))
            finally:
                backend.cleanup()
    print(json.dumps(report, indent=2))
    for result in report["scorers"]:
        if "skipped" in result:
            print(f"{result['scorer']}: skipped ({result['skipped']})")
            continue
        click, batch = result["record_click"], result["record_batch"]
        print(
            f"{result['scorer']}: {args.events:,} clicks recorded at {click['events_per_second']:,}/s one per call "
            f"(the /c/ path), {batch['events_per_second']:,}/s in batches of {batch['batch']}; ranking "
            f"{result['rank_top']['articles']:,} articles: top-20 {result['rank_top']['ms_median']} ms, "
            f"window scores {result['rank_window']['ms_median']} ms, full ranking {result['rank_ranking']['ms_median']} ms "
            f"(medians)"
        )


if __name__ == "__main__":
    main()
