"""Bluesky delivery end to end: the real atproto SDK client against the fake PDS on
localhost (tests/fakes/bluesky_api.py), the shared ledger on SQLite and PostgreSQL.

Covers posts routed by section with the link as a facet and a link card whose thumbnail
is the article image's blob, Devanagari and emoji at 300 graphemes / 3,000 bytes, a digest
thread (reply root and parent), a retry after a timeout-after-accept posting once (the
record key), 429 deferral with the channel held for every worker (in Redis), a spent
budget (RateLimit-Remaining 0) holding the channel before any 429, the account's declared
budget of creates (hour and day), one login for many posts with the session refreshed,
corrections left or reposted, and the outbox without credentials.

The shared limits run on a fake clock (`tests/fakes/limits.py`): in process by default,
in the test Redis where a test says "worker".
"""

from __future__ import annotations

import http.server
import json
import threading
from datetime import datetime, timedelta, timezone

import pytest

from distributor.articles import Article
from distributor.channels.bluesky import BlueskyChannel
from distributor.delivery import social
from distributor.engine import open_slot, prepare_run
from distributor.settings import ChannelConfig, IngestConfig, TelegramConfig
from distributor.store.articles import save_articles
from distributor.text import graphemes, utf8_bytes
from tests.conftest import settings_for
from tests.fakes.bluesky_api import APP_PASSWORD, HANDLE
from tests.fakes.limits import Clock, memory_limits, redis_limits  # noqa: F401 - redis_limits is a fixture

NOW = datetime(2026, 11, 27, 6, 30, tzinfo=timezone.utc)
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


def channels(url: str, **extra) -> dict[str, ChannelConfig]:
    return {
        "sky": ChannelConfig(kind="bluesky", service_url=url, instant=True, digests=("morning",), **extra),
        "sky-sports": ChannelConfig(kind="bluesky", service_url=url, sections=("sports",), instant=True),
    }


@pytest.fixture
def make(tmp_path, fake_bluesky):
    def build(**extra):
        return settings_for(tmp_path, channels=channels(fake_bluesky.base_url, **extra),
                            telegram=TelegramConfig(read_timeout_seconds=0.5),
                            ingest=IngestConfig(allow_private=("127.0.0.1",)))
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
    """Real atproto clients pointed at the fake; the test's shared limits unless `limits`
    (a worker's) are given."""
    return social.Transports(settings, {name: BlueskyChannel(fake.base_url, HANDLE, APP_PASSWORD, timeout=timeout)
                                        for name in settings.channels}, limits=limits or LIMITS)


def article(key: str, *, section: str = "sports", minutes_ago: int = 5, **fields) -> Article:
    values = {"key": key, "url": f"https://www.newsarenaindia.com/{section}/{key}",
              "title": f"Headline {key}: भारत ने जीता मैच 🏏", "section": section,
              "published_at": NOW - timedelta(minutes=minutes_ago), "standfirst": "A short standfirst."}
    values.update(fields)
    return Article(**values)


def save(store, *articles: Article) -> list[str]:
    save_articles(store, list(articles), now=NOW - timedelta(minutes=1))
    return [a.key for a in articles]


def linked(post) -> list[tuple[str, str]]:
    """(visible text, URL) of each link facet, read back by byte offsets."""
    data = post.record["text"].encode("utf-8")
    return [(data[f["index"]["byteStart"]:f["index"]["byteEnd"]].decode("utf-8"), f["features"][0]["uri"])
            for f in post.record.get("facets", [])]


@pytest.fixture
def image_url():
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
    yield f"http://127.0.0.1:{server.server_address[1]}/photo.png"
    server.shutdown()


def test_posts_routed_by_section_with_link_facet_and_card(store, make, fake_bluesky, image_url):
    settings = make()
    keys = save(store, article("a1", image_url=image_url), article("a2", section="politics"))
    reports = social.post_new_articles(settings, store, keys, now=NOW, transports=transports(settings, fake_bluesky))
    assert sorted((r.channel, r.target, r.status) for r in reports) == [
        ("sky", "a1", "sent"), ("sky", "a2", "sent"), ("sky-sports", "a1", "sent")]
    posts = fake_bluesky.thread()
    assert len(posts) == 3 and fake_bluesky.logins == 1
    for post in posts:
        assert post.record["langs"] == ["en"]
        [(shown, url)] = linked(post)
        # The text shows the link's start (no scheme, cut); the facet opens all of it.
        assert post.record["text"].endswith(shown) and url.split("://", 1)[1].startswith(shown.rstrip("…"))
        assert post.record["embed"]["external"]["uri"] == url
    with_image = [p for p in posts if p.record["embed"]["external"].get("thumb")]
    assert len(with_image) == 2  # a1 on both channels
    assert all(p.record["embed"]["external"]["thumb"]["size"] == len(PNG) for p in with_image)
    assert {p.record["embed"]["external"]["thumb"]["mimeType"] for p in with_image} == {"image/png"}
    again = social.post_new_articles(settings, store, keys, now=NOW, transports=transports(settings, fake_bluesky))
    assert {r.status for r in again} == {"exists"} and len(fake_bluesky.posts) == 3


@pytest.mark.parametrize("filler", ["संसद में बहस जारी, विपक्ष ने वॉकआउट किया ", "👨‍👩‍👧🇮🇳👋🏽", "क्षत्रिय "])
def test_devanagari_and_emoji_at_the_limits(store, make, fake_bluesky, filler):
    settings = make()
    keys = save(store, article("long", section="politics", title=filler * 40, standfirst=filler * 200))
    reports = social.post_new_articles(settings, store, keys, now=NOW, transports=transports(settings, fake_bluesky))
    assert [r.status for r in reports] == ["sent"]
    [post] = fake_bluesky.thread()
    text = post.record["text"]
    assert graphemes(text) <= 300 and utf8_bytes(text) <= 3000
    assert graphemes(text) > 250 or utf8_bytes(text) > 2900  # filled, not cut short
    [(shown, _)] = linked(post)
    assert text.endswith(shown)


def test_digest_is_a_thread_with_root_and_parent(store, make, fake_bluesky):
    settings = make()
    sections = ["nation", "states", "international", "politics", "economy", "sports"]
    save(store, *[article(f"d{i:02d}", section=sections[i % 6], minutes_ago=10 + i,
                          title=f"{i:02d} " + "संसद में बहस जारी 🇮🇳 " * 3) for i in range(24)])
    run, _ = open_slot(settings, store, "morning", NOW)
    assert prepare_run(settings, store, run.id).ready
    reports = social.post_run(settings, store, run.id, now=NOW, transports=transports(settings, fake_bluesky))
    assert [(r.channel, r.status) for r in reports] == [("sky", "sent")]
    thread = fake_bluesky.thread()
    assert len(thread) >= 2 and "reply" not in thread[0].record
    for previous, post in zip(thread, thread[1:]):
        reply = post.record["reply"]
        assert (reply["root"]["uri"], reply["root"]["cid"]) == (thread[0].uri, thread[0].cid)
        assert (reply["parent"]["uri"], reply["parent"]["cid"]) == (previous.uri, previous.cid)
    assert sum(len(linked(p)) for p in thread) == 24
    assert all(p.record["text"].endswith(f"({n}/{len(thread)})") for n, p in enumerate(thread, 1))


def test_timeout_after_accept_then_retry_posts_once(store, make, fake_bluesky):
    settings = make()
    fake_bluesky.hang_seconds = 1.5
    keys = save(store, article("t1", section="politics"))
    fake_bluesky.fail_next("timeout", path="com.atproto.repo.createRecord")
    reports = social.post_new_articles(settings, store, keys, now=NOW, transports=transports(settings, fake_bluesky))
    assert [r.status for r in reports] == ["deferred"] and len(fake_bluesky.posts) == 1
    retried = social.retry_deferred(settings, store, now=NOW + timedelta(seconds=social.RESEND_SECONDS),
                                    transports=transports(settings, fake_bluesky))
    assert [r.status for r in retried] == ["sent"]
    [post] = fake_bluesky.thread()
    assert retried[0].message_ids == (f"{post.uri} {post.cid}",)
    assert ("com.atproto.repo.getRecord", 200) in fake_bluesky.calls


def test_429_defers_until_the_reset(store, make, fake_bluesky, clock):
    settings = make()
    fake_bluesky.reset_in = 600
    keys = save(store, article("r1", section="politics"))
    fake_bluesky.fail_next("429", path="com.atproto.repo.createRecord")
    reports = social.post_new_articles(settings, store, keys, now=NOW, transports=transports(settings, fake_bluesky))
    assert [r.status for r in reports] == ["deferred"]
    assert social.retry_deferred(settings, store, now=NOW + timedelta(seconds=300),
                                 transports=transports(settings, fake_bluesky)) == []
    clock.now += 620
    done = social.retry_deferred(settings, store, now=NOW + timedelta(seconds=620),
                                 transports=transports(settings, fake_bluesky))
    assert [r.status for r in done] == ["sent"] and len(fake_bluesky.posts) == 1


def test_one_login_for_many_posts_and_the_session_refreshed(store, make, fake_bluesky):
    settings = make()
    fake_bluesky.access_seconds = 60  # inside the SDK's 15-minute margin: refreshed before use
    for n in range(3):
        keys = save(store, article(f"s{n}", section="politics", minutes_ago=5 - n))
        social.post_new_articles(settings, store, keys, now=NOW, transports=transports(settings, fake_bluesky))
    assert len(fake_bluesky.posts) == 3
    assert fake_bluesky.logins == 1 and fake_bluesky.refreshes >= 2


def test_corrections_left_by_default_or_reposted(store, make, fake_bluesky):
    settings = make()
    keys = save(store, article("c1", section="politics"))
    social.post_new_articles(settings, store, keys, now=NOW, transports=transports(settings, fake_bluesky))
    save_articles(store, [article("c1", section="politics", title="Corrected", updated_at=NOW)], now=NOW)
    left = social.update_posted_articles(settings, store, ["c1"], now=NOW + timedelta(minutes=5),
                                         transports=transports(settings, fake_bluesky))
    assert [(r.status, r.note) for r in left] == [("unchanged", "Bluesky has no edit (corrections = leave)")]
    [first] = fake_bluesky.thread()

    settings = make(corrections="repost")
    reposted = social.update_posted_articles(settings, store, ["c1"], now=NOW + timedelta(minutes=5),
                                             transports=transports(settings, fake_bluesky))
    assert [r.status for r in reposted] == ["reposted"]
    [post] = fake_bluesky.thread()
    assert [p.uri for p in fake_bluesky.deleted] == [first.uri]
    assert post.record["text"].startswith("Corrected\n\n") and reposted[0].message_ids == (f"{post.uri} {post.cid}",)
    assert social.update_posted_articles(settings, store, ["c1"], now=NOW + timedelta(minutes=6),
                                         transports=transports(settings, fake_bluesky)) == []


def test_without_credentials_records_go_to_the_outbox(store, tmp_path, monkeypatch, fake_bluesky):
    settings = settings_for(tmp_path, channels=channels("https://bsky.social"))
    keys = save(store, article("o1"))
    reports = social.post_new_articles(settings, store, keys, now=NOW)
    assert {r.status for r in reports} == {"sent"}
    payloads = [json.loads(f.read_text()) for f in sorted((settings.outbox_dir / "bluesky").glob("*.json"))]
    assert {p["channel"] for p in payloads} == {"sky", "sky-sports"}
    for payload in payloads:
        record = payload["params"]["record"]
        assert payload["action"] == "post" and len(payload["params"]["rkey"]) == 13
        assert record["$type"] == "app.bsky.feed.post" and record["facets"] and record["langs"] == ["en"]
    assert fake_bluesky.calls == []
    monkeypatch.setenv("BLUESKY_SKY_HANDLE", HANDLE)
    monkeypatch.setenv("BLUESKY_SKY_APP_PASSWORD", APP_PASSWORD)
    assert APP_PASSWORD in settings.secrets()
    assert isinstance(social.transport_for(settings, "sky"), BlueskyChannel)
    assert APP_PASSWORD not in repr(social.transport_for(settings, "sky"))


def test_a_refused_session_is_dropped_and_the_next_attempt_logs_in_again(store, make, fake_bluesky):
    settings = make()
    keys = save(store, article("x1", section="politics"))
    social.post_new_articles(settings, store, keys, now=NOW, transports=transports(settings, fake_bluesky))
    keys = save(store, article("x2", section="politics"))
    fake_bluesky.fail_next("401", path="com.atproto.repo.createRecord")
    reports = social.post_new_articles(settings, store, keys, now=NOW, transports=transports(settings, fake_bluesky))
    assert [(r.status, r.note) for r in reports] == [("deferred", "the credentials were refused")]
    assert APP_PASSWORD not in reports[0].line()
    retried = social.retry_deferred(settings, store, now=NOW + timedelta(seconds=300),
                                    transports=transports(settings, fake_bluesky))
    assert [r.status for r in retried] == ["sent"]
    assert fake_bluesky.logins == 2 and len(fake_bluesky.posts) == 2


# --- holds and budgets shared by every worker ---------------------------------------------


def _rows(store):
    from sqlalchemy import select

    from distributor.store.models import TelegramPostRow

    with store.session() as session:
        return session.scalars(select(TelegramPostRow).order_by(TelegramPostRow.id)).all()


def _creates(fake) -> int:
    return len([c for c in fake.calls if c[0] == "com.atproto.repo.createRecord"])


def test_a_429_holds_the_channel_for_every_worker_until_the_reset(store, make, fake_bluesky, redis_limits):
    """Two workers (their own clients, transports and limiter objects; one Redis): the
    429 one of them met holds the other's posts to that channel, without a request, until
    the reset; then each post goes out once."""
    settings = make()
    fake_bluesky.reset_in = 600
    save(store, article("w1", section="politics"), article("w2", section="politics"))
    fake_bluesky.fail_next("429", path="com.atproto.repo.createRecord")
    first = social.post_article(settings, store, "w1", "sky", now=NOW,
                                transports=transports(settings, fake_bluesky, limits=redis_limits.worker()))
    assert first.status == "deferred"
    seen = len(fake_bluesky.calls)
    other = social.post_article(settings, store, "w2", "sky", now=NOW,
                                transports=transports(settings, fake_bluesky, limits=redis_limits.worker()))
    assert (other.status, other.note) == ("deferred", "deferred: rate limited")
    assert len(fake_bluesky.calls) == seen  # not even a login
    waits = [(r.next_attempt_at - NOW).total_seconds() for r in _rows(store)]
    assert len(waits) == 2 and all(590 < w < 610 for w in waits), waits
    redis_limits.clock.now += 610
    done = social.retry_deferred(settings, store, now=NOW + timedelta(seconds=610),
                                 transports=transports(settings, fake_bluesky, limits=redis_limits.worker()))
    assert sorted((r.target, r.status) for r in done) == [("w1", "sent"), ("w2", "sent")]
    assert len(fake_bluesky.posts) == 2 and _creates(fake_bluesky) == 3  # the 429 and two posts


def test_a_spent_budget_holds_the_channel_before_any_429(store, make, fake_bluesky, redis_limits):
    """RateLimit-Remaining 0 on a post's answer: the next post, from another worker, waits
    for RateLimit-Reset without asking (and so without meeting a 429)."""
    settings = make()
    fake_bluesky.reset_in = 900
    fake_bluesky.limit(1, path="com.atproto.repo.createRecord")
    save(store, article("b1", section="politics"), article("b2", section="politics"))
    sent = social.post_article(settings, store, "b1", "sky", now=NOW,
                               transports=transports(settings, fake_bluesky, limits=redis_limits.worker()))
    assert sent.status == "sent"
    held = social.post_article(settings, store, "b2", "sky", now=NOW,
                               transports=transports(settings, fake_bluesky, limits=redis_limits.worker()))
    assert held.status == "deferred" and _creates(fake_bluesky) == 1
    assert 890 < (_rows(store)[1].next_attempt_at - NOW).total_seconds() < 910
    assert {status for _, status in fake_bluesky.calls} == {200}  # never a 429
    fake_bluesky.limit(1666, path="com.atproto.repo.createRecord")  # the PDS's next window
    redis_limits.clock.now += 910
    done = social.retry_deferred(settings, store, now=NOW + timedelta(seconds=910),
                                 transports=transports(settings, fake_bluesky, limits=redis_limits.worker()))
    assert [(r.target, r.status) for r in done] == [("b2", "sent")] and len(fake_bluesky.posts) == 2


def test_the_accounts_hourly_budget_of_creates_defers_the_next_post(store, make, fake_bluesky, redis_limits):
    """BlueskyLimits: 5,000 points an hour, 3 a create, so 1,666 creates in any hour,
    counted by every worker; the next post waits for the oldest to leave the hour."""
    from distributor.delivery.social_limits import ACCOUNT, budgets
    from distributor.ratelimit import Rate, acquire

    assert budgets("bluesky") == {"post": (Rate(1666, 3600.0), Rate(11666, 86400.0))}
    settings = make()
    clock = redis_limits.clock
    start = clock.now
    budget = redis_limits.worker().budget("bluesky", "sky", "post")
    for n in range(1666):  # other workers' posts over the last 1,666 seconds
        budget.complete(acquire(budget, ACCOUNT, max_wait=0))
        clock.now += 1
    save(store, article("n1", section="politics"))
    report = social.post_article(settings, store, "n1", "sky", now=NOW,
                                 transports=transports(settings, fake_bluesky, limits=redis_limits.worker()))
    assert report.status == "deferred" and fake_bluesky.calls == []
    [row] = _rows(store)
    assert (row.next_attempt_at - NOW).total_seconds() == pytest.approx(3600 - 1666, abs=1)
    clock.now = start + 3600
    done = social.retry_deferred(settings, store, now=row.next_attempt_at,
                                 transports=transports(settings, fake_bluesky, limits=redis_limits.worker()))
    assert [r.status for r in done] == ["sent"] and len(fake_bluesky.posts) == 1


def test_a_budget_counts_both_its_windows(store, make, fake_bluesky, clock):
    """The hour and the day of one account both count (scaled down here: 2 an hour, 3 a
    day): the third post waits for the hour, the fourth for the day."""
    from distributor.ratelimit import Rate

    settings = make()
    limits = memory_limits(clock, budgets=lambda kind: {"post": (Rate(2, 3600.0), Rate(3, 86400.0))})
    save(store, *[article(f"d{n}", section="politics", minutes_ago=10 - n) for n in range(4)])

    def post(key: str, at: timedelta):
        return social.post_article(settings, store, key, "sky", now=NOW + at,
                                   transports=transports(settings, fake_bluesky, limits=limits))

    assert [post(k, timedelta(0)).status for k in ("d0", "d1", "d2")] == ["sent", "sent", "deferred"]
    assert (_rows(store)[2].next_attempt_at - NOW).total_seconds() == pytest.approx(3600)
    clock.now += 3600
    assert [post(k, timedelta(hours=1)).status for k in ("d2", "d3")] == ["sent", "deferred"]
    assert (_rows(store)[3].next_attempt_at - NOW).total_seconds() == pytest.approx(86400)
    assert len(fake_bluesky.posts) == 3


def test_a_taken_down_account_pauses_only_its_channel_until_resumed(store, make, fake_bluesky):
    from distributor.delivery import ledger

    settings = make()
    keys = save(store, article("t1", section="politics"))
    fake_bluesky.fail_next("takedown", path="com.atproto.repo.createRecord")
    [report] = social.post_new_articles(settings, store, keys, now=NOW, transports=transports(settings, fake_bluesky))
    assert (report.channel, report.status) == ("sky", "failed") and "AccountTakedown" in report.note
    state = ledger.channel_state(settings, store, "sky")
    assert state.paused and "AccountTakedown" in state.reason
    # Paused: later articles are skipped for it without a request; the other channel posts.
    later = save(store, article("t2"))
    reports = social.post_new_articles(settings, store, later, now=NOW, transports=transports(settings, fake_bluesky))
    assert sorted((r.channel, r.status) for r in reports) == [("sky", "skipped"), ("sky-sports", "sent")]
    assert [p.record["text"].split("\n")[0] for p in fake_bluesky.thread()] == ["Headline t2: भारत ने जीता मैच 🏏"]
    # Resumed by an operator: the channel posts again.
    assert ledger.resume_channel(store, "sky")
    again = save(store, article("t3", section="politics"))
    [report] = social.post_new_articles(settings, store, again, now=NOW, transports=transports(settings, fake_bluesky))
    assert (report.channel, report.status) == ("sky", "sent")
