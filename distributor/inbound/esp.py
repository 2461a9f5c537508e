"""ESP webhooks: bounces, complaints and unsubscribes reported by the relay we send through.

Each provider is verified as it documents, then mapped to the same outcomes as inbound
mail (classify.OUTCOMES) and handled by process.handle_outcome, idempotent by the
provider's event id:

- Amazon SES through SNS: RSA signature over SNS's canonical string, checked with the
  certificate at SigningCertURL, which must be https on an sns.<region>.amazonaws.com
  host; topic ARN in inbound.ses_topic_arns; SubscriptionConfirmation confirmed by
  fetching its SubscribeURL (same host rule).
- SendGrid Event Webhook: ECDSA P-256 / SHA-256 signature over timestamp + body with the
  verification key from inbound.sendgrid_public_key; stale timestamps refused.
- Postmark: HTTP basic auth (POSTMARK_WEBHOOK_AUTH), compared in constant time.
- Mailgun: HMAC-SHA256 of timestamp + token under MAILGUN_WEBHOOK_SIGNING_KEY; stale
  timestamps and reused tokens refused (the signature does not cover the event body).

The delivery an event is about: a verified token anywhere in the event (SES reports our
VERP return path as mail.source), else the subscriber with the event's address and the
run named by our Message-ID when the event quotes it and it verifies for that address.
This module does the parsing and checking; HTTP lives in distributor/web/esp_webhooks.py.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import urlsplit

from sqlalchemy import select

from distributor.errors import DistributorError
from distributor.inbound.classify import DIAGNOSTIC_MAX, Classification
from distributor.inbound.process import Handled, handle_outcome
from distributor.inbound.tokens import find_tokens
from distributor.settings import Settings
from distributor.store import Store
from distributor.store.models import DeliveryRow

PROVIDERS = ("ses", "sendgrid", "postmark", "mailgun")
# SNS signing certificates and subscription URLs live only on these hosts.
SNS_HOST = re.compile(r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")
_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
# Our Message-ID: "<RUN.EDITION.HMAC20@domain>" (render/email.py, _Personaliser.message_id).
_OUR_MESSAGE_ID = re.compile(r"^<?(\d+)\.[A-Za-z0-9_-]+\.([0-9a-f]{20})@[^>]+>?$")


class WebhookRefused(DistributorError, ValueError):
    """A webhook call refused: `status` is the HTTP status to answer, `reason` says why."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class EspEvent:
    """One provider event, mapped."""

    provider: str
    event_id: str
    found: Classification  # outcome, status, diagnostic; recipient = the address
    original_message_id: str = ""  # our Message-ID of the message it is about, if quoted
    text: str = ""  # the event as the provider sent it, searched for our tokens


def _status(*texts: object) -> str:
    for text in texts:
        match = _STATUS.search(str(text or ""))
        if match:
            return match.group(0)
    return ""


def _clip(text: object) -> str:
    return " ".join(str(text or "").split())[:DIAGNOSTIC_MAX]


# --- Amazon SES through SNS -------------------------------------------------------------

_SNS_KEYS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
    "UnsubscribeConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
}


def sns_canonical(body: dict) -> bytes:
    """The string SNS signs: "Key\\nValue\\n" for its type's keys in order (Subject only
    when present)."""
    keys = _SNS_KEYS.get(str(body.get("Type", "")))
    if keys is None:
        raise WebhookRefused(400, f"unknown SNS message type {str(body.get('Type'))[:40]!r}")
    out = []
    for key in keys:
        if key not in body or body[key] is None:
            if key == "Subject":
                continue
            raise WebhookRefused(400, f"SNS message lacks {key}")
        out.append(f"{key}\n{body[key]}\n")
    return "".join(out).encode("utf-8")


def check_sns_url(url: str, what: str) -> str:
    parts = urlsplit(str(url or ""))
    if parts.scheme != "https" or not SNS_HOST.match((parts.hostname or "").lower()) or parts.port not in (None, 443):
        raise WebhookRefused(401, f"{what} is not an https URL on an sns.<region>.amazonaws.com host")
    return url


def verify_sns(settings: Settings, body: dict, fetch: Callable[[str], bytes]) -> None:
    """Refuse (WebhookRefused) unless the SNS message is signed by Amazon for one of our topics."""
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    arns = settings.file.inbound.ses_topic_arns
    if str(body.get("TopicArn", "")) not in arns:
        raise WebhookRefused(403, "topic ARN is not in inbound.ses_topic_arns")
    version = str(body.get("SignatureVersion", ""))
    digest = {"1": hashes.SHA1(), "2": hashes.SHA256()}.get(version)  # noqa: S303 - SNS's own version 1
    if digest is None:
        raise WebhookRefused(401, f"unknown SNS SignatureVersion {version[:8]!r}")
    cert_url = check_sns_url(body.get("SigningCertURL", ""), "SigningCertURL")
    if not urlsplit(cert_url).path.endswith(".pem"):
        raise WebhookRefused(401, "SigningCertURL is not a .pem certificate")
    try:
        signature = base64.b64decode(str(body.get("Signature", "")), validate=True)
    except (binascii.Error, ValueError):
        raise WebhookRefused(401, "SNS Signature is not base64") from None
    try:
        cert = x509.load_pem_x509_certificate(fetch(cert_url))
    except Exception:  # noqa: BLE001 - unreachable or not a certificate: not verified
        raise WebhookRefused(401, "the SNS signing certificate could not be fetched or read") from None
    now = datetime.now(timezone.utc)
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise WebhookRefused(401, "the SNS signing certificate is not valid now")
    try:
        cert.public_key().verify(signature, sns_canonical(body), padding.PKCS1v15(), digest)  # type: ignore[call-arg, union-attr]
    except InvalidSignature:
        raise WebhookRefused(401, "SNS signature does not verify") from None


def parse_ses(body: dict) -> list[EspEvent]:
    """SES bounce/complaint notifications (or event publishing records) inside an SNS Notification."""
    try:
        message = json.loads(body.get("Message") or "{}")
    except ValueError:
        raise WebhookRefused(400, "SNS Message is not JSON") from None
    if not isinstance(message, dict):
        raise WebhookRefused(400, "SNS Message is not a JSON object")
    kind = str(message.get("notificationType") or message.get("eventType") or "")
    mail = message.get("mail") or {}
    original = str((mail.get("commonHeaders") or {}).get("messageId") or "")
    if not original:
        for header in mail.get("headers") or []:
            if str(header.get("name", "")).lower() == "message-id":
                original = str(header.get("value", ""))
    text = json.dumps(mail)
    base_id = str(body.get("MessageId", ""))
    events: list[EspEvent] = []
    if kind == "Bounce":
        bounce = message.get("bounce") or {}
        outcome = {"Permanent": "hard_bounce", "Transient": "soft_bounce"}.get(str(bounce.get("bounceType")), "unknown")
        for i, who in enumerate(bounce.get("bouncedRecipients") or []):
            diagnostic = _clip(who.get("diagnosticCode"))
            events.append(EspEvent("ses", f"{base_id}:{i}", Classification(
                outcome, status=_status(who.get("status"), diagnostic), diagnostic=diagnostic,
                reporting_mta=_clip(bounce.get("reportingMTA")), recipient=str(who.get("emailAddress", "")),
                detector=f"ses {bounce.get('bounceType')}/{bounce.get('bounceSubType')}",
            ), original, text))
    elif kind == "Complaint":
        complaint = message.get("complaint") or {}
        for i, who in enumerate(complaint.get("complainedRecipients") or []):
            events.append(EspEvent("ses", f"{base_id}:{i}", Classification(
                "complaint", diagnostic=f"feedback-type {complaint.get('complaintFeedbackType') or 'unstated'}",
                reporting_mta=_clip(complaint.get("userAgent")), recipient=str(who.get("emailAddress", "")), detector="ses",
            ), original, text))
    return events


# --- SendGrid -----------------------------------------------------------------------------


def load_sendgrid_key(value: str):  # noqa: ANN201 - an EllipticCurvePublicKey
    """SendGrid's verification key (base64 DER, or PEM); ValueError naming the problem."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key

    try:
        if "BEGIN PUBLIC KEY" in value:
            key = load_pem_public_key(value.encode("ascii"))
        else:
            key = load_der_public_key(base64.b64decode(value, validate=True))
    except Exception:  # noqa: BLE001 - any failure: not a key we can use
        raise ValueError("not a base64 DER (or PEM) public key as SendGrid shows it") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ValueError("not an ECDSA P-256 public key")
    return key


def verify_sendgrid(settings: Settings, raw: bytes, signature: str, timestamp: str, now: datetime) -> None:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    key_text = settings.file.inbound.sendgrid_public_key
    if not key_text:
        raise WebhookRefused(404, "SendGrid webhook not configured")
    _fresh(timestamp, now, settings.file.inbound.webhook_max_age_seconds)
    try:
        sig = base64.b64decode(signature, validate=True)
        load_sendgrid_key(key_text).verify(sig, timestamp.encode("ascii") + raw, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, binascii.Error, ValueError, UnicodeEncodeError):
        raise WebhookRefused(401, "SendGrid signature does not verify") from None


def _fresh(timestamp: str, now: datetime, max_age: int) -> None:
    try:
        stamp = int(str(timestamp).strip())
    except ValueError:
        raise WebhookRefused(401, "timestamp missing or not a number") from None
    if abs(now.timestamp() - stamp) > max_age:
        raise WebhookRefused(401, "timestamp too old or in the future (a replay?)")


def parse_sendgrid(raw: bytes) -> list[EspEvent]:
    try:
        items = json.loads(raw)
    except ValueError:
        raise WebhookRefused(400, "body is not JSON") from None
    if not isinstance(items, list):
        raise WebhookRefused(400, "body is not a JSON array of events")
    events = []
    for item in items:
        if not isinstance(item, dict):
            continue
        kind = str(item.get("event", ""))
        reason = _clip(item.get("reason") or item.get("response"))
        status = _status(item.get("status"), reason)
        if kind == "bounce":
            outcome = "soft_bounce" if item.get("type") == "blocked" or status.startswith("4") else "hard_bounce"
        else:
            outcome = {
                "deferred": "soft_bounce", "spamreport": "complaint",
                "unsubscribe": "unsubscribe", "group_unsubscribe": "unsubscribe",
            }.get(kind, "ignored")
        event_id = str(item.get("sg_event_id") or hashlib.sha256(json.dumps(item, sort_keys=True).encode()).hexdigest())
        events.append(EspEvent("sendgrid", event_id, Classification(
            outcome, status=status, diagnostic=reason, recipient=str(item.get("email", "")), detector=f"sendgrid {kind}",
        ), str(item.get("smtp-id", "")), json.dumps(item)))
    return events


# --- Postmark -----------------------------------------------------------------------------


def verify_postmark(settings: Settings, authorization: str) -> None:
    expected = settings.env.postmark_webhook_auth
    if expected is None:
        raise WebhookRefused(404, "Postmark webhook not configured")
    scheme, _, value = (authorization or "").partition(" ")
    try:
        given = base64.b64decode(value.strip(), validate=True) if scheme.lower() == "basic" else b""
    except (binascii.Error, ValueError):
        given = b""
    if not hmac.compare_digest(given, expected.get_secret_value().encode("utf-8")):
        raise WebhookRefused(401, "Postmark basic auth does not match")


# Postmark bounce types (its "Bounce types" table) to outcomes; the rest are ignored.
POSTMARK_TYPES = {
    "HardBounce": "hard_bounce", "BadEmailAddress": "hard_bounce", "ManuallyDeactivated": "hard_bounce",
    "SoftBounce": "soft_bounce", "Transient": "soft_bounce", "DnsError": "soft_bounce",
    "SpamComplaint": "complaint", "Unsubscribe": "unsubscribe", "AutoResponder": "auto_reply",
}


def parse_postmark(body: dict) -> list[EspEvent]:
    record = str(body.get("RecordType", ""))
    email = str(body.get("Email") or body.get("Recipient") or "")
    text = json.dumps(body)
    if record == "Bounce":
        kind = str(body.get("Type", ""))
        diagnostic = _clip(body.get("Details") or body.get("Description"))
        found = Classification(POSTMARK_TYPES.get(kind, "unknown"), status=_status(diagnostic), diagnostic=diagnostic,
                               recipient=email, detector=f"postmark {kind}")
        return [EspEvent("postmark", f"bounce:{body.get('ID')}", found, text=text)]
    if record == "SpamComplaint":
        found = Classification("complaint", diagnostic="spam complaint", recipient=email, detector="postmark SpamComplaint")
        return [EspEvent("postmark", f"complaint:{body.get('ID')}", found, text=text)]
    if record == "SubscriptionChange" and body.get("SuppressSending") and body.get("SuppressionReason") == "ManualSuppression":
        found = Classification("unsubscribe", recipient=email, detector="postmark SubscriptionChange")
        return [EspEvent("postmark", f"subscription:{body.get('MessageID')}:{body.get('ChangedAt')}", found, text=text)]
    return []


# --- Mailgun ------------------------------------------------------------------------------


def verify_mailgun(settings: Settings, store: Store, body: dict, now: datetime) -> None:
    from sqlalchemy.exc import IntegrityError

    from distributor.store.models import WebhookReceiptRow

    key = settings.env.mailgun_webhook_signing_key
    if key is None:
        raise WebhookRefused(404, "Mailgun webhook not configured")
    sig = body.get("signature") if isinstance(body.get("signature"), dict) else {}
    timestamp, token, signature = (str(sig.get(k, "")) for k in ("timestamp", "token", "signature"))
    _fresh(timestamp, now, settings.file.inbound.webhook_max_age_seconds)
    expected = hmac.new(key.get_secret_value().encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    if not token or not hmac.compare_digest(expected, signature.lower()):
        raise WebhookRefused(401, "Mailgun signature does not verify")
    # The signature covers the timestamp and token, not the event: a token is good once.
    try:
        with store.session() as session:
            session.add(WebhookReceiptRow(signature=f"mailgun:{hashlib.sha256(token.encode()).hexdigest()[:64]}", received_at=now))
    except IntegrityError:
        raise WebhookRefused(409, "Mailgun token already used (a replay)") from None


def parse_mailgun(body: dict) -> list[EspEvent]:
    data = body.get("event-data")
    if not isinstance(data, dict):
        raise WebhookRefused(400, "no event-data")
    kind = str(data.get("event", ""))
    status_block = data.get("delivery-status") or {}
    diagnostic = _clip(status_block.get("message") or status_block.get("description") or data.get("reason"))
    code = status_block.get("code")
    status = _status(status_block.get("enhanced-code"), diagnostic) or (
        f"{int(code) // 100}.0.0" if isinstance(code, int) and 400 <= code < 600 else ""
    )
    if kind == "failed":
        outcome = "hard_bounce" if data.get("severity") == "permanent" else "soft_bounce"
    else:
        outcome = {"complained": "complaint", "unsubscribed": "unsubscribe"}.get(kind, "ignored")
    headers = (data.get("message") or {}).get("headers") or {}
    found = Classification(
        outcome, status=status, diagnostic=diagnostic, reporting_mta=_clip(status_block.get("mx-host")),
        recipient=str(data.get("recipient", "")), detector=f"mailgun {kind}",
    )
    return [EspEvent("mailgun", str(data.get("id") or ""), found, str(headers.get("message-id", "")), json.dumps(data))]


# --- handling -------------------------------------------------------------------------------


def _our_run(settings: Settings, message_id: str, email: str) -> int | None:
    """The run named by our Message-ID, when it verifies as ours for this address."""
    match = _OUR_MESSAGE_ID.match(message_id.strip())
    if not match or not email:
        return None
    expected = hmac.new(settings.secret_key.encode(), email.strip().lower().encode("ascii", "replace"), hashlib.sha256)
    return int(match.group(1)) if hmac.compare_digest(expected.hexdigest()[:20], match.group(2)) else None


def handle_events(settings: Settings, store: Store, events: list[EspEvent], *, now: datetime | None = None) -> list[Handled]:
    """Resolve each event to a delivery (or subscriber) and handle it once per event id."""
    from dataclasses import replace

    from distributor import subscribers

    done = []
    for event in events:
        found = event.found
        tokens = find_tokens(settings, event.text)
        subscriber_id = run_id = None
        if tokens:
            found = replace(found, delivery_id=tokens[0].delivery_id)
        elif found.recipient:
            try:
                subscriber = subscribers.find(store, found.recipient)
            except Exception:  # noqa: BLE001 - an address we cannot read names nobody
                subscriber = None
            if subscriber is not None:
                subscriber_id = subscriber.id
                run_id = _our_run(settings, event.original_message_id, subscriber.email)
                if run_id is not None:
                    with store.session() as session:
                        delivery = session.scalar(select(DeliveryRow.id).where(
                            DeliveryRow.run_id == run_id, DeliveryRow.subscriber_id == subscriber_id))
                    if delivery is not None:
                        found = replace(found, delivery_id=delivery)
        if not event.event_id:
            continue  # nothing to key it by: cannot be handled once
        done.append(handle_outcome(
            settings, store, found, key=f"{event.provider}:{event.event_id}", source="webhook", now=now,
            extra={"provider": event.provider}, subscriber_id=subscriber_id, run_id=run_id,
        ))
    return done
