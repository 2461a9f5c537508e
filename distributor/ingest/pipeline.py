"""Ingest stage: fetch -> parse -> save, one source at a time, never letting one stop another."""

from __future__ import annotations

import logging
from pathlib import Path
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Callable, Sequence

from sqlalchemy import select

from distributor import metrics
from distributor.articles import Article
from distributor.errors import FeedError
from distributor.ingest.feeds import parse_feed
from distributor.ingest.fetch import Validators, fetch, scrub_url
from distributor.settings import Settings
from distributor.store import Store
from distributor.store.articles import save_articles
from distributor.store.models import FeedStateRow, utcnow

log = logging.getLogger(__name__)

# A source failing this many polls in a row logs one warning (and one more when it
# recovers); single failures are logged at INFO, later ones of a streak at DEBUG, so a
# feed that is down for a day does not fill the log with one line a poll.
WARN_AFTER_FAILURES = 3


@dataclass
class IngestReport:
    """What one source gave: counts by outcome and every rejection with its reason."""

    source: str
    new: list[Article] = field(default_factory=list)
    updated: list[Article] = field(default_factory=list)
    unchanged: int = 0
    rejected: list[str] = field(default_factory=list)
    # Items dropped because a later item of the same feed (or webhook batch) had their key.
    duplicates: list[str] = field(default_factory=list)
    not_modified: bool = False
    error: str | None = None
    http_status: int | None = None  # of the final response; None for files or no answer
    # (key, outcome) for every stored article, in input order.
    outcomes: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None

    def summary(self) -> str:
        if self.error:
            return f"{self.source}: FAILED: {self.error}"
        if self.not_modified:
            return f"{self.source}: not modified (304), nothing to do"
        duplicates = f", {len(self.duplicates)} duplicate in feed" if self.duplicates else ""
        return (
            f"{self.source}: {len(self.new)} new, {len(self.updated)} updated, "
            f"{self.unchanged} unchanged{duplicates}, {len(self.rejected)} rejected"
        )

    def as_dict(self) -> dict:
        return {
            "source": self.source,
            "ok": self.ok,
            "error": self.error,
            "not_modified": self.not_modified,
            "http_status": self.http_status,
            "new": [a.key for a in self.new],
            "updated": [a.key for a in self.updated],
            "unchanged": self.unchanged,
            "rejected": list(self.rejected),
            "duplicates": list(self.duplicates),
        }


# How old the newest item of a re-dated demo feed looks right after ingest.
REDATE_NEWEST_AGE = timedelta(minutes=5)


def redate(articles: Sequence[Article], now: datetime) -> list[Article]:
    """Shift all dates by one whole-minute offset so the newest item is 5 minutes old."""
    dated = [a.published_at for a in articles if not a.date_missing]
    if not dated:
        return list(articles)
    offset = (now - REDATE_NEWEST_AGE) - max(dated)
    offset -= timedelta(seconds=offset.total_seconds() % 60)
    return [
        a
        if a.date_missing
        else replace(
            a,
            published_at=a.published_at + offset,
            updated_at=a.updated_at + offset if a.updated_at else None,
        )
        for a in articles
    ]


def store_articles(
    settings: Settings, store: Store, articles: Sequence[Article], report: IngestReport
) -> IngestReport:
    """Save parsed articles and fill the report's new / updated / unchanged.

    The batch is saved in one transaction; should that fail, each article is saved on its
    own, so one that the database refuses is rejected (named in the report) and the rest
    are kept.
    """
    significant = settings.file.ingest.significant_fields
    try:
        saved = save_articles(store, articles, significant_fields=significant)
    except Exception:  # noqa: BLE001 - any refusal: find the article at fault, keep the rest
        log.warning("saving %d article(s) as one batch failed; saving each alone", len(articles), exc_info=True)
        saved = []
        for article in articles:
            try:
                saved += save_articles(store, [article], significant_fields=significant)
            except Exception as exc:  # noqa: BLE001
                report.rejected.append(f"{article.key}: could not be stored ({type(exc).__name__}: {exc})")
    for article, outcome in saved:
        report.outcomes.append((article.key, outcome))
        if outcome == "new":
            report.new.append(article)
        elif outcome == "updated":
            report.updated.append(article)
        else:
            report.unchanged += 1
    if report.new or report.updated:
        _apply_waiting_views(settings, store, report.new + report.updated)
    return report


def _apply_waiting_views(settings: Settings, store: Store, articles: Sequence[Article]) -> None:
    """Page views the site pushed before we knew these URLs now count for them.

    Trending is soft data: a failure here is logged and never fails the ingest.
    """
    from distributor import trending

    try:
        trending.apply_pending_views(settings, store, articles)
    except Exception:  # noqa: BLE001
        log.exception("could not apply waiting page views")


@dataclass(frozen=True)
class _PriorState:
    validators: Validators
    failures: int  # polls failed in a row before this one


def _load_state(store: Store, location: str) -> _PriorState:
    with store.session() as session:
        row = session.get(FeedStateRow, location)
        if row is None:
            return _PriorState(Validators(), 0)
        return _PriorState(
            Validators(etag=row.etag, last_modified=row.last_modified), row.consecutive_failures or 0
        )


def _save_state(
    store: Store, location: str, report: IngestReport, validators: Validators | None, now: datetime
) -> int:
    """Record the poll's outcome; returns the failures in a row, this poll included."""
    with store.session() as session:
        row = session.get(FeedStateRow, location)
        if row is None:
            row = FeedStateRow(source=location, rejected_total=0, consecutive_failures=0)
            session.add(row)
        row.last_polled_at = now
        row.last_http_status = report.http_status
        if report.error:
            row.last_status = "error"
            row.last_error = report.error
            row.last_error_at = now
            row.consecutive_failures = (row.consecutive_failures or 0) + 1
            return row.consecutive_failures
        row.last_status = "not_modified" if report.not_modified else "ok"
        row.last_success_at = now
        row.consecutive_failures = 0
        row.rejected_total = (row.rejected_total or 0) + len(report.rejected)
        # Validators are kept only after the body was stored, so a crash mid-ingest makes
        # the next poll fetch the whole feed again rather than skip it with a 304.
        if validators is not None:
            row.etag = validators.etag
            row.last_modified = validators.last_modified
        return 0


def _log_health(name: str, report: IngestReport, before: int, after: int) -> None:
    """One warning when a source reaches WARN_AFTER_FAILURES failures in a row, one when
    it recovers from such a streak; quieter levels otherwise (see WARN_AFTER_FAILURES)."""
    if report.error:
        fields = {"source": name, "error": report.error, "failures_in_a_row": after}
        if after == WARN_AFTER_FAILURES:
            log.warning(f"source failing: {after} polls in a row", extra=fields)
        elif after < WARN_AFTER_FAILURES:
            log.info("source failed", extra=fields)
        else:
            log.debug("source still failing", extra=fields)
    elif before:
        level = logging.WARNING if before >= WARN_AFTER_FAILURES else logging.INFO
        log.log(level, "source recovered", extra={"source": name, "failed_polls": before})


def ingest_source(
    settings: Settings,
    store: Store,
    location: str,
    *,
    name: str | None = None,
    redate_dates: bool = False,
) -> IngestReport:
    """Fetch, parse and save one source. Never raises for a bad feed: the report says."""
    # Reports, logs and the feed state name the source without any user:password in it.
    name = scrub_url(name or location)
    report = IngestReport(source=name)
    now = utcnow()
    validators: Validators | None = None
    prior = _load_state(store, location)
    try:
        result = fetch(location, config=settings.file.ingest, validators=prior.validators)
        validators = result.validators
        report.http_status = result.status
        if result.body is None:
            report.not_modified = True
        else:
            parsed = parse_feed(
                result.body, settings=settings, source=name, base_url=result.base_url, now=now
            )
            report.rejected = [str(r) for r in parsed.rejected]
            report.duplicates = list(parsed.duplicates)
            articles = redate(parsed.articles, now) if redate_dates else parsed.articles
            store_articles(settings, store, articles, report)
    except FeedError as exc:
        report.error = exc.reason
        if exc.status is not None:
            report.http_status = exc.status
    except Exception as exc:  # a bug in one source must not stop the others
        # The traceback once per streak of failures, not once a poll.
        log.log(
            logging.ERROR if prior.failures == 0 else logging.DEBUG,
            "ingest of %s crashed", name, exc_info=True,
        )
        report.error = f"internal error: {type(exc).__name__}: {exc}"
    for reason in report.rejected:
        log.warning("rejected item", extra={"source": name, "reason": reason})
    failures = _save_state(store, location, report, validators, now)
    _log_health(name, report, prior.failures, failures)
    metrics.count(metrics.FEED_FETCHES, outcome="error" if report.error else "not_modified" if report.not_modified else "ok")
    return report


def ingest_sources(
    settings: Settings,
    store: Store,
    names_or_locations: Sequence[str] = (),
    *,
    progress: Callable[[int, int], None] | None = None,
) -> list[IngestReport]:
    """Ingest configured sources by name, or paths and URLs; all enabled sources when empty.

    A path that is a configured source's file counts as that source (same name, same
    options), so `distributor ingest config/samples/newsarena.xml` is the sample source.
    """
    configured = [
        (s.name, settings.source_location(s), s.redate) for s in settings.file.sources
    ]
    by_name = {entry[0]: entry for entry in configured}
    by_location = {_location_key(entry[1]): entry for entry in configured}
    if not names_or_locations:
        targets = [e for e, s in zip(configured, settings.file.sources) if s.enabled]
    else:
        targets = [
            by_name.get(item) or by_location.get(_location_key(item)) or (item, item, False)
            for item in names_or_locations
        ]
    reports = []
    for name, location, redate_dates in targets:
        reports.append(ingest_source(settings, store, location, name=name, redate_dates=redate_dates))
        if progress is not None:
            progress(len(reports), len(targets))
    return reports


def _location_key(location: str) -> str:
    if "://" in location:
        return location
    return str(Path(location).resolve())


def known_locations(store: Store) -> list[str]:
    with store.session() as session:
        return list(session.scalars(select(FeedStateRow.source).order_by(FeedStateRow.source)))
