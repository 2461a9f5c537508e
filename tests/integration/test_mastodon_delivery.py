"""Mastodon delivery end to end: the real Mastodon.py client against the fake instance on
localhost (tests/fakes/mastodon_api.py), the shared ledger on SQLite and PostgreSQL.

Covers instant posts routed by section, the instance's own length limit with URLs as 23,
Devanagari and emoji at the limit, the image uploaded with its alt text, the
Idempotency-Key making a retry after a timeout-after-accept post once, 429 deferral with
the channel held for every worker (in Redis, and across processes), a spent budget
(X-RateLimit-Remaining 0) holding the channel before any 429, the account's declared
budgets, a correction edited in place, a digest as a thread, and the outbox without a
token.

The shared limits run on a fake clock (`tests/fakes/limits.py`): in process by default,
in the test Redis where a test says "worker".
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone

import pytest

from distributor.articles import Article
from distributor.channels.mastodon import MastodonChannel
from distributor.delivery import social
from distributor.delivery import telegram as tg
from distributor.engine import open_slot, prepare_run
from distributor.render.mastodon import status_length
from distributor.settings import ChannelConfig, IngestConfig, TelegramConfig
from distributor.store.articles import save_articles
from distributor.trending import tracked_url
from tests.conftest import settings_for
from tests.fakes.limits import Clock, memory_limits, redis_limits  # noqa: F401 - redis_limits is a fixture
from tests.fakes.mastodon_api import TOKEN, mastodon_length

NOW = datetime(2026, 11, 27, 6, 30, tzinfo=timezone.utc)  # 12:00 in Kolkata

# A 1x1 PNG.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


def channels(url: str, **extra) -> dict[str, ChannelConfig]:
    return {
        "fedi": ChannelConfig(kind="mastodon", instance_url=url, instant=True, digests=("morning",), **extra),
        "fedi-sports": ChannelConfig(kind="mastodon", instance_url=url, sections=("sports",), instant=True),
    }


@pytest.fixture
def make(tmp_path, fake_mastodon):
    def build(**extra):
        return settings_for(
            tmp_path, channels=channels(fake_mastodon.base_url, **extra),
            telegram=TelegramConfig(read_timeout_seconds=0.5),
            ingest=IngestConfig(allow_private=("127.0.0.1",)),
        )
    return build


LIMITS = memory_limits(Clock())


@pytest.fixture(autouse=True)
def clock() -> Clock:
    """Each test its own shared limits, in process, on a fake clock: no hold outlives its test."""
    global LIMITS
    clock = Clock()
    LIMITS = memory_limits(clock)
    return clock


def transports(settings, fake, timeout: float = 0.5, limits=None) -> social.Transports:
    """Real Mastodon.py clients pointed at the fake, a short read timeout; the test's
    shared limits unless `limits` (a worker's) are given."""
    given = {name: MastodonChannel(fake.base_url, TOKEN, timeout=timeout) for name in settings.channels}
    return social.Transports(settings, given, limits=limits or LIMITS)


@pytest.fixture(autouse=True)
def fresh_instance_cache():
    from distributor.channels import mastodon

    mastodon._max_characters.clear()
    yield
    mastodon._max_characters.clear()


def article(key: str, *, section: str = "sports", minutes_ago: int = 5, **fields) -> Article:
    values = {
        "key": key,
        "url": f"https://www.newsarenaindia.com/{section}/{key}",
        "title": f"Headline {key}: भारत ने जीता मैच 🏏",
        "section": section,
        "published_at": NOW - timedelta(minutes=minutes_ago),
        "standfirst": "A short standfirst.",
    }
    values.update(fields)
    return Article(**values)


def save(store, *articles: Article) -> list[str]:
    save_articles(store, list(articles), now=NOW - timedelta(minutes=1))
    return [a.key for a in articles]


def test_instant_posts_routed_by_section_once(store, make, fake_mastodon):
    settings = make()
    keys = save(store, article("a1"), article("a2", section="politics"))
    sender = transports(settings, fake_mastodon)
    reports = social.post_new_articles(settings, store, keys, now=NOW, transports=sender)
    assert sorted((r.channel, r.target, r.status) for r in reports) == [
        ("fedi", "a1", "sent"), ("fedi", "a2", "sent"), ("fedi-sports", "a1", "sent"),
    ]
    posted = fake_mastodon.posted()
    assert len(posted) == 3
    assert {s.language for s in posted} == {"en"} and {s.visibility for s in posted} == {"public"}
    assert all(s.idempotency_key and s.idempotency_key.startswith("distributor-") for s in posted)
    first = posted[0].text
    assert first.startswith("Headline a1: भारत ने जीता मैच 🏏\n\nA short standfirst.\n\n")
    assert first.endswith("\n\n#Sports")
    # Telegram's ledger functions leave Mastodon channels alone.
    assert tg.post_new_articles(settings, store, keys, now=NOW) == []
    again = social.post_new_articles(settings, store, keys, now=NOW, transports=transports(settings, fake_mastodon))
    assert {r.status for r in again} == {"exists"}
    assert len(fake_mastodon.posted()) == 3


def test_length_is_the_instances_limit_with_urls_as_23(store, make, fake_mastodon):
    fake_mastodon.max_characters = 120
    settings = make()
    long_url = "https://www.newsarenaindia.com/sports/" + "x" * 200
    standfirst = "संसद में बहस जारी, विपक्ष ने वॉकआउट किया 👨‍👩‍👧 " * 10
    keys = save(store, article("long", url=long_url, standfirst=standfirst))
    reports = social.post_new_articles(settings, store, keys, now=NOW, transports=transports(settings, fake_mastodon))
    assert {r.status for r in reports} == {"sent"}
    status_channel = {r.message_ids[0]: r.channel for r in reports}
    for status in fake_mastodon.posted():
        # Over 120 code points, within 120 as Mastodon counts (the URL as 23).
        assert len(status.text) > 120
        assert mastodon_length(status.text) <= 120
        assert status_length(status.text) == mastodon_length(status.text)
        assert "…" in status.text  # the standfirst was cut
        link = tracked_url(settings, article("long", url=long_url), channel=status_channel[status.id])
        assert f"\n\n{link}\n\n#Sports" in status.text and len(link) > 23  # the link is whole
    # The cut never splits a cluster: the text before the ellipsis ends in a whole one.
    head = fake_mastodon.posted()[0].text.split("…")[0]
    assert not head.endswith(("\u094d", "\u200d"))


def test_image_uploaded_with_alt_text(store, make, fake_mastodon, tmp_path):
    import http.server
    import threading

    class Image(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(PNG)))
            self.end_headers()
            self.wfile.write(PNG)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Image)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        settings = make()
        url = f"http://127.0.0.1:{server.server_address[1]}/photo.png"
        keys = save(store, article("img", image_url=url, image_caption="Players celebrate in Mumbai"))
        social.post_new_articles(settings, store, keys, now=NOW, transports=transports(settings, fake_mastodon))
    finally:
        server.shutdown()
    media = list(fake_mastodon.media.values())
    assert [m.description for m in media] == ["Players celebrate in Mumbai"] * 2
    assert {m.size for m in media} == {len(PNG)}
    assert all(len(s.media_ids) == 1 and s.media_ids[0] in fake_mastodon.media for s in fake_mastodon.posted())


def test_timeout_after_accept_is_resent_with_the_same_key_and_posts_once(store, make, fake_mastodon):
    settings = make()
    fake_mastodon.hang_seconds = 1.5
    keys = save(store, article("t1", section="politics"))
    fake_mastodon.fail_next("timeout", path="/api/v1/statuses")
    reports = social.post_new_articles(settings, store, keys, now=NOW, transports=transports(settings, fake_mastodon))
    assert [(r.channel, r.status) for r in reports] == [("fedi", "deferred")]
    assert len(fake_mastodon.posted()) == 1  # it was posted; we did not hear back
    later = NOW + timedelta(seconds=social.RESEND_SECONDS)
    retried = social.retry_deferred(settings, store, now=later, transports=transports(settings, fake_mastodon))
    assert [(r.channel, r.status) for r in retried] == [("fedi", "sent")]
    posted = fake_mastodon.posted()
    assert len(posted) == 1
    assert list(retried[0].message_ids) == [posted[0].id]
    keys_sent = [c.headers.get("idempotency-key") for c in fake_mastodon.calls if c.path == "/api/v1/statuses"]
    assert len(keys_sent) == 2 and len(set(keys_sent)) == 1


def test_429_defers_by_the_reset_and_holds_the_channel(store, make, fake_mastodon, clock):
    settings = make()
    fake_mastodon.reset_in = 300
    keys = save(store, article("r1", section="politics", minutes_ago=6), article("r2", section="politics"))
    fake_mastodon.fail_next("429", path="/api/v1/statuses")
    reports = social.post_new_articles(settings, store, keys, now=NOW, transports=transports(settings, fake_mastodon))
    assert [(r.channel, r.target, r.status) for r in reports] == [("fedi", "r1", "deferred"), ("fedi", "r2", "deferred")]
    # The second post did not reach the instance: the channel was held after the 429.
    assert len([c for c in fake_mastodon.calls if c.path == "/api/v1/statuses"]) == 1
    ledger = {(r.channel, r.run_id or r.article_id): r for r in _rows(store)}
    waits = [(r.next_attempt_at - NOW).total_seconds() for r in ledger.values()]
    assert all(250 < w < 310 for w in waits), waits
    # Not due before the reset; due after it.
    assert social.retry_deferred(settings, store, now=NOW + timedelta(seconds=60),
                                 transports=transports(settings, fake_mastodon)) == []
    clock.now += 310
    done = social.retry_deferred(settings, store, now=NOW + timedelta(seconds=310),
                                 transports=transports(settings, fake_mastodon))
    assert [r.status for r in done] == ["sent", "sent"]
    assert len(fake_mastodon.posted()) == 2


def test_correction_edits_the_status_in_place(store, make, fake_mastodon):
    settings = make()
    keys = save(store, article("c1", section="politics"))
    social.post_new_articles(settings, store, keys, now=NOW, transports=transports(settings, fake_mastodon))
    corrected = article("c1", section="politics", title="Corrected headline", updated_at=NOW)
    save_articles(store, [corrected], now=NOW)
    reports = social.update_posted_articles(settings, store, ["c1"], now=NOW + timedelta(minutes=10),
                                            transports=transports(settings, fake_mastodon))
    assert [(r.channel, r.status) for r in reports] == [("fedi", "edited")]
    (status,) = fake_mastodon.posted()
    assert status.text.startswith("Corrected headline\n\n") and status.edits
    # Nothing changed since: no second edit.
    assert social.update_posted_articles(settings, store, ["c1"], now=NOW + timedelta(minutes=11),
                                         transports=transports(settings, fake_mastodon)) == []
    # Outside the window: left as it is.
    save_articles(store, [article("c1", section="politics", title="Third", updated_at=NOW)], now=NOW)
    late = social.update_posted_articles(settings, store, ["c1"], now=NOW + timedelta(days=3),
                                         transports=transports(settings, fake_mastodon))
    assert [(r.status, r.note) for r in late] == [("unchanged", "outside the edit window")]


def test_digest_is_a_thread_each_status_replying_to_the_previous(store, make, fake_mastodon):
    settings = make()
    sections = ["nation", "states", "international", "politics", "economy", "sports"]
    save(store, *[article(f"d{i:02d}", section=sections[i % 6], minutes_ago=10 + i,
                          title=f"{i:02d} " + "संसद में बहस जारी, विपक्ष ने वॉकआउट किया 🇮🇳 " * 2)
                  for i in range(24)])
    run, _ = open_slot(settings, store, "morning", NOW)
    assert prepare_run(settings, store, run.id).ready
    assert tg.post_run(settings, store, run.id, now=NOW) == []  # no Telegram channel takes it
    reports = social.post_run(settings, store, run.id, now=NOW, transports=transports(settings, fake_mastodon))
    assert [(r.channel, r.status) for r in reports] == [("fedi", "sent")]
    thread = fake_mastodon.posted()
    assert len(thread) >= 2
    assert thread[0].in_reply_to_id is None
    assert [s.in_reply_to_id for s in thread[1:]] == [s.id for s in thread[:-1]]
    assert all(s.text.endswith(f"({i}/{len(thread)})") for i, s in enumerate(thread, 1))
    assert list(reports[0].message_ids) == [s.id for s in thread]
    again = social.post_run(settings, store, run.id, now=NOW, transports=transports(settings, fake_mastodon))
    assert [r.status for r in again] == ["exists"] and len(fake_mastodon.posted()) == len(thread)


def test_without_a_token_requests_go_to_the_outbox(store, tmp_path, monkeypatch, fake_mastodon, caplog):
    settings = settings_for(tmp_path, channels=channels("https://mastodon.example"))
    keys = save(store, article("o1", image_url="https://img.newsarenaindia.com/o1.jpg"))
    caplog.set_level(logging.DEBUG)
    reports = social.post_new_articles(settings, store, keys, now=NOW)
    assert {r.status for r in reports} == {"sent"}
    files = sorted((settings.outbox_dir / "mastodon").glob("*.json"))
    payloads = [json.loads(f.read_text()) for f in files]
    statuses = [p for p in payloads if p["action"] == "status"]
    media = [p for p in payloads if p["action"] == "media"]
    assert len(statuses) == 2 and len(media) == 2  # a status and its image per channel
    assert media[0]["params"]["url"] == "https://img.newsarenaindia.com/o1.jpg"
    assert all(p["idempotency_key"].startswith("distributor-") for p in statuses)
    assert all(p["params"]["language"] == "en" for p in statuses)
    assert fake_mastodon.calls == []


def test_token_from_the_environment_is_masked(tmp_path, monkeypatch, fake_mastodon):
    monkeypatch.setenv("MASTODON_FEDI_SPORTS_TOKEN", TOKEN)
    settings = settings_for(tmp_path, channels=channels(fake_mastodon.base_url))
    assert settings.channel_credentials("fedi-sports") == {"token": TOKEN}
    assert settings.channel_credentials("fedi") == {}
    assert TOKEN in settings.secrets()
    assert isinstance(social.transport_for(settings, "fedi-sports"), MastodonChannel)
    assert TOKEN not in repr(social.transport_for(settings, "fedi-sports"))


def test_refused_token_defers_and_says_so(store, make, fake_mastodon):
    settings = make()
    keys = save(store, article("u1", section="politics"))
    bad = social.Transports(settings, {"fedi": MastodonChannel(fake_mastodon.base_url, "wrong-token", timeout=0.5)},
                            limits=LIMITS)
    reports = social.post_new_articles(settings, store, keys, now=NOW, transports=bad)
    assert [(r.status, r.note) for r in reports] == [("deferred", "the credentials were refused")]
    assert "wrong-token" not in reports[0].line()


def _rows(store):
    from sqlalchemy import select

    from distributor.store.models import TelegramPostRow

    with store.session() as session:
        return session.scalars(select(TelegramPostRow)).all()


def test_quiet_hours_hold_posts_for_one_roundup_thread(store, tmp_path, fake_mastodon):
    quiet = {"fedi-sports": ChannelConfig(kind="mastodon", instance_url=fake_mastodon.base_url, sections=("sports",),
                                          instant=True, quiet_hours="00:00-06:00")}
    settings = settings_for(tmp_path, channels=quiet, telegram=TelegramConfig(read_timeout_seconds=0.5))
    night = datetime(2026, 11, 26, 20, 0, tzinfo=timezone.utc)  # 01:30 in Kolkata
    keys = save(store, article("q1", published_at=night - timedelta(minutes=9)),
                article("q2", published_at=night - timedelta(minutes=8)))
    held = social.post_new_articles(settings, store, keys, now=night, transports=transports(settings, fake_mastodon))
    assert [r.status for r in held] == ["held", "held"] and fake_mastodon.posted() == []
    morning = datetime(2026, 11, 27, 0, 45, tzinfo=timezone.utc)  # 06:15
    reports = social.flush_quiet_hours(settings, store, now=morning, transports=transports(settings, fake_mastodon))
    assert [(r.target, r.status) for r in reports] == [("roundup of 2", "sent")]
    posted = fake_mastodon.posted()
    assert posted[0].text.startswith("2 new stories since 00:00")
    assert [s.in_reply_to_id for s in posted[1:]] == [s.id for s in posted[:-1]]
    assert {r.kind for r in _rows(store)} == {"roundup"}


def test_5xx_defers_and_the_resend_posts(store, make, fake_mastodon):
    settings = make()
    keys = save(store, article("e1", section="politics"))
    fake_mastodon.fail_next("500", path="/api/v1/statuses")
    reports = social.post_new_articles(settings, store, keys, now=NOW, transports=transports(settings, fake_mastodon))
    assert [r.status for r in reports] == ["deferred"] and "500" in reports[0].note
    retried = social.retry_deferred(settings, store, now=NOW + timedelta(seconds=social.RESEND_SECONDS),
                                    transports=transports(settings, fake_mastodon))
    assert [r.status for r in retried] == ["sent"] and len(fake_mastodon.posted()) == 1


def test_mastodon_posts_are_counted_under_their_own_kind(store, make, fake_mastodon):
    from distributor import metrics

    def sent(kind: str) -> float:
        return metrics.DELIVERIES.labels(channel=kind, status="sent")._value.get()

    before_mastodon, before_telegram = sent("mastodon"), sent("telegram")
    settings = make()
    keys = save(store, article("m1"))
    social.post_new_articles(settings, store, keys, now=NOW, transports=transports(settings, fake_mastodon))
    assert sent("mastodon") == before_mastodon + 2  # the fedi and fedi-sports channels
    assert sent("telegram") == before_telegram


def test_a_hindi_article_is_posted_in_hindi(store, make, fake_mastodon):
    settings = make()
    keys = save(store, article("h1", section="politics", title="मानसून: मौसम विभाग ने 10 राज्यों में अलर्ट जारी किया",
                               standfirst="भारी बारिश की चेतावनी"), article("e1", section="politics", title="Rail fares up"))
    social.post_new_articles(settings, store, keys, now=NOW, transports=transports(settings, fake_mastodon))
    assert {s.text.split("\n")[0]: s.language for s in fake_mastodon.posted()} == {
        "मानसून: मौसम विभाग ने 10 राज्यों में अलर्ट जारी किया": "hi", "Rail fares up": "en"}


# --- holds and budgets shared by every worker ---------------------------------------------


def test_a_429_holds_the_channel_for_every_worker_until_the_reset(store, make, fake_mastodon, redis_limits):
    """Two workers (their own clients, transports and limiter objects; one Redis): the
    429 one of them met holds the other's posts to that channel, without a request, until
    the reset; then each post goes out once."""
    settings = make()
    clock = redis_limits.clock
    fake_mastodon.reset_in = 300
    save(store, article("w1", section="politics"), article("w2", section="politics"), article("w3"))
    fake_mastodon.fail_next("429", path="/api/v1/statuses")
    first = social.post_article(settings, store, "w1", "fedi", now=NOW,
                                transports=transports(settings, fake_mastodon, limits=redis_limits.worker()))
    assert first.status == "deferred"
    seen = len(fake_mastodon.calls)
    other = social.post_article(settings, store, "w2", "fedi", now=NOW + timedelta(seconds=5),
                                transports=transports(settings, fake_mastodon, limits=redis_limits.worker()))
    assert (other.status, other.note) == ("deferred", "deferred: rate limited")
    assert len(fake_mastodon.calls) == seen  # no request at all during the hold
    # The hold is the channel's: another channel posts meanwhile.
    sports = social.post_article(settings, store, "w3", "fedi-sports", now=NOW + timedelta(seconds=5),
                                 transports=transports(settings, fake_mastodon, limits=redis_limits.worker()))
    assert sports.status == "sent"
    waits = sorted((r.next_attempt_at - NOW).total_seconds() for r in _rows(store) if r.channel == "fedi")
    assert len(waits) == 2 and all(295 < w < 310 for w in waits), waits
    clock.now += 310
    done = social.retry_deferred(settings, store, now=NOW + timedelta(seconds=310),
                                 transports=transports(settings, fake_mastodon, limits=redis_limits.worker()))
    assert sorted((r.target, r.status) for r in done) == [("w1", "sent"), ("w2", "sent")]
    assert sorted(s.text.split(":")[0] for s in fake_mastodon.posted()) == ["Headline w1", "Headline w2", "Headline w3"]
    assert len([c for c in fake_mastodon.calls if c.path == "/api/v1/statuses"]) == 4  # the 429 and three posts


def test_a_spent_budget_holds_the_channel_before_any_429(store, make, fake_mastodon, redis_limits):
    """X-RateLimit-Remaining 0 on a status's answer: the next post, from another worker,
    waits for X-RateLimit-Reset without asking (and so without meeting a 429)."""
    settings = make()
    fake_mastodon.reset_in = 600
    fake_mastodon.limit(1, path="/api/v1/statuses")
    save(store, article("b1", section="politics"), article("b2", section="politics"))
    sent = social.post_article(settings, store, "b1", "fedi", now=NOW,
                               transports=transports(settings, fake_mastodon, limits=redis_limits.worker()))
    assert sent.status == "sent"
    seen = len(fake_mastodon.calls)
    held = social.post_article(settings, store, "b2", "fedi", now=NOW,
                               transports=transports(settings, fake_mastodon, limits=redis_limits.worker()))
    assert held.status == "deferred" and len(fake_mastodon.calls) == seen
    assert 590 < (max(r.next_attempt_at for r in _rows(store) if r.status == "pending") - NOW).total_seconds() < 610
    assert {c.status for c in fake_mastodon.calls} == {200}  # never a 429
    fake_mastodon.limit(300, path="/api/v1/statuses")  # the instance's new window
    redis_limits.clock.now += 610
    done = social.retry_deferred(settings, store, now=NOW + timedelta(seconds=610),
                                 transports=transports(settings, fake_mastodon, limits=redis_limits.worker()))
    assert [(r.target, r.status) for r in done] == [("b2", "sent")] and len(fake_mastodon.posted()) == 2


def test_the_accounts_status_budget_defers_the_301st_status_in_3_hours(store, make, fake_mastodon, redis_limits):
    """MastodonLimits.statuses_per_account, 300 in any 3 hours, counted by every worker:
    with 300 taken, the next status waits for the oldest to leave the window: deferred
    when that is far off, waited for in place when it is within max_retry_wait_seconds."""
    from distributor.delivery.social_limits import ACCOUNT, budgets
    from distributor.ratelimit import Rate, acquire

    assert budgets("mastodon") == {"status": (Rate(300, 10800.0),), "media": (Rate(30, 1800.0),)}
    settings = make()
    clock = redis_limits.clock
    start = clock.now
    budget = redis_limits.worker().budget("mastodon", "fedi", "status")
    for _ in range(300):  # other workers' statuses, one a second
        budget.complete(acquire(budget, ACCOUNT, max_wait=0))
        clock.now += 1
    save(store, article("n1", section="politics"))
    report = social.post_article(settings, store, "n1", "fedi", now=NOW,
                                 transports=transports(settings, fake_mastodon, limits=redis_limits.worker()))
    assert report.status == "deferred" and fake_mastodon.posted() == []
    [row] = _rows(store)
    assert (row.next_attempt_at - NOW).total_seconds() == pytest.approx(10800 - 300, abs=1)
    assert clock.waits == []  # no worker slept for it
    clock.now = start + 10800 - 30  # the oldest slot leaves the window in 30 s
    done = social.retry_deferred(settings, store, now=row.next_attempt_at,
                                 transports=transports(settings, fake_mastodon, limits=redis_limits.worker()))
    assert [r.status for r in done] == ["sent"] and len(fake_mastodon.posted()) == 1
    assert clock.waits == [pytest.approx(30.0)]


def test_a_second_worker_process_defers_during_the_hold(sqlite_store, tmp_path, monkeypatch, fake_mastodon):
    """The production path in two processes: this one meets the 429; `distributor
    channels post` in a process of its own (REDIS_URL set, the Redis server's clock)
    defers its post without a request to the instance."""
    import os
    import subprocess
    import sys
    import uuid

    from distributor.settings import PROJECT_ROOT, load_settings
    from distributor.store.models import utcnow
    from tests.conftest import CONFIG, REDIS_URL, redis_or_skip

    client = redis_or_skip("the two-process hold test")
    name = f"fedi-{uuid.uuid4().hex[:8]}"
    config = tmp_path / "distributor.toml"
    text = CONFIG.read_text(encoding="utf-8")
    assert '[channels.fediverse]\nkind = "mastodon"\ninstance_url = "https://mastodon.social"' in text
    config.write_text(text.replace('[channels.fediverse]\nkind = "mastodon"\ninstance_url = "https://mastodon.social"',
                                   f'[channels.{name}]\nkind = "mastodon"\ninstance_url = "{fake_mastodon.base_url}"'),
                      encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    for key, value in {"REDIS_URL": REDIS_URL, f"MASTODON_{name.upper().replace('-', '_')}_TOKEN": TOKEN,
                       "DATABASE_URL": sqlite_store.url, "SECRET_KEY": "social-hold-tests-signing-key-0123456789abcdef",
                       "PUBLIC_BASE_URL": "https://www.newsarenaindia.com", "DISTRIBUTOR_CONFIG": str(config)}.items():
        monkeypatch.setenv(key, value)
    settings = load_settings(config)
    assert settings.redis_url == REDIS_URL and settings.channel_credentials(name) == {"token": TOKEN}
    now = utcnow()
    save_articles(sqlite_store, [article("p1", section="politics", published_at=now),
                                 article("p2", section="politics", published_at=now)], now=now)
    fake_mastodon.reset_in = 300
    fake_mastodon.fail_next("429", path="/api/v1/statuses")
    try:
        assert social.post_article(settings, sqlite_store, "p1", name).status == "deferred"
        seen = len(fake_mastodon.calls)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))}
        worker = subprocess.run([sys.executable, "-m", "distributor", "channels", "post", "p2", "--channel", name],
                                cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert worker.returncode == 1, worker.stdout + worker.stderr
        assert worker.stdout.split() == [name, "deferred", "p2:", "deferred:", "rate", "limited"], worker.stdout
        assert len(fake_mastodon.calls) == seen  # the other process sent nothing
        waits = [(r.next_attempt_at - now).total_seconds() for r in _rows(sqlite_store)]
        assert len(waits) == 2 and all(250 < w < 320 for w in waits), waits
    finally:
        for key in client.scan_iter(f"distributor:social:*{name}*"):
            client.delete(key)
        client.close()


def test_a_disabled_account_pauses_only_its_channel_until_resumed(store, make, fake_mastodon):
    from distributor.delivery import ledger

    settings = make()
    keys = save(store, article("d1", section="politics"))
    fake_mastodon.fail_next("403", path="/api/v1/statuses")
    [report] = social.post_new_articles(settings, store, keys, now=NOW, transports=transports(settings, fake_mastodon))
    assert (report.channel, report.status) == ("fedi", "failed") and "disabled" in report.note
    state = ledger.channel_state(settings, store, "fedi")
    assert state.paused and "disabled" in state.reason
    later = save(store, article("d2"))
    reports = social.post_new_articles(settings, store, later, now=NOW, transports=transports(settings, fake_mastodon))
    assert sorted((r.channel, r.status) for r in reports) == [("fedi", "skipped"), ("fedi-sports", "sent")]
    assert len(fake_mastodon.posted()) == 1
    assert ledger.resume_channel(store, "fedi")
    again = save(store, article("d3", section="politics"))
    [report] = social.post_new_articles(settings, store, again, now=NOW, transports=transports(settings, fake_mastodon))
    assert (report.channel, report.status) == ("fedi", "sent")
