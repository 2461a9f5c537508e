"""Trending: signals, decayed scores, rankings, click links and waiting page views.

Signals, and what each records (nothing about the reader):
- click: a reader followed one of our links (`/c/{token}`); the token names the article,
  the edition run and the channel, and only those are kept (a tally in trending_clicks);
- view: the site pushed page-view counts per article URL (`POST /webhooks/pageviews`);
  counts for URLs we have no article for wait in trending_pending_views until it arrives;
- editor: the feed put the article in the site's Trending category (`article.trending`).
  Not an event but a property of the article, so it is not stored: it counts as one
  signal of weight `weights.editor` at the article's publication time, added when scores
  are read. An editor who drops the flag drops it at once, and re-ingesting the same
  flagged item never counts it twice.
- pins (config `[trending] pins` and `distributor trending pin`) carry no weight: pinned
  articles rank first, in pin order, whatever their score.

Score arithmetic
----------------
A signal of weight w at time t is worth w * 0.5 ** ((T - t) / h) points at time T (h: the
half-life); an article's score is the sum over its signals. The factor 0.5 ** (T / h) is
the same for every article, so we store per article

    S = sum of w * count * 2 ** ((t - E) / h)        ("points at the epoch E")

and score(T) = S * 2 ** ((E - T) / h). Recording a signal is one atomic add to S (ZINCRBY
in a Redis sorted set: O(log n), or UPDATE ... SET score = score + x); ranking at any time is
ordering by S, with no per-article decay arithmetic; conversion to points now is only for
display and thresholds.

Overflow. 2 ** ((t - E) / h) grows without bound while t moves away from a fixed E, and a
double overflows past 2 ** 1024: 1024 half-lives, 256 days at h = 6 h. So E is not fixed
for ever: time is cut into *generations* of GENERATION_HALF_LIVES half-lives, each with its
own epoch, its start (a multiple of its length since 1970: every worker derives the same
epoch from the clock alone, with no shared state, no lock and no stop-the-world rebase).
A signal is added to its own generation AND to the next one; at time T only T's generation
is read, and it holds every signal of the last one to two generations. Signals older than a
whole generation are left behind: they weigh 2 ** -512 of a fresh one. Inside a generation
the exponent stays within [-512, 512), so with weight x count below 2 ** 60 a stored value
stays below 2 ** 600 even summed over billions of signals; and adding a small value to a
huge one only loses what is negligible at that scale anyway. The half-life is part of a
generation's identity (Redis keys and table rows carry it): changing it starts fresh scores
instead of mixing two scales.

Both scorers (Redis, database) aggregate a batch with the same code and add the same
floats in the same order, so they store bit-identical scores and rank identically; ties
are broken by article key (code point order) everywhere.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any, Iterable, Mapping, Sequence
from urllib.parse import urlsplit

from itsdangerous import BadData, URLSafeSerializer
from sqlalchemy import delete, select, text

from distributor.articles import Article
from distributor import jsonlimits
from distributor.errors import DistributorError
from distributor.ingest.normalise import MAX_URL_CHARS, canonical_url, is_http_url
from distributor.ingest.webhook import PayloadError
from distributor.settings import Settings
from distributor.store import Store
from distributor.store.models import (
    ArticleRow,
    PendingViewRow,
    TrendingClickRow,
    TrendingScoreRow,
    utcnow,
)

log = logging.getLogger(__name__)

UTC = timezone.utc

# Half-lives per score generation (see the module docstring): 2 ** 512 is far inside a
# double's range, and a signal 512 half-lives old weighs nothing worth keeping.
GENERATION_HALF_LIVES = 512
# Signal kinds stored by the scorers; "editor" is added when reading (see the docstring).
STORED_KINDS = ("click", "view")
# Keys looked up per query or Redis command; keeps IN lists within every database's limits.
_CHUNK = 500
# itsdangerous salt of click tokens: a signature made for another purpose (subscriber
# links, ...) can never pass as a click token, nor the reverse.
CLICK_SALT = "distributor.trending.click"
# Longest token /c/ reads; ours are far shorter (a key and a URL, compressed), and a huge
# one is refused before any work is spent on it.
MAX_TOKEN_CHARS = 8192
# A channel in a click token: "email" or a Telegram channel's name from [channels].
_CHANNEL = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_CONTROL = re.compile(r"[\x00-\x20\x7f]")
_ASYNC_COMMIT = text("SET LOCAL synchronous_commit TO OFF")


class ClickRefused(DistributorError, ValueError):
    """A /c/ link we will not follow: tampered, or its target is not the article's page."""


# --- score arithmetic (pure) -----------------------------------------------------------


def half_life_seconds(settings: Settings) -> int:
    """The configured half-life in whole seconds (the unit generations are counted in)."""
    return max(1, round(settings.file.trending.half_life_seconds))


def generation_length(half_life: int) -> int:
    """Seconds in one score generation."""
    return GENERATION_HALF_LIVES * half_life


def generation_of(moment: float, half_life: int) -> int:
    """The epoch (unix seconds) of the generation `moment` (unix seconds) falls in."""
    length = generation_length(half_life)
    return math.floor(moment / length) * length


def decayed(weight: float, age_seconds: float, half_life: float) -> float:
    """What `weight` points are worth `age_seconds` later: halved every half-life."""
    return weight * 0.5 ** (age_seconds / half_life)


def at_epoch(points: float, moment: float, epoch: int, half_life: int) -> float:
    """`points` earned at `moment`, expressed at `epoch` (what a scorer adds to S)."""
    return points * 2.0 ** ((moment - epoch) / half_life)


def points_now(stored: float, epoch: int, at: float, half_life: int) -> float:
    """A stored "points at the epoch" value converted to points at time `at`."""
    return stored * 2.0 ** ((epoch - at) / half_life)


@dataclass(frozen=True, slots=True)
class Signal:
    """Something readers did to one article: `count` clicks or views at `at`."""

    article_key: str
    kind: str  # one of STORED_KINDS
    at: datetime
    count: int = 1


@dataclass
class Delta:
    """What one batch adds to one article's row of one generation."""

    score: float = 0.0
    clicks: int = 0
    views: int = 0


def increments(
    signals: Iterable[Signal], weights: Mapping[str, float], half_life: int
) -> dict[tuple[int, str], Delta]:
    """The batch as additions per (generation epoch, article key), in first-seen order.

    Both scorers apply exactly these floats, which is what makes them agree to the bit.
    """
    length = generation_length(half_life)
    out: dict[tuple[int, str], Delta] = {}
    for signal in signals:
        if signal.kind not in STORED_KINDS:
            raise ValueError(f"unknown signal kind {signal.kind!r} (stored kinds: {', '.join(STORED_KINDS)})")
        if signal.count < 1:
            raise ValueError(f"signal count must be at least 1, got {signal.count}")
        moment = signal.at.timestamp()
        points = weights[signal.kind] * signal.count
        epoch = generation_of(moment, half_life)
        for generation in (epoch, epoch + length):
            delta = out.setdefault((generation, signal.article_key), Delta())
            delta.score += at_epoch(points, moment, generation, half_life)
            if signal.kind == "click":
                delta.clicks += signal.count
            else:
                delta.views += signal.count
    return out


@dataclass(frozen=True, slots=True)
class Tally:
    """An article's stored signals read at one time: points now, and the raw counts."""

    score: float
    clicks: int = 0
    views: int = 0


def _ordered(items: Iterable[tuple[str, Tally]]) -> list[tuple[str, Tally]]:
    # Highest score first; equal scores by article key, so every scorer and every run
    # lists ties the same way.
    return sorted(items, key=lambda item: (-item[1].score, item[0]))


# --- scorers ---------------------------------------------------------------------------


class Scorer(ABC):
    """Where decayed scores live. One interface, two homes (Redis, the database)."""

    def __init__(self, weights: Mapping[str, float], half_life: int) -> None:
        self.weights = {kind: float(weights[kind]) for kind in STORED_KINDS}
        self.half_life = int(half_life)

    @abstractmethod
    def record(self, signals: Sequence[Signal]) -> int:
        """Add the signals, atomically per batch; returns how many were recorded."""

    @abstractmethod
    def scores(self, keys: Sequence[str], at: datetime) -> dict[str, Tally]:
        """Tallies at `at` of these articles (those with no signals are left out)."""

    @abstractmethod
    def top(self, at: datetime, limit: int) -> list[tuple[str, Tally]]:
        """The `limit` best-scored articles at `at`, best first, ties by key."""

    def prune(self, at: datetime) -> None:  # noqa: B027 - optional for scorers that expire on their own
        """Drop generations that can no longer be read at or after `at`."""

    def _epoch(self, at: datetime) -> int:
        return generation_of(at.timestamp(), self.half_life)

    def _tally(self, stored: float, clicks: int, views: int, epoch: int, at: datetime) -> Tally:
        return Tally(points_now(stored, epoch, at.timestamp(), self.half_life), int(clicks), int(views))


@lru_cache(maxsize=32)
def _upsert_statement(dialect: str, model: Any, keys: tuple[str, ...], add: tuple[str, ...], replace: tuple[str, ...]) -> Any:
    # Built once per shape: constructing the ON CONFLICT clause costs more than running it.
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - the store supports only these two
        raise NotImplementedError(f"no insert-or-update for {dialect}")
    table = model.__table__
    statement = insert(table)
    updates = {name: table.c[name] + statement.excluded[name] for name in add}
    updates.update({name: statement.excluded[name] for name in replace})
    return statement.on_conflict_do_update(index_elements=list(keys), set_=updates)


def upsert(connection: Any, model: Any, rows: list[dict], *, keys: Sequence[str], add: Sequence[str] = (), replace: Sequence[str] = ()) -> None:
    """Insert rows, or add to / replace columns of existing ones, in one atomic statement
    per row (INSERT ... ON CONFLICT DO UPDATE, on SQLite and PostgreSQL alike).

    `connection` is a Connection or Session. Callers pass each key once per call
    (PostgreSQL refuses to update a row twice in one statement) and in a stable order, so
    concurrent writers lock rows in the same order and cannot deadlock.
    """
    if not rows:
        return
    dialect = connection.get_bind().dialect.name if hasattr(connection, "get_bind") else connection.dialect.name
    statement = _upsert_statement(dialect, model, tuple(keys), tuple(add), tuple(replace))
    connection.execute(statement, rows)


class DatabaseScorer(Scorer):
    """Scores in the trending_scores table: used when REDIS_URL is not set."""

    name = "database"

    def __init__(self, store: Store, weights: Mapping[str, float], half_life: int) -> None:
        super().__init__(weights, half_life)
        self.store = store

    def record(self, signals: Sequence[Signal]) -> int:
        deltas = increments(signals, self.weights, self.half_life)
        if not deltas:
            return 0
        now = utcnow()
        rows = [
            {
                "half_life": self.half_life,
                "epoch": epoch,
                "article_key": key,
                "score": delta.score,
                "clicks": delta.clicks,
                "views": delta.views,
                "updated_at": now,
            }
            for (epoch, key), delta in sorted(deltas.items())
        ]
        with self.store.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                # Scores are soft data: after a crash, losing the last fraction of a second
                # of clicks changes no ranking worth defending, while waiting for the WAL
                # flush on every click would cap the click path at the disk's fsync rate.
                # The setting is this transaction's only; ledger writes stay durable.
                connection.execute(_ASYNC_COMMIT)
            upsert(
                connection,
                TrendingScoreRow,
                rows,
                keys=("half_life", "epoch", "article_key"),
                add=("score", "clicks", "views"),
                replace=("updated_at",),
            )
        return len(signals)

    def _where(self, epoch: int):  # noqa: ANN202
        return (TrendingScoreRow.half_life == self.half_life) & (TrendingScoreRow.epoch == epoch)

    def scores(self, keys: Sequence[str], at: datetime) -> dict[str, Tally]:
        epoch = self._epoch(at)
        wanted = list(dict.fromkeys(keys))
        found: dict[str, Tally] = {}
        columns = (TrendingScoreRow.article_key, TrendingScoreRow.score, TrendingScoreRow.clicks, TrendingScoreRow.views)
        with self.store.session() as session:
            if session.get_bind().dialect.name == "postgresql":
                # One array parameter, one round trip: a long IN list of separate
                # parameters is compared one by one against every row of the generation.
                from sqlalchemy import String, any_, bindparam
                from sqlalchemy.dialects.postgresql import ARRAY

                wanted_keys = bindparam("keys", type_=ARRAY(String))
                query = select(*columns).where(self._where(epoch), TrendingScoreRow.article_key == any_(wanted_keys))
                batches = [session.execute(query, {"keys": wanted})] if wanted else []
            else:
                batches = [
                    session.execute(
                        select(*columns).where(
                            self._where(epoch), TrendingScoreRow.article_key.in_(wanted[start : start + _CHUNK])
                        )
                    )
                    for start in range(0, len(wanted), _CHUNK)
                ]
            for rows in batches:
                for key, stored, clicks, views in rows:
                    found[key] = self._tally(stored, clicks, views, epoch, at)
        return found

    def top(self, at: datetime, limit: int) -> list[tuple[str, Tally]]:
        if limit <= 0:
            return []
        epoch = self._epoch(at)
        columns = (TrendingScoreRow.article_key, TrendingScoreRow.score, TrendingScoreRow.clicks, TrendingScoreRow.views)
        with self.store.session() as session:
            # Score order alone walks the rank index with no sort; ties are settled in
            # Python by key (code point order, as Redis does), so no database collation
            # (PostgreSQL's follows the locale) decides which of equal articles is cut.
            rows = session.execute(
                select(*columns).where(self._where(epoch)).order_by(TrendingScoreRow.score.desc()).limit(limit)
            ).all()
            if len(rows) == limit:
                boundary = rows[-1][1]
                rows += session.execute(
                    select(*columns).where(self._where(epoch), TrendingScoreRow.score == boundary)
                ).all()
        best = {k: (s, c, v) for k, s, c, v in rows}
        chosen = sorted(best.items(), key=lambda item: (-item[1][0], item[0]))[:limit]
        return _ordered((k, self._tally(s, c, v, epoch, at)) for k, (s, c, v) in chosen)

    def prune(self, at: datetime) -> None:
        epoch = self._epoch(at)
        stale = at - timedelta(seconds=2 * generation_length(self.half_life))
        with self.store.session() as session:
            session.execute(
                delete(TrendingScoreRow).where(
                    (TrendingScoreRow.half_life == self.half_life) & (TrendingScoreRow.epoch < epoch)
                )
            )
            # Rows of another half-life (a config change) once nobody can still be using it.
            session.execute(
                delete(TrendingScoreRow).where(
                    (TrendingScoreRow.half_life != self.half_life) & (TrendingScoreRow.updated_at < stale)
                )
            )


# Adds one batch's deltas atomically (a script runs alone on the server) in one round
# trip. KEYS: per generation touched, its score, clicks and views keys. ARGV[1]: TTL in
# seconds; then per delta: generation number (1-based, in KEYS order), article key, score
# increment (Python's repr of the float: Redis parses it back to the same double, which
# keeps Redis and the database bit-identical), clicks, views.
_RECORD_LUA = """
local ttl = tonumber(ARGV[1])
for i = 2, #ARGV, 5 do
  local g = (tonumber(ARGV[i]) - 1) * 3
  redis.call('ZINCRBY', KEYS[g + 1], ARGV[i + 2], ARGV[i + 1])
  if ARGV[i + 3] ~= '0' then redis.call('HINCRBY', KEYS[g + 2], ARGV[i + 1], ARGV[i + 3]) end
  if ARGV[i + 4] ~= '0' then redis.call('HINCRBY', KEYS[g + 3], ARGV[i + 1], ARGV[i + 4]) end
end
for k = 1, #KEYS do redis.call('EXPIRE', KEYS[k], ttl) end
return #KEYS
"""
# Deltas per script call: bounds how long one call holds the Redis server (about a
# millisecond per thousand); a bigger batch is applied in several atomic steps.
_REDIS_DELTAS_PER_CALL = 2000


class RedisScorer(Scorer):
    """Scores in Redis sorted sets, shared by every worker: used when REDIS_URL is set.

    Per generation: `{prefix}:<half-life>:<epoch>:score` (sorted set: article key ->
    points at the epoch), `...:clicks` and `...:views` (hashes: article key -> count). The
    braces make the prefix a Redis Cluster hash tag: all trending keys share one slot, so
    a batch is one atomic script there too (the data is small: one member per article).
    Keys expire two generations after their last write; by then nothing reads them.
    """

    name = "redis"

    def __init__(self, client: Any, weights: Mapping[str, float], half_life: int, *, prefix: str) -> None:
        super().__init__(weights, half_life)
        self.client = client
        self.prefix = prefix
        self._record_script = client.register_script(_RECORD_LUA)

    def _keys(self, epoch: int) -> tuple[str, str, str]:
        base = f"{{{self.prefix}}}:{self.half_life}:{epoch}"
        return f"{base}:score", f"{base}:clicks", f"{base}:views"

    def record(self, signals: Sequence[Signal]) -> int:
        deltas = list(increments(signals, self.weights, self.half_life).items())
        ttl = str(2 * generation_length(self.half_life))
        for start in range(0, len(deltas), _REDIS_DELTAS_PER_CALL):
            generations: dict[int, int] = {}
            args: list[str] = [ttl]
            for (epoch, key), delta in deltas[start : start + _REDIS_DELTAS_PER_CALL]:
                number = generations.setdefault(epoch, len(generations) + 1)
                args += [str(number), key, repr(delta.score), str(delta.clicks), str(delta.views)]
            keys = [name for epoch in generations for name in self._keys(epoch)]
            self._record_script(keys=keys, args=args)
        return len(signals)

    def _counts(self, epoch: int, keys: Sequence[str]) -> tuple[list, list]:
        _, clicks_key, views_key = self._keys(epoch)
        pipe = self.client.pipeline(transaction=False)
        pipe.hmget(clicks_key, list(keys))
        pipe.hmget(views_key, list(keys))
        clicks, views = pipe.execute()
        return clicks, views

    def scores(self, keys: Sequence[str], at: datetime) -> dict[str, Tally]:
        epoch = self._epoch(at)
        score_key, clicks_key, views_key = self._keys(epoch)
        wanted = list(dict.fromkeys(keys))
        found: dict[str, Tally] = {}
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            pipe = self.client.pipeline(transaction=False)
            pipe.zmscore(score_key, chunk)
            pipe.hmget(clicks_key, chunk)
            pipe.hmget(views_key, chunk)
            stored, clicks, views = pipe.execute()
            for key, s, c, v in zip(chunk, stored, clicks, views):
                if s is not None:
                    found[key] = self._tally(float(s), int(c or 0), int(v or 0), epoch, at)
        return found

    def top(self, at: datetime, limit: int) -> list[tuple[str, Tally]]:
        if limit <= 0:
            return []
        epoch = self._epoch(at)
        score_key = self._keys(epoch)[0]
        best = self.client.zrevrange(score_key, 0, limit - 1, withscores=True)
        if len(best) == limit:
            # Redis orders equal scores by reverse key; fetch every article tied with the
            # last place so the cut falls where ordering by key puts it.
            boundary = best[-1][1]
            best += self.client.zrangebyscore(score_key, boundary, boundary, withscores=True)
        stored = {member.decode("utf-8"): float(score) for member, score in best}
        chosen = sorted(stored.items(), key=lambda item: (-item[1], item[0]))[:limit]
        keys = [k for k, _ in chosen]
        clicks, views = self._counts(epoch, keys) if keys else ([], [])
        return _ordered(
            (k, self._tally(s, int(c or 0), int(v or 0), epoch, at)) for (k, s), c, v in zip(chosen, clicks, views)
        )

    @property
    def key_pattern(self) -> str:
        """SCAN pattern of every key this scorer's prefix owns."""
        return f"{{{self.prefix}}}:*"

    def clear(self) -> None:
        """Delete every key under this scorer's prefix (tests and benchmarks)."""
        for name in self.client.scan_iter(match=self.key_pattern, count=1000):
            self.client.delete(name)


@lru_cache(maxsize=8)
def _redis_client(url: str) -> Any:
    # One client (one connection pool) per URL per process.
    import redis

    return redis.Redis.from_url(url)


def scorer_for(settings: Settings, store: Store) -> Scorer:
    """Redis-backed when REDIS_URL is set (shared by every worker), else the database."""
    config = settings.file.trending
    weights = {kind: config.weight(kind) for kind in STORED_KINDS}
    half_life = half_life_seconds(settings)
    if settings.redis_url:
        return RedisScorer(_redis_client(settings.redis_url), weights, half_life, prefix=config.redis_key_prefix)
    return DatabaseScorer(store, weights, half_life)


# --- pins and the editor flag ----------------------------------------------------------


def pin_target(value: str) -> str:
    """How a pin is kept: an http(s) URL in canonical form (tracking parameters dropped,
    as article URLs are stored), anything else (an article key) as given."""
    value = value.strip()
    return canonical_url(value) if is_http_url(value) else value


def pins_in_force(settings: Settings, store: Store) -> list[tuple[str, str]]:
    """(target, origin) of every pin in order: config pins first, then `trending pin` ones."""
    from distributor.store.articles import pins as stored_pins

    seen: dict[str, str] = {}
    for target in settings.file.trending.pins:
        seen.setdefault(pin_target(target), "config")
    for target in stored_pins(store):
        seen.setdefault(pin_target(target), "pinned")
    return list(seen.items())


def _pin_index(article: Article, pins: Sequence[str]) -> int | None:
    for index, target in enumerate(pins):
        if target in (article.key, article.url):
            return index
    return None


def editor_points(settings: Settings, article: Article, at: datetime) -> float:
    """The editor flag's points at `at`: its weight, decayed from publication."""
    if not article.trending:
        return 0.0
    age = max((at - article.published_at).total_seconds(), 0.0)
    return decayed(settings.file.trending.weight("editor"), age, half_life_seconds(settings))


# --- ranking ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ranked:
    """One line of the ranking: the score now and why."""

    article_key: str
    score: float
    clicks: int
    views: int
    pinned: bool
    reasons: tuple[str, ...]
    editor: bool = False
    title: str = ""
    url: str = ""

    def as_dict(self) -> dict:
        return {
            "key": self.article_key,
            "title": self.title,
            "url": self.url,
            "score": round(self.score, 6),
            "clicks": self.clicks,
            "views": self.views,
            "pinned": self.pinned,
            "editor": self.editor,
            "reasons": list(self.reasons),
        }


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def edition_scores(
    settings: Settings,
    store: Store,
    candidates: Sequence[Article],
    *,
    at: datetime,
    scorer: Scorer | None = None,
) -> dict[str, float]:
    """Points now (signals plus editor flag) of the candidate articles that have any."""
    scorer = scorer or scorer_for(settings, store)
    try:
        apply_pending_views(settings, store, candidates, scorer=scorer)
    except Exception:  # noqa: BLE001 - waiting views must not stop an edition; they stay queued
        log.exception("applying waiting page views failed; building the edition without them")
    tallies = scorer.scores([a.key for a in candidates], at)
    scores: dict[str, float] = {}
    for article in candidates:
        points = (tallies[article.key].score if article.key in tallies else 0.0) + editor_points(settings, article, at)
        if points > 0:
            scores[article.key] = points
    return scores


def ranking(
    settings: Settings,
    store: Store,
    *,
    at: datetime,
    limit: int | None = None,
    window: Any = None,
    scorer: Scorer | None = None,
) -> list[Ranked]:
    """The trending ranking at `at`: pinned articles first (pin order), then by score.

    `window` (anything with aware `.start` and `.end`, e.g. an editions.Window) limits it
    to articles published or significantly updated inside; without one every article
    with signals counts. Scores are read at `at`, over the signals recorded so far.
    """
    from distributor.store.articles import articles_by_keys, articles_in_window

    config = settings.file.trending
    limit = config.top if limit is None else limit
    scorer = scorer or scorer_for(settings, store)
    pins = pins_in_force(settings, store)
    pin_targets = [target for target, _ in pins]
    origin = dict(pins)

    if window is not None:
        candidates = articles_in_window(store, window.start, window.end)
        try:
            apply_pending_views(settings, store, candidates, scorer=scorer)
        except Exception:  # noqa: BLE001 - the ranking still shows what is recorded
            log.exception("applying waiting page views failed")
        tallies = scorer.scores([a.key for a in candidates], at)
    else:
        try:
            apply_pending_views(settings, store, None, scorer=scorer)
        except Exception:  # noqa: BLE001
            log.exception("applying waiting page views failed")
        # The best by stored signals, plus every article that may still beat them with
        # its editor flag or lead as a pin; their exact scores decide.
        best = scorer.top(at, limit)
        horizon = at - timedelta(seconds=generation_length(scorer.half_life))
        with store.session() as session:
            flagged = list(
                session.scalars(
                    select(ArticleRow.key).where(ArticleRow.trending.is_(True), ArticleRow.published_at >= horizon)
                )
            )
            pinned_keys = list(
                session.scalars(
                    select(ArticleRow.key).where(ArticleRow.key.in_(pin_targets) | ArticleRow.url.in_(pin_targets))
                )
            ) if pin_targets else []
        keys = list(dict.fromkeys([k for k, _ in best] + flagged + pinned_keys))
        candidates = articles_by_keys(store, keys)
        tallies = scorer.scores([a.key for a in candidates], at)

    lines: list[tuple[tuple, Ranked]] = []
    for article in candidates:
        tally = tallies.get(article.key, Tally(0.0))
        flag = editor_points(settings, article, at)
        score = tally.score + flag
        pin = _pin_index(article, pin_targets)
        if pin is None and score <= 0:
            continue
        reasons: list[str] = []
        if pin is not None:
            target = pin_targets[pin]
            reasons.append("pinned (config)" if origin[target] == "config" else "pinned")
        if tally.clicks:
            reasons.append(_plural(tally.clicks, "click"))
        if tally.views:
            reasons.append(_plural(tally.views, "view"))
        if article.trending:
            reasons.append("editor flag")
        line = Ranked(
            article_key=article.key,
            score=score,
            clicks=tally.clicks,
            views=tally.views,
            pinned=pin is not None,
            reasons=tuple(reasons),
            editor=article.trending,
            title=article.title,
            url=article.url,
        )
        order = (0, pin, 0.0, article.key) if pin is not None else (1, 0, -score, article.key)
        lines.append((order, line))
    lines.sort(key=lambda item: item[0])
    return [line for _, line in lines[:limit]]


# --- click links -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Click:
    """What a /c/ token carries: which article, where to, from which issue and channel."""

    article_key: str
    target: str
    run_id: int | None = None
    channel: str = "email"


@lru_cache(maxsize=8)
def _click_serializer(secret: str) -> URLSafeSerializer:
    return URLSafeSerializer(secret, salt=CLICK_SALT, signer_kwargs={"digest_method": hashlib.sha256})


def click_token(settings: Settings, click: Click) -> str:
    """The signed token of a click link (URL-safe; compressed when that is shorter)."""
    if not _CHANNEL.match(click.channel):
        raise ValueError(f"channel {click.channel!r} is not a channel name (lowercase letters, digits, - and _)")
    payload = [click.article_key, click.target, click.run_id, click.channel]
    return _click_serializer(settings.secret_key).dumps(payload)


def read_click(settings: Settings, token: str) -> Click:
    """The click a token carries; ClickRefused when it is not one we signed."""
    if len(token) > MAX_TOKEN_CHARS:
        raise ClickRefused("link token too long")
    try:
        payload = _click_serializer(settings.secret_key).loads(token)
    except BadData:
        raise ClickRefused("link token not valid") from None
    if not (
        isinstance(payload, list)
        and len(payload) == 4
        and isinstance(payload[0], str)
        and isinstance(payload[1], str)
        and (payload[2] is None or (isinstance(payload[2], int) and not isinstance(payload[2], bool)))
        and isinstance(payload[3], str)
        and _CHANNEL.match(payload[3])
    ):
        raise ClickRefused("link token not valid")
    return Click(payload[0], payload[1], payload[2], payload[3])


def tracked_url(
    settings: Settings,
    article: Article,
    *,
    run_id: int | None = None,
    channel: str = "email",
    target: str | None = None,
) -> str:
    """The link to put in a message for `article`.

    With click tracking on: `{PUBLIC_BASE_URL}/c/{token}`, which counts the click and
    redirects to `target` (default: the article URL; a renderer may pass the article URL
    with its UTM parameters added, which are tracking parameters and so still the
    article's own URL). With it off: `target` (or the article URL) itself.
    """
    destination = target or article.url
    if not settings.file.trending.click_tracking:
        return destination
    token = click_token(settings, Click(article.key, destination, run_id, channel))
    return f"{settings.public_base_url}/c/{token}"


def click_links(settings: Settings, *, run_id: int | None = None, channel: str = "email"):  # noqa: ANN201
    """A `link_url(article) -> str` callable for renderers that take one (Telegram)."""

    def link_url(article: Article) -> str:
        return tracked_url(settings, article, run_id=run_id, channel=channel)

    return link_url


def site_domain(settings: Settings) -> str:
    """The site's host without a leading "www.": the domain click targets must be on."""
    host = (urlsplit(settings.site.base_url).hostname or "").lower().rstrip(".")
    return host[4:] if host.startswith("www.") and host.count(".") >= 2 else host


def on_site(settings: Settings, url: str) -> bool:
    """Whether `url` is an http(s) URL on the site's domain or one of its subdomains."""
    if not is_http_url(url):
        return False
    host = (urlsplit(url).hostname or "").lower().rstrip(".")
    domain = site_domain(settings)
    return bool(domain) and (host == domain or host.endswith("." + domain))


def click_destination(settings: Settings, click: Click, article: Article | None) -> str:
    """Where a verified click may go: its signed target, if that is the article's page.

    - The target must be an absolute http(s) URL with no control characters or spaces.
    - Known article: the target must be the article's own URL, up to tracking parameters
      (canonical forms equal), so the UTM parameters a renderer adds are allowed and
      nothing else is: even a leaked SECRET_KEY cannot turn our domain into an open
      redirect to arbitrary pages through a stored article's key.
    - Unknown article (deleted since the message went out, or another deployment's
      store): the reader still gets where the link promised, but only on the site's own
      domain (see site_domain); anything else is refused. No click is recorded then.
    Raises ClickRefused naming the reason.
    """
    target = click.target
    if _CONTROL.search(target) or len(target) > MAX_URL_CHARS or not is_http_url(target):
        raise ClickRefused("link target is not an http(s) URL")
    if article is not None:
        if canonical_url(target) != canonical_url(article.url):
            raise ClickRefused("link target is not the article's URL")
        return target
    if not on_site(settings, target):
        raise ClickRefused("link target is not on the site")
    return target


def resolve_click(settings: Settings, store: Store, token: str) -> tuple[Click, Article | None, str]:
    """Verify a /c/ token and look its article up: (click, article or None, target)."""
    from distributor.short_clicks import is_short, resolve_short
    from distributor.store.articles import articles_by_keys

    if is_short(token):
        return resolve_short(settings, store, token)
    click = read_click(settings, token)
    found = articles_by_keys(store, [click.article_key])
    article = found[0] if found else None
    return click, article, click_destination(settings, click, article)


def record_click(
    settings: Settings, store: Store, click: Click, *, at: datetime, scorer: Scorer | None = None
) -> None:
    """Count one click: the article's score, and the (article, run, channel) tally."""
    scorer = scorer or scorer_for(settings, store)
    scorer.record([Signal(click.article_key, "click", at)])
    with store.session() as session:
        upsert(
            session,
            TrendingClickRow,
            [
                {
                    "article_key": click.article_key,
                    "run_id": click.run_id or 0,
                    "channel": click.channel,
                    "clicks": 1,
                    "first_at": at,
                    "last_at": at,
                }
            ],
            keys=("article_key", "run_id", "channel"),
            add=("clicks",),
            replace=("last_at",),
        )


def counts_as_reader(settings: Settings, user_agent: str | None) -> bool:
    """False for link-preview fetchers and crawlers (trending.uncounted_agents)."""
    agent = (user_agent or "").casefold()
    return not any(fragment.casefold() in agent for fragment in settings.file.trending.uncounted_agents)


def click_counts(store: Store, *, run_id: int | None = None) -> list[dict]:
    """Click tallies (article, run, channel, clicks), optionally of one run; stable order."""
    query = select(TrendingClickRow)
    if run_id is not None:
        query = query.where(TrendingClickRow.run_id == run_id)
    with store.session() as session:
        rows = session.scalars(query).all()
        out = [
            {"article_key": r.article_key, "run_id": r.run_id or None, "channel": r.channel, "clicks": r.clicks}
            for r in rows
        ]
    return sorted(out, key=lambda r: (r["run_id"] or 0, r["channel"], r["article_key"]))


# --- page views ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PageViews:
    """One entry of a page-views push: `count` views of a canonical URL at `at`."""

    url: str
    count: int
    at: datetime


@dataclass
class PageViewReport:
    """What a push did: views credited to articles, views left waiting, entries refused."""

    counted_articles: int = 0
    counted_views: int = 0
    pending_urls: int = 0
    pending_views: int = 0
    rejected: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "counted": {"articles": self.counted_articles, "views": self.counted_views},
            "pending": {"urls": self.pending_urls, "views": self.pending_views},
            "rejected": self.rejected,
        }


def _entry(settings: Settings, item: object, now: datetime) -> PageViews:
    if not isinstance(item, dict):
        raise ValueError("entry must be an object {\"url\": ..., \"count\": n}")
    unknown = sorted(set(item) - {"url", "count", "at"})
    if unknown:
        raise ValueError(f"unknown field(s): {', '.join(unknown)}")
    url = item.get("url")
    if not isinstance(url, str) or not is_http_url(url) or _CONTROL.search(url.strip()):
        raise ValueError("url must be an absolute http(s) URL")
    url = canonical_url(url)
    if len(url) > MAX_URL_CHARS:
        raise ValueError(f"url longer than {MAX_URL_CHARS} characters")
    count = item.get("count")
    limit = settings.file.trending.max_views_per_entry
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError("count must be a whole number of views, at least 1")
    if count > limit:
        raise ValueError(f"count {count} is more than {limit} (trending.max_views_per_entry)")
    at = now
    raw_at = item.get("at")
    if raw_at is not None:
        if not isinstance(raw_at, str):
            raise ValueError("at must be an ISO 8601 time")
        try:
            moment = datetime.fromisoformat(raw_at.strip())
        except ValueError:
            raise ValueError(f"at {raw_at!r} is not an ISO 8601 time") from None
        if moment.tzinfo is None:
            # Like feed dates without a zone: the site's local time.
            moment = moment.replace(tzinfo=settings.tz)
        # Views cannot have happened after we received them; a fast clock is clamped.
        at = min(moment.astimezone(UTC), now)
    return PageViews(url=url, count=count, at=at)


def parse_pageviews(settings: Settings, body: bytes, *, now: datetime) -> tuple[list[PageViews], list[dict]]:
    """The entries of a page-views push and the refused ones ({"index", "reason"}).

    Body: {"views": [{"url": ..., "count": n, "at": "ISO time (optional)"}, ...]}. Each
    entry stands on its own; PayloadError when the body as a whole is unusable.
    """
    try:
        data = jsonlimits.loads(body)
    except jsonlimits.JsonBodyError as exc:
        raise PayloadError(str(exc)) from None
    if not isinstance(data, dict) or not isinstance(data.get("views"), list):
        raise PayloadError('body must be {"views": [{"url": ..., "count": n, "at": ...}, ...]}')
    if not data["views"]:
        raise PayloadError('"views" is an empty list')
    entries: list[PageViews] = []
    rejected: list[dict] = []
    for index, item in enumerate(data["views"]):
        try:
            entries.append(_entry(settings, item, now))
        except ValueError as exc:
            rejected.append({"index": index, "reason": str(exc)})
    return entries, rejected


def _article_keys_by_url(store: Store, urls: Sequence[str]) -> dict[str, str]:
    # Two stored articles may share a URL (a CMS that re-keyed a story): the views go to
    # the newest, ties by key, so the choice is the same on every call.
    found: dict[str, tuple] = {}
    wanted = list(dict.fromkeys(urls))
    with store.session() as session:
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            query = select(ArticleRow.url, ArticleRow.key, ArticleRow.published_at).where(ArticleRow.url.in_(chunk))
            for url, key, published in session.execute(query):
                rank = (-published.timestamp(), key)
                if url not in found or rank < found[url][0]:
                    found[url] = (rank, key)
    return {url: key for url, (_, key) in found.items()}


def _minute(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


def record_pageviews(
    settings: Settings,
    store: Store,
    entries: Sequence[PageViews],
    *,
    now: datetime,
    scorer: Scorer | None = None,
) -> PageViewReport:
    """Credit views to the articles with those URLs; keep the rest waiting (per minute).

    URLs are matched in canonical form (as articles.url stores them), so tracking
    parameters never split one article's count.
    """
    scorer = scorer or scorer_for(settings, store)
    report = PageViewReport()
    entries = [PageViews(canonical_url(e.url), e.count, e.at) for e in entries]
    keys = _article_keys_by_url(store, [e.url for e in entries])
    signals = [Signal(keys[e.url], "view", e.at, e.count) for e in entries if e.url in keys]
    scorer.record(signals)
    report.counted_articles = len({s.article_key for s in signals})
    report.counted_views = sum(s.count for s in signals)

    waiting: dict[tuple[str, datetime], int] = {}
    for entry in entries:
        if entry.url not in keys:
            slot = (entry.url, _minute(entry.at))
            waiting[slot] = waiting.get(slot, 0) + entry.count
    if waiting:
        rows = [{"url": url, "minute": minute, "count": count} for (url, minute), count in sorted(waiting.items())]
        with store.session() as session:
            upsert(session, PendingViewRow, rows, keys=("url", "minute"), add=("count",))
        report.pending_urls = len({url for url, _ in waiting})
        report.pending_views = sum(waiting.values())
    prune_pending(settings, store, now=now)
    return report


def prune_pending(settings: Settings, store: Store, *, now: datetime) -> int:
    """Drop waiting views older than trending.pending_view_hours; returns rows dropped."""
    cutoff = now - timedelta(hours=settings.file.trending.pending_view_hours)
    with store.session() as session:
        return session.execute(delete(PendingViewRow).where(PendingViewRow.minute < cutoff)).rowcount or 0


def apply_pending_views(
    settings: Settings,
    store: Store,
    articles: Sequence[Article] | None = None,
    *,
    scorer: Scorer | None = None,
) -> int:
    """Credit waiting page views to articles that now exist; returns the views applied.

    Call after ingest with the new and updated articles (an updated article may have a
    new URL); with `articles=None` every waiting URL is matched against the store. Each
    waiting row is claimed by deleting it (DELETE ... RETURNING), so two workers applying
    at once never count a view twice; if recording then fails the rows are put back.
    """
    with store.session() as session:
        if articles is None:
            urls = list(
                session.scalars(
                    select(PendingViewRow.url).distinct().where(PendingViewRow.url.in_(select(ArticleRow.url)))
                )
            )
        else:
            urls = sorted({a.url for a in articles})
    if not urls:
        return 0
    claimed: list[tuple[str, datetime, int]] = []
    with store.session() as session:
        for start in range(0, len(urls), _CHUNK):
            chunk = urls[start : start + _CHUNK]
            claimed += session.execute(
                delete(PendingViewRow)
                .where(PendingViewRow.url.in_(chunk))
                .returning(PendingViewRow.url, PendingViewRow.minute, PendingViewRow.count)
            ).all()
    if not claimed:
        return 0
    keys = _article_keys_by_url(store, [url for url, _, _ in claimed])
    claimed.sort(key=lambda row: (row[0], row[1]))
    signals = [Signal(keys[url], "view", minute, count) for url, minute, count in claimed if url in keys]

    def put_back(rows: Iterable[tuple[str, datetime, int]]) -> None:
        values = [{"url": url, "minute": minute, "count": count} for url, minute, count in rows]
        if values:
            with store.session() as session:
                upsert(session, PendingViewRow, values, keys=("url", "minute"), add=("count",))

    # A URL passed in whose article is not (or no longer) stored keeps waiting.
    put_back(row for row in claimed if row[0] not in keys)
    try:
        (scorer or scorer_for(settings, store)).record(signals)
    except BaseException:
        put_back(row for row in claimed if row[0] in keys)
        raise
    applied = sum(s.count for s in signals)
    if applied:
        log.info("applied %d waiting page view(s) to %d article(s)", applied, len({s.article_key for s in signals}))
    return applied


def housekeeping(settings: Settings, store: Store, *, now: datetime) -> None:
    """Periodic cleanup: expired waiting views, database score generations nobody reads."""
    prune_pending(settings, store, now=now)
    scorer_for(settings, store).prune(now)
