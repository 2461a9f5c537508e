"""A whole cycle in this process, without a broker: what `run --once` and `run-now --wait` do.

The same domain functions the Celery tasks call, in the same order, synchronously:
ingest -> instant Telegram posts -> open runs -> prepare -> email batches -> digest posts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import func, select

from distributor import engine
from distributor.runs import RunInfo, delivery_counts, get_run
from distributor.settings import Settings
from distributor.store import Store
from distributor.store.models import EditionRunRow, SubscriberRow

log = logging.getLogger(__name__)


@dataclass
class CycleReport:
    """What one cycle did, for the console."""

    lines: list[str] = field(default_factory=list)

    def add(self, line: str) -> None:
        log.info(line)
        self.lines.append(line)

    def __str__(self) -> str:
        return "\n".join(self.lines)


def process_run(settings: Settings, store: Store, run: RunInfo, now: datetime, report: CycleReport) -> None:
    """Prepare a run and send it everywhere, here and now."""
    from distributor.delivery import email as email_delivery
    from distributor.delivery import social as social_delivery
    from distributor.delivery import telegram as telegram_delivery

    prepared = engine.prepare_run(settings, store, run.id)
    if not prepared.ready:
        report.add(f"{run.edition}: run #{run.id} not sent: {prepared.reason}")
        return
    engine.mark_sending(store, run.id)
    email_delivery.dispatch_run(settings, store, run.id, now=now)
    telegram_delivery.post_run(settings, store, run.id, now=now)
    social_delivery.post_run(settings, store, run.id, now=now)
    engine.finish_if_done(store, run.id)
    counts = delivery_counts(store, run.id)
    final = get_run(store, run.id)
    report.add(
        f"{run.edition}: run #{run.id} {final.status}: {len(final.article_keys)} article(s); email "
        + ", ".join(f"{k} {v}" for k, v in counts.items())
    )


def run_edition_now(settings: Settings, store: Store, edition: str, now: datetime, *, force: bool = False) -> CycleReport:
    """Open this minute's run of `edition` and process it; a second call in the same minute
    finds the run already made and sends nothing."""
    report = CycleReport()
    run, created = engine.run_now(settings, store, edition, now, force=force)
    if not created:
        report.add(f"{edition}: run #{run.id} for {run.slot.isoformat()} exists already ({run.status}); nothing sent")
        return report
    process_run(settings, store, run, now, report)
    return report


def seed_demo_subscribers(settings: Settings, store: Store, report: CycleReport) -> None:
    """Import the config's demo subscribers when the list is empty and mail goes to the outbox."""
    demo = settings.file.demo.subscribers
    if not demo or settings.env.smtp_url is not None:
        return
    with store.session() as session:
        if session.scalar(select(func.count()).select_from(SubscriberRow)):
            return
    from distributor.subscribers import import_csv

    path = Path(demo)
    if not path.is_absolute():
        path = settings.config_path.parent / path
    result = import_csv(settings, store, path, confirmed=True)
    report.add(f"demo subscribers from {path.name}: {result.summary()}")


def first_cycle(settings: Settings, store: Store, now: datetime) -> CycleReport:
    """Ingest every source, post new articles, and send each edition that never ran yet.

    A fresh install thus shows real output at once; later starts only catch up.
    """
    from distributor.delivery import social as social_delivery
    from distributor.delivery import telegram as telegram_delivery
    from distributor.ingest.pipeline import ingest_sources

    report = CycleReport()
    seed_demo_subscribers(settings, store, report)
    for result in ingest_sources(settings, store):
        report.add(result.summary())
        if result.new:
            telegram_delivery.post_new_articles(settings, store, [a.key for a in result.new])
            social_delivery.post_new_articles(settings, store, [a.key for a in result.new])
        if result.updated:
            telegram_delivery.update_posted_articles(settings, store, [a.key for a in result.updated])
            social_delivery.update_posted_articles(settings, store, [a.key for a in result.updated])
    with store.session() as session:
        have_run = set(session.scalars(select(EditionRunRow.edition).distinct()))
    for name, config in settings.editions.items():
        if name in have_run or config.paused:
            continue
        run, created = engine.run_now(settings, store, name, now)
        if created:
            process_run(settings, store, run, now, report)
    return report
