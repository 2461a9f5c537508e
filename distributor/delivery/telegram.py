"""Telegram delivery: sending a channel's posts, and what to do with each send's outcome.

The posts are rows of the channel ledger (ledger.py, shared with Mastodon and Bluesky):
claimed with a lease before anything is sent, settled after, never posted twice. What
is Telegram's own is here: the Bot API calls a post makes (rendered by render/telegram.py,
decorated with the channel's silent hours and link-preview choice), the shared rate limit
with RetryAfter honoured, chats Telegram moved, edits of posted articles, and:

- an answer lost after sending (a timeout) leaves the post `unknown`: Telegram has no
  idempotency key, so it is never resent blindly; an operator checks the channel and
  can force a resend (`channels post --again`);
- a formatting Telegram refuses is sent once as plain text;
- a photo post that Telegram refuses because it cannot fetch or use the photo goes out
  as a text message instead, once: the refusal is written to the row (`photo_error`)
  before the text is sent, and every later attempt at that row (a deferred retry,
  `--again`) sends the text only. So neither both a photo and a text post, nor the
  text twice.

Only `TelegramChannel.call` (or the outbox) does I/O; this module decides. Time comes in
as `now` (quiet hours, edit windows, posting times); claims use the wall clock because
they are about live workers, not about the newsroom's day.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import select, update

from distributor import metrics
from distributor.articles import Article
from distributor.channels.contracts import TelegramResult
from distributor.channels.telegram import TelegramChannel
from distributor.channels.telegram_outbox import TelegramOutbox, outbox_payload
from distributor.delivery import leases, ledger
from distributor.delivery.ledger import PostReport, SendOutcome
from distributor.ratelimit import (
    NoLimit,
    Rate,
    RateLimiter,
    RateWaitTooLong,
    acquire,
    shared_limiter,
)
from distributor.render import telegram as render
from distributor.render.telegram import BotCall
from distributor.settings import ChannelConfig, Settings
from distributor.store import Store
from distributor.store.articles import row_to_article
from distributor.store.models import ArticleRow, TelegramPostRow, utcnow
from distributor.trending import click_links, tracked_url

log = logging.getLogger(__name__)

KIND = "telegram"

# A chat that answers RetryAfter this many times in a row for one post is left for a
# later attempt rather than retried in place again.
MAX_FLOOD_RETRIES = 3


class Transport(Protocol):
    """Sends one Bot API call: TelegramChannel (network) or TelegramOutbox (files)."""

    def call(self, chat_id: str | int, call: BotCall) -> TelegramResult: ...


@dataclass
class Sender:
    """What a delivery needs to reach Telegram: the transport, the shared limiter, a sleep."""

    transport: Transport
    limiter: RateLimiter
    sleep: Callable[[float], None] = time.sleep


def sender_for(settings: Settings) -> Sender:
    """The Bot API (with the shared rate limit) when a token is set, else the outbox."""
    if settings.env.telegram_bot_token is None:
        return Sender(TelegramOutbox(settings.outbox_dir / "telegram"), NoLimit())
    config = settings.file.telegram
    limiter = shared_limiter(
        settings.redis_url,
        Rate(config.channel_messages, config.channel_period_seconds),
        Rate(config.overall_messages, config.overall_period_seconds),
        prefix=config.rate_key_prefix,
        in_flight_seconds=config.request_seconds,
    )
    return Sender(TelegramChannel.from_settings(settings), limiter)


def kind_of(call: BotCall) -> str:
    """"photo" for a sendPhoto post (edited by caption), else "text"."""
    return "photo" if call.method == "sendPhoto" else "text"


# --- sending one call -----------------------------------------------------------------


def decorate(call: BotCall, config: ChannelConfig, settings: Settings, now: datetime | None) -> BotCall:
    """Apply the channel's policies to a rendered call: silent at night, link previews."""
    params = dict(call.params)
    if (
        now is not None
        and call.method.startswith("send")
        and config.silent is not None
        and config.silent.contains(now, settings.tz)
    ):
        params["disable_notification"] = True
    if (
        config.disable_link_preview
        and call.method in ("sendMessage", "editMessageText")
        and "link_preview_options" not in params
        and "disable_web_page_preview" not in params
    ):
        params["link_preview_options"] = {"is_disabled": True}
    fallback = call.text_fallback and decorate(call.text_fallback, config, settings, now)
    if params == call.params and fallback is call.text_fallback:
        return call
    return replace(call, params=params, text_fallback=fallback)


def deliver(
    settings: Settings, store: Store, sender: Sender, channel: str, chat_id: str, call: BotCall
) -> tuple[TelegramResult, str]:
    """Send one call: wait for the shared rate limit, honour RetryAfter (holding the
    chat's other posts meanwhile), follow a migrated chat once. Returns (result, chat id)."""
    config = settings.file.telegram
    floods = 0
    moved = False
    while True:
        key = str(chat_id)
        try:
            permit = acquire(sender.limiter, key, max_wait=config.max_retry_wait_seconds, sleep=sender.sleep)
        except RateWaitTooLong as exc:
            return TelegramResult("temporary", retry_after=exc.wait, description=f"next slot in {exc.wait:.0f} s"), chat_id
        try:
            result = sender.transport.call(chat_id, call)
        finally:
            sender.limiter.complete(permit)
        if result.outcome != "ok":
            metrics.count(metrics.TELEGRAM_ERRORS, kind=result.outcome)
        if result.outcome == "retry_after":
            metrics.count(metrics.TELEGRAM_RETRY_AFTER, float(result.retry_after or 0))
            # Every worker's next post to this chat waits for the hold, not only ours.
            sender.limiter.hold(key, result.retry_after)
            floods += 1
            log.warning(
                "telegram flood control",
                extra={"channel": channel, "retry_after": result.retry_after, "attempt": floods},
            )
            if result.retry_after > config.max_retry_wait_seconds or floods >= MAX_FLOOD_RETRIES:
                return result, chat_id
            continue
        if result.outcome == "migrated" and result.new_chat_id and not moved:
            log.warning(
                "telegram chat migrated",
                extra={"channel": channel, "old_chat_id": chat_id, "new_chat_id": result.new_chat_id},
            )
            ledger.move_channel(store, channel, result.new_chat_id)
            chat_id, moved = result.new_chat_id, True
            continue
        return result, chat_id


def send_test_message(settings: Settings, store: Store, channel: str, *, now: datetime | None = None) -> tuple[TelegramResult, str]:
    """A short, silent test message to a channel through the normal path (shared rate
    limit, outbox files without a token); nothing is written to the ledger. (result, chat id)."""
    moment = now or utcnow()
    state = ledger.channel_state(settings, store, channel)
    stamp = moment.astimezone(settings.tz).strftime("%Y-%m-%d %H:%M %Z")
    call = BotCall(
        "sendMessage",
        {
            "text": f"<b>{render.escape_text(settings.site.name)}</b>: test message from distributor ({render.escape_text(stamp)})",
            "parse_mode": "HTML",
            "disable_notification": True,
        },
    )
    return deliver(settings, store, sender_for(settings), channel, state.chat_id, call)


def send_preview_to_test_chat(settings: Settings, store: Store, channel: str, edition) -> list[TelegramResult]:  # noqa: ANN001 - an Edition
    """The digest this channel would post for `edition`, sent to its `test_chat_id`
    through the normal path (decorations, shared rate limit, outbox without a token);
    nothing is written to the ledger. ValueError when the channel has no test chat."""
    config = settings.channels[channel]
    if not config.test_chat_id:
        raise ValueError(f"channels.{channel}.test_chat_id is not set")
    variant = edition.for_sections(config.sections)
    sender = sender_for(settings)
    results = []
    for call in render.edition_posts(settings, variant, link_url=click_links(settings, channel=channel)):
        result, _ = deliver(settings, store, sender, channel, config.test_chat_id, decorate(call, config, settings, None))
        results.append(result)
        if not result.ok:
            break
    return results


# --- sending a claimed post -----------------------------------------------------------


def _photo_error(store: Store, row_ids: Sequence[int]) -> str:
    """Telegram's refusal of these rows' photo, if it refused it before."""
    with store.session() as session:
        found = session.scalars(select(TelegramPostRow.photo_error)
                                .where(TelegramPostRow.id.in_(list(row_ids)), TelegramPostRow.photo_error != "")).first()
    return found or ""


def _record_photo_error(store: Store, row_ids: Sequence[int], description: str) -> None:
    with store.session() as session:
        session.execute(update(TelegramPostRow).where(TelegramPostRow.id.in_(list(row_ids)))
                        .values(photo_error=description or "photo refused", claimed_at=utcnow()))


def _send_calls(settings: Settings, store: Store, sender: Sender, channel: str, row_ids: Sequence[int],
                calls: Sequence[BotCall], holder: str, *, start_ids: Sequence[int] = ()) -> SendOutcome:
    """Send `calls` in order from the first not yet sent, saving ids after each part,
    renewing the rows' lease meanwhile (flood waits can be long)."""
    with leases.Lease(store, ledger.POSTS, holder, leases.lease_length(settings)):
        return _send_calls_held(settings, store, sender, channel, row_ids, calls, start_ids=start_ids)


def _send_calls_held(settings: Settings, store: Store, sender: Sender, channel: str, row_ids: Sequence[int],
                     calls: Sequence[BotCall], *, start_ids: Sequence[int] = ()) -> SendOutcome:
    """The body of `_send_calls`, under the lease.

    A photo Telegram cannot fetch or use is recorded as refused before its text fallback
    is sent; a photo refused before (an earlier attempt at these rows) is never tried again.
    """
    state = ledger.channel_state(settings, store, channel)
    done = SendOutcome("sent", list(start_ids), state.chat_id)
    refused = _photo_error(store, row_ids) if any(c.text_fallback for c in calls) else ""
    for call in calls[len(done.ids):]:
        if leases.stop_requested():
            # A warm shutdown: the parts posted are recorded; the retry pass posts the
            # rest from here (start_ids), so nothing is repeated or lost.
            return replace(done, status="pending", note=f"stopped before part {call.part}/{call.parts}: resumes there")
        if call.text_fallback is not None and refused:
            call = call.text_fallback
            done.kind, done.note = "text", f"photo refused ({refused}); posted as text"
        result, done.chat_id = deliver(settings, store, sender, channel, done.chat_id, call)
        if result.outcome == "photo_refused" and call.text_fallback is not None:
            refused = result.description or "photo refused"
            log.warning(
                "telegram could not use the photo; posting the article once as text",
                extra={"channel": channel, "reason": refused},
            )
            # Recorded before the text goes out: from here on, no attempt sends the photo.
            _record_photo_error(store, row_ids, refused)
            call = call.text_fallback
            done.kind, done.note = "text", f"photo refused ({refused}); posted as text"
            result, done.chat_id = deliver(settings, store, sender, channel, done.chat_id, call)
        if result.outcome == "formatting":
            log.error(
                "telegram refused the formatting; sending once as plain text",
                extra={"channel": channel, "part": call.part, "reason": result.description},
            )
            done.plain_text = True
            done.note = "; ".join(filter(None, [done.note, f"formatting refused ({result.description}); sent as plain text"]))
            result, done.chat_id = deliver(settings, store, sender, channel, done.chat_id,
                                            render.plain_text_fallback(call))
        if result.ok:
            done.ids.extend(result.message_ids)
            with store.session() as session:
                session.execute(update(TelegramPostRow).where(TelegramPostRow.id.in_(list(row_ids)))
                                .values(message_ids=list(done.ids), chat_id=str(done.chat_id), claimed_at=utcnow()))
            continue
        return _failure(settings, store, channel, result, done, part=call.part, parts=call.parts)
    return done


def _failure(settings: Settings, store: Store, channel: str, result: TelegramResult, done: SendOutcome,
             *, part: int, parts: int) -> SendOutcome:
    where = f" (part {part}/{parts}, earlier parts posted)" if parts > 1 and done.ids else ""
    reason = result.description or result.outcome
    # What happened first (a refused photo, refused formatting) stays in the note.
    where += f"; after {done.note}" if done.note else ""
    if result.outcome == "ambiguous":
        log.error("telegram post may or may not exist: recorded unknown, not resent",
                  extra={"channel": channel, "reason": reason})
        return replace(done, status="unknown", note=f"no answer after sending: may have been posted ({reason}){where}")
    if result.outcome == "permanent":
        ledger.pause_channel(store, channel, reason)
        return replace(done, status="failed", note=f"channel paused: {reason}{where}")
    if result.outcome in ("rejected", "formatting", "migrated", "photo_refused"):
        log.error("telegram refused a post", extra={"channel": channel, "reason": reason})
        return replace(done, status="failed", note=f"{reason}{where}")
    if result.outcome == "unauthorized":
        log.error("telegram refused the bot token: fix TELEGRAM_BOT_TOKEN", extra={"channel": channel})
        return replace(done, status="pending", note="the bot token was refused", retry_in=300.0)
    # temporary, or a flood wait longer than we wait in place: try again later.
    retry_in = result.retry_after or 60.0
    log.warning("telegram post deferred", extra={"channel": channel, "reason": reason, "retry_in": retry_in})
    after = f"; after {done.note}" if done.note else ""
    return replace(done, status="pending", note=f"deferred: {reason}{after}", retry_in=retry_in)


# --- article posts (instant mode) -------------------------------------------------------


def post_article(settings: Settings, store: Store, article_key: str, channel: str, *,
                 now: datetime | None = None, sender: Sender | None = None, again: bool = False) -> PostReport:
    """Post one article (by key or URL) to one channel now, quiet hours or not; never twice.

    `again` lets an operator resend a post left unknown, failed or skipped, or send a
    deferred one before its next attempt is due.
    """
    now = now or utcnow()
    config = ledger.channel_config(settings, channel)
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
    call = decorate(
        render.article_post(settings, article, link_url=tracked_url(settings, article, channel=channel),
                            disable_preview=config.disable_link_preview),
        config, settings, now,
    )
    sender = sender or sender_for(settings)
    sent = _send_calls(settings, store, sender, channel, [row_id], [call], holder,
                       start_ids=ledger.post_row(store, row_id).message_ids or ())
    ledger.settle(store, [row_id], sent, now, kind=kind_of(call), network=KIND,
                  hashes={row_id: ledger.fingerprint(article)})
    return ledger.report(channel, article.key, sent)


def post_new_articles(settings: Settings, store: Store, article_keys: Iterable[str], *,
                      now: datetime | None = None, sender: Sender | None = None) -> list[PostReport]:
    """Instant mode: post each new article to every channel that carries its section.

    Inside a channel's quiet hours the post is held and goes out with the others in one
    roundup when the quiet hours end (`flush_quiet_hours`, also run first here). Articles
    older than `telegram.instant_max_age_hours` are not news any more and are skipped.
    """
    now = now or utcnow()
    sender = sender or sender_for(settings)
    reports = flush_quiet_hours(settings, store, now=now, sender=sender)
    max_age = timedelta(hours=settings.file.telegram.instant_max_age_hours)
    found = [f for f in (ledger.stored_article(store, key) for key in dict.fromkeys(article_keys)) if f]
    # Oldest first, so a channel reads in publication order.
    for article_id, article in sorted(found, key=lambda f: (f[1].published_at, f[1].key)):
        channels = ledger.instant_channels(settings, article, kinds=(KIND,))
        if not channels:
            continue
        if now - article.published_at > max_age:
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
            reports.append(post_article(settings, store, article.key, channel, now=now, sender=sender))
    return reports


def flush_quiet_hours(settings: Settings, store: Store, now: datetime | None = None, *,
                      sender: Sender | None = None) -> list[PostReport]:
    """Post each channel's held articles whose quiet hours are over as ONE roundup post
    (split only if it exceeds Telegram's length limit); a single held article goes out
    as its ordinary post."""
    now = now or utcnow()
    reports: list[PostReport] = []
    for channel, config in settings.channels.items():
        if config.kind != KIND:
            continue  # delivery/social.py flushes its own
        state = ledger.channel_state(settings, store, channel)
        if state.paused:
            continue  # held posts wait for `channels resume`
        with store.session() as session:
            due = session.execute(
                select(TelegramPostRow.id, ArticleRow)
                .join(ArticleRow, ArticleRow.id == TelegramPostRow.article_id)
                .where(TelegramPostRow.channel == channel, TelegramPostRow.status == "held",
                       TelegramPostRow.held_until <= now)
                .order_by(ArticleRow.published_at, ArticleRow.key)
            ).all()
            due = [(row_id, row_to_article(article)) for row_id, article in due]
        holder = leases.holder_id()
        claimed = [(row_id, article) for row_id, article in due if ledger.claim(settings, store, row_id, ("held",), now, holder)]
        if not claimed:
            continue
        sender = sender or sender_for(settings)
        row_ids = [row_id for row_id, _ in claimed]
        articles = [article for _, article in claimed]
        if len(articles) == 1:
            calls = [render.article_post(settings, articles[0], link_url=tracked_url(settings, articles[0], channel=channel),
                                         disable_preview=config.disable_link_preview)]
            kind = kind_of(calls[0])
        else:
            calls = render.roundup_post(settings, articles, title=ledger.roundup_title(config, len(articles)),
                                        link_url=click_links(settings, channel=channel))
            kind = "roundup"
        calls = [decorate(call, config, settings, now) for call in calls]
        sent = _send_calls(settings, store, sender, channel, row_ids, calls, holder)
        ledger.settle(store, row_ids, sent, now, kind=kind, network=KIND,
                      hashes={row_id: ledger.fingerprint(article) for row_id, article in claimed})
        target = articles[0].key if len(articles) == 1 else f"roundup of {len(articles)}"
        reports.append(ledger.report(channel, target, sent))
        log.info("telegram quiet-hours roundup", extra={"channel": channel, "articles": len(articles), "status": sent.status})
    return reports


# --- digests --------------------------------------------------------------------------


def post_run(settings: Settings, store: Store, run_id: int, *, now: datetime | None = None,
             sender: Sender | None = None) -> list[PostReport]:
    """Digest mode: post an edition run to every channel that takes the edition as a digest,
    each channel its sections' variant, parts in order; never twice. A run interrupted
    mid-way (deferred) resumes at the first part not yet posted."""
    from distributor.engine import issue_of
    from distributor.runs import get_run

    now = now or utcnow()
    run = get_run(store, run_id)
    if run.timezone:
        return []  # a subscriber-timezone run is for email; channels take the site-time one
    channels = ledger.digest_channels(settings, run.edition, kinds=(KIND,))
    if not channels:
        return []
    edition = issue_of(settings, store, run)
    reports: list[PostReport] = []
    target = f"run {run_id}"
    for channel in channels:
        config = settings.channels[channel]
        state = ledger.channel_state(settings, store, channel)
        if state.paused:
            # A row queued before the pause is settled, or the run would never close.
            with store.session() as session:
                session.execute(update(TelegramPostRow).where(TelegramPostRow.channel == channel,
                                                              TelegramPostRow.run_id == run_id,
                                                              TelegramPostRow.status == "pending")
                                .values(status="skipped", error=f"channel paused: {state.reason}"))
            reports.append(PostReport(channel, target, "skipped", note=f"channel paused: {state.reason}"))
            continue
        variant = edition.for_sections(config.sections)
        row_id, _ = ledger.ensure_row(store, channel, state.chat_id, run_id=run_id)
        if variant.is_empty:
            with store.session() as session:
                session.execute(update(TelegramPostRow).where(TelegramPostRow.id == row_id,
                                                              TelegramPostRow.status == "pending")
                                .values(status="skipped", error="no articles for this channel's sections"))
            reports.append(PostReport(channel, target, "skipped", note="no articles for this channel's sections"))
            continue
        holder = leases.holder_id()
        if not ledger.claim(settings, store, row_id, ("pending",), now, holder):
            reports.append(ledger.existing(store, row_id, target))
            continue
        links = click_links(settings, run_id=run_id, channel=channel)
        calls = [decorate(c, config, settings, now) for c in render.edition_posts(settings, variant, link_url=links)]
        sender = sender or sender_for(settings)
        sent = _send_calls(settings, store, sender, channel, [row_id], calls, holder,
                           start_ids=ledger.post_row(store, row_id).message_ids or ())
        ledger.settle(store, [row_id], sent, now, kind="digest", network=KIND)
        reports.append(ledger.report(channel, target, sent))
    return reports


def preview_calls(settings: Settings, edition) -> list[dict]:
    """The Bot API calls a digest of `edition` would make, in order, for every channel that
    takes it: [{"method", "params"}] with chat_id (the configured one) in the params."""
    calls: list[dict] = []
    for channel in ledger.digest_channels(settings, edition.name, kinds=(KIND,)):
        config = settings.channels[channel]
        variant = edition.for_sections(config.sections)
        if variant.is_empty:
            continue
        for call in render.edition_posts(settings, variant, link_url=click_links(settings, channel=channel)):
            calls.append(outbox_payload(config.chat_id, decorate(call, config, settings, None)))
    return calls


# --- edits ----------------------------------------------------------------------------


def update_posted_articles(settings: Settings, store: Store, article_keys: Iterable[str], *,
                           now: datetime | None = None, sender: Sender | None = None) -> list[PostReport]:
    """Corrections: when a posted article's headline, standfirst or image changed within
    `telegram.edit_window_hours` of posting, edit its message in place (editMessageText
    for text posts, editMessageCaption for photo posts) instead of posting again."""
    now = now or utcnow()
    window = timedelta(hours=settings.file.telegram.edit_window_hours)
    reports: list[PostReport] = []
    for key in dict.fromkeys(article_keys):
        found = ledger.stored_article(store, key)
        if found is None:
            continue
        article_id, article = found
        new_hash = ledger.fingerprint(article)
        with store.session() as session:
            rows = session.scalars(
                select(TelegramPostRow)
                .where(TelegramPostRow.article_id == article_id, TelegramPostRow.status == "sent")
                .order_by(TelegramPostRow.channel)
            ).all()
        for row in rows:
            if (row.channel not in settings.channels or settings.channels[row.channel].kind != KIND
                    or row.content_hash == new_hash):
                continue
            if row.kind not in ("text", "photo") or not row.message_ids:
                reports.append(PostReport(row.channel, key, "unchanged", note=f"a {row.kind or 'post'} is not edited"))
                continue
            if not window or row.posted_at is None or now - row.posted_at > window:
                reports.append(PostReport(row.channel, key, "unchanged", note="outside the edit window"))
                continue
            reports.append(_edit(settings, store, sender, row, article, new_hash, now))
    return reports


def _edit(settings: Settings, store: Store, sender: Sender | None, row: TelegramPostRow, article: Article,
          new_hash: str, now: datetime) -> PostReport:
    channel, config = row.channel, settings.channels[row.channel]
    state = ledger.channel_state(settings, store, channel)
    if state.paused:
        return PostReport(channel, article.key, "skipped", note=f"channel paused: {state.reason}")
    call = decorate(
        render.article_edit(settings, article, kind=row.kind, message_id=int(row.message_ids[0]),
                            link_url=tracked_url(settings, article, channel=channel),
                            disable_preview=config.disable_link_preview),
        config, settings, now,
    )
    sender = sender or sender_for(settings)
    # The message lives in the chat it was posted to.
    result, chat_id = deliver(settings, store, sender, channel, row.chat_id, call)
    plain = False
    if result.outcome == "formatting":
        log.error("telegram refused the formatting of an edit; editing once as plain text",
                  extra={"channel": channel, "reason": result.description})
        plain = True
        result, chat_id = deliver(settings, store, sender, channel, chat_id, render.plain_text_fallback(call))
    if result.ok:
        # Only if nobody recorded a newer edit meanwhile (edits are idempotent anyway).
        with store.session() as session:
            session.execute(
                update(TelegramPostRow)
                .where(TelegramPostRow.id == row.id, TelegramPostRow.content_hash == row.content_hash)
                .values(content_hash=new_hash, edited_at=now, plain_text=row.plain_text or plain)
            )
        return PostReport(channel, article.key, "edited", ledger.id_texts(row.message_ids), plain_text=plain)
    if result.outcome == "permanent":
        ledger.pause_channel(store, channel, result.description)
    # Nothing recorded: the next update pass tries again (an edit can safely be repeated).
    return PostReport(channel, article.key, "failed", ledger.id_texts(row.message_ids),
                      note=f"edit not applied: {result.description or result.outcome}")


# --- retries --------------------------------------------------------------------------


def retry_deferred(settings: Settings, store: Store, *, now: datetime | None = None,
                   sender: Sender | None = None) -> list[PostReport]:
    """Send posts left pending (deferred by a flood wait or a temporary failure) whose
    next attempt is due; article posts and digests alike. Posts a dead sender held
    (expired lease) are settled as unknown first."""
    now = now or utcnow()
    ledger.expire_dead_claims(store)
    with store.session() as session:
        rows = session.execute(
            select(TelegramPostRow.id, TelegramPostRow.channel, TelegramPostRow.run_id, ArticleRow.key)
            .outerjoin(ArticleRow, ArticleRow.id == TelegramPostRow.article_id)
            .where(TelegramPostRow.status == "pending",
                   (TelegramPostRow.next_attempt_at.is_(None)) | (TelegramPostRow.next_attempt_at <= now))
            .order_by(TelegramPostRow.id)
        ).all()
    reports: list[PostReport] = []
    runs_done: set[int] = set()
    for _, channel, run_id, key in rows:
        if channel not in settings.channels or settings.channels[channel].kind != KIND:
            continue  # other kinds retry in delivery/social.py
        if key is not None:
            reports.append(post_article(settings, store, key, channel, now=now, sender=sender))
        elif run_id is not None and run_id not in runs_done:
            runs_done.add(run_id)
            reports += post_run(settings, store, run_id, now=now, sender=sender)
    return reports
