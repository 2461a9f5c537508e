"""SQLAlchemy models. The schema is created and upgraded by Alembic (see migrations/)."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


# The largest id an Integer key holds on every store (PostgreSQL's int4). An id from a
# URL beyond it names no row; asking the database would be an error, not a miss.
MAX_ID = 2**31 - 1


class UTCDateTime(TypeDecorator):
    """Stores aware datetimes as UTC and always returns aware UTC datetimes.

    SQLite keeps no zone, PostgreSQL's timestamptz converts to the session zone; this
    makes both give back the same value.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect):  # noqa: ANN001
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(timezone.utc)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect):  # noqa: ANN001
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


class ArticleRow(Base):
    """The current version of an article; older versions live in article_versions."""

    __tablename__ = "articles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(1024), unique=True)
    url: Mapped[str] = mapped_column(String(2048), index=True)
    title: Mapped[str] = mapped_column(Text)
    standfirst: Mapped[str] = mapped_column(Text, default="")
    section: Mapped[str] = mapped_column(String(64), index=True)
    byline: Mapped[str] = mapped_column(String(512), default="")
    dateline: Mapped[str] = mapped_column(String(256), default="")
    published_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    image_url: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    image_caption: Mapped[str] = mapped_column(Text, default="")
    # The image's size as declared by its source, in pixels; NULL when not declared
    # (and for every article stored before migration 0017).
    image_width: Mapped[int | None] = mapped_column(Integer, nullable=True)
    image_height: Mapped[int | None] = mapped_column(Integer, nullable=True)
    tags: Mapped[list] = mapped_column(JSON, default=list)
    read_minutes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    also_read: Mapped[list] = mapped_column(JSON, default=list)
    trending: Mapped[bool] = mapped_column(Boolean, default=False)
    date_missing: Mapped[bool] = mapped_column(Boolean, default=False)
    source: Mapped[str] = mapped_column(String(128), default="")
    content_hash: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer, default=1)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # When a reader-visible field (title, standfirst, image, section) last changed after
    # first publication; editions re-include the article from this time.
    significant_change_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime, nullable=True, index=True
    )


class ArticleVersionRow(Base):
    """Every version ever seen of an article, as the normalised fields."""

    __tablename__ = "article_versions"
    __table_args__ = (UniqueConstraint("article_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict] = mapped_column(JSON)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class FeedStateRow(Base):
    """What we know of a source between polls: validators for conditional GET, and its health."""

    __tablename__ = "feed_state"

    source: Mapped[str] = mapped_column(String(2048), primary_key=True)
    etag: Mapped[str | None] = mapped_column(String(512), nullable=True)
    last_modified: Mapped[str | None] = mapped_column(String(128), nullable=True)
    last_polled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_status: Mapped[str] = mapped_column(String(32), default="")
    # The most recent error, kept after the source recovers (with its time) so an
    # operator can still see what went wrong; last_status says whether it is current.
    last_error: Mapped[str] = mapped_column(Text, default="")
    rejected_total: Mapped[int] = mapped_column(Integer, default=0)
    # HTTP status of the last poll's final response; None for files or no response.
    last_http_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class PinRow(Base):
    """An editor pin: the article (by URL or key) leads the Trending group."""

    __tablename__ = "pins"

    target: Mapped[str] = mapped_column(String(2048), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookReceiptRow(Base):
    """Signatures of accepted webhook calls, so an exact replay inside the window is refused."""

    __tablename__ = "webhook_receipts"

    signature: Mapped[str] = mapped_column(String(128), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class SubscriberRow(Base):
    """A reader of the email editions. Preferences: None means "the default"."""

    __tablename__ = "subscribers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    # pending -> confirmed -> unsubscribed; bounced and complained are suppressed.
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    sections: Mapped[list | None] = mapped_column(JSON, nullable=True)
    editions: Mapped[list | None] = mapped_column(JSON, nullable=True)
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Kolkata")
    format: Mapped[str] = mapped_column(String(8), default="html")
    name: Mapped[str] = mapped_column(String(256), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    status_changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # --- email issue: subscribers ---
    # How the address came on the list (web, cli, import): the record of consent, with
    # confirmed_at, that a reader or a regulator may ask for.
    source: Mapped[str] = mapped_column(String(16), default="", server_default="")


class EditionRunRow(Base):
    """One issue of an edition: unique per (edition, timezone, local slot, attempt)."""

    __tablename__ = "edition_runs"
    __table_args__ = (
        UniqueConstraint("edition", "slot", "timezone", "attempt"),
        # The run's identity (migration 0007): the wall-clock slot, not the UTC instant,
        # so the hour repeated when clocks go back cannot open a second run.
        Index("uq_edition_runs_local_slot", "edition", "timezone", "local_slot", "attempt", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    edition: Mapped[str] = mapped_column(String(64), index=True)
    slot: Mapped[datetime] = mapped_column(UTCDateTime)
    # "" for site-time editions; the subscriber zone for local-time ones.
    timezone: Mapped[str] = mapped_column(String(64), default="")
    # The slot on the wall clock of that zone (the site's for ""), "YYYY-MM-DDTHH:MM:SS":
    # see distributor.runs.local_slot.
    local_slot: Mapped[str] = mapped_column(String(19))
    # 0 for the scheduled run; `send --force` adds 1, 2, ...
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime)
    window_end: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default="building")
    article_keys: Mapped[list] = mapped_column(JSON, default=list)
    # Where each article goes (Edition.layout()), fixed when the run is prepared.
    layout: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    # When the scheduler last re-queued this run's work because it looked lost.
    requeued_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # When a sender last recorded outcomes of this run's deliveries or posts (migration
    # 0007): a run with queued work, no live claim and no progress for
    # [scheduler] stall_seconds lost its tasks (distributor.engine.stale_runs).
    progress_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")


class DeliveryRow(Base):
    """One email to one subscriber for one run: the ledger's source of truth."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("run_id", "subscriber_id"),
        Index("ix_deliveries_status_next", "status", "next_attempt_at"),
        # Take-over looks for "sending" rows whose lease has expired.
        Index("ix_deliveries_status_lease", "status", "lease_expires_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("edition_runs.id", ondelete="CASCADE"))
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    # queued -> sent | deferred | failed | suppressed ("sending" while claimed, see `claim`)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    variant: Mapped[str] = mapped_column(String(128), default="")
    reply: Mapped[str] = mapped_column(Text, default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    deadline: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # --- email issue: dispatch ---
    # While a sender holds a row its status is "sending" and this is the holder's id
    # (hostname:pid:uuid, see delivery/leases.py): only the holder sends it.
    claim: Mapped[str | None] = mapped_column(String(128), nullable=True)
    # --- leases (issue 10, migration 0008) ---
    # The holder renews this while it works; once it has passed, the holder is taken
    # to be dead and the row may be claimed by another sender.
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class TelegramPostRow(Base):
    """One post to one channel, for an article or for an edition run (one of the two)."""

    __tablename__ = "telegram_posts"
    __table_args__ = (
        UniqueConstraint("channel", "article_id"),
        UniqueConstraint("channel", "run_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(64))
    chat_id: Mapped[str] = mapped_column(String(64))
    article_id: Mapped[int | None] = mapped_column(
        ForeignKey("articles.id", ondelete="CASCADE"), nullable=True
    )
    run_id: Mapped[int | None] = mapped_column(
        ForeignKey("edition_runs.id", ondelete="CASCADE"), nullable=True
    )
    message_ids: Mapped[list] = mapped_column(JSON, default=list)
    content_hash: Mapped[str] = mapped_column(String(64), default="")
    # pending -> sent | unknown | failed
    status: Mapped[str] = mapped_column(String(16), default="pending")
    error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    posted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    edited_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    # --- telegram issue: claims, kinds, holds (migration 0003) ---
    # Statuses: pending -> sending -> sent | unknown | failed; held (quiet hours) ->
    # sending; skipped (channel paused, or nothing for this channel in a digest).
    # "sending" is a claim: only the worker that moved the row there may send it.
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # What the post is, for edits: "text" (editMessageText), "photo"
    # (editMessageCaption), "roundup" or "digest" (never edited).
    kind: Mapped[str] = mapped_column(String(16), default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # The post went out as plain text after Telegram refused its formatting.
    plain_text: Mapped[bool] = mapped_column(Boolean, default=False)
    # Held by quiet hours until this time, then posted in the channel's roundup.
    held_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # A deferred post (flood wait too long, temporary failure) is not tried before this.
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # --- leases (issue 10, migration 0008) ---
    # The holder of a "sending" post and the end of its lease, renewed while it sends
    # (delivery/leases.py); an expired lease means the holder died mid-send.
    claim: Mapped[str | None] = mapped_column(String(128), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # --- migration 0011 ---
    # Telegram's answer when it could not fetch or use the photo of this article's post
    # ("" if it never refused it). Written before the text post goes out, so no retry
    # ever sends the photo again: the article is posted once, as text.
    photo_error: Mapped[str] = mapped_column(Text, default="")


# --- scheduling issue: live schedules and scheduler markers ---


class EditionScheduleRow(Base):
    """An edition's schedule in force; seeded from the config, changed by operators."""

    __tablename__ = "edition_schedules"

    edition: Mapped[str] = mapped_column(String(64), primary_key=True)
    cron: Mapped[str] = mapped_column(String(128))
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    # The config file's value when last seeded, so a file edit can be told from an
    # operator's change.
    config_cron: Mapped[str] = mapped_column(String(128), default="")
    changed_by: Mapped[str] = mapped_column(String(16), default="config")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SchedulerStateRow(Base):
    """Named time markers of the scheduler (e.g. the last tick), surviving restarts."""

    __tablename__ = "scheduler_state"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[datetime] = mapped_column(UTCDateTime)


# --- telegram issue: channel state (migration 0003) ---

# Status pages and the quiet-hours flush look posts up by channel and status.
Index("ix_telegram_posts_channel_status", TelegramPostRow.channel, TelegramPostRow.status)


class ChannelStateRow(Base):
    """What the bot learnt about a Telegram channel at run time: pauses and moved chats."""

    __tablename__ = "channel_state"

    channel: Mapped[str] = mapped_column(String(64), primary_key=True)
    # The chat id Telegram gave when the group became a supergroup (ChatMigrated);
    # used instead of the configured one.
    chat_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Paused after a permanent error (bot removed, no rights, chat not found) until an
    # operator runs `distributor channels resume`.
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str] = mapped_column(Text, default="")
    paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# --- trending issue: decayed scores, click tallies, waiting page views (migration 0005) ---
# Imported here, not at the top, so this block stays in one place in the file.
from sqlalchemy import BigInteger, Double  # noqa: E402


class TrendingScoreRow(Base):
    """An article's decayed score in one score generation (the database scorer).

    `score` is the sum of weight x count x 2 ** ((signal time - epoch) / half_life) over the
    signals written to this generation: "points at the epoch", so ranking is an ORDER BY
    with no decay arithmetic per row. See distributor/trending.py for generations.
    """

    __tablename__ = "trending_scores"

    half_life: Mapped[int] = mapped_column(Integer, primary_key=True)  # seconds
    epoch: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # unix seconds
    article_key: Mapped[str] = mapped_column(String(1024), primary_key=True)
    score: Mapped[float] = mapped_column(Double, default=0.0)
    clicks: Mapped[int] = mapped_column(BigInteger, default=0)
    views: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# Ranking reads one generation in score order.
Index(
    "ix_trending_scores_rank",
    TrendingScoreRow.half_life,
    TrendingScoreRow.epoch,
    TrendingScoreRow.score,
)


class TrendingClickRow(Base):
    """Clicks on our links to an article, per edition run and channel: nothing about the reader."""

    __tablename__ = "trending_clicks"

    article_key: Mapped[str] = mapped_column(String(1024), primary_key=True)
    # The edition run the link was sent in; 0 for links outside a run (instant posts).
    # Not a foreign key: tallies outlive housekeeping of old runs.
    run_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # "email", or the Telegram channel's name from [channels].
    channel: Mapped[str] = mapped_column(String(64), primary_key=True)
    clicks: Mapped[int] = mapped_column(BigInteger, default=0)
    first_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PendingViewRow(Base):
    """Page views pushed for a URL no stored article has yet, per minute, until it arrives."""

    __tablename__ = "trending_pending_views"

    # Canonical URL (tracking parameters removed), as articles.url stores it.
    url: Mapped[str] = mapped_column(String(2048), primary_key=True)
    # The minute the views happened in (UTC); views keep their age when applied later.
    minute: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0)


Index("ix_trending_pending_views_minute", PendingViewRow.minute)


# --- console issue: operator accounts and their sessions (migration 0014) ---


class OperatorRow(Base):
    """A person who may use the operator console at /admin, with one role."""

    __tablename__ = "operators"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    # viewer (reads) < editor (schedules, previews, test sends, pins) < admin (everything)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(256))  # argon2id, with its parameters
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class OperatorSessionRow(Base):
    """One signed-in browser. The cookie carries a random token; only its digest is kept,
    so a copy of the database cannot be replayed as a login."""

    __tablename__ = "operator_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# --- issue 13: inbound mail ---


class SubscriberEventRow(Base):
    """One change to a subscriber's standing, with its evidence: a bounce, a complaint,
    an unsubscribe by mail or webhook, an operator's reinstatement. Soft bounces are
    kept too (they score towards suppression) even when they change nothing yet."""

    __tablename__ = "subscriber_events"
    __table_args__ = (Index("ix_subscriber_events_subscriber_at", "subscriber_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # bounced, soft_bounce, complained, unsubscribed, reinstated
    kind: Mapped[str] = mapped_column(String(16))
    # smtp, imap, webhook, operator
    source: Mapped[str] = mapped_column(String(16))
    # The run and delivery the evidence names, when known (kept if the run is deleted).
    run_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    delivery_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # status, diagnostic, reporting MTA, message-id, provider, operator, ...
    detail: Mapped[dict] = mapped_column(JSON, default=dict)


class InboundMessageRow(Base):
    """Every inbound message or webhook event handled, once: the key is its Message-ID
    (or provider event id), so a redelivered or replayed one does nothing twice.
    Messages classified `unknown` keep their first bytes for an operator to read."""

    __tablename__ = "inbound_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(255), unique=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    source: Mapped[str] = mapped_column(String(16))
    # hard_bounce, soft_bounce, complaint, unsubscribe, auto_reply, ignored, unknown
    outcome: Mapped[str] = mapped_column(String(16), index=True)
    delivery_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    subscriber_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    detail: Mapped[dict] = mapped_column(JSON, default=dict)
    # The message's first bytes, for `unknown` ones only.
    excerpt: Mapped[str] = mapped_column(Text, default="")
