"""Inbound mail end to end, on SQLite and PostgreSQL: a run is sent through a real SMTP
server (tests/fakes/smtp_server.py), then the fixture DSNs, complaint, auto-reply and
mailto unsubscribe (tests/fixtures/inbound/) are sent over SMTP to the running
`distributor inbound` server, addressed as real ones would be: to the return path and
mailto address the sent messages carry."""

from __future__ import annotations

import re
import smtplib
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from distributor import reports, subscribers
from distributor.delivery import email as dispatch
from distributor.inbound import events, receiver, tokens
from distributor.inbound.process import handle_message
from distributor.store.models import DeliveryRow, InboundMessageRow, SubscriberEventRow, SubscriberRow
from tests.conftest import FIXTURES, settings_for
from tests.fakes.dovecot import dovecot  # noqa: F401 - a fixture
from tests.fakes.smtp_server import FakeSmtpServer, free_port
from tests.integration.test_smtp_dispatch import NOW, SLOT, add_articles, add_subscribers, open_run

INBOUND = FIXTURES / "inbound"


@pytest.fixture(autouse=True)
def fresh_caches():
    dispatch.clear_caches()
    yield
    dispatch.clear_caches()


@pytest.fixture
def outbound(tmp_path, monkeypatch):
    server = FakeSmtpServer().start()
    monkeypatch.setenv("SMTP_URL", server.url)
    yield server
    server.stop()


@pytest.fixture
def inbound_settings(tmp_path, outbound):
    return settings_for(tmp_path)


@pytest.fixture
def inbound_server(inbound_settings, store):
    port = free_port()
    controller = receiver.server(inbound_settings, store, host="127.0.0.1", port=port)
    controller.start()
    yield controller
    controller.stop()


class Sent:
    """What one subscriber received: the addresses a bounce or unsubscribe comes back to."""

    def __init__(self, received) -> None:  # noqa: ANN001
        self.email = received.rcpt_tos[0]
        self.return_path = received.mail_from
        self.unsubscribe = re.search(r"<mailto:([^>?]+)", str(received.message["List-Unsubscribe"])).group(1)
        self.feedback_id = received.message["Feedback-ID"]


def send_run(settings, store, outbound, count: int) -> tuple[int, dict[str, Sent]]:
    add_articles(store, SLOT)
    emails = add_subscribers(settings, store, count)
    run = open_run(settings, store)
    report = dispatch.dispatch_run(settings, store, run.id, NOW)
    assert report.sent == count
    return run.id, {e: Sent(outbound.received_by(e)[0]) for e in emails}


def fixture(name: str, sent: Sent, domain: str, mid: str = "") -> bytes:
    text = (INBOUND / name).read_text("utf-8")
    for key, value in {
        "{{RETURN_PATH}}": sent.return_path,
        "{{UNSUBSCRIBE}}": sent.unsubscribe,
        "{{RECIPIENT}}": sent.email,
        "{{BOUNCE_DOMAIN}}": domain,
        "{{MID}}": mid,
    }.items():
        text = text.replace(key, value)
    return text.replace("\n", "\r\n").encode("utf-8")  # as it travels over SMTP


def smtp_send(controller, rcpt: str, raw: bytes, sender: str = "") -> None:  # noqa: ANN001
    with smtplib.SMTP(controller.hostname, controller.port, timeout=30) as client:
        refused = client.sendmail(sender, [rcpt], raw)
        assert refused == {}


def status(store, email: str) -> str:
    return subscribers.find(store, email).status


def kinds(store, email: str) -> list[str]:
    return [e.kind for e in events.events_for(store, subscribers.find(store, email).id)]


def delivery_id(store, run_id: int, email: str) -> int:
    with store.session() as session:
        return session.scalar(
            select(DeliveryRow.id).join(SubscriberRow, SubscriberRow.id == DeliveryRow.subscriber_id)
            .where(DeliveryRow.run_id == run_id, SubscriberRow.email == email)
        )


def test_sent_mail_carries_verp_return_path_tokenised_mailto_and_feedback_id(inbound_settings, store, outbound):
    run_id, sent = send_run(inbound_settings, store, outbound, 3)
    domain = inbound_settings.file.email.bounce_domain
    for email, s in sent.items():
        mine = delivery_id(store, run_id, email)
        assert tokens.parse_address(inbound_settings, s.return_path) == tokens.Address("bounces", mine)
        assert tokens.parse_address(inbound_settings, s.unsubscribe) == tokens.Address("unsubscribe", mine)
        assert s.return_path.endswith("@" + domain) and s.unsubscribe.startswith("unsubscribe+")
        assert s.feedback_id == f"morning:{run_id}:newsarenaindia.com"
    assert len({s.return_path for s in sent.values()}) == 3


def test_fixture_messages_over_smtp_change_states_record_events_and_count_per_run(
    inbound_settings, store, outbound, inbound_server
):
    run_id, sent = send_run(inbound_settings, store, outbound, 7)
    domain = inbound_settings.file.email.bounce_domain
    postfix, exchange, gmail, complainer, away, leaver, bystander = sent.values()

    smtp_send(inbound_server, postfix.return_path, fixture("postfix_dsn.eml", postfix, domain))
    smtp_send(inbound_server, exchange.return_path, fixture("exchange_dsn.eml", exchange, domain))
    smtp_send(inbound_server, gmail.return_path, fixture("gmail_dsn.eml", gmail, domain))
    # A feedback loop reports to the plain address; the token is in the quoted original.
    smtp_send(inbound_server, f"bounces@{domain}", fixture("arf_complaint.eml", complainer, domain))
    smtp_send(inbound_server, away.return_path, fixture("vacation.eml", away, domain))
    smtp_send(inbound_server, leaver.unsubscribe, fixture("mailto_unsubscribe.eml", leaver, domain), sender=leaver.email)

    assert [status(store, s.email) for s in sent.values()] == [
        "bounced", "bounced", "bounced", "complained", "confirmed", "unsubscribed", "confirmed",
    ]
    [bounce] = events.events_for(store, subscribers.find(store, postfix.email).id)
    assert (bounce.kind, bounce.source, bounce.run_id) == ("bounced", "smtp", run_id)
    assert bounce.delivery_id == delivery_id(store, run_id, postfix.email)
    assert bounce.detail["status"] == "5.1.1" and "User unknown" in bounce.detail["diagnostic"]
    assert bounce.detail["reporting_mta"] == "mail.example.net" and bounce.detail["message_id"].startswith("<2026")
    [ms] = events.events_for(store, subscribers.find(store, exchange.email).id)
    assert ms.detail["status"] == "5.1.10" and "RecipientNotFound" in ms.detail["diagnostic"]
    assert kinds(store, complainer.email) == ["complained"]
    assert kinds(store, leaver.email) == ["unsubscribed"] and kinds(store, away.email) == []
    assert reports.bounces(store, run_id) == {"bounced": 3, "complained": 1}
    with store.session() as session:
        outcomes = sorted(session.scalars(select(InboundMessageRow.outcome)).all())
    assert outcomes == ["auto_reply", "complaint", "hard_bounce", "hard_bounce", "hard_bounce", "unsubscribe"]

    # Replays: the same message again, and a new bounce for an address already bounced,
    # change nothing and record nothing.
    smtp_send(inbound_server, postfix.return_path, fixture("postfix_dsn.eml", postfix, domain))
    smtp_send(inbound_server, postfix.return_path, fixture("postfix_dsn.eml", postfix, domain, mid=".again"))
    smtp_send(inbound_server, leaver.unsubscribe, fixture("mailto_unsubscribe.eml", leaver, domain, mid=".again"))
    assert kinds(store, postfix.email) == ["bounced"] and kinds(store, leaver.email) == ["unsubscribed"]
    assert reports.bounces(store, run_id) == {"bounced": 3, "complained": 1}

    # Forged tokens are refused at RCPT; the bystander is untouched.
    token = bystander.return_path.split("+", 1)[1].split("@")[0]
    forged = f"bounces+{token[:-3]}{'aaa' if token[-3:] != 'aaa' else 'bbb'}@{domain}"
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        smtp_send(inbound_server, forged, fixture("postfix_dsn.eml", bystander, domain, mid=".forged"))
    assert refused.value.recipients[forged][0] == 550
    # The other purpose's token does not verify either (return-path token as mailto).
    swapped = bystander.return_path.replace("bounces+", "unsubscribe+")
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        smtp_send(inbound_server, swapped, fixture("mailto_unsubscribe.eml", bystander, domain, mid=".swap"))
    # A forged report to the plain address whose quoted token is forged names nobody.
    raw = fixture("arf_complaint.eml", bystander, domain, mid=".forged").replace(
        bystander.return_path.encode(), forged.encode()
    ).replace(bystander.unsubscribe.encode(), forged.replace("bounces+", "unsubscribe+").encode())
    smtp_send(inbound_server, f"bounces@{domain}", raw)
    assert status(store, bystander.email) == "confirmed" and kinds(store, bystander.email) == []


def test_other_addresses_are_refused_at_rcpt_and_big_messages_refused(inbound_settings, store, inbound_server):
    domain = inbound_settings.file.email.bounce_domain
    with smtplib.SMTP(inbound_server.hostname, inbound_server.port, timeout=30) as client:
        client.ehlo()
        client.mail("")
        for address in (f"postmaster@{domain}", "someone@example.com", f"bounces+abc@{domain}", f"bounces@example.com"):
            code, _ = client.rcpt(address)
            assert code == 550, address
        client.rset()
    big = b"Subject: big\r\nMessage-ID: <big@example.com>\r\n\r\n" + (b"x" * 998 + b"\r\n") * 20_000  # 20 MB
    with pytest.raises((smtplib.SMTPSenderRefused, smtplib.SMTPDataError, smtplib.SMTPServerDisconnected)) as refused:
        smtp_send(inbound_server, f"bounces@{domain}", big)
    if hasattr(refused.value, "smtp_code"):
        assert refused.value.smtp_code == 552
    # Also when the client does not announce the size: refused after DATA.
    with smtplib.SMTP(inbound_server.hostname, inbound_server.port, timeout=30) as client:
        client.ehlo()
        client.esmtp_features.pop("size", None)
        assert client.mail("")[0] == 250
        assert client.rcpt(f"bounces@{domain}")[0] == 250
        code, _ = client.data(big)
        assert code == 552
    with store.session() as session:
        assert session.scalar(select(InboundMessageRow.id)) is None


def test_lmtp_mode_answers_per_recipient(inbound_settings, store, outbound):
    run_id, sent = send_run(inbound_settings, store, outbound, 2)
    domain = inbound_settings.file.email.bounce_domain
    port = free_port()
    controller = receiver.server(inbound_settings, store, host="127.0.0.1", port=port, lmtp=True)
    controller.start()
    try:
        first, second = sent.values()
        with smtplib.LMTP("127.0.0.1", port) as client:
            refused = client.sendmail("", [first.return_path], fixture("gmail_dsn.eml", first, domain))
            assert refused == {}
    finally:
        controller.stop()
    assert status(store, first.email) == "bounced" and status(store, second.email) == "confirmed"


def test_soft_bounces_score_once_a_day_and_suppress_at_the_threshold(inbound_settings, store, outbound):
    run_id, sent = send_run(inbound_settings, store, outbound, 1)
    [reader] = sent.values()
    domain = inbound_settings.file.email.bounce_domain
    day = datetime(2026, 11, 26, 6, 0, tzinfo=timezone.utc)

    def soft(when: datetime, mid: str) -> None:
        handle_message(inbound_settings, store, fixture("postfix_delayed.eml", reader, domain, mid), [reader.return_path], source="smtp", now=when)

    soft(day, ".1")
    soft(day + timedelta(hours=3), ".2")  # the same day: not counted again
    assert status(store, reader.email) == "confirmed" and kinds(store, reader.email) == ["soft_bounce"]
    soft(day + timedelta(days=1), ".3")
    assert status(store, reader.email) == "confirmed"
    soft(day + timedelta(days=20), ".4")  # the first fell out of the 14-day window
    assert status(store, reader.email) == "confirmed"
    soft(day + timedelta(days=21), ".5")
    soft(day + timedelta(days=22), ".6")
    assert status(store, reader.email) == "bounced"
    history = events.events_for(store, subscribers.find(store, reader.email).id)
    assert [e.kind for e in history] == ["soft_bounce"] * 5 + ["bounced"]
    assert history[-1].detail["status"] == "4.2.2" and history[-1].detail["score"].startswith("3 days")
    assert reports.bounces(store, run_id)["bounced"] == 1

    # An operator reinstates: the reader is confirmed again, and the count starts over.
    subscriber, changed = events.reinstate(store, reader.email, operator="desk", note="mailbox emptied", now=day + timedelta(days=23))
    assert changed and subscriber.status == "confirmed"
    assert events.events_for(store, subscriber.id)[-1].detail == {"was": "bounced", "now": "confirmed", "operator": "desk", "note": "mailbox emptied"}
    soft(day + timedelta(days=24), ".7")
    assert status(store, reader.email) == "confirmed"
    # Unsubscribed readers cannot be reinstated by an operator.
    subscribers.unsubscribe(store, subscriber.id)
    assert events.reinstate(store, reader.email)[1] is False


def test_subscribers_show_lists_events_and_reinstate_records_one(tmp_path, monkeypatch):
    import json

    from typer.testing import CliRunner

    from distributor.cli import app
    from tests.conftest import CONFIG

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'var' / 'distributor.db'}")
    runner = CliRunner()

    def cli(*args: str, code: int = 0):  # noqa: ANN202
        result = runner.invoke(app, ["--config", str(CONFIG), *args], catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result

    cli("init")
    cli("subscribers", "add", "asha@example.org", "--confirmed")
    from distributor.settings import load_settings
    from distributor.store import Store

    store = Store(f"sqlite:///{tmp_path / 'var' / 'distributor.db'}")
    sid = subscribers.find(store, "asha@example.org").id
    with store.session() as session:
        session.get(SubscriberRow, sid).status = "complained"
        events.record(session, sid, "complained", "webhook", now=NOW, detail={"provider": "mailgun"})
    store.dispose()
    assert "complained" in cli("subscribers", "show", "asha@example.org").output
    assert "provider=mailgun" in cli("subscribers", "show", "asha@example.org").output
    out = cli("subscribers", "reinstate", "asha@example.org", "--note", "reader asked").output
    assert "reinstated: now confirmed" in out
    shown = json.loads(cli("subscribers", "show", "asha@example.org", "--json").stdout)
    assert shown["status"] == "confirmed"
    assert [e["kind"] for e in shown["events"]] == ["complained", "reinstated"]
    assert shown["events"][1]["source"] == "operator" and shown["events"][1]["detail"]["note"] == "reader asked"
    cli("subscribers", "reinstate", "asha@example.org", code=1)  # nothing to undo now
    assert load_settings(CONFIG).file.email.bounce_domain


# --- IMAP mode, against a real Dovecot ----------------------------------------------------


def test_imap_mode_handles_moves_and_is_idempotent_on_rerun(inbound_settings, store, outbound, dovecot):
    from distributor.inbound.imap import fetch_and_handle

    run_id, sent = send_run(inbound_settings, store, outbound, 4)
    domain = inbound_settings.file.email.bounce_domain
    bounced, leaver, away, complainer = sent.values()
    dovecot.deliver(fixture("postfix_dsn.eml", bounced, domain))
    dovecot.deliver(fixture("mailto_unsubscribe.eml", leaver, domain))
    dovecot.deliver(fixture("vacation.eml", away, domain))
    dovecot.deliver(fixture("arf_complaint.eml", complainer, domain))
    dovecot.deliver(b"From: someone@example.com\r\nSubject: hello\r\nMessage-ID: <hi@example.com>\r\n\r\nhi\r\n")

    report = fetch_and_handle(inbound_settings, store, dovecot.url)

    assert report.as_dict() == {
        "fetched": 5, "handled": 5, "duplicates": 0, "failed": 0,
        "outcomes": {"auto_reply": 1, "complaint": 1, "hard_bounce": 1, "unknown": 1, "unsubscribe": 1},
    }
    assert [status(store, s.email) for s in sent.values()] == ["bounced", "unsubscribed", "confirmed", "complained"]
    [event] = events.events_for(store, subscribers.find(store, bounced.email).id)
    assert (event.kind, event.source, event.run_id, event.detail["status"]) == ("bounced", "imap", run_id, "5.1.1")
    assert dovecot.folder_count("INBOX") == 0 and dovecot.folder_count("Processed") == 5
    with store.session() as session:
        unknown = session.scalars(select(InboundMessageRow).where(InboundMessageRow.outcome == "unknown")).one()
        assert "Subject: hello" in unknown.excerpt  # kept for an operator

    # A rerun finds nothing new; the same messages delivered again change nothing.
    assert fetch_and_handle(inbound_settings, store, dovecot.url).fetched == 0
    dovecot.deliver(fixture("postfix_dsn.eml", bounced, domain))
    again = fetch_and_handle(inbound_settings, store, dovecot.url)
    assert (again.fetched, again.duplicates) == (1, 1)
    assert kinds(store, bounced.email) == ["bounced"] and reports.bounces(store, run_id) == {"bounced": 1, "complained": 1}


def test_imap_mode_can_flag_instead_of_moving(tmp_path, outbound, store, dovecot):
    from distributor.inbound.imap import fetch_and_handle
    from distributor.settings import InboundConfig

    settings = settings_for(tmp_path, inbound=InboundConfig(imap_done_folder=""))
    run_id, sent = send_run(settings, store, outbound, 1)
    [reader] = sent.values()
    dovecot.deliver(fixture("gmail_dsn.eml", reader, settings.file.email.bounce_domain))
    assert fetch_and_handle(settings, store, dovecot.url).handled == 1
    assert status(store, reader.email) == "bounced"
    assert dovecot.folder_count("INBOX") == 1  # left in place, flagged
    assert fetch_and_handle(settings, store, dovecot.url).fetched == 0


def test_imap_errors_are_clear_and_never_show_the_password(inbound_settings, store, dovecot):
    from distributor.inbound.imap import ImapError, fetch_and_handle

    wrong = dovecot.url.replace("imap-Test-pa55", "wrong-secret-99")
    with pytest.raises(ImapError) as refused:
        fetch_and_handle(inbound_settings, store, wrong)
    assert "login refused" in str(refused.value) and "wrong-secret-99" not in str(refused.value)
    with pytest.raises(ImapError, match="must start with"):
        fetch_and_handle(inbound_settings, store, "http://u:p@example.com/")


def test_purge_erases_the_bounce_evidence_too(inbound_settings, store, outbound, inbound_server):
    run_id, sent = send_run(inbound_settings, store, outbound, 2)
    domain = inbound_settings.file.email.bounce_domain
    gone, kept = sent.values()
    smtp_send(inbound_server, gone.return_path, fixture("postfix_dsn.eml", gone, domain))
    smtp_send(inbound_server, kept.return_path, fixture("exchange_dsn.eml", kept, domain))
    assert subscribers.purge(store, gone.email)
    with store.session() as session:
        details = [json_text for json_text in session.scalars(select(SubscriberEventRow.detail)).all()]
        recorded = session.scalars(select(InboundMessageRow.subscriber_id)).all()
    assert len(details) == 1 and gone.email not in str(details) and kept.email in str(details)
    assert recorded == [subscribers.find(store, kept.email).id]


def test_housekeeping_forgets_old_inbound_messages_but_keeps_events(inbound_settings, store, outbound):
    from distributor.housekeeping import sweep

    run_id, sent = send_run(inbound_settings, store, outbound, 2)
    domain = inbound_settings.file.email.bounce_domain
    old, new = sent.values()
    long_ago = datetime(2026, 6, 1, tzinfo=timezone.utc)
    handle_message(inbound_settings, store, fixture("postfix_dsn.eml", old, domain), [old.return_path], source="smtp", now=long_ago)
    handle_message(inbound_settings, store, fixture("gmail_dsn.eml", new, domain), [new.return_path], source="smtp", now=NOW)
    assert sweep(inbound_settings, store, NOW + timedelta(days=1))["inbound_messages"] == 1
    with store.session() as session:
        assert session.scalars(select(InboundMessageRow.subscriber_id)).all() == [subscribers.find(store, new.email).id]
    assert kinds(store, old.email) == ["bounced"] and kinds(store, new.email) == ["bounced"]
