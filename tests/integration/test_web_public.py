"""The public pages through FastAPI's TestClient on both stores: subscribe (form and
JSON), honeypot, rate limits (in process and in Redis), confirm, preferences, unsubscribe
(GET changes nothing; POST is the RFC 8058 one-click target), refused links, archive."""

from __future__ import annotations

import email
from email import policy

import re
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from distributor import subscribers as subs
from distributor.articles import Article
from distributor.editions import Window
from distributor.engine import prepare_run
from distributor.runs import open_run
from distributor.settings import Environment, Settings, WebConfig
from distributor.store.articles import save_articles
from distributor.store.models import DeliveryRow, SubscriberRow
from distributor.web import public, ratelimits

from tests.conftest import REDIS_URL, redis_or_skip
from tests.integration.test_subscribers import confirm_token_from_outbox



def make_settings(settings: Settings, **web) -> Settings:
    file = settings.file.model_copy(update={"web": WebConfig(**web)}) if web else settings.file
    return Settings(file, Environment(secret_key="web-secret", public_base_url="https://news.example"), settings.config_path)


class DrainingClient(TestClient):
    """Waits after each request until the signups it queued are handled, so a test can
    look at rows and mail at once (subscribe answers before it stores or mails)."""

    def request(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
        response = super().request(*args, **kwargs)
        public.signup_queue(self.app).join()
        return response


def make_client(settings: Settings, store, limiter=None, host: str = "testclient") -> TestClient:
    app = FastAPI()
    app.state.settings = settings
    app.state.store = store
    if limiter is not None:
        app.state.rate_limiter = limiter
    app.include_router(public.router)
    return DrainingClient(app, follow_redirects=False, client=(host, 50000))


@pytest.fixture
def web(settings, store):
    s = make_settings(settings)
    return make_client(s, store), s, store


def subscriber_rows(store) -> list[SubscriberRow]:
    with store.session() as session:
        return list(session.query(SubscriberRow).order_by(SubscriberRow.id))


def path_of(url: str) -> str:
    return url.removeprefix("https://news.example")


# --- subscribe ---------------------------------------------------------------------------


def test_subscribe_form_page_is_accessible_and_has_a_hidden_honeypot(web):
    client, _, _ = web
    page = client.get("/subscribe?email=asha%40example.com")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert '<label for="email">' in html and 'id="email"' in html and 'value="asha@example.com"' in html
    assert 'name="sections" value="sports" checked' in html
    assert 'name="editions" value="morning" checked' in html and 'name="editions" value="evening">' in html
    assert re.search(r'<div class="trap" aria-hidden="true">.*name="website"', html, re.S)
    assert 'name="viewport"' in html and page.headers["x-frame-options"] == "DENY"


def test_subscribe_by_form_stores_pending_and_mails_the_link(web):
    client, s, store = web
    response = client.post(
        "/subscribe",
        data={"email": "Asha@Example.com", "name": "Asha", "sections": ["sports", "politics"], "editions": ["morning", "evening"],
              "format": "text", "_prefs": "1", "website": ""},
    )
    assert response.status_code == 200 and "Check your inbox" in response.text and "72 hours" in response.text
    assert "set-cookie" not in response.headers
    [row] = subscriber_rows(store)
    assert (row.email, row.status, row.sections, row.editions, row.format, row.name, row.source) == (
        "Asha@example.com", "pending", ["politics", "sports"], ["morning", "evening"], "text", "Asha", "web",
    )
    token = confirm_token_from_outbox(s, row.id)
    assert client.get(f"/confirm/{token}").status_code == 200


def test_confirmation_is_addressed_by_name_and_followed_by_a_welcome(web):
    client, s, store = web
    client.post(
        "/subscribe",
        data={"email": "asha@example.com", "name": "Asha Rao", "sections": ["sports", "politics"],
              "editions": ["morning", "weekly"], "_prefs": "1", "website": ""},
    )
    [row] = subscriber_rows(store)
    confirmation = email.message_from_bytes(
        (s.outbox_dir / "email" / f"confirm-{row.id}.eml").read_bytes(), policy=policy.default
    )
    assert str(confirmation["To"]) == "Asha Rao <asha@example.com>"
    welcome = s.outbox_dir / "email" / f"welcome-{row.id}.eml"
    assert not welcome.exists()  # not before the reader confirms
    token = confirm_token_from_outbox(s, row.id)
    assert client.post(f"/confirm/{token}").status_code == 200
    msg = email.message_from_bytes(welcome.read_bytes(), policy=policy.default)
    assert msg.defects == [] and str(msg["To"]) == "Asha Rao <asha@example.com>"
    assert msg["Subject"] == "Welcome to News Arena: you are subscribed"
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert "Welcome, Asha Rao!" in text and "Welcome, Asha Rao!" in html
    # What and when: the chosen editions with their schedules, and the chosen sections.
    assert "* Morning Brief, every day at 07:00 (Asia/Kolkata time)" in text
    assert "* The Week, on Sundays at 09:00 (Asia/Kolkata time)" in text
    assert "Evening Wrap" not in text
    assert "With news from: Politics, Sports." in text
    assert "https://news.example/preferences/" in text and "https://news.example/unsubscribe/" in text
    # A second confirmation (the link clicked again) sends no second welcome.
    welcome.unlink()
    assert client.post(f"/confirm/{token}").status_code == 200
    assert not welcome.exists()


def test_welcome_email_can_be_switched_off(settings, store):
    s = make_settings(settings)
    s = Settings(s.file.model_copy(update={"email": s.file.email.model_copy(update={"welcome": False})}), s.env, s.config_path)
    client = make_client(s, store)
    client.post("/subscribe", data={"email": "quiet@example.com"})
    [row] = subscriber_rows(store)
    assert client.post(f"/confirm/{confirm_token_from_outbox(s, row.id)}").status_code == 200
    assert [p.name for p in (s.outbox_dir / "email").iterdir()] == [f"confirm-{row.id}.eml"]


def test_subscribe_by_json_and_minimal_form_take_the_defaults(web):
    client, _, store = web
    response = client.post("/subscribe", json={"email": "json@example.com"})
    assert response.status_code == 200 and response.json()["status"] == "check_inbox"
    response = client.post("/subscribe", data={"email": "footer@example.com"})  # a site's one-field form
    assert response.status_code == 200
    rows = {r.email: r for r in subscriber_rows(store)}
    assert rows["json@example.com"].sections is None and rows["json@example.com"].editions is None
    assert rows["footer@example.com"].sections is None and rows["footer@example.com"].status == "pending"
    response = client.post("/subscribe", json={"email": "s@example.com", "sections": "sports;nation", "editions": ["weekly"], "timezone": "Europe/London"})
    row = {r.email: r for r in subscriber_rows(store)}["s@example.com"]
    assert (row.sections, row.editions, row.timezone) == (["nation", "sports"], ["weekly"], "Europe/London")


@pytest.mark.parametrize(
    ("payload", "field", "words"),
    [
        ({"email": "not-an-address"}, "email", "@-sign"),
        ({"email": "a@example.com", "sections": ["cricket"]}, "sections", "'cricket'"),
        ({"email": "a@example.com", "editions": ["hourly"]}, "editions", "'hourly'"),
        ({"email": "a@example.com", "timezone": "Mars/Olympus"}, "timezone", "'Mars/Olympus'"),
        ({"email": "a@example.com", "format": "pdf"}, "format", "'pdf'"),
        ({"email": ["a@example.com"]}, "email", "expected text"),
    ],
)
def test_bad_subscribe_input_is_refused_naming_the_problem(web, payload, field, words):
    client, _, store = web
    response = client.post("/subscribe", json=payload)
    assert response.status_code == 400 and response.json()["field"] == field and words in response.json()["error"]
    assert subscriber_rows(store) == []


def test_bad_form_input_redisplays_the_form_with_the_error_and_values(web):
    client, _, store = web
    response = client.post("/subscribe", data={"email": "nope", "name": "Asha <b>", "_prefs": "1", "sections": ["sports"], "editions": ["morning"]})
    assert response.status_code == 400
    assert 'aria-invalid="true"' in response.text and 'role="alert"' in response.text
    assert 'value="Asha &lt;b&gt;"' in response.text  # autoescaped
    assert 'value="sports" checked' in response.text and 'value="politics">' in response.text
    response = client.post("/subscribe", data={"email": "a@example.com", "_prefs": "1", "editions": ["morning"]})
    assert response.status_code == 400 and "choose at least one section" in response.text
    assert subscriber_rows(store) == []


def test_malformed_and_oversized_bodies(web):
    client, _, store = web
    response = client.post("/subscribe", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]
    response = client.post("/subscribe", content=b"email=" + b"a" * 20000, headers={"content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 413
    assert subscriber_rows(store) == []


def test_honeypot_answers_as_if_fine_and_stores_nothing(web):
    client, s, store = web
    response = client.post("/subscribe", data={"email": "bot@example.com", "website": "http://spam.example"})
    assert response.status_code == 200 and "Check your inbox" in response.text
    response = client.post("/subscribe", json={"email": "bot2@example.com", "website": "x"})
    assert response.status_code == 200 and response.json()["status"] == "check_inbox"
    assert subscriber_rows(store) == []
    assert not (s.outbox_dir / "email").exists()


def test_already_subscribed_address_gets_the_same_answer_and_no_change(web):
    client, s, store = web
    subscriber, _ = subs.subscribe(s, store, "known@example.com", sections="sports", confirmed=True)
    response = client.post("/subscribe", json={"email": "known@example.com", "sections": ["politics"]})
    assert response.status_code == 200 and response.json()["status"] == "check_inbox"
    assert subs.get(store, subscriber.id).sections == ("sports",)
    assert not (s.outbox_dir / "email").exists()  # nothing mailed to a confirmed reader


# --- rate limits -------------------------------------------------------------------------


def test_rate_limit_per_ip(settings, store):
    s = make_settings(settings, subscribe_per_ip=3, subscribe_per_address=100)
    client = make_client(s, store, ratelimits.MemoryRateLimiter())
    for n in range(3):
        assert client.post("/subscribe", json={"email": f"r{n}@example.com"}).status_code == 200
    refused = client.post("/subscribe", json={"email": "r9@example.com"})
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
    assert "r9@example.com" not in {r.email for r in subscriber_rows(store)}
    # Invalid attempts count too; the honeypot too.
    assert client.post("/subscribe", data={"email": "nope"}).status_code == 429


def test_rate_limit_per_address_across_ips(settings, store):
    s = make_settings(settings, subscribe_per_ip=100, subscribe_per_address=2)
    limiter = ratelimits.MemoryRateLimiter()
    app_clients = [make_client(s, store, limiter) for _ in range(2)]
    assert app_clients[0].post("/subscribe", json={"email": "victim@example.com"}).status_code == 200
    assert app_clients[1].post("/subscribe", json={"email": "VICTIM@example.com"}).status_code == 200
    refused = app_clients[0].post("/subscribe", data={"email": "victim@example.com"})
    assert refused.status_code == 429 and "Too many" in refused.text
    assert app_clients[0].post("/subscribe", json={"email": "other@example.com"}).status_code == 200


def test_plus_tags_and_gmail_dots_share_one_mailbox_limit(settings, store):
    s = make_settings(settings, subscribe_per_ip=100, subscribe_per_address=3)
    client = make_client(s, store, ratelimits.MemoryRateLimiter())
    variants = [f"Victim+{n}@example.com" for n in range(20)]
    answers = [client.post("/subscribe", json={"email": address}).status_code for address in variants]
    assert answers == [200] * 3 + [429] * 17
    assert len(list((s.outbox_dir / "email").glob("confirm-*.eml"))) == 3
    gmail = ["a.reader@gmail.com", "areader+x@googlemail.com", "A.R.E.A.D.E.R@Gmail.com", "areader@gmail.com"]
    assert [client.post("/subscribe", json={"email": a}).status_code for a in gmail] == [200, 200, 200, 429]
    # Dots count elsewhere: another provider's dotted address is another mailbox.
    assert client.post("/subscribe", json={"email": "vic.tim@example.com"}).status_code == 200


def test_mailbox_rules_are_configurable(settings, store):
    s = make_settings(settings, subscribe_per_ip=100, subscribe_per_address=1, mailbox_tag_separator="", mailbox_dotless_domains=[])
    client = make_client(s, store, ratelimits.MemoryRateLimiter())
    for address in ("x+1@gmail.com", "x+2@gmail.com", "x.y@gmail.com", "xy@gmail.com"):
        assert client.post("/subscribe", json={"email": address}).status_code == 200


@pytest.mark.parametrize(
    ("hosts", "shared"),
    [
        (["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff:ffff:ffff:ffff"], True),
        (["2001:db8:1:2::1", "2001:db8:1:3::1", "2001:db8:1:4::1"], False),
        (["192.0.2.1", "::ffff:192.0.2.1", "192.0.2.1"], True),
        (["192.0.2.1", "192.0.2.2", "192.0.2.3"], False),
    ],
)
def test_per_ip_limit_counts_an_ipv6_64_as_one_client(settings, store, hosts, shared):
    s = make_settings(settings, subscribe_per_ip=2, subscribe_per_address=100)
    limiter = ratelimits.MemoryRateLimiter()
    answers = [
        make_client(s, store, limiter, host=host).post("/subscribe", json={"email": f"r{n}@example.com"}).status_code
        for n, host in enumerate(hosts)
    ]
    assert answers == ([200, 200, 429] if shared else [200, 200, 200])


def test_network_and_mailbox_keys():
    key = ratelimits.network_key
    assert key("2001:db8::1") == key("2001:db8::ffff") != key("2001:db8:0:1::1")
    assert key("2001:db8::1", ipv6_prefix=128) != key("2001:db8::2", ipv6_prefix=128)
    assert key("::ffff:198.51.100.7") == key("198.51.100.7") != key("198.51.100.8")
    mailbox = ratelimits.mailbox
    assert mailbox("First.Last+News@Example.org") == "first.last@example.org"
    assert mailbox("f.i.r.s.t+a+b@googlemail.com") == mailbox("first@gmail.com") == "first@gmail.com"
    assert mailbox("a-b@example.com", tag_separator="-") == "a@example.com"


@pytest.fixture
def redis_limiter():
    import redis

    redis_or_skip("Redis rate-limit test")
    prefix = f"test:{uuid.uuid4().hex}:"
    yield ratelimits.RedisRateLimiter(REDIS_URL, prefix=prefix)
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(prefix + "*"):
        client.delete(key)


@pytest.mark.redis
def test_rate_limits_in_redis_are_shared_by_every_process(settings, store, redis_limiter):
    s = make_settings(settings, subscribe_per_ip=2, subscribe_per_address=100)
    # Two apps (two web processes) with one Redis: the limit is shared.
    first, second = make_client(s, store, redis_limiter), make_client(s, store, redis_limiter)
    assert first.post("/subscribe", json={"email": "a@example.com"}).status_code == 200
    assert second.post("/subscribe", json={"email": "b@example.com"}).status_code == 200
    refused = first.post("/subscribe", json={"email": "c@example.com"})
    assert refused.status_code == 429 and 0 < int(refused.headers["retry-after"]) <= 3600


def test_redis_limiter_is_chosen_when_redis_url_is_set(settings, store):
    s = Settings(settings.file, Environment(secret_key="k", redis_url=REDIS_URL), settings.config_path)
    client = make_client(s, store)
    client.get("/subscribe")
    client.post("/subscribe", json={"email": "a@example.com"})
    assert isinstance(client.app.state.rate_limiter, ratelimits.RedisRateLimiter)
    assert client.app.state.rate_limiter.hit("probe", 1, 60) is None  # it reaches Redis
    try:  # leave no counter behind in the shared Redis
        import redis

        server = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
        for key in server.scan_iter("distributor:subscribe:*"):
            server.delete(key)
    except Exception:  # noqa: BLE001 - no Redis: the limiter failed open and stored nothing
        pass


# --- confirm ------------------------------------------------------------------------------


def test_confirm_get_shows_a_button_and_post_confirms(web):
    client, s, store = web
    subscriber, _ = subs.subscribe(s, store, "a@example.com")
    url = subs.confirm_url(s, subscriber.id, subscriber.email)
    page = client.get(path_of(url))
    assert page.status_code == 200 and 'method="post"' in page.text and "a***@example.com" in page.text
    assert subs.get(store, subscriber.id).status == "pending"  # a scanner's GET confirms nothing
    assert page.headers["cache-control"] == "no-store" and page.headers["referrer-policy"] == "no-referrer"
    done = client.post(path_of(url))
    assert done.status_code == 200 and "You are subscribed" in done.text
    assert subs.get(store, subscriber.id).status == "confirmed"
    again = client.post(path_of(url))
    assert again.status_code == 200 and "already subscribed" in again.text
    assert "already subscribed" in client.get(path_of(url)).text


def refused_tokens(s: Settings, subscriber: subs.Subscriber, purpose: str) -> dict[str, str]:
    good = subs.make_token(s, purpose, subscriber.id, subscriber.email)
    other = "preferences" if purpose != "preferences" else "confirm"
    tokens = {
        "forged": good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB"),
        "wrong_purpose": subs.make_token(s, other, subscriber.id, subscriber.email),
        "other_secret": subs.make_token(make_settings_with_secret(s, "attacker"), purpose, subscriber.id, subscriber.email),
    }
    if purpose == "confirm":
        tokens["expired"] = subs.make_token(s, "confirm", subscriber.id, subscriber.email, now=datetime.now(timezone.utc) - timedelta(hours=73))
    return tokens


def make_settings_with_secret(s: Settings, secret: str) -> Settings:
    return Settings(s.file, Environment(secret_key=secret), s.config_path)


PROBLEM_WORDS = {
    "forged": "not valid",
    "other_secret": "not valid",
    "wrong_purpose": "This is a",
    "expired": "expired",
}


@pytest.mark.parametrize(
    ("method", "prefix", "purpose"),
    [
        ("GET", "/confirm/", "confirm"),
        ("POST", "/confirm/", "confirm"),
        ("GET", "/preferences/", "preferences"),
        ("POST", "/preferences/", "preferences"),
        ("GET", "/unsubscribe/", "unsubscribe"),
        ("POST", "/unsubscribe/", "unsubscribe"),
    ],
)
def test_forged_expired_and_other_purpose_links_are_refused_with_no_change(web, method, prefix, purpose):
    client, s, store = web
    pending, _ = subs.subscribe(s, store, "pending@example.com")
    confirmed, _ = subs.subscribe(s, store, "confirmed@example.com", sections="sports", confirmed=True)
    subscriber = pending if purpose == "confirm" else confirmed
    before = list(subs.iter_subscribers(store))
    for problem, token in refused_tokens(s, subscriber, purpose).items():
        if method == "GET":
            response = client.get(prefix + token)
        else:
            response = client.post(prefix + token, data={"List-Unsubscribe": "One-Click", "sections": ["nation"], "_prefs": "1", "editions": ["weekly"]})
        assert response.status_code == 400, (problem, response.text)
        assert PROBLEM_WORDS[problem] in response.text, (problem, response.text)
        assert list(subs.iter_subscribers(store)) == before, problem
        assert response.headers["cache-control"] == "no-store"


def test_superseded_confirm_link_after_resubscribing(web):
    client, s, store = web
    subscriber, _ = subs.subscribe(s, store, "a@example.com", now=datetime.now(timezone.utc) - timedelta(hours=2))
    old = subs.confirm_url(s, subscriber.id, subscriber.email, now=datetime.now(timezone.utc) - timedelta(hours=2))
    assert client.post(path_of(old)).status_code == 200
    unsubscribe = subs.unsubscribe_url(s, subscriber.id, subscriber.email)
    assert client.post(path_of(unsubscribe)).status_code == 200
    # Re-subscribing needs confirmation again: the old link does not do it.
    assert client.post("/subscribe", json={"email": "a@example.com"}).status_code == 200
    assert subs.get(store, subscriber.id).status == "pending"
    refused = client.post(path_of(old))
    assert refused.status_code == 400 and "no longer valid" in refused.text
    assert client.get(path_of(old)).status_code == 400  # no button for a dead link either
    assert subs.get(store, subscriber.id).status == "pending"
    token = confirm_token_from_outbox(s, subscriber.id)
    assert client.post(f"/confirm/{token}").status_code == 200
    assert subs.get(store, subscriber.id).status == "confirmed"


# --- unsubscribe ---------------------------------------------------------------------------


def test_get_unsubscribe_never_unsubscribes(web):
    client, s, store = web
    subscriber, _ = subs.subscribe(s, store, "a@example.com", confirmed=True)
    url = path_of(subs.unsubscribe_url(s, subscriber.id, subscriber.email))
    for _ in range(3):  # link scanners, prefetchers, a reader who looks twice
        page = client.get(url)
        assert page.status_code == 200 and f'action="{url}"' in page.text and 'method="post"' in page.text
    assert subs.get(store, subscriber.id).status == "confirmed"
    assert client.head(url).status_code in (200, 405) and subs.get(store, subscriber.id).status == "confirmed"


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b"List-Unsubscribe=One-Click", {"content-type": "application/x-www-form-urlencoded"}),
        (b"", {}),
        (b"\x00\xff not a form at all", {"content-type": "application/octet-stream"}),
        (b'{"anything": true}', {"content-type": "application/json"}),
    ],
)
def test_one_click_post_unsubscribes_idempotently_with_200_and_no_cookie(web, body, headers):
    client, s, store = web
    subscriber, _ = subs.subscribe(s, store, "a@example.com", confirmed=True)
    url = path_of(subs.unsubscribe_url(s, subscriber.id, subscriber.email))
    client.cookies.clear()
    first = client.post(url, content=body, headers=headers)
    assert first.status_code == 200 and "You are unsubscribed" in first.text
    assert "location" not in first.headers and "set-cookie" not in first.headers
    assert subs.get(store, subscriber.id).status == "unsubscribed"
    second = client.post(url, content=body, headers=headers)
    assert second.status_code == 200 and "already unsubscribed" in second.text
    changed_at = subs.get(store, subscriber.id).status_changed_at
    client.post(url, content=body, headers=headers)
    assert subs.get(store, subscriber.id).status_changed_at == changed_at
    # The GET page now says so, still without a button.
    assert "already unsubscribed" in client.get(url).text


def test_unsubscribe_json_and_a_purged_address(web):
    client, s, store = web
    subscriber, _ = subs.subscribe(s, store, "a@example.com", confirmed=True)
    url = path_of(subs.unsubscribe_url(s, subscriber.id, subscriber.email))
    assert client.post(url, headers={"accept": "application/json"}).json() == {"status": "unsubscribed", "changed": True}
    subs.purge(store, "a@example.com")
    other, _ = subs.subscribe(s, store, "b@example.com", confirmed=True)
    gone = client.post(url)
    assert gone.status_code == 200 and "not on our list" in gone.text
    assert subs.get(store, other.id).status == "confirmed"


# --- preferences -----------------------------------------------------------------------------


def test_preferences_page_is_prefilled_and_saves(web):
    client, s, store = web
    subscriber, _ = subs.subscribe(s, store, "a@example.com", sections="sports politics", editions="morning", name="Asha", confirmed=True)
    url = path_of(subs.preferences_url(s, subscriber.id, subscriber.email))
    page = client.get(url)
    assert page.status_code == 200 and "a@example.com" in page.text
    assert 'value="sports" checked' in page.text and 'value="nation">' in page.text
    assert 'value="morning" checked' in page.text and 'value="Asha"' in page.text
    assert '<option value="Asia/Kolkata" selected>' in page.text
    assert "Unsubscribe from all editions" in page.text
    saved = client.post(url, data={"_prefs": "1", "sections": ["nation", "economy"], "editions": ["evening", "weekly"],
                                   "timezone": "Europe/London", "format": "text", "name": "A. V."})
    assert saved.status_code == 200 and "Saved" in saved.text
    after = subs.get(store, subscriber.id)
    assert (after.sections, after.editions, after.timezone, after.format, after.name, after.status) == (
        ("nation", "economy"), ("evening", "weekly"), "Europe/London", "text", "A. V.", "confirmed",
    )
    refused = client.post(url, data={"_prefs": "1", "sections": [], "editions": ["weekly"], "timezone": "Europe/London"})
    assert refused.status_code == 400 and "at least one section" in refused.text
    assert subs.get(store, subscriber.id) == after
    as_json = client.post(url, json={"sections": None, "format": "html"})
    assert as_json.status_code == 200 and as_json.json()["subscriber"]["sections"] is None
    assert "id" not in as_json.json()["subscriber"]


def test_preferences_of_an_unsubscribed_reader_save_without_resubscribing(web):
    client, s, store = web
    subscriber, _ = subs.subscribe(s, store, "a@example.com", confirmed=True)
    subs.unsubscribe(store, subscriber.id)
    url = path_of(subs.preferences_url(s, subscriber.id, subscriber.email))
    page = client.get(url)
    assert "receives no editions (unsubscribed)" in page.text and "Unsubscribe from all editions" not in page.text
    client.post(url, data={"_prefs": "1", "sections": ["sports"], "editions": ["morning"]})
    after = subs.get(store, subscriber.id)
    assert after.sections == ("sports",) and after.status == "unsubscribed"


# --- archive -----------------------------------------------------------------------------------

NOW = datetime(2025, 3, 10, 1, 30, tzinfo=timezone.utc)


def sent_run(s: Settings, store, *, deliveries: str = "sent") -> int:
    articles = [
        Article(key=f"k{n}", url=f"https://www.newsarenaindia.com/sports/{n}", title=title, section=section,
                published_at=NOW - timedelta(hours=n + 1), standfirst="Standfirst")
        for n, (title, section) in enumerate(
            [("Kohli hits a century", "sports"), ("</b><script>alert(1)</script>", "politics"), ("Rupee firms", "economy")]
        )
    ]
    save_articles(store, articles, now=NOW)
    run, _ = open_run(store, "morning", NOW, Window(NOW - timedelta(hours=24), NOW))
    assert prepare_run(s, store, run.id).ready
    subscriber, _ = subs.subscribe(s, store, f"reader{run.id}@example.com", confirmed=True)
    with store.session() as session:
        session.add(DeliveryRow(run_id=run.id, subscriber_id=subscriber.id, status=deliveries))
    return run.id


def test_archive_lists_sent_runs_and_shows_one_with_generic_links(web):
    client, s, store = web
    run_id = sent_run(s, store)
    listing = client.get("/archive")
    assert listing.status_code == 200 and f'href="/archive/{run_id}"' in listing.text
    assert "Morning Brief" in listing.text and "3 articles" in listing.text and "10 March 2025" in listing.text
    issue = client.get(f"/archive/{run_id}")
    assert issue.status_code == 200
    assert "Kohli hits a century" in issue.text and "Rupee firms" in issue.text
    assert "<script>alert(1)</script>" not in issue.text and "&lt;script&gt;" in issue.text
    # Nothing personal in a public page: no greeting, no footer saying why "you" receive
    # it, no unsubscribe or preferences links, no "View in browser" to itself...
    assert "Hello," not in issue.text and "Hi " not in issue.text
    assert "You receive the" not in issue.text and "because you subscribed" not in issue.text
    assert "/unsubscribe" not in issue.text and "/preferences" not in issue.text
    assert "View in browser" not in issue.text and f"/archive/{run_id}" not in issue.text
    # ... and a way to subscribe: the subscribe page, prefilled with the address typed.
    assert '<form method="get" action="https://news.example/subscribe">' in issue.text
    assert 'name="email"' in issue.text and ">Subscribe</button>" in issue.text
    assert "Get the Morning Brief by email." in issue.text
    assert 'value="reader@example.org"' in client.get("/subscribe", params={"email": "reader@example.org"}).text
    assert client.get(f"/archive/{run_id}").text == issue.text


def test_archive_of_a_busy_day_shows_every_section_within_the_cap(web):
    client, s, store = web
    sections = [x.slug for x in s.sections]
    # 60 articles, the first sections fullest: the cap used to run out before Sports.
    counts = dict(zip(sections, [10, 10, 10, 10, 4, 4, 10, 2]))
    save_articles(store, [
        Article(key=f"{slug}-{i}", url=f"https://www.newsarenaindia.com/{slug}/{i}", title=f"Busy {slug} story {i}",
                section=slug, published_at=NOW - timedelta(hours=1, minutes=10 * i + k))
        for k, (slug, count) in enumerate(counts.items()) for i in range(count)
    ], now=NOW)
    run, _ = open_run(store, "morning", NOW, Window(NOW - timedelta(hours=24), NOW))
    assert prepare_run(s, store, run.id).ready
    subscriber, _ = subs.subscribe(s, store, "busy@example.com", confirmed=True)
    with store.session() as session:
        session.add(DeliveryRow(run_id=run.id, subscriber_id=subscriber.id, status="sent"))
    cap = s.editions["morning"].max_articles
    assert f"{cap} articles" in client.get("/archive").text
    page = client.get(f"/archive/{run.id}").text
    shown = set(re.findall(r"Busy (\w+) story \d+", page))
    assert shown == set(sections)
    assert len(set(re.findall(r"Busy \w+ story \d+", page))) == cap
    assert f"+ {60 - cap} more on the site" in page


def test_archive_of_a_run_stored_before_variants_renders_as_it_was(web):
    from distributor.store.models import EditionRunRow

    client, s, store = web
    run_id = sent_run(s, store)
    with store.session() as session:
        row = session.get(EditionRunRow, run_id)
        # An older layout: limits already applied, no "limits" key, a global omitted count.
        row.layout = {"trending": [], "sections": [["sports", ["k0"]], ["economy", ["k2"]]], "omitted": 4}
        row.article_keys = ["k0", "k2"]
    page = client.get(f"/archive/{run_id}").text
    assert "Kohli hits a century" in page and "Rupee firms" in page and "alert(1)" not in page
    assert "+ 4 more on the site" in page


def test_archive_hides_runs_that_sent_nothing(web):
    client, s, store = web
    run_id = sent_run(s, store, deliveries="queued")
    assert f"/archive/{run_id}" not in client.get("/archive").text
    assert client.get(f"/archive/{run_id}").status_code == 404
    assert client.get("/archive/999999").status_code == 404


def test_archive_can_be_switched_off(settings, store):
    client = make_client(make_settings(settings, archive=False), store)
    assert client.get("/archive").status_code == 404
