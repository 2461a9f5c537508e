"""Prometheus metrics: events counted where they happen, state read at scrape time.

Counters and the run-duration histogram are incremented by the code that sees the event
(delivery outcomes, SMTP reply classes, Bot API errors and 429 waits, feed fetches). In
production the worker runs several processes (Celery prefork), so prometheus-client's
multiprocess mode is used: every process writes its samples under PROMETHEUS_MULTIPROC_DIR
and the web process's `/metrics` adds them up (`distributor worker` and `web` point it at
`var/metrics/` unless it is set; `distributor run` is one process and needs none). Gauges of state (beat's tick age, queue depth,
ledger counts, workers seen) are read from the database and Redis when scraped, so they
are right whichever process answers.

Served at `/metrics` only when `[metrics] enabled = true`, and then only with the operator
bearer token (OPERATOR_TOKEN), as Prometheus's `authorization` scrape option sends it.
"""

from __future__ import annotations

import logging
import os

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

DELIVERIES = Counter(
    "distributor_deliveries_total", "Delivery outcomes recorded in the ledger.", ["channel", "status"]
)
SMTP_REPLIES = Counter(
    "distributor_smtp_replies_total", "Final SMTP replies to messages, by class (2xx, 4xx, 5xx, none).", ["reply_class"]
)
TELEGRAM_ERRORS = Counter("distributor_telegram_errors_total", "Bot API calls that failed, by kind.", ["kind"])
TELEGRAM_RETRY_AFTER = Counter(
    "distributor_telegram_retry_after_seconds_total", "Seconds Telegram asked us to wait (429 RetryAfter)."
)
FEED_FETCHES = Counter("distributor_feed_fetches_total", "Feed polls, by outcome (ok, not_modified, error).", ["outcome"])
RUN_DURATION = Histogram(
    "distributor_run_duration_seconds",
    "From a run's opening to its last delivery settled.",
    ["edition"],
    buckets=(10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, float("inf")),
)


def reply_class(code: int | None) -> str:
    return "none" if code is None else f"{code // 100}xx"


def count(metric: Counter, amount: float = 1.0, **labels: str) -> None:
    """Increment, never failing the caller (a metrics problem must not stop a send)."""
    try:
        (metric.labels(**labels) if labels else metric).inc(amount)
    except Exception:  # noqa: BLE001
        log.debug("metric %s not counted", metric, exc_info=True)


class StateCollector:
    """Gauges read at scrape time from the database and Redis."""

    def __init__(self, settings, store) -> None:  # noqa: ANN001
        self.settings, self.store = settings, store

    def collect(self):  # noqa: ANN201
        from sqlalchemy import func, select

        from distributor import monitor
        from distributor.store.models import DeliveryRow, TelegramPostRow, utcnow

        now = utcnow()
        parts = {p.name: p for p in monitor.component_health(self.settings, self.store, now)}
        up = GaugeMetricFamily("distributor_component_up", "1 when the part works (database, broker, beat, workers).", labels=["component"])
        for name in ("database", "broker", "beat", "workers"):
            if name in parts:
                up.add_metric([name], 1.0 if parts[name].ok else 0.0)
        yield up
        beat = parts.get("beat")
        if beat is not None and beat.age_seconds is not None:
            yield GaugeMetricFamily("distributor_beat_tick_age_seconds", "Seconds since the scheduler last ticked.", value=beat.age_seconds)
        workers = GaugeMetricFamily("distributor_workers_seen", "Workers that finished a task in the last minute.")
        workers.add_metric([], float(sum(1 for _, age in monitor.workers(self.store, now) if age <= 60)))
        yield workers
        if parts.get("database") and parts["database"].ok:
            ledger = GaugeMetricFamily("distributor_ledger_rows", "Ledger rows by channel and status now.", labels=["channel", "status"])
            with self.store.session() as session:
                for status, n in session.execute(select(DeliveryRow.status, func.count()).group_by(DeliveryRow.status)):
                    ledger.add_metric(["email", status], float(n))
                for status, n in session.execute(select(TelegramPostRow.status, func.count()).group_by(TelegramPostRow.status)):
                    ledger.add_metric(["telegram", status], float(n))
            yield ledger
        depth = GaugeMetricFamily("distributor_queue_depth", "Tasks waiting in each broker queue.", labels=["queue"])
        for queue, n in _queue_depths(self.settings.redis_url).items():
            depth.add_metric([queue], float(n))
        yield depth


QUEUES = ("ingest", "editions", "email", "telegram")


def _queue_depths(redis_url: str | None) -> dict[str, int]:
    if not redis_url:
        return {}
    import redis

    try:
        client = redis.Redis.from_url(redis_url, socket_connect_timeout=1, socket_timeout=1)
        return {queue: int(client.llen(queue)) for queue in QUEUES}
    except Exception:  # noqa: BLE001 - the broker being down shows as distributor_component_up
        return {}


def exposition(settings, store) -> bytes:  # noqa: ANN001
    """The text a scrape gets: every process's counters (multiprocess mode) plus state."""
    registry = CollectorRegistry()
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
    else:  # one process (tests, or a web process alone): this process's own counters
        for collector in (DELIVERIES, SMTP_REPLIES, TELEGRAM_ERRORS, TELEGRAM_RETRY_AFTER, FEED_FETCHES, RUN_DURATION):
            registry.register(collector)
    registry.register(StateCollector(settings, store))
    return generate_latest(registry)
