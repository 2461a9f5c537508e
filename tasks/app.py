"""The Celery app, built from settings: queues, reliability options, the beat schedule.

With REDIS_URL the broker is Redis; without it the app runs on Celery's in-memory
transport, which only works when worker and beat share one process (`distributor run`).
The database, not the broker, holds the state: tasks can be lost or redelivered and the
ledger still sends every message once.
"""

from __future__ import annotations

import sys

from celery import Celery, signals
from kombu import Exchange, Queue

from distributor.settings import Settings, load_settings
from distributor.startup import refusal

# Separate queues so a 100,000-message email fan-out never delays a breaking Telegram
# post or a feed poll: each gets its own worker slots (`-Q`).
QUEUES = ("ingest", "editions", "email", "telegram")

ROUTES = {
    "tasks.ingest.*": {"queue": "ingest", "routing_key": "ingest"},
    "tasks.editions.*": {"queue": "editions", "routing_key": "editions"},
    "tasks.email.*": {"queue": "email", "routing_key": "email"},
    "tasks.telegram.*": {"queue": "telegram", "routing_key": "telegram"},
    "tasks.housekeeping.*": {"queue": "editions", "routing_key": "editions"},
    # A reader waits for their confirmation email: short tasks, kept off the email queue,
    # where a large edition's batches would hold them back.
    "tasks.subscribers.*": {"queue": "ingest", "routing_key": "ingest"},
}


def make_app(settings: Settings) -> Celery:
    """A Celery app for these settings (one per process)."""
    broker = settings.redis_url or "memory://"
    app = Celery(
        "distributor",
        broker=broker,
        include=["tasks.ingest", "tasks.editions", "tasks.email", "tasks.telegram", "tasks.housekeeping", "tasks.subscribers", "tasks.heartbeat"],
    )
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        # Results are never read: every outcome is in the database.
        task_ignore_result=True,
        result_backend=None,
        task_queues=[Queue(name, Exchange(name, type="direct"), routing_key=name) for name in QUEUES],
        task_default_queue="editions",
        task_routes=ROUTES,
        # A task is acknowledged only after it finished, and a worker killed mid-task
        # gives the message back; safe because every task is idempotent via the ledger.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # Sending tasks are long; a worker must not hoard messages another could run.
        worker_prefetch_multiplier=1,
        broker_transport_options=transport_options(settings),
        broker_connection_retry_on_startup=True,
        # Hard and soft limits: a stuck SMTP or Bot API call cannot hold a slot forever.
        task_soft_time_limit=600,
        task_time_limit=660,
        timezone="UTC",
        enable_utc=True,
        worker_hijack_root_logger=False,
        beat_schedule=beat_schedule(settings),
    )
    return app


def transport_options(settings: Settings) -> dict:
    """Redis transport options: when a task taken by a dead worker goes to another one.

    Redis gives an unacknowledged task to another worker once `[celery]
    visibility_timeout_seconds` have passed (settings check it exceeds the longest retry
    countdown, or a task waiting for its retry would run twice). Workers look for such
    tasks every `unacked_restore_interval` seconds, a tenth of the timeout at most, and
    scan Redis on every look (kombu's default scans one look in ten: 100 s apart).
    """
    visibility = settings.file.celery.visibility_timeout_seconds
    return {
        "visibility_timeout": visibility,
        "unacked_restore_interval": max(1, min(10, visibility // 10)),
        "unacked_restore_throttle": 1,
    }


def beat_schedule(settings: Settings) -> dict:
    """Fixed heartbeats. Edition times are NOT here: the tick reads them from the database
    each time, which is how operators change schedules without restarting beat."""
    tick = settings.file.scheduler.tick_seconds
    return {
        "scheduler-tick": {"task": "tasks.editions.tick", "schedule": float(tick), "options": {"expires": tick * 2}},
        # Every tick: a deferred delivery goes out within a tick of its retry time, and
        # claims a crashed worker left are taken over within a tick of their timeout.
        "retry-deferred-email": {"task": "tasks.email.retry_deferred", "schedule": float(tick), "options": {"expires": tick * 2}},
        "retry-deferred-telegram": {"task": "tasks.telegram.retry_deferred", "schedule": 60.0, "options": {"expires": 120}},
        "telegram-quiet-hours": {"task": "tasks.telegram.flush_quiet_hours", "schedule": 60.0, "options": {"expires": 120}},
        "housekeeping": {"task": "tasks.housekeeping.sweep", "schedule": 3600.0, "options": {"expires": 3600}},
    }


# The settings this process's app was made from (tasks.base reads the retry cap here).
SETTINGS = load_settings()
app = make_app(SETTINGS)


def _refuse_unsafe_start(process: str) -> None:
    # The same rule as `distributor worker|beat`, for `celery -A tasks.app worker|beat`
    # started directly. SystemExit, because Celery logs and swallows a receiver's
    # exceptions and would start anyway.
    message = refusal(process, SETTINGS)
    if message:
        sys.stderr.write(f"configuration error:\n{message}\n")
        raise SystemExit(2)


@signals.worker_init.connect
def _check_worker(**_: object) -> None:
    _refuse_unsafe_start("celery worker")


@signals.beat_init.connect
def _check_beat(**_: object) -> None:
    _refuse_unsafe_start("celery beat")


# SIGTERM stops senders between messages (a warm shutdown loses and repeats nothing).
from tasks import shutdown  # noqa: E402,F401 - connects the worker's signal handlers
