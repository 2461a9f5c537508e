"""The channel ledger: one row per post, shared by every channel kind.

Telegram, Mastodon and Bluesky posts are rows of one table (`telegram_posts`, named for
the first kind; `TelegramPostRow`): one row per (channel, article) and per (channel,
edition run), made unique by the database. A worker claims a row (pending -> sending)
with a conditional UPDATE before it sends anything, so a task that runs twice, or two
workers running it at once, post once. The claim is a lease (leases.py, shared with
email), renewed while the calls go out. The row then ends as:

    sent      the remote ids are recorded (every part of a split digest or thread, in order)
    unknown   the request may have reached the service but no answer came (a worker that
              died mid-send: its lease expired; for Telegram also a timeout after sending):
              never resent blindly; an operator checks the channel and can force a resend
              (`channels post --again`)
    failed    the service refused it for good (the channel is paused when the account
              or chat itself is closed to us)
    pending   not sent yet, or deferred (rate limited, a temporary failure) until
              next_attempt_at; each kind's `retry_deferred` picks it up
    held      an instant post inside the channel's quiet hours, waiting for the roundup
    skipped   a digest with nothing for this channel's sections, or a paused channel

This module is what every kind shares: the rows (ensure, claim, expire dead claims,
settle, report), the channel's run-time state (paused, moved), which channels take an
article or a digest, and what operators read (counts, posts needing a look, last posts).
How a kind sends (delivery/telegram.py, delivery/social.py) is the kinds' own; so
`channels status`, retries, pauses and a run's bookkeeping see every kind alike.

The remote ids are stored as each service gives them (Telegram message ids are numbers,
Mastodon status ids text, a Bluesky post "<at-uri> <cid>"), and reported as text.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import get_args

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from distributor import metrics
from distributor.articles import Article
from distributor.delivery import leases
from distributor.settings import ChannelConfig, ChannelKind, Settings
from distributor.store import Store
from distributor.store.articles import row_to_article
from distributor.store.models import ArticleRow, ChannelStateRow, TelegramPostRow, utcnow

log = logging.getLogger(__name__)

# The ledger's table, for the leases that renew and release its rows.
POSTS = TelegramPostRow.__table__
# Every kind that posts through this ledger: every channel kind the settings know.
KINDS: tuple[str, ...] = get_args(ChannelKind)


@dataclass(frozen=True)
class PostReport:
    """What happened to one post (or edit) in this pass."""

    channel: str
    target: str  # article key, or "run <id>"
    # sent | held | deferred | unknown | failed | skipped | exists | edited | unchanged | reposted
    status: str
    message_ids: tuple[str, ...] = ()  # the remote ids as text (see `id_texts`)
    note: str = ""
    plain_text: bool = False
    photo_refused: bool = False  # Telegram could not use the photo: posted as text

    def line(self) -> str:
        """One human-readable line."""
        ids = f" ids={','.join(self.message_ids)}" if self.message_ids else ""
        plain = " (sent as plain text)" if self.plain_text else ""
        plain += " (photo refused: posted as text)" if self.photo_refused else ""
        note = f": {self.note}" if self.note else ""
        return f"{self.channel:<12} {self.status:<9} {self.target}{ids}{plain}{note}"


@dataclass
class SendOutcome:
    """What sending a claimed post's parts in order came to, for `settle` and `report`."""

    status: str  # the row's new status
    # The remote ids posted so far, in order, as the row stores them (Telegram's numbers,
    # the other kinds' text); reports turn them into text.
    ids: list[int | str] = field(default_factory=list)
    chat_id: str = ""
    note: str = ""
    plain_text: bool = False
    retry_in: float = 0.0
    kind: str = ""  # what was posted, when not what was rendered ("text" for a refused photo)


def id_texts(ids: Iterable[int | str]) -> tuple[str, ...]:
    """Remote ids as reported: text for every kind (Telegram's message numbers in decimal),
    so a report reads and compares alike whatever the channel."""
    return tuple(str(i) for i in ids)


def fingerprint(article: Article) -> str:
    """Hash of what an edit would change: headline, standfirst, image."""
    data = json.dumps([article.title, article.standfirst, article.image_url or ""], ensure_ascii=False)
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


# --- which channels -------------------------------------------------------------------


def channel_config(settings: Settings, channel: str) -> ChannelConfig:
    """The channel's configuration; KeyError naming the configured ones if it has none."""
    try:
        return settings.channels[channel]
    except KeyError:
        known = ", ".join(settings.channels) or "none"
        raise KeyError(f"unknown channel {channel!r} (configured: {known})") from None


def instant_channels(settings: Settings, article: Article, *, kinds: Sequence[str] = KINDS) -> list[str]:
    """Channels (of `kinds`) that post this article as soon as it arrives, in config order."""
    return [name for name, config in settings.channels.items()
            if config.kind in kinds and config.instant and config.carries(article.section)]


def digest_channels(settings: Settings, edition: str, *, kinds: Sequence[str] = KINDS) -> list[str]:
    """Channels (of `kinds`) that take `edition` as a digest, in config order."""
    return [name for name, config in settings.channels.items()
            if edition in config.digests and config.kind in kinds]


def roundup_title(config: ChannelConfig, count: int) -> str:
    """The heading of a quiet-hours roundup."""
    quiet = config.quiet
    since = f" since {quiet.start:%H:%M}" if quiet else ""
    return f"{count} new stories{since}"


# --- channel state --------------------------------------------------------------------


@dataclass(frozen=True)
class ChannelState:
    """A channel's run-time state: where it posts now, and whether it is paused."""

    name: str
    chat_id: str
    paused: bool = False
    reason: str = ""
    paused_at: datetime | None = None
    migrated: bool = False


def channel_state(settings: Settings, store: Store, channel: str) -> ChannelState:
    """The channel's state: its configured destination unless Telegram moved the chat,
    paused or not."""
    config = channel_config(settings, channel)
    with store.session() as session:
        row = session.get(ChannelStateRow, channel)
        if row is None:
            return ChannelState(channel, config.destination[:64])
        return ChannelState(
            channel,
            row.chat_id or config.destination[:64],
            paused=row.paused,
            reason=row.reason,
            paused_at=row.paused_at,
            migrated=bool(row.chat_id),
        )


def _ensure_state_row(store: Store, channel: str) -> None:
    with store.session() as session:
        if session.get(ChannelStateRow, channel) is not None:
            return
    try:
        with store.session() as session:
            session.add(ChannelStateRow(channel=channel, paused=False, reason=""))
    except IntegrityError:
        pass  # another worker made it first


def pause_channel(store: Store, channel: str, reason: str, *, now: datetime | None = None) -> bool:
    """Pause a channel; True if this call paused it (so it is logged once, not per post)."""
    _ensure_state_row(store, channel)
    with store.session() as session:
        changed = session.execute(
            update(ChannelStateRow)
            .where(ChannelStateRow.channel == channel, ChannelStateRow.paused.is_(False))
            .values(paused=True, reason=reason, paused_at=now or utcnow(), updated_at=utcnow())
        ).rowcount
    if changed:
        log.error("channel paused", extra={"channel": channel, "reason": reason})
    return bool(changed)


def resume_channel(store: Store, channel: str) -> bool:
    """Unpause a channel; True if it was paused."""
    with store.session() as session:
        changed = session.execute(
            update(ChannelStateRow)
            .where(ChannelStateRow.channel == channel, ChannelStateRow.paused.is_(True))
            .values(paused=False, reason="", paused_at=None, updated_at=utcnow())
        ).rowcount
    if changed:
        log.warning("channel resumed", extra={"channel": channel})
    return bool(changed)


def move_channel(store: Store, channel: str, chat_id: str) -> None:
    """Record the chat id the channel moved to (Telegram's ChatMigrated)."""
    _ensure_state_row(store, channel)
    with store.session() as session:
        session.execute(
            update(ChannelStateRow)
            .where(ChannelStateRow.channel == channel)
            .values(chat_id=chat_id, updated_at=utcnow())
        )


# --- rows -----------------------------------------------------------------------------


def ensure_row(store: Store, channel: str, chat_id: str, *, article_id: int | None = None,
               run_id: int | None = None, status: str = "pending", held_until: datetime | None = None) -> tuple[int, bool]:
    """The post row for (channel, article) or (channel, run), creating it; (id, created)."""
    target = TelegramPostRow.article_id == article_id if article_id is not None else TelegramPostRow.run_id == run_id
    for _ in range(3):
        with store.session() as session:
            found = session.scalar(select(TelegramPostRow.id).where(TelegramPostRow.channel == channel, target))
            if found is not None:
                return found, False
        try:
            with store.session() as session:
                row = TelegramPostRow(
                    channel=channel, chat_id=str(chat_id), article_id=article_id, run_id=run_id,
                    status=status, held_until=held_until, message_ids=[], content_hash="", error="",
                    kind="", attempts=0, plain_text=False,
                )
                session.add(row)
                session.flush()
                return row.id, True
        except IntegrityError:
            continue  # another worker inserted it: read theirs
    raise RuntimeError(f"could not create the post row for channel {channel}")


def post_row(store: Store, row_id: int) -> TelegramPostRow:
    """The row as stored now (detached)."""
    with store.session() as session:
        return session.get(TelegramPostRow, row_id)


def stored_article(store: Store, key_or_url: str) -> tuple[int, Article] | None:
    """The stored article with this key or URL, and its row id; None if there is none."""
    with store.session() as session:
        row = session.scalars(
            select(ArticleRow).where((ArticleRow.key == key_or_url) | (ArticleRow.url == key_or_url)).limit(1)
        ).first()
        return (row.id, row_to_article(row)) if row else None


def queue_run_posts(settings: Settings, store: Store, run_id: int) -> list[int]:
    """Write the run's digest posts, every kind's, to the ledger as pending rows, before
    any task is queued.

    With the rows there, the ledger knows the posts are owed: the run is not closed until
    they settle, and if the broker loses the posting task (a Redis restart), the
    scheduler's stale-run check sees them pending and queues the run's work again, as it
    does for queued email deliveries. Idempotent; returns the row ids.
    """
    from distributor.runs import get_run

    run = get_run(store, run_id)
    if run.timezone:
        return []  # subscriber-timezone runs are email only (see each kind's post_run)
    ids = []
    for channel in digest_channels(settings, run.edition):
        state = channel_state(settings, store, channel)
        if not state.paused:
            ids.append(ensure_row(store, channel, state.chat_id, run_id=run_id)[0])
    return ids


# --- claims ---------------------------------------------------------------------------


def claim(settings: Settings, store: Store, row_id: int, statuses: Sequence[str], now: datetime,
          holder: str, *, early: bool = False) -> bool:
    """Lease the row to `holder` ("sending") if it is in one of `statuses` (and its next
    attempt is due, unless `early`); True if this worker won it."""
    due = (TelegramPostRow.next_attempt_at.is_(None)) | (TelegramPostRow.next_attempt_at <= now)
    with store.session() as session:
        won = session.execute(
            update(TelegramPostRow)
            .where(TelegramPostRow.id == row_id, TelegramPostRow.status.in_(list(statuses)), *([] if early else [due]))
            .values(**leases.claim_values(holder, leases.lease_length(settings)), claimed_at=utcnow(),
                    attempts=TelegramPostRow.attempts + 1)
        ).rowcount
    if not won:
        expire_dead_claims(store, row_id)
    return bool(won)


def expire_dead_claims(store: Store, row_id: int | None = None) -> int:
    """Posts whose sender died mid-send (lease expired) become unknown: maybe posted, so
    never resent blindly. One row, or every such row; returns how many."""
    with store.session() as session:
        changed = session.execute(
            update(POSTS)
            .where(leases.expired(POSTS), *([POSTS.c.id == row_id] if row_id is not None else []))
            .values(status="unknown", claim=None, lease_expires_at=None,
                    error="the worker sending this stopped without an answer: it may have been posted")
        ).rowcount or 0
    if changed:
        log.warning("channel post left unknown by a stopped worker", extra={"post": row_id, "posts": changed})
    return changed


# --- outcomes -------------------------------------------------------------------------


def settle(store: Store, row_ids: Sequence[int], sent: SendOutcome, now: datetime, *, kind: str,
           network: str, hashes: dict[int, str] | None = None) -> None:
    """Write a send's outcome to its rows and release them (`kind`: what was posted, for
    edits; `network`: the channel kind, for metrics; `hashes`: each article's fingerprint)."""
    from distributor.runs import note_progress

    runs: set[int] = set()
    with store.session() as session:
        for row_id in row_ids:
            row = session.get(TelegramPostRow, row_id)
            runs.add(row.run_id)
            row.status = sent.status
            metrics.count(metrics.DELIVERIES, channel=network, status=sent.status)
            row.message_ids = list(sent.ids)
            row.chat_id = str(sent.chat_id) or row.chat_id
            row.error = sent.note
            row.plain_text = sent.plain_text
            row.claimed_at = None
            row.claim = None
            row.lease_expires_at = None
            if sent.status == "sent":
                row.posted_at = now
                row.kind = sent.kind or kind
                row.next_attempt_at = None
                if hashes and row_id in hashes:
                    row.content_hash = hashes[row_id]
            elif sent.status == "pending":
                row.next_attempt_at = now + timedelta(seconds=sent.retry_in)
    note_progress(store, runs)


def report(channel: str, target: str, sent: SendOutcome) -> PostReport:
    """The report of a send this pass made."""
    status = "deferred" if sent.status == "pending" else sent.status
    return PostReport(channel, target, status, id_texts(sent.ids), sent.note, sent.plain_text,
                      photo_refused=sent.kind == "text")


def existing(store: Store, row_id: int, target: str) -> PostReport:
    """The report of a row this pass could not claim: another worker's, or already settled."""
    row = post_row(store, row_id)
    return PostReport(row.channel, target, "exists", id_texts(row.message_ids or ()),
                      note=f"already {row.status}", plain_text=row.plain_text)


# --- what operators read --------------------------------------------------------------


def status_counts(store: Store) -> dict[str, dict[str, int]]:
    """Posts by channel and status (Telegram's plain-text fallbacks counted under
    "plain_text", posts whose photo Telegram refused under "photo_refused")."""
    counts: dict[str, dict[str, int]] = {}
    with store.session() as session:
        for channel, status, n in session.execute(
            select(TelegramPostRow.channel, TelegramPostRow.status, func.count())
            .group_by(TelegramPostRow.channel, TelegramPostRow.status)
        ):
            counts.setdefault(channel, {})[status] = n
        for channel, n in session.execute(
            select(TelegramPostRow.channel, func.count())
            .where(TelegramPostRow.plain_text.is_(True))
            .group_by(TelegramPostRow.channel)
        ):
            counts.setdefault(channel, {})["plain_text"] = n
        for channel, n in session.execute(
            select(TelegramPostRow.channel, func.count())
            .where(TelegramPostRow.photo_error != "")
            .group_by(TelegramPostRow.channel)
        ):
            counts.setdefault(channel, {})["photo_refused"] = n
    return counts


def attention(store: Store, limit: int = 20) -> list[dict]:
    """Posts an operator should look at: unknown (maybe posted), failed, sent as plain text,
    photo refused by Telegram (posted as text)."""
    with store.session() as session:
        rows = session.execute(
            select(TelegramPostRow, ArticleRow.key)
            .outerjoin(ArticleRow, ArticleRow.id == TelegramPostRow.article_id)
            .where((TelegramPostRow.status.in_(["unknown", "failed"])) | TelegramPostRow.plain_text.is_(True)
                   | (TelegramPostRow.photo_error != ""))
            .order_by(TelegramPostRow.id.desc())
            .limit(limit)
        ).all()
        return [
            {
                "channel": row.channel,
                "target": key if key is not None else f"run {row.run_id}",
                "status": row.status,
                "plain_text": row.plain_text,
                "photo_error": row.photo_error,
                "message_ids": list(row.message_ids or ()),
                "error": row.error,
            }
            for row, key in rows
        ]


def last_posts(store: Store) -> dict[str, dict]:
    """Each channel's latest post row: its status, when, and what it was (article or run)."""
    with store.session() as session:
        latest = select(TelegramPostRow.channel, func.max(TelegramPostRow.id).label("id")).group_by(TelegramPostRow.channel).subquery()
        rows = session.scalars(select(TelegramPostRow).join(latest, latest.c.id == TelegramPostRow.id))
        return {
            row.channel: {
                "status": row.status,
                "at": row.posted_at or row.created_at,
                "target": f"run {row.run_id}" if row.run_id is not None else f"article {row.article_id}",
                "run_id": row.run_id,
                "error": row.error,
                "message_ids": list(row.message_ids or ()),
            }
            for row in rows
        }
