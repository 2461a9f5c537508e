"""POST /webhooks/articles and GET /healthz through a real server, on SQLite and PostgreSQL.

The app runs under uvicorn on a free port of 127.0.0.1, as `distributor web` serves it,
and requests go over HTTP with httpx; the store is the real database of the `store`
fixture, so articles and replay receipts are checked where they land.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from distributor.ingest.webhook import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign,
    signed_headers,
)
from distributor.store import Store
from distributor.store.articles import find_article, list_articles
from distributor.store.models import WebhookReceiptRow, utcnow
from distributor.web.app import create_app
from tests.fakes.webserver import serve
from tests.conftest import settings_for

SECRET = "webhook-test-secret-0f3c9a"

SEED = {
    "id": "na-webhook-seed",
    "url": "https://www.newsarenaindia.com/international/russia-recognises-taliban-government-afghanistan/",
    "title": "Russia becomes first country to recognise Taliban government in Afghanistan",
    "standfirst": "Moscow accepted the credentials of the Taliban's new ambassador.",
    "section": "International",
    "byline": "News Arena Network",
    "dateline": "Moscow",
    "published_at": "2025-07-04T11:47:00+05:30",
    "updated_at": "2025-07-04T12:10:00+05:30",
    "image_url": "https://www.newsarenaindia.com/images/taliban-flag.jpg",
    "image_caption": "The Taliban flag flies in Kabul (File photo)",
    "read_minutes": 2,
}
OTHER = {
    **SEED,
    "id": "na-webhook-other",
    "url": "https://www.newsarenaindia.com/sports/india-win-series/",
    "title": "भारत ने श्रृंखला जीती 🏏",
    "section": "Sports",
}
BAD = {"url": "https://www.newsarenaindia.com/nation/no-title/", "section": "Nation"}  # no title


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SECRET_KEY", SECRET)
    return settings_for(tmp_path)


@pytest.fixture
def client(settings, store: Store) -> Iterator[httpx.Client]:
    with serve(create_app(settings, store)) as client:
        yield client


def encode(payload) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode()


def post(client: httpx.Client, body: bytes, *, timestamp: int | None = None, secret: str = SECRET, headers=None):
    stamp = int(time.time()) if timestamp is None else timestamp
    sent = signed_headers(secret, stamp, body) if headers is None else headers
    response = client.post("/webhooks/articles", content=body, headers=sent)
    assert SECRET not in response.text
    return response


def receipts(store: Store) -> list[str]:
    with store.session() as session:
        return list(session.scalars(select(WebhookReceiptRow.signature)))


# --- health ------------------------------------------------------------------------------


def test_healthz(client):
    response = client.get("/healthz")
    body = response.json()
    assert (response.status_code, body["ok"], body["database"]) == (200, True, "ok")
    assert body["components"]["database"] == {"ok": True, "detail": body["components"]["database"]["detail"]}
    assert body["components"]["broker"]["ok"] is True
    # Strict: beat and workers count too, and in this test nothing ticks.
    strict = client.get("/healthz", params={"strict": 1})
    assert strict.status_code == 503 and strict.json()["components"]["beat"]["ok"] is False


def test_healthz_reports_an_unreachable_database(settings):
    # Port 1 on loopback: nothing listens there, the connection is refused at once.
    store = Store("postgresql://distributor:pw-not-to-leak@127.0.0.1:1/none?connect_timeout=2")
    try:
        with serve(create_app(settings, store)) as client:
            response = client.get("/healthz")
    finally:
        store.dispose()
    assert response.status_code == 503
    assert response.json()["database"] == "unreachable" and "pw-not-to-leak" not in response.text
    assert "127.0.0.1:1" not in response.text


def test_healthz_is_503_when_redis_is_down(tmp_path, store, monkeypatch):
    """A private redis-server, stopped: the broker is down and so is the health check."""
    from tests.fakes.processes import RedisServer

    redis_server = RedisServer(tmp_path / "redis").start()
    monkeypatch.setenv("SECRET_KEY", SECRET)
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    settings = settings_for(tmp_path)
    with serve(create_app(settings, store)) as client:
        try:
            assert client.get("/healthz").status_code == 200
        finally:
            redis_server.stop()
        response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["components"]["broker"] == {"ok": False, "detail": "Redis does not answer"}


# --- accepted ----------------------------------------------------------------------------


def test_good_signature_stores_the_article(client, store):
    response = post(client, encode(SEED))
    assert response.status_code == 200, response.text
    assert response.json() == {
        "results": [{"key": "na-webhook-seed", "outcome": "new"}],
        "rejected": [],
    }
    article = find_article(store, "na-webhook-seed")
    assert article is not None
    assert (article.title, article.section, article.byline, article.dateline, article.source) == (
        SEED["title"],
        "international",
        "News Arena Network",
        "Moscow",
        "webhook",
    )
    assert len(receipts(store)) == 1


def test_the_same_article_again_is_unchanged_and_an_edit_is_updated(client, store):
    start = int(time.time())
    assert post(client, encode(SEED), timestamp=start).json()["results"][0]["outcome"] == "new"
    # A new request (its own timestamp, so its own signature) with the same article.
    again = post(client, encode(SEED), timestamp=start - 1)
    assert again.json()["results"] == [{"key": "na-webhook-seed", "outcome": "unchanged"}]
    edited = post(client, encode({**SEED, "title": SEED["title"] + " (corrected)"}), timestamp=start)
    assert edited.json()["results"] == [{"key": "na-webhook-seed", "outcome": "updated"}]
    assert find_article(store, "na-webhook-seed").version == 2


def test_batch_with_a_bad_item_stores_the_good_ones(client, store):
    response = post(client, encode({"articles": [SEED, BAD, 7, OTHER]}))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["results"] == [
        {"key": "na-webhook-seed", "outcome": "new"},
        {"key": "na-webhook-other", "outcome": "new"},
    ]
    assert [r["index"] for r in body["rejected"]] == [1, 2]
    assert "title" in body["rejected"][0]["reason"]
    assert "expected a JSON object" in body["rejected"][1]["reason"]
    assert find_article(store, "na-webhook-other").title == "भारत ने श्रृंखला जीती 🏏"
    assert len(list_articles(store)) == 2


def test_image_size_is_stored_and_a_bad_one_is_rejected_by_name(client, store):
    sized = {**SEED, "image_width": 1200, "image_height": 675}
    bad = {**OTHER, "image_width": -1}
    response = post(client, encode({"articles": [sized, bad]}))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["results"] == [{"key": "na-webhook-seed", "outcome": "new"}]
    [rejected] = body["rejected"]
    assert rejected["index"] == 1
    assert "image_width: -1 is not a size in pixels" in rejected["reason"]
    stored = find_article(store, "na-webhook-seed")
    assert (stored.image_width, stored.image_height) == (1200, 675)
    # A push that only corrects the size keeps the article as it was, with the new size.
    again = post(client, encode({**sized, "image_width": 1280, "image_height": 720}), timestamp=int(time.time()) - 1)
    assert again.json()["results"] == [{"key": "na-webhook-seed", "outcome": "unchanged"}]
    stored = find_article(store, "na-webhook-seed")
    assert (stored.image_width, stored.image_height, stored.version) == (1280, 720, 1)


def test_batch_where_every_item_is_rejected_is_422(client, store):
    response = post(client, encode({"articles": [BAD, "nope"]}))
    assert response.status_code == 422
    assert response.json()["results"] == []
    assert [r["index"] for r in response.json()["rejected"]] == [0, 1]
    assert list_articles(store) == []


# --- refused -----------------------------------------------------------------------------


def test_bad_signature_is_401(client, store):
    response = post(client, encode(SEED), secret="not-the-secret")
    assert (response.status_code, response.json()) == (401, {"error": "bad signature"})
    assert find_article(store, "na-webhook-seed") is None
    assert receipts(store) == []


@pytest.mark.parametrize("path", ["/webhooks/articles", "/webhooks/pageviews"])
@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/jsonx", None])
def test_signed_pushes_take_only_json_bodies(client, store, path, content_type):
    body = encode(SEED)
    headers = signed_headers(SECRET, int(time.time()), body)
    headers.pop("Content-Type", None)
    if content_type:
        headers["Content-Type"] = content_type
    response = client.post(path, content=body, headers=headers)
    assert response.status_code == 415
    assert response.json() == {"error": f"Content-Type must be application/json, not {content_type or 'missing'}"}
    assert find_article(store, "na-webhook-seed") is None and receipts(store) == []


def test_json_with_a_charset_is_json(client, store):
    body = encode(SEED)
    headers = {**signed_headers(SECRET, int(time.time()), body), "Content-Type": "Application/JSON; charset=utf-8"}
    assert client.post("/webhooks/articles", content=body, headers=headers).status_code == 200
    assert find_article(store, "na-webhook-seed") is not None


def test_tampered_body_is_401(client, store):
    stamp = int(time.time())
    headers = signed_headers(SECRET, stamp, encode(SEED))
    tampered = encode({**SEED, "title": "Something else"})
    response = post(client, tampered, headers=headers)
    assert (response.status_code, response.json()) == (401, {"error": "bad signature"})


@pytest.mark.parametrize("missing", [TIMESTAMP_HEADER, SIGNATURE_HEADER])
def test_missing_headers_are_401(client, store, missing):
    headers = signed_headers(SECRET, int(time.time()), encode(SEED))
    del headers[missing]
    response = post(client, encode(SEED), headers=headers)
    assert (response.status_code, response.json()) == (401, {"error": f"missing {missing} header"})
    assert find_article(store, "na-webhook-seed") is None


def test_stale_timestamp_is_401(client, store, settings):
    stale = int(time.time()) - settings.file.webhook.max_age_seconds - 60
    response = post(client, encode(SEED), timestamp=stale)
    assert response.status_code == 401
    assert response.json()["error"].startswith("timestamp too old")
    assert find_article(store, "na-webhook-seed") is None


def test_future_timestamp_is_401(client, store, settings):
    ahead = int(time.time()) + settings.file.webhook.max_age_seconds + 60
    response = post(client, encode(SEED), timestamp=ahead)
    assert response.status_code == 401
    assert response.json()["error"].startswith("timestamp in the future")


def test_malformed_timestamp_is_401(client):
    body = encode(SEED)
    headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: "soon", SIGNATURE_HEADER: sign(SECRET, 0, body)}
    response = post(client, body, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"].startswith(f"malformed {TIMESTAMP_HEADER}")


def test_replay_of_the_same_request_is_409(client, store):
    body = encode(SEED)
    headers = signed_headers(SECRET, int(time.time()), body)
    assert post(client, body, headers=headers).status_code == 200
    replay = post(client, body, headers=headers)
    assert (replay.status_code, replay.json()) == (409, {"error": "replay of an already accepted request"})
    # Changing the hex digits' case is the same signature, not a new one.
    shouted = {**headers, SIGNATURE_HEADER: "sha256=" + headers[SIGNATURE_HEADER][7:].upper()}
    assert post(client, body, headers=shouted).status_code == 409
    assert len(receipts(store)) == 1


def test_old_receipts_are_pruned(client, store, settings):
    keep = 2 * settings.file.webhook.max_age_seconds
    with store.session() as session:
        session.add(WebhookReceiptRow(signature="sha256=" + "a" * 64, received_at=utcnow() - timedelta(seconds=keep + 5)))
        session.add(WebhookReceiptRow(signature="sha256=" + "b" * 64, received_at=utcnow() - timedelta(seconds=keep - 60)))
    assert post(client, encode(SEED)).status_code == 200
    kept = receipts(store)
    assert "sha256=" + "a" * 64 not in kept
    assert "sha256=" + "b" * 64 in kept
    assert len(kept) == 2


def test_oversize_body_is_413(client, store, settings):
    limit = settings.file.webhook.max_body_bytes
    body = encode({**SEED, "standfirst": "x" * limit})
    response = post(client, body)
    assert (response.status_code, response.json()) == (
        413,
        {"error": f"body larger than {limit} bytes (webhook.max_body_bytes)"},
    )
    assert find_article(store, "na-webhook-seed") is None


def test_oversize_body_without_content_length_is_413(client, settings):
    limit = settings.file.webhook.max_body_bytes
    body = encode({**SEED, "standfirst": "x" * limit})
    headers = signed_headers(SECRET, int(time.time()), body)

    def chunks():  # a generator body goes out chunked, with no Content-Length
        for start in range(0, len(body), 65536):
            yield body[start : start + 65536]

    response = client.post("/webhooks/articles", content=chunks(), headers=headers)
    assert response.status_code == 413


@pytest.mark.parametrize(
    "body, reason",
    [
        (b'{"title": "unterminated', "body is not valid JSON: Unterminated string starting at: line 1 column 11 (char 10)"),
        (b"[]", 'body must be a JSON object: one article, or {"articles": [article, ...]}'),
        (b'{"articles": []}', '"articles" is an empty list'),
    ],
)
def test_bad_json_is_400(client, store, body, reason):
    response = post(client, body)
    assert (response.status_code, response.json()) == (400, {"error": reason})
    assert receipts(store) == []


def test_webhook_ingest_reaches_instant_channels(settings, store, tmp_path):
    """New articles pushed by the CMS are posted to instant channels (outbox here) at once."""
    seen = []
    with serve(create_app(settings, store, on_ingested=seen.append)) as client:
        payload = {"url": "https://www.newsarenaindia.com/sports/hook-test", "title": "Hook test", "section": "sports"}
        assert post(client, encode(payload)).status_code == 200
        assert post(client, encode({**payload, "title": "Hook test"}), timestamp=int(time.time()) + 1).status_code == 200
    # The second push is unchanged: the hook ran for the first only.
    assert [[a.key for a in r.new] for r in seen] == [["https://www.newsarenaindia.com/sports/hook-test"]]


def test_default_hook_posts_to_the_telegram_outbox(settings, store):
    from datetime import datetime, timezone

    from distributor.settings import Settings

    # Without quiet hours, so the post goes out whatever the hour of the test run.
    channels = {name: c.model_copy(update={"quiet_hours": ""}) for name, c in settings.channels.items()}
    settings = Settings(settings.file.model_copy(update={"channels": channels}), settings.env, settings.config_path)
    with serve(create_app(settings, store)) as client:
        payload = {
            "url": "https://www.newsarenaindia.com/sports/outbox-test",
            "title": "Outbox test",
            "section": "sports",
            "published_at": datetime.now(timezone.utc).isoformat(),
        }
        assert post(client, encode(payload)).status_code == 200
    outbox = settings.outbox_dir / "telegram"
    posted = [json.loads(p.read_text(encoding="utf-8")) for p in outbox.glob("*.json")]
    assert {p["params"]["chat_id"] for p in posted} == {"@newsarena", "@newsarena_sports"}


def test_a_batch_repeating_an_article_stores_it_once_the_later_wins(client, store):
    first = {**SEED, "url": SEED["url"] + "?utm_source=rss", "id": None, "standfirst": "First telling."}
    second = {**SEED, "url": SEED["url"] + "?utm_source=twitter&fbclid=x", "id": None, "standfirst": "Corrected."}
    response = post(client, encode({"articles": [first, OTHER, second]}))
    assert response.status_code == 200, response.text
    body = response.json()
    assert sorted(r["key"] for r in body["results"]) == sorted([SEED["url"], OTHER["id"]])
    assert all(r["outcome"] == "new" for r in body["results"])
    assert body["duplicates"] == [
        f"item 0: duplicate in batch of item 2 (same key {SEED['url']}); item 2 kept"
    ]
    assert find_article(store, SEED["url"]).standfirst == "Corrected."
