"""Telegram delivery end to end: the real python-telegram-bot client against the fake Bot
API server on localhost (TELEGRAM_API_BASE_URL), the ledger on SQLite and PostgreSQL.

Covers every error path (429 with the wait honoured and the chat held, 403, chat not
found, need admin, migrated chat, timeout after sending, refused formatting), edits on
update, no second post (task run twice, two threads at once), quiet hours turning a
burst into one roundup, digests split in parts, and the outbox without a token.

Time is injected: `NOW` for the newsroom's clock, a fake monotonic clock for the rate
limiter (its `sleep` only advances the clock and records the wait), so nothing depends
on how fast the machine is.
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import update

from distributor.articles import Article
from distributor.channels.telegram import TelegramChannel
from distributor.delivery import ledger
from distributor.delivery import telegram as tg
from distributor.engine import open_slot, prepare_run
from distributor.ratelimit import MemoryLimiter, Rate
from distributor.settings import ChannelConfig, TelegramConfig
from distributor.store.articles import save_articles
from distributor.store.models import TelegramPostRow
from tests.conftest import settings_for
from tests.fakes.telegram_api import TOKEN

# 12:00 in Kolkata: outside every quiet and silent range used below.
NOW = datetime(2026, 11, 27, 6, 30, tzinfo=timezone.utc)
MAIN, SPORTS = "@newsarena", "@newsarena_sports"

CHANNELS = {
    "main": ChannelConfig(chat_id=MAIN, instant=True, digests=("morning",)),
    "sports": ChannelConfig(chat_id=SPORTS, sections=("sports",), instant=True),
}


class Clock:
    """A monotonic clock for the limiter; `sleep` advances it and records the wait."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.waits: list[float] = []
        self.on_sleep = None

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        if self.on_sleep:
            self.on_sleep(seconds)
        self.now += seconds


@pytest.fixture
def make(tmp_path, monkeypatch, fake_telegram):
    """Settings pointed at the fake server (token set), with test channels and timeouts."""
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("TELEGRAM_API_BASE_URL", fake_telegram.base_url)

    def build(channels=None, **telegram):
        options = {"connect_timeout_seconds": 2.0, "write_timeout_seconds": 2.0, "read_timeout_seconds": 0.5}
        options.update(telegram)
        return settings_for(tmp_path, channels=channels or CHANNELS, telegram=TelegramConfig(**options))

    return build


def sender_for(settings, clock: Clock | None = None) -> tg.Sender:
    clock = clock or Clock()
    config = settings.file.telegram
    limiter = MemoryLimiter(
        Rate(config.channel_messages, config.channel_period_seconds),
        Rate(config.overall_messages, config.overall_period_seconds),
        clock=clock,
    )
    return tg.Sender(TelegramChannel.from_settings(settings), limiter, sleep=clock.sleep)


def article(key: str, *, section: str = "sports", image: bool = False, minutes_ago: int = 5, **fields) -> Article:
    values = {
        "key": key,
        "url": f"https://www.newsarenaindia.com/{section}/{key}",
        "title": f"Headline {key}: भारत ने जीता मैच 🏏",
        "section": section,
        "published_at": NOW - timedelta(minutes=minutes_ago),
        "standfirst": "A standfirst with <angle> & ampersand.",
        "byline": "News Arena Network",
        "dateline": "Moscow",
        "read_minutes": 2,
        "image_url": f"https://img.newsarenaindia.com/{key}.jpg" if image else None,
    }
    values.update(fields)
    return Article(**values)


def save(store, *articles: Article) -> list[str]:
    save_articles(store, list(articles), now=NOW - timedelta(minutes=1))
    return [a.key for a in articles]


def rows(store) -> dict[tuple[str, str], TelegramPostRow]:
    from sqlalchemy import select

    from distributor.store.models import ArticleRow

    with store.session() as session:
        found = session.execute(
            select(TelegramPostRow, ArticleRow.key).outerjoin(ArticleRow, ArticleRow.id == TelegramPostRow.article_id)
        ).all()
        return {(row.channel, key or f"run {row.run_id}"): row for row, key in found}


# --- the happy path and no double posts ----------------------------------------------------


def test_instant_posts_go_to_every_channel_carrying_the_section_once(store, make, fake_telegram):
    settings = make()
    keys = save(store, article("a1", image=True), article("a2", section="politics"))
    reports = tg.post_new_articles(settings, store, keys, now=NOW, sender=sender_for(settings))
    assert sorted((r.channel, r.target, r.status) for r in reports) == [
        ("main", "a1", "sent"), ("main", "a2", "sent"), ("sports", "a1", "sent"),
    ]
    sent = {(c.chat_id, c.method) for c in fake_telegram.chat_calls}
    assert sent == {(MAIN, "sendPhoto"), (SPORTS, "sendPhoto"), (MAIN, "sendMessage")}
    ledger = rows(store)
    assert ledger[("main", "a1")].kind == "photo" and ledger[("main", "a2")].kind == "text"
    assert ledger[("sports", "a1")].message_ids == [fake_telegram.messages(SPORTS)[0].message_id]

    # The task runs again (a redelivered Celery message): nothing new reaches Telegram.
    again = tg.post_new_articles(settings, store, keys, now=NOW, sender=sender_for(settings))
    assert {r.status for r in again} == {"exists"}
    assert len(fake_telegram.chat_calls) == 3


def test_two_threads_posting_the_same_article_post_it_once(store, make, fake_telegram):
    settings = make()
    [key] = save(store, article("race"))
    shared = sender_for(settings)
    start = threading.Barrier(4)
    reports = []

    def worker():
        start.wait()
        reports.append(tg.post_article(settings, store, key, "sports", now=NOW, sender=shared))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.status for r in reports) == ["exists", "exists", "exists", "sent"]
    assert len(fake_telegram.calls_to("sendMessage", SPORTS)) == 1


def test_old_articles_are_not_posted_instantly(store, make, fake_telegram):
    settings = make()
    keys = save(store, article("old", minutes_ago=7 * 60))
    reports = tg.post_new_articles(settings, store, keys, now=NOW, sender=sender_for(settings))
    assert {r.status for r in reports} == {"skipped"} and fake_telegram.chat_calls == []


# --- flood control ----------------------------------------------------------------------


def test_retry_after_is_waited_out_while_the_chat_is_held_and_others_go_on(store, make, fake_telegram):
    settings = make()
    clock = Clock()
    sender = sender_for(settings, clock)
    keys = save(store, article("flood"))
    fake_telegram.fail_next("retry_after", chat_id=SPORTS, retry_after=7)
    seen = {}

    def meanwhile(seconds):
        # While this worker waits, any other worker's post to the same chat is held...
        permit, wait = sender.limiter.try_acquire(SPORTS)
        seen["same chat"] = (permit, wait)
        # ...and other chats go on.
        permit, _ = sender.limiter.try_acquire(MAIN)
        seen["other chat"] = permit
        sender.limiter.complete(permit)

    clock.on_sleep = meanwhile
    [report] = [r for r in tg.post_new_articles(settings, store, keys, now=NOW, sender=sender) if r.channel == "sports"]
    assert report.status == "sent"
    assert clock.waits == [7.0]  # exactly what Telegram asked for
    assert seen["same chat"][0] is None and seen["same chat"][1] == pytest.approx(7.0)
    assert seen["other chat"] is not None
    attempts = fake_telegram.calls_to("sendMessage", SPORTS)
    assert [c.status for c in attempts] == [429, 200]


def test_retry_after_longer_than_allowed_defers_the_post(store, make, fake_telegram):
    settings = make(max_retry_wait_seconds=10)
    clock = Clock()
    sender = sender_for(settings, clock)
    [key] = save(store, article("long-flood"))
    fake_telegram.fail_next("retry_after", chat_id=SPORTS, retry_after=40)
    report = tg.post_article(settings, store, key, "sports", now=NOW, sender=sender)
    assert report.status == "deferred"
    row = rows(store)[("sports", key)]
    assert row.status == "pending" and row.next_attempt_at == NOW + timedelta(seconds=40)
    # Not before its time; then it goes.
    assert tg.retry_deferred(settings, store, now=NOW + timedelta(seconds=39), sender=sender) == []
    clock.now += 41  # the limiter's hold on the chat has run out as well
    [later] = tg.retry_deferred(settings, store, now=NOW + timedelta(seconds=41), sender=sender)
    assert later.status == "sent"
    assert len(fake_telegram.calls_to("sendMessage", SPORTS)) == 2


def test_rate_limit_spaces_a_burst_to_one_chat(store, make, fake_telegram):
    settings = make(channel_messages=3, channel_period_seconds=60)
    clock = Clock()
    sender = sender_for(settings, clock)
    keys = save(store, *[article(f"burst{i}", minutes_ago=10 - i) for i in range(5)])
    tg.post_new_articles(settings, store, keys, now=NOW, sender=sender)
    assert len(fake_telegram.calls_to("sendMessage", SPORTS)) == 5
    # Posts 4 and 5 waited for the window (to main and sports alike: 3 a minute each).
    assert sum(clock.waits) == pytest.approx(60.0)


# --- permanent errors pause one channel ---------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "words"),
    [("kicked", "kicked"), ("not_member", "not a member"), ("chat_not_found", "chat not found"), ("need_admin", "administrator rights")],
)
def test_permanent_errors_pause_only_that_channel(store, make, fake_telegram, caplog, kind, words):
    settings = make()
    sender = sender_for(settings)
    fake_telegram.fail_chat(MAIN, kind)
    keys = save(store, article("p1"), article("p2", minutes_ago=4))
    with caplog.at_level(logging.ERROR, logger="distributor.delivery.ledger"):
        reports = tg.post_new_articles(settings, store, keys, now=NOW, sender=sender)
    by = {(r.channel, r.target): r for r in reports}
    assert by[("main", "p1")].status == "failed" and words in by[("main", "p1")].note.lower()
    assert by[("main", "p2")].status == "skipped"  # no second attempt at a closed chat
    assert by[("sports", "p1")].status == by[("sports", "p2")].status == "sent"
    assert len(fake_telegram.calls_to(chat_id=MAIN)) == 1
    state = ledger.channel_state(settings, store, "main")
    assert state.paused and words in state.reason.lower()
    assert [r.message for r in caplog.records].count("channel paused") == 1

    # An operator fixes the channel and resumes it; new posts go out again.
    fake_telegram.reset()
    assert ledger.resume_channel(store, "main")
    [key] = save(store, article("p3", minutes_ago=3))
    assert {r.status for r in tg.post_new_articles(settings, store, [key], now=NOW, sender=sender)} == {"sent"}


def test_migrated_chat_is_stored_and_the_post_resent_there(store, make, fake_telegram):
    settings = make()
    sender = sender_for(settings)
    new_id = -1001234567890
    fake_telegram.fail_chat(MAIN, "migrated", migrate_to_chat_id=new_id)
    keys = save(store, article("m1", section="nation"))
    [report] = tg.post_new_articles(settings, store, keys, now=NOW, sender=sender)
    assert report.status == "sent"
    assert [c.chat_id for c in fake_telegram.calls_to("sendMessage")] == [MAIN, new_id]
    state = ledger.channel_state(settings, store, "main")
    assert state.chat_id == str(new_id) and state.migrated and not state.paused
    assert rows(store)[("main", "m1")].chat_id == str(new_id)
    # The next post goes straight to the new chat.
    keys = save(store, article("m2", section="nation"))
    tg.post_new_articles(settings, store, keys, now=NOW, sender=sender)
    assert fake_telegram.calls_to("sendMessage")[-1].chat_id == new_id
    assert len(fake_telegram.calls_to("sendMessage")) == 3


# --- ambiguous timeouts and refused formatting ---------------------------------------------


def test_timeout_after_sending_is_recorded_unknown_and_never_resent(store, make, fake_telegram):
    settings = make()
    sender = sender_for(settings)
    [key] = save(store, article("t1"))
    fake_telegram.fail_next("timeout", chat_id=SPORTS)
    try:
        report = tg.post_article(settings, store, key, "sports", now=NOW, sender=sender)
    finally:
        fake_telegram.release()
    assert report.status == "unknown" and "may have been posted" in report.note
    assert len(fake_telegram.messages(SPORTS)) == 1  # it did arrive: resending would duplicate it
    # Neither a re-run nor the retry pass sends it again.
    assert tg.post_article(settings, store, key, "sports", now=NOW, sender=sender).status == "exists"
    assert tg.retry_deferred(settings, store, now=NOW + timedelta(hours=1), sender=sender) == []
    assert len(fake_telegram.calls_to("sendMessage", SPORTS)) == 1
    assert rows(store)[("sports", key)].status == "unknown"
    assert any(item["status"] == "unknown" for item in ledger.attention(store))
    # The operator checked the channel and decides to resend.
    assert tg.post_article(settings, store, key, "sports", now=NOW, sender=sender, again=True).status == "sent"


def test_refused_formatting_is_sent_once_as_plain_text_and_reported(store, make, fake_telegram):
    settings = make()
    sender = sender_for(settings)
    [key] = save(store, article("f1"))
    fake_telegram.fail_next(
        "chat_not_found", chat_id=SPORTS,
        description="Bad Request: can't parse entities: Unsupported start tag \"x\" at byte offset 12",
    )
    report = tg.post_article(settings, store, key, "sports", now=NOW, sender=sender)
    assert report.status == "sent" and report.plain_text and "can't parse entities" in report.note.lower()
    first, second = fake_telegram.calls_to("sendMessage", SPORTS)
    assert first.params["parse_mode"] == "HTML" and "parse_mode" not in second.params
    assert "<b>" not in second.params["text"] and "<angle> & ampersand" in second.params["text"]
    assert not ledger.channel_state(settings, store, "sports").paused
    row = rows(store)[("sports", key)]
    assert row.plain_text and row.status == "sent"
    assert ledger.status_counts(store)["sports"]["plain_text"] == 1


def test_plain_text_refused_too_fails_without_a_third_try(store, make, fake_telegram):
    settings = make()
    [key] = save(store, article("f2"))
    fake_telegram.fail_next("chat_not_found", count=2, chat_id=SPORTS, description="Bad Request: can't parse entities: x")
    report = tg.post_article(settings, store, key, "sports", now=NOW, sender=sender_for(settings))
    assert report.status == "failed" and len(fake_telegram.calls_to("sendMessage", SPORTS)) == 2


def test_a_worker_that_died_mid_send_leaves_the_post_unknown(store, make, fake_telegram):
    settings = make()
    [key] = save(store, article("crash"))
    with store.session() as session:
        from distributor.store.models import ArticleRow
        from sqlalchemy import select

        article_id = session.scalar(select(ArticleRow.id).where(ArticleRow.key == key))
        # A live sender holds it: its lease runs for another minute.
        session.add(TelegramPostRow(channel="sports", chat_id=SPORTS, article_id=article_id, status="sending",
                                    claimed_at=datetime.now(timezone.utc), claim="host:1:live",
                                    lease_expires_at=datetime.now(timezone.utc) + timedelta(seconds=60)))
    report = tg.post_article(settings, store, key, "sports", now=NOW, sender=sender_for(settings))
    assert report.status == "exists" and rows(store)[("sports", key)].status == "sending"
    assert tg.retry_deferred(settings, store, now=NOW, sender=sender_for(settings)) == []
    assert rows(store)[("sports", key)].status == "sending"

    with store.session() as session:  # it stopped renewing a second ago (killed mid-send)
        session.execute(update(TelegramPostRow).values(lease_expires_at=datetime.now(timezone.utc) - timedelta(seconds=1)))
    report = tg.post_article(settings, store, key, "sports", now=NOW, sender=sender_for(settings))
    assert report.status == "exists" and rows(store)[("sports", key)].status == "unknown"
    assert fake_telegram.chat_calls == []


def test_a_dead_senders_post_is_settled_unknown_by_the_retry_pass(store, make, fake_telegram):
    settings = make()
    [key] = save(store, article("crash-retry"))
    with store.session() as session:
        from distributor.store.models import ArticleRow
        from sqlalchemy import select

        article_id = session.scalar(select(ArticleRow.id).where(ArticleRow.key == key))
        session.add(TelegramPostRow(channel="sports", chat_id=SPORTS, article_id=article_id, status="sending",
                                    claimed_at=datetime.now(timezone.utc) - timedelta(seconds=40), claim="host:1:dead",
                                    lease_expires_at=datetime.now(timezone.utc) - timedelta(seconds=1)))
    tg.retry_deferred(settings, store, now=NOW, sender=sender_for(settings))
    row = rows(store)[("sports", key)]
    assert (row.status, row.claim, row.lease_expires_at) == ("unknown", None, None) and "may have been posted" in row.error
    assert fake_telegram.chat_calls == []


# --- edits ---------------------------------------------------------------------------------


def test_updated_articles_edit_their_posts_within_the_window(store, make, fake_telegram):
    settings = make()
    sender = sender_for(settings)
    photo, text = article("e-photo", image=True), article("e-text")
    tg.post_new_articles(settings, store, save(store, photo, text), now=NOW, sender=sender)
    posted = {(c.chat_id, c.method): c.message_id for c in fake_telegram.chat_calls}

    fixed = [
        article("e-photo", image=True, title="Corrected: भारत ने सीरीज़ जीती"),
        article("e-text", standfirst="A corrected standfirst."),
    ]
    save_articles(store, fixed, now=NOW + timedelta(hours=1))
    reports = tg.update_posted_articles(settings, store, ["e-photo", "e-text"], now=NOW + timedelta(hours=1), sender=sender)
    assert sorted((r.channel, r.target, r.status) for r in reports) == [
        ("main", "e-photo", "edited"), ("main", "e-text", "edited"),
        ("sports", "e-photo", "edited"), ("sports", "e-text", "edited"),
    ]
    by = {(r.channel, r.target): r for r in reports}
    assert by[("main", "e-text")].message_ids == (str(posted[(MAIN, "sendMessage")]),)
    edits = {(c.chat_id, c.method): c.params["message_id"] for c in fake_telegram.chat_calls if c.method.startswith("edit")}
    assert edits == {
        (MAIN, "editMessageCaption"): posted[(MAIN, "sendPhoto")],
        (SPORTS, "editMessageCaption"): posted[(SPORTS, "sendPhoto")],
        (MAIN, "editMessageText"): posted[(MAIN, "sendMessage")],
        (SPORTS, "editMessageText"): posted[(SPORTS, "sendMessage")],
    }
    assert "Corrected" in fake_telegram.message(SPORTS, posted[(SPORTS, "sendPhoto")]).text
    assert "corrected standfirst" in fake_telegram.message(MAIN, posted[(MAIN, "sendMessage")]).text
    assert rows(store)[("main", "e-text")].edited_at == NOW + timedelta(hours=1)
    assert len([c for c in fake_telegram.chat_calls if c.method.startswith("send")]) == 4  # nothing reposted

    # Asked again with nothing new: no call.
    before = len(fake_telegram.calls)
    assert tg.update_posted_articles(settings, store, ["e-photo", "e-text"], now=NOW + timedelta(hours=2), sender=sender) == []
    assert len(fake_telegram.calls) == before


def test_no_edit_outside_the_window_or_for_invisible_changes(store, make, fake_telegram):
    settings = make(edit_window_hours=2)
    sender = sender_for(settings)
    tg.post_new_articles(settings, store, save(store, article("late"), article("tags")), now=NOW, sender=sender)
    before = len(fake_telegram.calls)
    save_articles(store, [article("late", title="Changed too late"), article("tags", tags=("cricket",))], now=NOW)
    reports = tg.update_posted_articles(settings, store, ["late", "tags"], now=NOW + timedelta(hours=3), sender=sender)
    assert {(r.target, r.status, r.note) for r in reports} == {("late", "unchanged", "outside the edit window")}
    assert len(fake_telegram.calls) == before


# --- quiet hours ---------------------------------------------------------------------------


def test_quiet_hours_turn_a_burst_into_one_roundup(store, make, fake_telegram):
    quiet = {
        "main": ChannelConfig(chat_id=MAIN, instant=True, quiet_hours="23:00-07:00"),
        "sports": ChannelConfig(chat_id=SPORTS, sections=("sports",), instant=True),
    }
    settings = make(channels=quiet)
    sender = sender_for(settings)
    night = datetime(2026, 11, 27, 18, 0, tzinfo=timezone.utc)  # 23:30 in Kolkata
    burst = [article(f"n{i}", section="nation" if i % 2 else "sports", published_at=night - timedelta(minutes=30 - i))
             for i in range(6)]
    keys = save(store, *burst)
    reports = tg.post_new_articles(settings, store, keys, now=night, sender=sender)
    assert {r.status for r in reports if r.channel == "main"} == {"held"}
    assert {c.chat_id for c in fake_telegram.chat_calls} == {SPORTS}  # sports has no quiet hours

    # 06:59: still quiet. 07:00: one roundup post with all six, in publication order.
    assert tg.flush_quiet_hours(settings, store, now=datetime(2026, 11, 28, 1, 29, tzinfo=timezone.utc), sender=sender) == []
    [roundup] = tg.flush_quiet_hours(settings, store, now=datetime(2026, 11, 28, 1, 30, tzinfo=timezone.utc), sender=sender)
    assert roundup.channel == "main" and roundup.status == "sent" and roundup.target == "roundup of 6"
    [call] = fake_telegram.calls_to(chat_id=MAIN)
    assert call.method == "sendMessage"
    text = fake_telegram.message(MAIN, call.message_id).text
    positions = [text.index(f"Headline n{i}") for i in range(6)]
    assert positions == sorted(positions) and "6 new stories since 23:00" in text
    ledger = rows(store)
    assert {ledger[("main", k)].message_ids[0] for k in keys} == {call.message_id}
    assert {ledger[("main", k)].status for k in keys} == {"sent"}
    # Flushing again posts nothing.
    assert tg.flush_quiet_hours(settings, store, now=datetime(2026, 11, 28, 2, 0, tzinfo=timezone.utc), sender=sender) == []
    assert len(fake_telegram.calls_to(chat_id=MAIN)) == 1


def test_silent_hours_and_link_preview_policy(store, make, fake_telegram):
    channels = {"sports": ChannelConfig(chat_id=SPORTS, sections=("sports",), instant=True,
                                        silent_hours="22:00-07:00", disable_link_preview=True)}
    settings = make(channels=channels)
    night = datetime(2026, 11, 27, 17, 0, tzinfo=timezone.utc)  # 22:30 in Kolkata
    keys = save(store, article("s1", published_at=night - timedelta(minutes=5)))
    tg.post_new_articles(settings, store, keys, now=night, sender=sender_for(settings))
    keys = save(store, article("s2"))
    tg.post_new_articles(settings, store, keys, now=NOW, sender=sender_for(settings))
    first, second = fake_telegram.calls_to("sendMessage", SPORTS)
    assert first.params.get("disable_notification") is True
    assert "disable_notification" not in second.params
    assert first.params["link_preview_options"] == {"is_disabled": True}


# --- digests -----------------------------------------------------------------------------


def test_digest_run_posts_every_part_in_order_once(store, make, fake_telegram):
    settings = make()
    sender = sender_for(settings)
    sections = ["nation", "states", "international", "politics", "economy", "sports"]
    many = [
        article(f"d{i:02d}", section=sections[i % len(sections)], minutes_ago=10 + i,
                title=f"{i:02d} " + "संसद में बहस जारी, विपक्ष ने वॉकआउट किया 🇮🇳 " * 4)
        for i in range(36)
    ]
    save(store, *many)
    run, _ = open_slot(settings, store, "morning", NOW)
    assert prepare_run(settings, store, run.id).ready
    reports = tg.post_run(settings, store, run.id, now=NOW, sender=sender)
    assert [(r.channel, r.status) for r in reports] == [("main", "sent")]  # sports takes no digest
    calls = fake_telegram.calls_to("sendMessage", MAIN)
    assert len(calls) >= 2 and all(c.status == 200 for c in calls)
    headers = [fake_telegram.message(MAIN, c.message_id).text.splitlines()[0] for c in calls]
    assert [h.endswith(f"({i}/{len(calls)})") for i, h in enumerate(headers, 1)] == [True] * len(calls)
    assert rows(store)[("main", f"run {run.id}")].message_ids == [c.message_id for c in calls]
    # Reported as text, as every kind's ids are; the line reads as it always did.
    ids = tuple(str(c.message_id) for c in calls)
    assert reports[0].message_ids == ids and f" ids={','.join(ids)}" in reports[0].line()
    # Run twice: nothing more.
    [again] = tg.post_run(settings, store, run.id, now=NOW, sender=sender)
    assert (again.status, again.message_ids) == ("exists", ids)
    assert len(fake_telegram.calls_to("sendMessage", MAIN)) == len(calls)


def test_digest_interrupted_mid_way_resumes_at_the_next_part(store, make, fake_telegram):
    settings = make(channel_messages=1, channel_period_seconds=60)
    clock = Clock()
    sender = sender_for(settings, clock)
    sections = ["nation", "states", "politics", "economy"]
    many = [article(f"r{i:02d}", section=sections[i % 4], minutes_ago=10 + i, title=f"{i:02d} " + "लंबा शीर्षक " * 40)
            for i in range(30)]
    save(store, *many)
    run, _ = open_slot(settings, store, "morning", NOW)
    prepare_run(settings, store, run.id)
    # One message a minute to the chat: after part 1 the sender waits; meanwhile Telegram
    # starts failing with 502 (temporary: nothing posted), so part 2 is deferred.
    clock.on_sleep = lambda _seconds: fake_telegram.fail_next("bad_gateway", chat_id=MAIN)
    [first] = tg.post_run(settings, store, run.id, now=NOW, sender=sender)
    assert first.status == "deferred"
    row = rows(store)[("main", f"run {run.id}")]
    assert row.status == "pending" and len(row.message_ids) == 1
    clock.on_sleep = None
    [again] = tg.retry_deferred(settings, store, now=NOW + timedelta(minutes=5), sender=sender)
    assert again.status == "sent"
    attempts = fake_telegram.calls_to("sendMessage", MAIN)
    delivered = [c for c in attempts if c.status == 200]
    assert len(delivered) >= 2 and [c.status for c in attempts].count(502) == 1
    headers = [fake_telegram.message(MAIN, c.message_id).text.splitlines()[0] for c in delivered]
    assert [h.endswith(f"({i}/{len(delivered)})") for i, h in enumerate(headers, 1)] == [True] * len(delivered)
    assert rows(store)[("main", f"run {run.id}")].message_ids == [c.message_id for c in delivered]


def test_busy_day_digest_gives_each_channel_its_sections_within_the_limits(store, make, fake_telegram):
    import re

    # 60 articles: the first four sections over their limit, then Sports and Entertainment.
    # Spending max_articles in section order used to leave both out of every digest.
    busy = {"nation": 10, "states": 10, "international": 10, "politics": 10,
            "opinion": 4, "economy": 4, "sports": 10, "entertainment": 2}
    items = [article(f"{section}-{i}", section=section, minutes_ago=10 + i * 10 + s,
                     title=f"Busy story {i} of {section}")
             for s, (section, count) in enumerate(busy.items()) for i in range(count)]
    assert len(items) == 60
    fans = "@newsarena_fans"
    channels = {
        "main": ChannelConfig(chat_id=MAIN, digests=("morning",)),
        "fans": ChannelConfig(chat_id=fans, sections=("sports", "entertainment"), digests=("morning",)),
    }
    settings = make(channels)
    save(store, *items)
    run, _ = open_slot(settings, store, "morning", NOW)
    assert prepare_run(settings, store, run.id).ready
    reports = tg.post_run(settings, store, run.id, now=NOW, sender=sender_for(settings))
    assert sorted((r.channel, r.status) for r in reports) == [("fans", "sent"), ("main", "sent")]

    def posted(chat: str) -> tuple[list[str], str]:
        texts = [fake_telegram.message(chat, c.message_id).text for c in fake_telegram.calls_to("sendMessage", chat)]
        whole = "\n".join(texts)
        return re.findall(r"Busy story \d+ of (\w+)", whole), whole

    limit = {s.slug: s.limit for s in settings.sections}
    cap = settings.editions["morning"].max_articles
    fans_sections, fans_text = posted(fans)
    assert fans_sections.count("sports") == limit["sports"]
    assert fans_sections.count("entertainment") == busy["entertainment"]
    assert set(fans_sections) == {"sports", "entertainment"}
    assert f"+ {busy['sports'] - limit['sports']} more" in fans_text  # counted for this channel
    main_sections, main_text = posted(MAIN)
    assert len(main_sections) == cap and set(main_sections) == set(busy)
    assert f"+ {60 - cap} more" in main_text


def test_a_digest_stopped_by_a_warm_shutdown_resumes_at_the_next_part(store, make, fake_telegram):
    """SIGTERM between parts: the parts posted are recorded, the post waits pending (not
    leased), and the retry pass posts the rest; each part once."""
    from distributor.delivery import leases

    settings = make()
    sender = sender_for(settings)
    sections = ["nation", "states", "politics", "economy"]
    save(store, *[article(f"w{i:02d}", section=sections[i % 4], minutes_ago=10 + i, title=f"{i:02d} " + "लंबा शीर्षक " * 40)
                  for i in range(30)])
    run, _ = open_slot(settings, store, "morning", NOW)
    prepare_run(settings, store, run.id)
    real_call = sender.transport.call

    def call_then_stop(chat_id, call):  # the stop arrives while part 1 is on its way
        result = real_call(chat_id, call)
        leases.request_stop()
        return result

    sender.transport.call = call_then_stop
    try:
        [first] = tg.post_run(settings, store, run.id, now=NOW, sender=sender)
    finally:
        leases.clear_stop()
        sender.transport.call = real_call
    row = rows(store)[("main", f"run {run.id}")]
    assert first.status == "deferred" and "stopped before part 2/" in first.note
    assert (row.status, len(row.message_ids), row.claim, row.lease_expires_at) == ("pending", 1, None, None)

    [again] = tg.retry_deferred(settings, store, now=NOW, sender=sender)
    calls = fake_telegram.calls_to("sendMessage", MAIN)
    assert again.status == "sent" and len(calls) >= 2 and all(c.status == 200 for c in calls)
    assert rows(store)[("main", f"run {run.id}")].message_ids == [c.message_id for c in calls]


def test_preview_calls_list_each_digest_call_with_its_chat(store, make):
    settings = make()
    save(store, *[article(f"v{i}", section="nation") for i in range(4)])
    run, _ = open_slot(settings, store, "morning", NOW)
    prepare_run(settings, store, run.id)
    from distributor.engine import issue_of
    from distributor.runs import get_run

    edition = issue_of(settings, store, get_run(store, run.id))
    calls = tg.preview_calls(settings, edition)
    assert [c["method"] for c in calls] == ["sendMessage"]
    assert calls[0]["params"]["chat_id"] == MAIN and calls[0]["params"]["parse_mode"] == "HTML"
    json.dumps(calls)  # JSON-ready


# --- outbox and secrets -------------------------------------------------------------------


def test_without_a_token_posts_go_to_outbox_files(store, tmp_path, fake_telegram):
    settings = settings_for(tmp_path, channels=CHANNELS)
    assert settings.env.telegram_bot_token is None
    keys = save(store, article("o1", image=True), article("o2", section="nation"))
    reports = tg.post_new_articles(settings, store, keys, now=NOW)
    assert {r.status for r in reports} == {"sent"}
    outbox = settings.outbox_dir / "telegram"
    files = sorted(outbox.glob("*.json"))
    payloads = [json.loads(f.read_text(encoding="utf-8")) for f in files]
    assert sorted((p["method"], p["params"]["chat_id"]) for p in payloads) == [
        ("sendMessage", MAIN), ("sendPhoto", MAIN), ("sendPhoto", SPORTS),
    ]
    assert all(p["params"]["parse_mode"] == "HTML" for p in payloads)
    assert fake_telegram.calls == []
    # An edit of an outbox post names the message id the outbox gave it.
    save_articles(store, [article("o2", section="nation", title="Fixed")], now=NOW)
    [edit] = tg.update_posted_articles(settings, store, ["o2"], now=NOW)
    assert edit.status == "edited"
    edit_file = [p for p in (json.loads(f.read_text()) for f in outbox.glob("*editMessageText*.json"))][0]
    assert edit_file["params"]["message_id"] == rows(store)[("main", "o2")].message_ids[0]
    # Deterministic names: the same calls again write the same files.
    names = {f.name for f in outbox.glob("*.json")}
    from distributor.channels.telegram_outbox import TelegramOutbox
    from distributor.render.telegram import BotCall

    TelegramOutbox(outbox).call(MAIN, BotCall("sendMessage", {"text": "x", "parse_mode": "HTML"}))
    TelegramOutbox(outbox).call(MAIN, BotCall("sendMessage", {"text": "x", "parse_mode": "HTML"}))
    assert len({f.name for f in outbox.glob("*.json")} - names) == 1


def test_the_token_never_appears_in_logs_or_results(store, make, fake_telegram, caplog):
    settings = make()
    [key] = save(store, article("secret"))
    fake_telegram.fail_next("chat_not_found", chat_id=SPORTS)
    with caplog.at_level(logging.DEBUG):
        report = tg.post_article(settings, store, key, "sports", now=NOW, sender=sender_for(settings))
        # A wrong token: the fake answers 401 as Telegram does.
        channel = TelegramChannel("999:wrong-token-value", base_url=fake_telegram.base_url)
        from distributor.render.telegram import BotCall

        result = channel.call(SPORTS, BotCall("sendMessage", {"text": "hi"}))
    assert result.outcome == "unauthorized"
    assert "wrong-token-value" not in result.description
    assert "sendMessage" in caplog.text  # the URL was logged, scrubbed
    assert TOKEN not in caplog.text and "wrong-token-value" not in caplog.text
    assert TOKEN not in report.note and TOKEN not in ledger.channel_state(settings, store, "sports").reason
