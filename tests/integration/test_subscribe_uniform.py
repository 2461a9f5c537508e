"""Subscribe answers the same whatever the address's state (issue 11, item 3).

Status, body and time must not tell a new address from a pending, confirmed,
unsubscribed or bounced one, with the SMTP server up or down: the confirmation email is
queued, never sent inside the request. The app runs under real uvicorn; the SMTP server
is a real one on localhost that takes 50 ms over every message, so mail sent inside the
request would show plainly in the timings. Timings are compared as medians of many
interleaved requests, one address per request, in a rotating order.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import pytest

from distributor import subscribers as subs
from distributor.settings import WebConfig
from distributor.store.models import SubscriberRow
from distributor.web import public
from distributor.web.app import create_app
from tests.conftest import settings_for
from tests.fakes.smtp_server import FakeSmtpServer
from tests.fakes.webserver import serve

STATES = ("new", "pending", "confirmed", "unsubscribed", "bounced")
ROUNDS = 40
SMTP_SECONDS = 0.05  # the server's delay on every message
TOLERANCE = 1.20  # slowest state's median over the fastest's


@pytest.fixture
def smtp_server():
    """One SMTP server that takes SMTP_SECONDS over every message (how the client talks
    to it does not matter here, so not the shared fixture's two variants)."""
    server = FakeSmtpServer().start()
    server.slow = SMTP_SECONDS
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, smtp_server):
    monkeypatch.setenv("SECRET_KEY", "uniform-subscribe-secret-5e0d7b1f9a2c")
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://news.example")
    monkeypatch.setenv("SMTP_URL", smtp_server.url)
    web = WebConfig(subscribe_per_ip=100_000, subscribe_per_address=1000)
    return settings_for(tmp_path, web=web)


def prepare(settings, store, state: str, address: str) -> None:
    if state == "new":
        return
    subscriber, _ = subs.subscribe(settings, store, address, confirmed=state != "pending")
    if state == "unsubscribed":
        subs.unsubscribe(store, subscriber.id)
    elif state == "bounced":
        subs.mark_bounced(store, subscriber.id)


def rows(store) -> dict[str, str]:
    with store.session() as session:
        return {row.email: row.status for row in session.query(SubscriberRow)}


@pytest.mark.parametrize("smtp", ["up", "down"])
def test_subscribe_is_the_same_for_every_address_state(settings, store, smtp_server, smtp, capsys):
    plan = []
    for n in range(ROUNDS):
        order = STATES[n % len(STATES):] + STATES[: n % len(STATES)]
        for state in order:
            address = f"{state}-{n}@example.com"
            prepare(settings, store, state, address)
            plan.append((state, address))
    if smtp == "down":
        smtp_server.stop()

    app = create_app(settings, store, on_ingested=lambda report: None)
    seconds: dict[str, list[float]] = {state: [] for state in STATES}
    answers: dict[str, set[tuple[int, str]]] = {state: set() for state in STATES}
    pages: dict[str, set[tuple[int, str]]] = {state: set() for state in STATES}
    with serve(app) as client:
        client.post("/subscribe", json={"email": "warm-up@example.com"})  # first-request costs
        for state, address in plan:
            started = time.perf_counter()
            response = client.post("/subscribe", json={"email": address})
            seconds[state].append(time.perf_counter() - started)
            answers[state].add((response.status_code, response.text))
        for state in STATES:  # the HTML form's answer too
            address = f"{state}-0@example.com"
            response = client.post("/subscribe", data={"email": address})
            pages[state].add((response.status_code, response.text))
        public.signup_queue(app).join()  # the queued work, done before looking at its results

    medians = {state: statistics.median(values) * 1000 for state, values in seconds.items()}
    report = ", ".join(f"{state} {ms:.1f} ms" for state, ms in medians.items())
    with capsys.disabled():
        print(f"\nsubscribe medians, SMTP {smtp}, {ROUNDS} requests per state: {report}")
    assert max(medians.values()) <= TOLERANCE * min(medians.values()), report

    [answer] = set.union(*answers.values())  # one status and body for every state
    assert answer[0] == 200 and "check_inbox" in answer[1], answer
    [page] = set.union(*pages.values())
    assert page[0] == 200 and "Check your inbox" in page[1]

    stored = rows(store)
    mailed = sorted(smtp_server.recipients()) if smtp == "up" else []
    for state, address in plan:
        assert stored[address] == ("confirmed" if state == "confirmed" else "pending"), address
    if smtp == "up":
        # Each state that needs a confirmation got one per request; the confirmed got none.
        wanted = [a for s, a in plan if s != "confirmed"] + [f"{s}-0@example.com" for s in STATES if s != "confirmed"]
        assert mailed == sorted([*wanted, "warm-up@example.com"])
    else:
        assert mailed == []


def test_the_broker_task_stores_and_mails_the_signup(settings, store, smtp_server, monkeypatch):
    """With a broker, the web app queues `tasks.subscribers.sign_up`; run here eagerly."""
    import tasks.subscribers
    from distributor.signups import Signup

    monkeypatch.setattr(tasks.subscribers, "context", lambda: (settings, store))
    signup = Signup("Task@Example.com", ("sports",), None, "Asia/Kolkata", "text", "Asha")
    assert Signup.from_dict(signup.as_dict()) == signup
    result = tasks.subscribers.sign_up.apply(args=[signup.as_dict()])
    assert result.successful() and result.result == {"outcome": "sent"}
    assert rows(store) == {"Task@example.com": "pending"} and smtp_server.recipients() == ["Task@example.com"]
    subs.confirm(store, subs.find(store, "task@example.com").id)
    assert tasks.subscribers.sign_up.apply(args=[signup.as_dict()]).result == {"outcome": "not_due"}
    assert len(smtp_server.messages) == 1
