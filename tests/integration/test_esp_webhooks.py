"""ESP webhooks over real HTTP (uvicorn), on SQLite and PostgreSQL: payloads shaped like
each provider's documented samples, signed with keys made at test time; forged, stale
and replayed calls change nothing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import datetime, timedelta, timezone

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from distributor import reports, subscribers
from distributor.delivery import email as dispatch
from distributor.inbound import events
from distributor.inbound.esp import sns_canonical
from distributor.settings import InboundConfig
from distributor.web.app import create_app
from tests.conftest import settings_for
from tests.fakes.smtp_server import FakeSmtpServer
from tests.fakes.webserver import serve
from tests.integration.test_inbound import send_run, status

TOPIC = "arn:aws:sns:us-east-1:123456789012:newsroom-ses"
CERT_URL = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-7ff5318490ec183fbaddaa2a969abfda.pem"
MAILGUN_KEY = "key-mailgun-signing-4f1e2d3c"
POSTMARK_AUTH = "postmark:pm-Hook-pa55"


@pytest.fixture(autouse=True)
def fresh_caches():
    dispatch.clear_caches()
    yield
    dispatch.clear_caches()


@pytest.fixture(scope="module")
def sns_key():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = datetime.now(timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30)).sign(key, hashes.SHA256())
    )
    return key, cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def sendgrid_key():
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return key, base64.b64encode(public).decode()


@pytest.fixture
def world(tmp_path, monkeypatch, store, sns_key, sendgrid_key):
    """A sent run of 6 readers, and the web app with every provider configured."""
    outbound = FakeSmtpServer().start()
    monkeypatch.setenv("SMTP_URL", outbound.url)
    monkeypatch.setenv("MAILGUN_WEBHOOK_SIGNING_KEY", MAILGUN_KEY)
    monkeypatch.setenv("POSTMARK_WEBHOOK_AUTH", POSTMARK_AUTH)
    settings = settings_for(tmp_path, inbound=InboundConfig(ses_topic_arns=(TOPIC,), sendgrid_public_key=sendgrid_key[1]))
    run_id, sent = send_run(settings, store, outbound, 6)
    outbound.stop()
    messages = {e: outbound.received_by(e)[0].message for e in sent}
    fetched: list[str] = []

    def fetch(url: str) -> bytes:
        fetched.append(url)
        return sns_key[1] if url == CERT_URL else b"<ConfirmSubscriptionResponse/>"

    app = create_app(settings, store)
    app.state.sns_fetch = fetch
    with serve(app) as client:
        yield {
            "settings": settings, "store": store, "run_id": run_id, "sent": sent, "messages": messages,
            "client": client, "fetched": fetched,
        }


def sns_signed(key, body: dict, version: str = "1") -> dict:
    body = {**body, "SignatureVersion": version, "SigningCertURL": CERT_URL}
    digest = hashes.SHA1() if version == "1" else hashes.SHA256()  # noqa: S303 - SNS version 1 is SHA1
    body["Signature"] = base64.b64encode(key.sign(sns_canonical(body), padding.PKCS1v15(), digest)).decode()
    return body


def ses_notification(message: dict, message_id: str) -> dict:
    return {
        "Type": "Notification", "MessageId": message_id, "TopicArn": TOPIC,
        "Message": json.dumps(message), "Timestamp": "2026-11-26T01:33:00.000Z",
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=x",
    }


def ses_bounce(sent, email: str) -> dict:
    # AWS's documented bounce notification, with our return path as mail.source.
    return {
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": "Permanent", "bounceSubType": "General",
            "bouncedRecipients": [{"emailAddress": email, "action": "failed", "status": "5.1.1",
                                   "diagnosticCode": "smtp; 550 5.1.1 user unknown"}],
            "timestamp": "2026-11-26T01:32:59.000Z", "feedbackId": "00000137860315fd-869464a4-8680-4114-98d3-716fe35851f9-000000",
            "reportingMTA": "dsn; a8-70.smtp-out.amazonses.com",
        },
        "mail": {"timestamp": "2026-11-26T01:32:58.000Z", "source": sent[email].return_path,
                 "messageId": "00000137860315fd-34208509-5b74-41f3-95c5-22c1edc3c924-000000", "destination": [email]},
    }


def test_ses_subscription_bounce_complaint_and_forgeries(world, sns_key):
    client, store, sent = world["client"], world["store"], world["sent"]
    key = sns_key[0]
    first, second, third = list(sent)[:3]

    confirm = sns_signed(key, {
        "Type": "SubscriptionConfirmation", "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b", "Token": "2336412f37f",
        "TopicArn": TOPIC, "Message": "You have chosen to subscribe to the topic.",
        "SubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=x&Token=2336412f37f",
        "Timestamp": "2026-11-26T01:00:00.000Z",
    })
    response = client.post("/webhooks/esp/ses", json=confirm)
    assert response.status_code == 200 and response.json() == {"confirmed": True}
    assert world["fetched"] == [CERT_URL, confirm["SubscribeURL"]]

    bounce = sns_signed(key, ses_notification(ses_bounce(sent, first), "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324"))
    response = client.post("/webhooks/esp/ses", json=bounce)
    assert response.status_code == 200 and response.json() == {"events": 1, "changed": 1, "duplicates": 0}
    [event] = events.events_for(store, subscribers.find(store, first).id)
    assert (event.kind, event.source, event.run_id) == ("bounced", "webhook", world["run_id"])
    assert event.detail["status"] == "5.1.1" and event.detail["provider"] == "ses"
    assert client.post("/webhooks/esp/ses", json=bounce).json()["duplicates"] == 1  # SNS retries: once only

    complaint = sns_signed(key, ses_notification({
        "notificationType": "Complaint",
        "complaint": {"complainedRecipients": [{"emailAddress": second}], "complaintFeedbackType": "abuse",
                      "userAgent": "Yahoo!-Mail-Feedback/1.0", "timestamp": "2026-11-26T02:00:00.000Z",
                      "feedbackId": "000001378603177f-18c07c78-fa81-4a58-9dd1-fedc3cb8f49a-000000"},
        "mail": {"source": sent[second].return_path, "messageId": "x", "destination": [second]},
    }, "f7f4b5e8-1c7e-4b0a-9b1e-3a7e5d1c2b3a"), version="2")
    assert client.post("/webhooks/esp/ses", json=complaint).json()["changed"] == 1
    assert status(store, second) == "complained"

    # Forgeries: a changed message, a certificate elsewhere, a topic not ours.
    forged = {**sns_signed(key, ses_notification(ses_bounce(sent, third), "a1")), "Message": json.dumps(ses_bounce(sent, third)) + " "}
    assert client.post("/webhooks/esp/ses", json=forged).status_code == 401
    evil = sns_signed(key, ses_notification(ses_bounce(sent, third), "a2"))
    evil["SigningCertURL"] = "https://sns.us-east-1.amazonaws.com.evil.example/cert.pem"
    assert client.post("/webhooks/esp/ses", json=evil).status_code == 401
    other = sns_signed(key, {**ses_notification(ses_bounce(sent, third), "a3"), "TopicArn": TOPIC + "-other"})
    assert client.post("/webhooks/esp/ses", json=other).status_code == 403
    assert world["fetched"].count("https://sns.us-east-1.amazonaws.com.evil.example/cert.pem") == 0
    assert status(store, third) == "confirmed"
    assert reports.bounces(store, world["run_id"]) == {"bounced": 1, "complained": 1}


def sendgrid_post(client, key, payload, *, timestamp: int | None = None, tamper: bool = False):
    raw = json.dumps(payload).encode()
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = base64.b64encode(key.sign(stamp.encode() + raw, ec.ECDSA(hashes.SHA256()))).decode()
    return client.post("/webhooks/esp/sendgrid", content=raw + (b" " if tamper else b""), headers={
        "content-type": "application/json",
        "X-Twilio-Email-Event-Webhook-Signature": signature,
        "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
    })


def test_sendgrid_events_signed_with_ecdsa(world, sendgrid_key):
    client, store, sent, messages = world["client"], world["store"], world["sent"], world["messages"]
    key = sendgrid_key[0]
    a, b, c = list(sent)[:3]
    payload = [
        {"email": a, "timestamp": 1795650779, "smtp-id": messages[a]["Message-ID"], "event": "bounce", "type": "bounce",
         "status": "5.1.1", "reason": "550 5.1.1 The email account that you tried to reach does not exist.",
         "sg_event_id": "6g4ZI7SA-xmRDv57GoPIPw==", "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0"},
        {"email": b, "timestamp": 1795650780, "smtp-id": messages[b]["Message-ID"], "event": "spamreport",
         "sg_event_id": "37nvH5QBz858KGVYCM4uOA==", "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.1"},
        {"email": c, "timestamp": 1795650781, "event": "open", "sg_event_id": "bjMlfsSfRyuXEVy5LndsEA=="},
    ]
    assert sendgrid_post(client, key, payload, tamper=True).status_code == 401
    assert sendgrid_post(client, key, payload, timestamp=int(time.time()) - 3600).status_code == 401
    assert status(store, a) == "confirmed"
    response = sendgrid_post(client, key, payload)
    assert response.status_code == 200 and response.json() == {"events": 3, "changed": 2, "duplicates": 0}
    assert (status(store, a), status(store, b), status(store, c)) == ("bounced", "complained", "confirmed")
    [event] = events.events_for(store, subscribers.find(store, a).id)
    # The run comes from our Message-ID, verified for the address.
    assert event.run_id == world["run_id"] and event.delivery_id is not None
    assert sendgrid_post(client, key, payload).json()["duplicates"] == 3


def test_postmark_basic_auth_and_bounce_types(world):
    client, store, sent = world["client"], world["store"], world["sent"]
    a, b = list(sent)[3:5]
    bounce = {
        "RecordType": "Bounce", "ID": 4323372036854775807, "Type": "HardBounce", "TypeCode": 1, "Name": "Hard bounce",
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483", "Description": "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.", "Email": a,
        "From": "brief@newsarenaindia.com", "BouncedAt": "2026-11-26T01:33:00Z", "Inactive": True, "CanActivate": True,
        "MessageStream": "outbound",
    }
    wrong = base64.b64encode(b"postmark:guess").decode()
    assert client.post("/webhooks/esp/postmark", json=bounce, headers={"Authorization": f"Basic {wrong}"}).status_code == 401
    assert client.post("/webhooks/esp/postmark", json=bounce).status_code == 401
    good = {"Authorization": "Basic " + base64.b64encode(POSTMARK_AUTH.encode()).decode()}
    assert client.post("/webhooks/esp/postmark", json=bounce, headers=good).json()["changed"] == 1
    assert status(store, a) == "bounced"
    [event] = events.events_for(store, subscribers.find(store, a).id)
    assert event.detail["status"] == "5.1.1" and event.run_id is None  # Postmark names only the address
    change = {"RecordType": "SubscriptionChange", "MessageID": "a4909a96-73e6-4e0f-9e7e-2b2f5a1b7c3d",
              "ChangedAt": "2026-11-26T03:00:00Z", "Recipient": b, "Origin": "Recipient", "SuppressSending": True,
              "SuppressionReason": "ManualSuppression", "MessageStream": "outbound"}
    assert client.post("/webhooks/esp/postmark", json=change, headers=good).json()["changed"] == 1
    assert status(store, b) == "unsubscribed"


def mailgun_body(email: str, message_id: str, *, token: str, timestamp: int | None = None, key: str = MAILGUN_KEY) -> dict:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    return {
        "signature": {"timestamp": stamp, "token": token,
                      "signature": hmac.new(key.encode(), (stamp + token).encode(), hashlib.sha256).hexdigest()},
        "event-data": {
            "id": "G9Bn5sl1TC6nu79C8C0bwg", "timestamp": 1795650779.0, "event": "failed", "severity": "permanent",
            "reason": "bounce", "recipient": email,
            "delivery-status": {"code": 550, "message": "5.1.1 The email account that you tried to reach does not exist",
                                "mx-host": "gmail-smtp-in.l.google.com", "description": ""},
            "message": {"headers": {"message-id": message_id.strip("<>"), "from": "brief@newsarenaindia.com"}},
        },
    }


def test_mailgun_hmac_and_token_replay(world):
    client, store, sent, messages = world["client"], world["store"], world["sent"], world["messages"]
    a = list(sent)[5]
    mid = messages[a]["Message-ID"]
    forged = mailgun_body(a, mid, token="a" * 50, key="not-the-key")
    assert client.post("/webhooks/esp/mailgun", json=forged).status_code == 401
    stale = mailgun_body(a, mid, token="b" * 50, timestamp=int(time.time()) - 7200)
    assert client.post("/webhooks/esp/mailgun", json=stale).status_code == 401
    assert status(store, a) == "confirmed"
    body = mailgun_body(a, mid, token="c" * 50)
    response = client.post("/webhooks/esp/mailgun", json=body)
    assert response.status_code == 200 and response.json()["changed"] == 1
    assert status(store, a) == "bounced"
    [event] = events.events_for(store, subscribers.find(store, a).id)
    assert event.run_id == world["run_id"] and event.detail["status"] == "5.1.1"
    # The same token again, even with another event in it: refused.
    other = {**body, "event-data": {**body["event-data"], "id": "other", "recipient": list(sent)[0]}}
    assert client.post("/webhooks/esp/mailgun", json=other).status_code == 409
    assert status(store, list(sent)[0]) == "confirmed"


def test_unconfigured_providers_answer_404(tmp_path, store):
    settings = settings_for(tmp_path)
    with serve(create_app(settings, store)) as client:
        for provider in ("ses", "sendgrid", "postmark", "mailgun"):
            assert client.post(f"/webhooks/esp/{provider}", json={}).status_code == 404, provider
