"""One classifier for everything that comes back: DSNs, non-standard bounces, ARF
complaints, mailto unsubscribes and auto-replies.

Pure: bytes and the envelope recipients in, a `Classification` out; nothing is changed
here (policy.py decides what an outcome does). The delivery a message is about comes
only from a token that verifies (tokens.py): the address it was sent to, or, for
reports that quote our original message, a token in the quoted headers.

Order matters: DSNs often carry `Auto-Submitted: auto-replied` (RFC 3464 asks MTAs to
mark them), so reports are recognised before auto-replies are set aside.
"""

from __future__ import annotations

import email
import logging
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from email import policy
from email.message import Message
from email.parser import BytesParser, HeaderParser

from distributor.inbound.tokens import Address, find_tokens, parse_address
from distributor.settings import Settings

OUTCOMES = ("hard_bounce", "soft_bounce", "complaint", "unsubscribe", "auto_reply", "ignored", "unknown")
# Outcomes policy.py acts on; the others are only recorded.
ACTIONABLE = ("hard_bounce", "soft_bounce", "complaint", "unsubscribe")
# Longest diagnostic kept as evidence (some MTAs quote whole SMTP conversations).
DIAGNOSTIC_MAX = 500

_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
# Headers that name the mailbox a message was delivered to, when the envelope is gone
# (IMAP mode): Postfix/Dovecot write Delivered-To and X-Original-To.
_DELIVERY_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To")
_VACATION_SUBJECT = re.compile(
    r"^\s*(auto(matic)?[ -]?(reply|response|antwort)|out of (the )?office|vacation|abwesenheit|absence)\b", re.IGNORECASE
)


@dataclass(frozen=True)
class Classification:
    """What one inbound message is, and the evidence for it."""

    outcome: str  # one of OUTCOMES
    delivery_id: int | None = None  # from a verified token; None: no delivery can be named
    status: str = ""  # enhanced status code, e.g. 5.1.1
    diagnostic: str = ""  # the remote server's words
    reporting_mta: str = ""
    recipient: str = ""  # the address that failed or complained, as the report says
    message_id: str = ""  # of the inbound message
    detector: str = ""  # dsn, arf, flufl.bounce, mailto, auto-submitted, ...
    reason: str = ""  # why unknown or ignored

    @property
    def actionable(self) -> bool:
        return self.outcome in ACTIONABLE and self.delivery_id is not None

    def detail(self) -> dict:
        """The evidence, JSON-ready, without empty fields."""
        return {k: v for k, v in asdict(self).items() if v not in ("", None) and k not in ("outcome", "delivery_id")}


def parse(raw: bytes) -> Message:
    return BytesParser(policy=policy.default).parsebytes(raw)


def classify(settings: Settings, raw: bytes, recipients: Sequence[str] = ()) -> Classification:
    """Classify one message. `recipients`: the envelope recipients (RCPT TO / LMTP); empty
    in IMAP mode, where the delivery headers are read instead."""
    try:
        msg = parse(raw)
        message_id = _one_line(str(msg.get("Message-ID", "") or ""))
    except Exception as exc:  # noqa: BLE001 - a message we cannot even parse is for an operator
        return Classification("unknown", reason=f"unparseable: {type(exc).__name__}")
    ours = _our_addresses(settings, msg, recipients)
    bounces_to = next((a for a in ours if a.purpose == "bounces"), None)
    unsubscribe_to = next((a for a in ours if a.purpose == "unsubscribe"), None)

    def quoted_delivery() -> int | None:
        # The address's token first; else one in the quoted original (its Return-Path,
        # or the List-Unsubscribe mailto every message of ours carries).
        for address in (bounces_to, unsubscribe_to):
            if address is not None and address.delivery_id is not None:
                return address.delivery_id
        found = find_tokens(settings, raw.decode("ascii", "replace"))
        return found[0].delivery_id if found else None

    base = {"message_id": message_id}
    if msg.get_content_type() == "multipart/report":
        report_type = (msg.get_param("report-type") or "").lower()
        if report_type == "feedback-report":
            return _complaint(msg, quoted_delivery(), base)
        if report_type == "delivery-status":
            found = _dsn(msg, quoted_delivery(), base)
            if found is not None:
                return found
    # A mail client's unsubscribe may say auto-generated; only a reply is set aside there.
    auto = _auto_reply(msg, replies_only=unsubscribe_to is not None)
    if auto:
        return Classification("auto_reply", quoted_delivery(), detector=auto, reason="auto-reply (RFC 3834): ignored", **base)
    if unsubscribe_to is not None:
        if unsubscribe_to.delivery_id is None:
            return Classification("unknown", reason="unsubscribe address without a token", detector="mailto", **base)
        sender = email.utils.parseaddr(str(msg.get("From", "") or ""))[1]
        return Classification("unsubscribe", unsubscribe_to.delivery_id, detector="mailto", recipient=sender, **base)
    flufl = _flufl(raw)
    if flufl is not None:
        outcome, recipient = flufl
        text = _text(msg)
        status = _status_of(text)
        # The status in the prose, when there is one, may correct the detector's guess.
        if status:
            outcome = "hard_bounce" if status.startswith("5") else "soft_bounce" if status.startswith("4") else outcome
        line = next((ln.strip() for ln in text.splitlines() if status and status in ln), "")
        return Classification(
            outcome, quoted_delivery(), status=status, diagnostic=line[:DIAGNOSTIC_MAX],
            recipient=recipient, detector="flufl.bounce", **base,
        )
    return Classification("unknown", quoted_delivery(), reason="not a bounce, complaint or unsubscribe we recognise", **base)


def _text(msg: Message) -> str:
    """The first text/plain part, decoded ("" when none)."""
    for part in msg.walk():
        if part.get_content_type() == "text/plain":
            try:
                return str(part.get_content())
            except Exception:  # noqa: BLE001 - an undecodable part has no prose for us
                return ""
    return ""


def _one_line(value: str) -> str:
    return " ".join(value.split())[:255]


def _our_addresses(settings: Settings, msg: Message, recipients: Sequence[str]) -> list[Address]:
    candidates = list(recipients)
    if not candidates:
        for header in _DELIVERY_HEADERS:
            for value in msg.get_all(header, []) or []:
                candidates += [addr for _, addr in email.utils.getaddresses([str(value)])]
    found: list[Address] = []
    for candidate in candidates:
        parsed = parse_address(settings, candidate)
        if parsed is not None and parsed not in found:
            found.append(parsed)
    return found


def _fields(part: Message) -> Message:
    """A report part's fields as headers, however the parser stored them."""
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        merged = Message()
        for block in payload:
            for key, value in block.items():
                merged[key] = str(value)
        return merged
    if isinstance(payload, Message):
        return payload
    text = part.get_payload(decode=True) or b""
    return HeaderParser().parsestr(text.decode("utf-8", "replace").lstrip())


def _typed(value: object) -> str:
    """ "rfc822; user@example.com" -> "user@example.com"; "smtp; 550 ..." -> "550 ..." """
    text = " ".join(str(value or "").split())
    kind, sep, rest = text.partition(";")
    return rest.strip() if sep and " " not in kind.strip() else text


def _address(value: object) -> str:
    """ "rfc822; <user@example.com>" -> "user@example.com" """
    text = _typed(value)
    return email.utils.parseaddr(text)[1] or text


def _status_of(*texts: str) -> str:
    for text in texts:
        match = _STATUS.search(text or "")
        if match:
            return match.group(0)
    return ""


def _dsn(msg: Message, delivery_id: int | None, base: dict) -> Classification | None:
    """RFC 3464: the most severe per-recipient block decides (failed 5.x.x > 4.x.x)."""
    for part in msg.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        payload = part.get_payload()
        if isinstance(payload, list) and payload and isinstance(payload[0], Message):
            blocks = list(payload)
        else:
            text = (part.get_payload(decode=True) or b"").decode("utf-8", "replace")
            blocks = [HeaderParser().parsestr(b.strip() + "\n") for b in re.split(r"\r?\n\s*\r?\n", text) if b.strip()]
        if not blocks:
            continue
        per_message, per_recipient = blocks[0], [b for b in blocks[1:] if b.get("Action") or b.get("Final-Recipient")]
        if not per_recipient and (blocks[0].get("Action") or blocks[0].get("Final-Recipient")):
            per_message, per_recipient = Message(), blocks  # a report with no per-message block
        reporting = _typed(per_message.get("Reporting-MTA", ""))
        best: tuple[int, Classification] | None = None
        for block in per_recipient:
            action = str(block.get("Action", "") or "").strip().lower()
            diagnostic = _typed(block.get("Diagnostic-Code", ""))[:DIAGNOSTIC_MAX]
            status = _status_of(str(block.get("Status", "") or ""), diagnostic)
            recipient = _address(block.get("Original-Recipient") or block.get("Final-Recipient") or "")
            if action in ("delivered", "relayed", "expanded"):
                outcome, rank = "ignored", 0
            elif status.startswith("5"):
                outcome, rank = "hard_bounce", 3
            elif status.startswith("4") or action == "delayed":
                outcome, rank = "soft_bounce", 2
            elif action == "failed":
                outcome, rank = "unknown", 1  # failed, but no status to say how
            else:
                outcome, rank = "unknown", 1
            found = Classification(
                outcome,
                delivery_id,
                status=status,
                diagnostic=diagnostic,
                reporting_mta=reporting,
                recipient=recipient,
                detector="dsn",
                reason=f"DSN action {action or '-'}" if outcome in ("ignored", "unknown") else "",
                **base,
            )
            if best is None or rank > best[0]:
                best = (rank, found)
        if best is not None:
            return best[1]
    return None


def _complaint(msg: Message, delivery_id: int | None, base: dict) -> Classification:
    """RFC 5965: the machine-readable part names the feedback type and the reporter."""
    fields = Message()
    for part in msg.walk():
        if part.get_content_type() == "message/feedback-report":
            fields = _fields(part)
            break
    kind = str(fields.get("Feedback-Type", "") or "").strip().lower()
    reporter = " ".join(str(fields.get("Reporting-MTA", "") or fields.get("User-Agent", "") or "").split())
    recipient = _address(fields.get("Original-Rcpt-To", ""))
    if kind and kind not in ("abuse", "fraud", "virus", "other", "not-spam"):
        kind = "other"
    if kind == "not-spam":
        return Classification("ignored", delivery_id, detector="arf", reason="feedback type not-spam", **base)
    return Classification(
        "complaint",
        delivery_id,
        diagnostic=f"feedback-type {kind or 'unstated'}",
        reporting_mta=_typed(reporter),
        recipient=recipient,
        detector="arf",
        **base,
    )


def _auto_reply(msg: Message, *, replies_only: bool = False) -> str:
    """Why this is an auto-reply (RFC 3834 and the common vendor headers), or "".
    `replies_only`: only `auto-replied`, not other automatic mail."""
    submitted = str(msg.get("Auto-Submitted", "") or "").strip().lower()
    if submitted and submitted != "no" and (not replies_only or submitted.startswith("auto-replied")):
        return f"auto-submitted {submitted.split(';')[0]}"
    for header in ("X-Autoreply", "X-Autorespond", "X-Auto-Response-Suppress"):
        value = str(msg.get(header, "") or "").strip().lower()
        if value and (header != "X-Auto-Response-Suppress" or "oof" in value or value == "all"):
            return header.lower()
    precedence = str(msg.get("Precedence", "") or "").strip().lower()
    if precedence in ("auto_reply", "auto-reply"):
        return f"precedence {precedence}"
    if _VACATION_SUBJECT.match(str(msg.get("Subject", "") or "")):
        return "vacation subject"
    return ""


class _QuietDetectorCrashes(logging.Filter):
    """flufl.bounce logs a traceback whenever one of its detectors trips over a message it
    does not know (e.g. one without From): for us that is "not recognised", not an error."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Exception in detector")


logging.getLogger("flufl.bounce").addFilter(_QuietDetectorCrashes())


def _flufl(raw: bytes) -> tuple[str, str] | None:
    """GNU Mailman's detectors for non-standard bounces (qmail, Exim, old Exchange, ...)."""
    from flufl.bounce import all_failures

    try:
        # flufl.bounce reads the legacy Message API (compat32).
        temporary, permanent = all_failures(email.message_from_bytes(raw))
    except Exception:  # noqa: BLE001 - a detector crashing on odd input is "not recognised"
        return None
    if permanent:
        return "hard_bounce", sorted(permanent)[0].decode("ascii", "replace")
    if temporary:
        return "soft_bounce", sorted(temporary)[0].decode("ascii", "replace")
    return None
