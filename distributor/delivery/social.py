"""Mastodon and Bluesky delivery on the shared channel ledger.

A Mastodon or Bluesky channel's posts are rows of the same ledger as Telegram's
(delivery/ledger.py: `telegram_posts`, unique per channel and article, per channel and
run), claimed with the same leases and settled by the same code (`ledger.claim`,
`ledger.settle`, `ledger.expire_dead_claims`), so `channels status`, retries, pauses
and the run's bookkeeping see every kind alike. The row's `message_ids` hold the remote
status ids (as text: Mastodon ids are strings), `kind` is "status" for an article post,
"digest" or "roundup" for a thread. Bluesky posts are recorded as "<at-uri> <cid>" (a
reply names both, for its root and parent).

What differs from Telegram is the sending loop, here:

- every status carries an `Idempotency-Key` made from its ledger row and part
  (`distributor-<row>-<part>`): a resend after a timeout, a crash or a 5xx gets the
  status the first attempt made, never a second one. So, unlike Telegram, a post whose
  answer was lost is deferred and resent, not left "unknown";
- a digest (or a quiet-hours roundup) is a thread: each status replies to the previous
  one; an interrupted thread resumes at its first missing part, replying to the last;
- a 429 defers the post by the wait the instance's X-RateLimit-Reset gave, and holds
  the channel for every worker until then (as does an answer saying no budget is left);
  each create first takes a slot of the account's declared budget, and a budget spent
  for longer than a worker waits defers the post (`delivery.social_limits`);
- a correction edits the status in place (PUT /api/v1/statuses/:id) within
  `telegram.edit_window_hours` of posting;
- silent hours post "unlisted" (followers see it; public timelines do not), since
  Mastodon has no silent notification.

Bluesky differs again: no idempotency key, so each post gets a record key (`rkey`) made
from its ledger row and part, and a resend reads back the record the first attempt made;
no edit, so a correction is left alone (`corrections = "leave"`, the default) or the
post is deleted and posted again under the same record key (`"repost"`); the link is a
facet and a link card whose thumbnail is the article image uploaded as a blob.

Only the channel's `call` (or the outbox) does I/O, besides fetching the article image
through the feeds' SSRF-guarded fetch.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Protocol

from sqlalchemy import select, update

from distributor.articles import Article
from distributor.channels.contracts import SocialRequest, SocialResult
from distributor.channels.social_outbox import SocialOutbox
from distributor.delivery import leases, ledger
from distributor.delivery.ledger import PostReport, SendOutcome
from distributor.delivery.social_limits import LimitedTransport, SocialLimits
from distributor.render import bluesky as bluesky_render
from distributor.render import mastodon as render
from distributor.render.script import languages_in
from distributor.settings import ChannelConfig, Settings
from distributor.store import Store
from distributor.store.articles import row_to_article
from distributor.store.models import ArticleRow, TelegramPostRow, utcnow
from distributor.trending import click_links, tracked_url

log = logging.getLogger(__name__)

KINDS = ("mastodon", "bluesky")
# How long a post whose answer was lost (or that met a 5xx) waits before its resend
# (with the same Idempotency-Key, which Mastodon honours for an hour).
RESEND_SECONDS = 60.0



class Transport(Protocol):
    """Makes one request: a MastodonChannel (network) or a SocialOutbox (files)."""

    def call(self, request: SocialRequest) -> SocialResult: ...


def transport_for(settings: Settings, channel: str) -> Transport:
    """The channel's service when its credentials are in the environment, else the outbox."""
    config = settings.channels[channel]
    credentials = settings.channel_credentials(channel)
    if not credentials:
        return SocialOutbox(settings.outbox_dir / config.kind, channel)
    if config.kind == "mastodon":
        from distributor.channels.mastodon import MastodonChannel

        return MastodonChannel(config.instance_url, credentials["token"],
                               timeout=settings.file.telegram.read_timeout_seconds)
    if config.kind == "bluesky":
        from distributor.channels.bluesky import BlueskyChannel

        return BlueskyChannel(config.service, credentials["handle"], credentials["app_password"],
                              timeout=settings.file.telegram.read_timeout_seconds)
    raise ValueError(f"channels.{channel}: kind {config.kind} has no sender")


class Transports:
    """One transport per channel, made on first use (tests pass their own), each behind
    the channel's shared rate limits (holds and budgets); outboxes are not limited."""

    def __init__(self, settings: Settings, given: dict[str, Transport] | None = None, *,
                 limits: SocialLimits | None = None) -> None:
        self.settings = settings
        self._given: dict[str, Transport] = dict(given or {})
        self._made: dict[str, Transport] = {}
        self._limits = limits

    @property
    def limits(self) -> SocialLimits:
        if self._limits is None:
            self._limits = SocialLimits.from_settings(self.settings)
        return self._limits

    def __getitem__(self, channel: str) -> Transport:
        if channel not in self._made:
            transport = self._given.get(channel) or transport_for(self.settings, channel)
            if not isinstance(transport, SocialOutbox):
                transport = LimitedTransport(transport, self.limits, self.settings.channels[channel].kind, channel)
            self._made[channel] = transport
        return self._made[channel]


def _transports(settings: Settings, transports: Transports | dict | None) -> Transports:
    return transports if isinstance(transports, Transports) else Transports(settings, transports)


def social_channels(settings: Settings) -> dict[str, ChannelConfig]:
    """The configured channels this module sends for, in config order."""
    return {name: config for name, config in settings.channels.items() if config.kind in KINDS}


def max_characters(transport: Transport) -> int:
    """The instance's status limit (read once per process), or Mastodon's default."""
    reader = getattr(transport, "max_characters", None)
    found = reader() if reader else None
    return found or render.LIMITS.max_characters


def idempotency_key(row_id: int, part: int) -> str:
    """The Idempotency-Key of one status of a ledger row: the same for every attempt."""
    return f"distributor-{row_id}-{part}"


# --- the image ------------------------------------------------------------------------

_IMAGE_TYPES = ((b"\xff\xd8\xff", "image/jpeg"), (b"\x89PNG\r\n\x1a\n", "image/png"),
                (b"GIF87a", "image/gif"), (b"GIF89a", "image/gif"))


def image_type(data: bytes) -> str | None:
    """The image's media type from its first bytes (JPEG, PNG, GIF, WebP), else None."""
    for magic, kind in _IMAGE_TYPES:
        if data.startswith(magic):
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def fetch_image(settings: Settings, url: str, max_bytes: int) -> tuple[bytes, str] | None:
    """The article image's bytes and type, fetched as feeds are (address guard, redirect
    and time limits) and capped at `max_bytes`; None (logged) when it cannot be used."""
    from distributor.errors import FeedError
    from distributor.ingest.fetch import fetch

    if not url.lower().startswith(("http://", "https://")):
        return None  # never a file path: the fetch reads those for feeds
    config = settings.file.ingest.model_copy(update={"max_bytes": max_bytes})
    try:
        body = fetch(url, config=config).body or b""
    except FeedError as exc:
        log.warning("article image not fetched: posting without it (%s)", exc)
        return None
    kind = image_type(body)
    if kind is None:
        log.warning("article image is not a JPEG, PNG, GIF or WebP: posting without it")
        return None
    return body, kind


def alt_text(article: Article) -> str:
    """The image's description for screen readers: its caption, else the headline."""
    from distributor.text import shorten

    return shorten((article.image_caption or article.title).strip(), render.LIMITS.max_alt_text)


def _media_request(settings: Settings, transport: Transport, article: Article, kind: str = "mastodon") -> SocialRequest | None:
    """The upload of the article image: a Mastodon attachment with alt text, or a Bluesky
    blob for the link card's thumbnail (each capped at its service's size)."""
    if not article.image_url:
        return None
    action, cap = ("blob", bluesky_render.LIMITS.max_thumb_bytes) if kind == "bluesky" else (
        "media", render.LIMITS.max_image_bytes)
    params = {"description": alt_text(article), "file_name": "image"} if action == "media" else {}
    if isinstance(transport, SocialOutbox):
        # The demo fetches nothing: the file says which image would be uploaded.
        return SocialRequest(action, {**params, "url": article.image_url})
    found = fetch_image(settings, article.image_url, cap)
    if found is None:
        return None
    data, media_type = found
    return SocialRequest(action, {**params, "mime_type": media_type}, data=data)


_TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"


def record_key(created_at: datetime, row_id: int, part: int) -> str:
    """A Bluesky record key (a TID: 13 base32-sortable characters) for one post of a
    ledger row: the same for every attempt, different for every row and part (the row's
    creation time in microseconds plus the part, and the row id as the clock id)."""
    micros = int(created_at.timestamp() * 1_000_000) + part
    value = ((micros & ((1 << 53) - 1)) << 10) | (row_id % 1024)
    return "".join(_TID_ALPHABET[(value >> (5 * i)) & 31] for i in reversed(range(13)))


def _strong_ref(remote_id: str) -> dict[str, str]:
    uri, _, cid = remote_id.partition(" ")
    return {"uri": uri, "cid": cid}


def _part_request(settings: Settings, config: ChannelConfig, content, part: int, row_key: tuple[datetime, int],
                  posted: Sequence[str], uploaded: SocialResult | None, now: datetime) -> SocialRequest:
    """The request that posts one part (a status, or a Bluesky record) of a post or thread."""
    if config.kind == "bluesky":
        record = copy.deepcopy(content)
        record["createdAt"] = now.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        if posted:
            record["reply"] = {"root": _strong_ref(posted[0]), "parent": _strong_ref(posted[-1])}
        if uploaded is not None and uploaded.ok and "blob" in uploaded.extra and "embed" in record:
            record["embed"]["external"]["thumb"] = uploaded.extra["blob"]
        return SocialRequest("post", {"rkey": record_key(row_key[0], row_key[1], part), "record": record})
    # Mastodon takes one language per status: the one most of its letters are in (an
    # article in Hindi on an English site is "hi"; so is a thread part of Hindi headlines).
    params: dict = {"status": content, "visibility": _visibility(settings, config, now),
                    "language": languages_in(content, settings.site.language)[0]}
    if posted:
        params["in_reply_to_id"] = posted[-1]
    if uploaded is not None and uploaded.ok:
        params["media_ids"] = list(uploaded.remote_ids)
    return SocialRequest("status", params, idempotency_key=idempotency_key(row_key[1], part))


# --- sending --------------------------------------------------------------------------


def _visibility(settings: Settings, config: ChannelConfig, now: datetime) -> str:
    if config.silent is not None and config.silent.contains(now, settings.tz) and config.visibility == "public":
        return "unlisted"
    return config.visibility


def _send_statuses(settings: Settings, store: Store, transports: Transports, channel: str, row_ids: Sequence[int],
                   statuses: Sequence[str], holder: str, now: datetime, *, media: SocialRequest | None = None,
                   start_ids: Sequence[str] = ()) -> SendOutcome:
    """Post `statuses` as a thread from the first not yet posted, saving ids after each."""
    with leases.Lease(store, ledger.POSTS, holder, leases.lease_length(settings)):
        return _send_held(settings, store, transports, channel, row_ids, statuses, now, media=media,
                          start_ids=start_ids)


def _send_held(settings: Settings, store: Store, transports: Transports, channel: str, row_ids: Sequence[int],
               statuses: Sequence[str], now: datetime, *, media: SocialRequest | None,
               start_ids: Sequence[str]) -> SendOutcome:
    config = settings.channels[channel]
    transport = transports[channel]
    done = SendOutcome("sent", [str(i) for i in start_ids], ledger.channel_state(settings, store, channel).chat_id)
    first_row = min(row_ids)
    row_key = (ledger.post_row(store, first_row).created_at, first_row)
    for part, content in enumerate(statuses, 1):
        if part <= len(done.ids):
            continue
        if leases.stop_requested():
            return replace(done, status="pending", note=f"stopped before part {part}/{len(statuses)}: resumes there")
        uploaded = None
        if part == 1 and media is not None:
            uploaded = transport.call(media)
            if uploaded.outcome == "rejected":
                log.warning("%s refused the image: posting without it (%s)", config.kind, uploaded.description,
                            extra={"channel": channel, "reason": uploaded.description})
            elif not uploaded.ok:
                return _failure(store, transports, channel, uploaded, done, now, part=part, parts=len(statuses))
        result = transport.call(_part_request(settings, config, content, part, row_key, done.ids, uploaded, now))
        if not result.ok:
            return _failure(store, transports, channel, result, done, now, part=part, parts=len(statuses))
        done.ids.extend(result.remote_ids)
        with store.session() as session:
            session.execute(update(TelegramPostRow).where(TelegramPostRow.id.in_(list(row_ids)))
                            .values(message_ids=list(done.ids), claimed_at=utcnow()))
    return done


def _failure(store: Store, transports: Transports, channel: str, result: SocialResult, done: SendOutcome, now: datetime, *,
             part: int, parts: int) -> SendOutcome:
    where = f" (part {part}/{parts}, earlier parts posted)" if parts > 1 and done.ids else ""
    reason = result.description or result.outcome
    if result.outcome == "retry_after":
        # The channel is held for every worker already (social_limits), if the service
        # said so; a spent budget holds nothing: its own window defers the others.
        log.warning("social channel rate limited: post deferred", extra={"channel": channel, "retry_in": result.retry_after})
        return replace(done, status="pending", note=f"deferred: rate limited{where}", retry_in=result.retry_after)
    if result.outcome in ("ambiguous", "temporary"):
        # The resend carries the same Idempotency-Key: the instance answers the status
        # it already made, if it made one.
        log.warning("social post deferred", extra={"channel": channel, "reason": reason})
        return replace(done, status="pending", note=f"deferred: {reason}{where}", retry_in=RESEND_SECONDS)
    if result.outcome == "unauthorized":
        log.error("social channel refused its credentials", extra={"channel": channel})
        return replace(done, status="pending", note="the credentials were refused", retry_in=300.0)
    if result.outcome == "permanent":
        ledger.pause_channel(store, channel, reason)
        return replace(done, status="failed", note=f"channel paused: {reason}{where}")
    log.error("social post refused", extra={"channel": channel, "reason": reason})
    return replace(done, status="failed", note=f"{reason}{where}")


def _article_parts(settings: Settings, config: ChannelConfig, transport: Transport, article: Article,
                   link: str) -> list:
    """An article's post: one status text (Mastodon) or one record (Bluesky)."""
    if config.kind == "bluesky":
        return [bluesky_render.article_post(settings, article, link_url=link)]
    return [render.article_status(settings, article, link_url=link, max_characters=max_characters(transport))]


def _thread_parts(settings: Settings, config: ChannelConfig, transport: Transport, heading: str,
                  articles: Sequence[Article], link_url) -> list:  # noqa: ANN001 - article -> URL
    """A digest or roundup thread's posts, in order."""
    if config.kind == "bluesky":
        return bluesky_render.thread_posts(settings, heading, articles, link_url=link_url)
    return render.thread_statuses(heading, articles, link_url=link_url, max_characters=max_characters(transport))


def _start_ids(store: Store, row_id: int) -> list[str]:
    return [str(i) for i in ledger.post_row(store, row_id).message_ids or ()]


# --- article posts --------------------------------------------------------------------


def post_article(settings: Settings, store: Store, article_key: str, channel: str, *, now: datetime | None = None,
                 transports: Transports | dict | None = None, again: bool = False) -> PostReport:
    """Post one article to one Mastodon channel now; never twice."""
    now = now or utcnow()
    transports = _transports(settings, transports)
    found = ledger.stored_article(store, article_key)
    if found is None:
        raise LookupError(f"no stored article has key or URL {article_key!r}")
    article_id, article = found
    state = ledger.channel_state(settings, store, channel)
    if state.paused:
        return PostReport(channel, article.key, "skipped", note=f"channel paused: {state.reason}")
    row_id, _ = ledger.ensure_row(store, channel, state.chat_id, article_id=article_id)
    statuses = ("pending", "held") + (("unknown", "failed", "skipped") if again else ())
    holder = leases.holder_id()
    if not ledger.claim(settings, store, row_id, statuses, now, holder, early=again):
        return ledger.existing(store, row_id, article.key)
    transport = transports[channel]
    config = settings.channels[channel]
    parts = _article_parts(settings, config, transport, article, tracked_url(settings, article, channel=channel))
    start = _start_ids(store, row_id)
    media = None if start else _media_request(settings, transport, article, config.kind)
    sent = _send_statuses(settings, store, transports, channel, [row_id], parts, holder, now, media=media,
                          start_ids=start)
    ledger.settle(store, [row_id], sent, now, kind="status", hashes={row_id: ledger.fingerprint(article)},
                  network=config.kind)
    return ledger.report(channel, article.key, sent)


def post_new_articles(settings: Settings, store: Store, article_keys: Iterable[str], *, now: datetime | None = None,
                      transports: Transports | dict | None = None) -> list[PostReport]:
    """Instant mode for Mastodon channels: as Telegram's (sections, quiet hours held for
    a roundup thread, articles older than `telegram.instant_max_age_hours` skipped)."""
    if not social_channels(settings):
        return []
    now = now or utcnow()
    transports = _transports(settings, transports)
    reports = flush_quiet_hours(settings, store, now=now, transports=transports)
    max_age = timedelta(hours=settings.file.telegram.instant_max_age_hours)
    found = [f for f in (ledger.stored_article(store, key) for key in dict.fromkeys(article_keys)) if f]
    for article_id, article in sorted(found, key=lambda f: (f[1].published_at, f[1].key)):
        channels = ledger.instant_channels(settings, article, kinds=KINDS)
        if channels and now - article.published_at > max_age:
            reports += [PostReport(c, article.key, "skipped", note="older than instant_max_age_hours") for c in channels]
            continue
        for channel in channels:
            config = settings.channels[channel]
            state = ledger.channel_state(settings, store, channel)
            if state.paused:
                reports.append(PostReport(channel, article.key, "skipped", note=f"channel paused: {state.reason}"))
                continue
            quiet = config.quiet
            if quiet is not None and quiet.contains(now, settings.tz):
                until = quiet.end_after(now, settings.tz)
                _, created = ledger.ensure_row(store, channel, state.chat_id, article_id=article_id,
                                               status="held", held_until=until)
                reports.append(PostReport(channel, article.key, "held" if created else "exists",
                                          note=f"quiet hours until {until.astimezone(settings.tz):%H:%M}"))
                continue
            reports.append(post_article(settings, store, article.key, channel, now=now, transports=transports))
    return reports


def flush_quiet_hours(settings: Settings, store: Store, *, now: datetime | None = None,
                      transports: Transports | dict | None = None) -> list[PostReport]:
    """Each Mastodon channel's held articles whose quiet hours are over: one as its
    ordinary status, several as one roundup thread."""
    now = now or utcnow()
    transports = _transports(settings, transports)
    reports: list[PostReport] = []
    for channel, config in social_channels(settings).items():
        if ledger.channel_state(settings, store, channel).paused:
            continue
        with store.session() as session:
            due = [(row_id, row_to_article(article)) for row_id, article in session.execute(
                select(TelegramPostRow.id, ArticleRow)
                .join(ArticleRow, ArticleRow.id == TelegramPostRow.article_id)
                .where(TelegramPostRow.channel == channel, TelegramPostRow.status == "held",
                       TelegramPostRow.held_until <= now)
                .order_by(ArticleRow.published_at, ArticleRow.key)).all()]
        holder = leases.holder_id()
        claimed = [(r, a) for r, a in due if ledger.claim(settings, store, r, ("held",), now, holder)]
        if not claimed:
            continue
        transport = transports[channel]
        row_ids = [r for r, _ in claimed]
        articles = [a for _, a in claimed]
        if len(articles) == 1:
            statuses = _article_parts(settings, config, transport, articles[0],
                                      tracked_url(settings, articles[0], channel=channel))
            media, kind = _media_request(settings, transport, articles[0], config.kind), "status"
        else:
            statuses = _thread_parts(settings, config, transport, ledger.roundup_title(config, len(articles)),
                                     articles, click_links(settings, channel=channel))
            media, kind = None, "roundup"
        sent = _send_statuses(settings, store, transports, channel, row_ids, statuses, holder, now, media=media)
        ledger.settle(store, row_ids, sent, now, kind=kind,
                      hashes={r: ledger.fingerprint(a) for r, a in claimed}, network=config.kind)
        reports.append(ledger.report(channel, articles[0].key if len(articles) == 1 else f"roundup of {len(articles)}",
                                     sent))
    return reports


# --- digests --------------------------------------------------------------------------


def post_run(settings: Settings, store: Store, run_id: int, *, now: datetime | None = None,
             transports: Transports | dict | None = None) -> list[PostReport]:
    """An edition run as a thread on each Mastodon channel that takes the edition; never
    twice; an interrupted thread resumes at its first missing status."""
    from distributor.engine import issue_of
    from distributor.runs import get_run

    now = now or utcnow()
    run = get_run(store, run_id)
    if run.timezone:
        return []  # subscriber-timezone runs are email only
    channels = ledger.digest_channels(settings, run.edition, kinds=KINDS)
    if not channels:
        return []
    transports = _transports(settings, transports)
    edition = issue_of(settings, store, run)
    target = f"run {run_id}"
    reports: list[PostReport] = []
    for channel in channels:
        config = settings.channels[channel]
        state = ledger.channel_state(settings, store, channel)
        row_id, _ = ledger.ensure_row(store, channel, state.chat_id, run_id=run_id)
        variant = edition.for_sections(config.sections)
        skip = f"channel paused: {state.reason}" if state.paused else (
            "no articles for this channel's sections" if variant.is_empty else "")
        if skip:
            with store.session() as session:
                session.execute(update(TelegramPostRow).where(TelegramPostRow.id == row_id,
                                                              TelegramPostRow.status == "pending")
                                .values(status="skipped", error=skip))
            reports.append(PostReport(channel, target, "skipped", note=skip))
            continue
        holder = leases.holder_id()
        if not ledger.claim(settings, store, row_id, ("pending",), now, holder):
            reports.append(ledger.existing(store, row_id, target))
            continue
        transport = transports[channel]
        day = edition.window.end.astimezone(settings.tz)
        heading = f"{settings.site.name} · {edition.label} · {day:%-d %B %Y}"
        statuses = _thread_parts(settings, config, transport, heading, variant.articles,
                                 click_links(settings, run_id=run_id, channel=channel))
        sent = _send_statuses(settings, store, transports, channel, [row_id], statuses, holder, now,
                              start_ids=_start_ids(store, row_id))
        ledger.settle(store, [row_id], sent, now, kind="digest", network=settings.channels[channel].kind)
        reports.append(ledger.report(channel, target, sent))
    return reports


# --- corrections ----------------------------------------------------------------------


def update_posted_articles(settings: Settings, store: Store, article_keys: Iterable[str], *,
                           now: datetime | None = None, transports: Transports | dict | None = None) -> list[PostReport]:
    """Corrections: edit the status of a posted article whose headline, standfirst or
    image changed, within `telegram.edit_window_hours` of posting (PUT /api/v1/statuses)."""
    now = now or utcnow()
    channels = social_channels(settings)
    if not channels:
        return []
    transports = _transports(settings, transports)
    window = timedelta(hours=settings.file.telegram.edit_window_hours)
    reports: list[PostReport] = []
    for key in dict.fromkeys(article_keys):
        found = ledger.stored_article(store, key)
        if found is None:
            continue
        article_id, article = found
        new_hash = ledger.fingerprint(article)
        with store.session() as session:
            rows = session.scalars(select(TelegramPostRow).where(
                TelegramPostRow.article_id == article_id, TelegramPostRow.status == "sent",
                TelegramPostRow.channel.in_(list(channels))).order_by(TelegramPostRow.channel)).all()
        for row in rows:
            if row.content_hash == new_hash:
                continue
            if row.kind != "status" or not row.message_ids:
                reports.append(PostReport(row.channel, key, "unchanged", note=f"a {row.kind or 'post'} is not edited"))
                continue
            config = channels[row.channel]
            if config.kind == "bluesky" and config.corrections == "leave":
                reports.append(PostReport(row.channel, key, "unchanged", note="Bluesky has no edit (corrections = leave)"))
                continue
            if not window or row.posted_at is None or now - row.posted_at > window:
                reports.append(PostReport(row.channel, key, "unchanged", note="outside the edit window"))
                continue
            if config.kind == "bluesky":
                reports.append(_repost(settings, store, transports, row, article, now))
            else:
                reports.append(_edit(settings, store, transports[row.channel], row, article, new_hash))
    return reports


def _edit(settings: Settings, store: Store, transport: Transport, row: TelegramPostRow, article: Article,
          new_hash: str) -> PostReport:
    channel = row.channel
    state = ledger.channel_state(settings, store, channel)
    if state.paused:
        return PostReport(channel, article.key, "skipped", note=f"channel paused: {state.reason}")
    status_id = str(row.message_ids[0])
    text = render.article_status(settings, article, link_url=tracked_url(settings, article, channel=channel),
                                 max_characters=max_characters(transport))
    params: dict = {"id": status_id, "status": text}
    # An edit without media_ids drops the attachment: upload the (maybe new) image again.
    media = _media_request(settings, transport, article)
    if media is not None:
        uploaded = transport.call(media)
        if uploaded.ok:
            params["media_ids"] = list(uploaded.remote_ids)
    result = transport.call(SocialRequest("edit", params))
    if result.ok:
        with store.session() as session:
            session.execute(update(TelegramPostRow)
                            .where(TelegramPostRow.id == row.id, TelegramPostRow.content_hash == row.content_hash)
                            .values(content_hash=new_hash, edited_at=utcnow()))
        return PostReport(channel, article.key, "edited", (status_id,))
    if result.outcome == "permanent":
        ledger.pause_channel(store, channel, result.description)
    return PostReport(channel, article.key, "failed", (status_id,),
                      note=f"edit not applied: {result.description or result.outcome}")


def _repost(settings: Settings, store: Store, transports: Transports, row: TelegramPostRow, article: Article,
            now: datetime) -> PostReport:
    """Bluesky `corrections = "repost"`: delete the post, then post the article again
    (under the same record key). Between the two the row is pending again, so a crash
    there leaves the repost to the retry pass, not lost."""
    channel = row.channel
    if ledger.channel_state(settings, store, channel).paused:
        return PostReport(channel, article.key, "skipped", note="channel paused")
    uri = str(row.message_ids[0]).split(" ")[0]
    deleted = transports[channel].call(SocialRequest("delete", {"rkey": uri.rsplit("/", 1)[-1], "uri": uri}))
    if not deleted.ok:
        return PostReport(channel, article.key, "failed", note=f"not deleted: {deleted.description or deleted.outcome}")
    with store.session() as session:
        session.execute(update(TelegramPostRow).where(TelegramPostRow.id == row.id, TelegramPostRow.status == "sent")
                        .values(status="pending", message_ids=[], next_attempt_at=None, error="deleted for a repost"))
    report = post_article(settings, store, article.key, channel, now=now, transports=transports)
    return replace(report, status="reposted") if report.status == "sent" else report


# --- channel test ---------------------------------------------------------------------


def check_credentials(settings: Settings, channel: str) -> SocialResult | None:
    """The channel's credentials tried against its service, posting nothing: Mastodon's
    verify_credentials, Bluesky's login and getSession. "ok" names the account in
    `extra["account"]`. None when the channel has no credentials (its posts go to the
    outbox: there is nothing to check, and no file is written)."""
    transport = transport_for(settings, channel)
    if isinstance(transport, SocialOutbox):
        return None
    action = "session" if settings.channels[channel].kind == "bluesky" else "account"
    return transport.call(SocialRequest(action))


def check_channel(settings: Settings, channel: str) -> tuple[bool, str]:
    """`channels test` for a Mastodon or Bluesky channel (CLI and console): whether it
    passed, and one line saying what was checked. Secrets are never in it."""
    from distributor.channels.destinations import destination

    where = destination(settings, channel)
    result = check_credentials(settings, channel)
    if result is None:
        names = " and ".join(settings.credential_names(channel))
        return True, (f"no credentials ({names} not set): posts are written to "
                      f"{settings.outbox_dir / where.kind}/; nothing to check")
    if result.ok:
        return True, f"credentials accepted by {where.address} for {result.extra.get('account', '?')} (nothing posted)"
    return False, f"credentials check at {where.address} failed ({result.outcome}): {result.description}"


# --- retries --------------------------------------------------------------------------


def retry_deferred(settings: Settings, store: Store, *, now: datetime | None = None,
                   transports: Transports | dict | None = None) -> list[PostReport]:
    """Resend Mastodon posts left pending (rate limited, no answer, 5xx) whose next
    attempt is due, with the same Idempotency-Keys."""
    now = now or utcnow()
    channels = social_channels(settings)
    if not channels:
        return []
    transports = _transports(settings, transports)
    with store.session() as session:
        rows = session.execute(
            select(TelegramPostRow.channel, TelegramPostRow.run_id, ArticleRow.key)
            .outerjoin(ArticleRow, ArticleRow.id == TelegramPostRow.article_id)
            .where(TelegramPostRow.status == "pending", TelegramPostRow.channel.in_(list(channels)),
                   (TelegramPostRow.next_attempt_at.is_(None)) | (TelegramPostRow.next_attempt_at <= now))
            .order_by(TelegramPostRow.id)).all()
    reports: list[PostReport] = []
    runs: set[int] = set()
    for channel, run_id, key in rows:
        if key is not None:
            reports.append(post_article(settings, store, key, channel, now=now, transports=transports))
        elif run_id is not None and run_id not in runs:
            runs.add(run_id)
            reports += post_run(settings, store, run_id, now=now, transports=transports)
    return reports
