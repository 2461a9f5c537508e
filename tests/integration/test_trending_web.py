"""GET /c/{token} and POST /webhooks/pageviews through a real server, on SQLite and PostgreSQL.

The app is create_app under uvicorn on a free port of 127.0.0.1 (tests/fakes/webserver);
requests go over HTTP with httpx, redirects are not followed, and what was recorded is
read back from the real store.
"""

from __future__ import annotations

import json
from datetime import timedelta, timezone

import pytest

from distributor import trending as t
from distributor.articles import Article
from distributor.editions import build_edition
from distributor.ingest.webhook import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    signed_headers,
)
from distributor.settings import Environment, Settings, TrendingConfig
from distributor.store.articles import save_articles
from distributor.store.models import utcnow
from distributor.web.app import create_app
from tests.conftest import settings_for
from tests.fakes.webserver import serve

UTC = timezone.utc
SECRET = "trending-web-test-secret-51c2"
PUBLIC = "https://bot.newsarenaindia.com"


def keyed(tmp_path, **trending) -> Settings:
    base = settings_for(tmp_path, trending=TrendingConfig(**trending))
    return Settings(base.file, Environment(secret_key=SECRET, public_base_url=PUBLIC), base.config_path)


def story(key: str, section: str, minutes_ago: float) -> Article:
    return Article(
        key=key,
        url=f"https://www.newsarenaindia.com/{section}/{key}",
        title=f"Story {key}",
        section=section,
        published_at=utcnow() - timedelta(minutes=minutes_ago),
    )


@pytest.fixture
def site(tmp_path, store):
    """(settings, store, client, articles): the app serving a store with five stories."""
    s = keyed(tmp_path)
    articles = [story(f"s{i}", section, 30 + i) for i, section in enumerate(["nation", "sports", "economy", "politics", "nation"])]
    save_articles(store, articles)
    with serve(create_app(s, store)) as client:
        yield s, store, client, articles


def path_of(link: str) -> str:
    assert link.startswith(PUBLIC + "/c/")
    return link[len(PUBLIC) :]


def tally(settings, store, key: str) -> t.Tally | None:
    return t.scorer_for(settings, store).scores([key], utcnow()).get(key)


# --- clicks ----------------------------------------------------------------------------


def test_click_is_counted_and_redirected_to_the_article(site):
    s, store, client, articles = site
    article = articles[1]
    target = article.url + "?utm_source=newsletter&utm_medium=email"
    response = client.get(path_of(t.tracked_url(s, article, run_id=12, channel="email", target=target)))
    assert response.status_code == 302
    assert response.headers["location"] == target
    assert response.headers["cache-control"] == "no-store"
    client.get(path_of(t.tracked_url(s, article, run_id=12, channel="main")))
    assert tally(s, store, article.key).clicks == 2
    assert t.click_counts(store, run_id=12) == [
        {"article_key": article.key, "run_id": 12, "channel": "email", "clicks": 1},
        {"article_key": article.key, "run_id": 12, "channel": "main", "clicks": 1},
    ]


def test_head_requests_and_preview_fetchers_are_answered_but_not_counted(site):
    s, store, client, articles = site
    link = path_of(t.tracked_url(s, articles[0], run_id=1, channel="main"))
    response = client.head(link)
    assert response.status_code == 302 and response.headers["location"] == articles[0].url
    preview = client.get(link, headers={"User-Agent": "TelegramBot (like TwitterBot)"})
    assert preview.status_code == 302 and preview.headers["location"] == articles[0].url
    assert tally(s, store, articles[0].key) is None
    client.get(link, headers={"User-Agent": "Mozilla/5.0 (Linux; Android 14) Mobile Safari/537.36"})
    assert tally(s, store, articles[0].key).clicks == 1


def test_tampered_tokens_get_400_and_no_redirect(site):
    s, store, client, articles = site
    token = path_of(t.tracked_url(s, articles[0], run_id=1)).rsplit("/", 1)[1]
    payload, _, signature = token.rpartition(".")
    other = "A" if signature[0] != "A" else "B"
    for bad in (payload + "." + other + signature[1:], payload[:-2] + "xx." + signature, "garbage", "a" * 9000):
        response = client.get(f"/c/{bad}")
        assert response.status_code == 400, bad
        assert "location" not in response.headers
    assert tally(s, store, articles[0].key) is None


def test_foreign_targets_get_400_even_when_signed(site):
    s, store, client, articles = site
    article = articles[0]
    for target in ("https://evil.example/login", articles[1].url, "javascript:alert(document.cookie)"):
        token = t.click_token(s, t.Click(article.key, target, 3, "email"))
        response = client.get(f"/c/{token}")
        assert response.status_code == 400 and "location" not in response.headers, target
    # Signed with another key: refused as well.
    forged = Settings(s.file, Environment(secret_key="someone-elses-key"), s.config_path)
    response = client.get(path_of(t.tracked_url(forged, article).replace("http://127.0.0.1:8000", PUBLIC)))
    assert response.status_code == 400 and "location" not in response.headers
    assert tally(s, store, article.key) is None


def test_unknown_article_redirects_only_on_site_and_counts_nothing(site):
    s, store, client, _ = site
    gone = t.click_token(s, t.Click("deleted-story", "https://www.newsarenaindia.com/nation/deleted-story"))
    response = client.get(f"/c/{gone}")
    assert response.status_code == 302 and response.headers["location"].endswith("/nation/deleted-story")
    assert tally(s, store, "deleted-story") is None
    away = t.click_token(s, t.Click("deleted-story", "https://evil.example/nation/deleted-story"))
    response = client.get(f"/c/{away}")
    assert response.status_code == 400 and "location" not in response.headers


def test_a_digest_after_clicks_through_the_server_shows_the_most_clicked_first(site):
    s, store, client, articles = site
    for article, clicks in zip(articles, [1, 5, 0, 3, 2]):
        link = path_of(t.tracked_url(s, article, run_id=4, channel="email"))
        for _ in range(clicks):
            assert client.get(link).status_code == 302
    # Ten minutes on, s0's single click has decayed to 0.98 points, under min_score 1.0.
    edition = build_edition(s, store, "evening", at=utcnow() + timedelta(minutes=10))
    assert [a.key for a in edition.trending] == ["s1", "s3", "s4"]
    below = [a.key for g in edition.groups for a in g.articles]
    assert sorted(below) == ["s0", "s2"]


def test_links_go_straight_to_the_article_when_tracking_is_off(tmp_path, store):
    s = keyed(tmp_path, click_tracking=False)
    article = story("plain", "nation", 5)
    assert t.tracked_url(s, article, run_id=1, channel="main") == article.url


# --- page views ------------------------------------------------------------------------


def push(client, body: bytes, *, secret: str = SECRET, at: int | None = None, headers: dict | None = None):
    sent = signed_headers(secret, at if at is not None else int(utcnow().timestamp()), body)
    if headers is not None:
        sent = headers
    return client.post("/webhooks/pageviews", content=body, headers={"Content-Type": "application/json", **sent})


def views(*entries) -> bytes:
    return json.dumps({"views": list(entries)}).encode()


def test_signed_pageviews_are_counted_by_canonical_url(site):
    s, store, client, articles = site
    body = views(
        {"url": articles[0].url + "?utm_source=twitter&fbclid=abc", "count": 40},
        {"url": articles[0].url, "count": 2},
        {"url": "https://www.newsarenaindia.com/nation/not-yet", "count": 7},
        {"url": "mailto:x@example.com", "count": 1},
    )
    response = push(client, body)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["counted"] == {"articles": 1, "views": 42}
    assert result["pending"] == {"urls": 1, "views": 7}
    assert [r["index"] for r in result["rejected"]] == [3]
    assert tally(s, store, articles[0].key).views == 42


def test_pageview_signatures_bad_missing_stale_and_replayed(site):
    s, store, client, articles = site
    body = views({"url": articles[2].url, "count": 5})
    assert push(client, body, secret="wrong-secret").status_code == 401
    missing = push(client, body, headers={})
    assert missing.status_code == 401 and TIMESTAMP_HEADER in missing.json()["error"]
    only_time = push(client, body, headers={TIMESTAMP_HEADER: str(int(utcnow().timestamp()))})
    assert only_time.status_code == 401 and SIGNATURE_HEADER in only_time.json()["error"]
    stale = push(client, body, at=int(utcnow().timestamp()) - 3600)
    assert stale.status_code == 401 and "too old" in stale.json()["error"]
    assert tally(s, store, articles[2].key) is None

    headers = signed_headers(SECRET, int(utcnow().timestamp()), body)
    assert push(client, body, headers=headers).status_code == 200
    replay = push(client, body, headers=headers)
    assert replay.status_code == 409
    assert tally(s, store, articles[2].key).views == 5  # counted once


def test_pageview_bodies_too_large_malformed_or_all_refused(site):
    s, _, client, _ = site
    big = b'{"views": [' + b" " * (s.file.webhook.max_body_bytes + 1) + b"]}"
    assert push(client, big).status_code == 413
    assert push(client, b'{"views": "lots"}').status_code == 400
    refused = push(client, views({"url": "ftp://x/y", "count": 1}))
    assert refused.status_code == 422 and refused.json()["rejected"][0]["index"] == 0


def test_pushed_views_for_an_unknown_url_count_once_its_article_arrives(site):
    s, store, client, _ = site
    url = "https://www.newsarenaindia.com/sports/late-final"
    assert push(client, views({"url": url, "count": 12})).json()["pending"] == {"urls": 1, "views": 12}
    [(late, _)] = save_articles(store, [Article("late-final", url, "Late final", "sports", utcnow() - timedelta(minutes=3))])
    assert t.apply_pending_views(s, store, [late]) == 12
    assert tally(s, store, "late-final").views == 12
