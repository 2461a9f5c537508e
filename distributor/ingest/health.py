"""Feed health: what each source did lately, for `distributor sources`, GET /api/sources and
the operator console.

Read-only over the feed state the pipeline records after every poll (status, HTTP status,
last success and last error with their times, failures in a row) and the articles table
(new and updated articles per source in the last 24 hours). The next poll follows the
scheduler's rule (engine.sources_due): due once `poll_minutes` have passed since the last
poll, taken at the first scheduler tick after that.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import distinct, func, select

from distributor.ingest.fetch import scrub_url
from distributor.settings import Settings
from distributor.store import Store
from distributor.store.models import ArticleRow, ArticleVersionRow, FeedStateRow

# The span of the new / updated article counts.
RECENT = timedelta(hours=24)


@dataclass(frozen=True)
class SourceHealth:
    """One source as an operator needs to see it."""

    name: str
    location: str  # the URL without user:password, or the file path
    configured: bool  # False: ingested by hand (`distributor ingest URL`), never polled
    enabled: bool
    poll_minutes: int | None  # None when not configured
    status: str  # "ok", "not_modified", "error", or "never" (not polled yet)
    last_polled_at: datetime | None
    http_status: int | None  # of the last poll's final response; None for files
    last_success_at: datetime | None
    last_error: str  # the most recent error, kept after a recovery; "" if none ever
    last_error_at: datetime | None
    failures_in_a_row: int
    new_24h: int  # articles first seen from this source in the last 24 hours
    updated_24h: int  # articles of this source that got a new version in the last 24 hours
    next_poll_at: datetime | None  # None: never polled yet, or the scheduler does not poll it
    due: bool  # the scheduler polls it at its next tick

    @property
    def failing(self) -> bool:
        return self.status == "error"

    def as_dict(self) -> dict:
        """JSON-ready, times as ISO 8601 UTC; the same keys for every source."""

        def when(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "name": self.name,
            "location": self.location,
            "configured": self.configured,
            "enabled": self.enabled,
            "poll_minutes": self.poll_minutes,
            "status": self.status,
            "last_polled_at": when(self.last_polled_at),
            "http_status": self.http_status,
            "last_success_at": when(self.last_success_at),
            "last_error": self.last_error,
            "last_error_at": when(self.last_error_at),
            "failures_in_a_row": self.failures_in_a_row,
            "new_24h": self.new_24h,
            "updated_24h": self.updated_24h,
            "next_poll_at": when(self.next_poll_at),
            "due": self.due,
        }


def source_health(settings: Settings, store: Store, now: datetime) -> list[SourceHealth]:
    """Every configured source in config order, then any other feed ever ingested (by
    location), with its recent record as of `now`."""
    since = now - RECENT
    with store.session() as session:
        states = {row.source: row for row in session.scalars(select(FeedStateRow))}
        new = dict(
            session.execute(
                select(ArticleRow.source, func.count())
                .where(ArticleRow.first_seen_at >= since, ArticleRow.first_seen_at <= now)
                .group_by(ArticleRow.source)
            ).all()
        )
        # Version 1 is the article's first sighting; later versions are updates.
        updated = dict(
            session.execute(
                select(ArticleRow.source, func.count(distinct(ArticleVersionRow.article_id)))
                .join(ArticleRow, ArticleRow.id == ArticleVersionRow.article_id)
                .where(
                    ArticleVersionRow.version > 1,
                    ArticleVersionRow.recorded_at >= since,
                    ArticleVersionRow.recorded_at <= now,
                )
                .group_by(ArticleRow.source)
            ).all()
        )
        session.expunge_all()

    result = []
    seen: set[str] = set()
    for source in settings.file.sources:
        location = settings.source_location(source)
        seen.add(location)
        state = states.get(location)
        next_poll = None
        if source.enabled and state is not None and state.last_polled_at is not None:
            next_poll = state.last_polled_at + timedelta(minutes=source.poll_minutes)
        # engine.sources_due's rule: never polled, or the interval has passed.
        due = source.enabled and (next_poll is None or next_poll <= now)
        result.append(
            _health(
                source.name, location, state, new, updated,
                configured=True, enabled=source.enabled, poll_minutes=source.poll_minutes,
                next_poll_at=next_poll, due=due,
            )
        )
    for location in sorted(set(states) - seen):
        # Reports name a hand-given location by the location itself, scrubbed.
        name = scrub_url(location)
        result.append(
            _health(
                name, location, states[location], new, updated,
                configured=False, enabled=False, poll_minutes=None, next_poll_at=None, due=False,
            )
        )
    return result


def _health(
    name: str,
    location: str,
    state: FeedStateRow | None,
    new: dict[str, int],
    updated: dict[str, int],
    *,
    configured: bool,
    enabled: bool,
    poll_minutes: int | None,
    next_poll_at: datetime | None,
    due: bool,
) -> SourceHealth:
    polled = state is not None and state.last_polled_at is not None
    return SourceHealth(
        name=name,
        location=scrub_url(location),
        configured=configured,
        enabled=enabled,
        poll_minutes=poll_minutes,
        status=(state.last_status or "never") if polled else "never",
        last_polled_at=state.last_polled_at if state else None,
        http_status=state.last_http_status if state else None,
        last_success_at=state.last_success_at if state else None,
        last_error=(state.last_error or "") if state else "",
        last_error_at=state.last_error_at if state else None,
        failures_in_a_row=(state.consecutive_failures or 0) if state else 0,
        new_24h=new.get(name, 0),
        updated_24h=updated.get(name, 0),
        next_poll_at=next_poll_at,
        due=due,
    )
