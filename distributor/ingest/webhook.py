"""Signing and verifying the CMS webhook (`POST /webhooks/articles`). Pure: no I/O.

The CMS sends two headers with the raw JSON body:

    X-Distributor-Timestamp: 1751609820            (unix seconds, when it signed)
    X-Distributor-Signature: sha256=<hex digest>   (HMAC-SHA256 with SECRET_KEY)

The digest covers ``f"{timestamp}.".encode() + body``: binding the time into the
signature is what lets us refuse old requests, and the web app refuses an exact replay
of a signature it already accepted while the timestamp is still fresh.

The secret never appears in an error message or a log line.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import datetime

from distributor import jsonlimits
from distributor.errors import DistributorError, SignatureError

TIMESTAMP_HEADER = "X-Distributor-Timestamp"
SIGNATURE_HEADER = "X-Distributor-Signature"
# The only media type a signed push may carry (charset parameters aside).
CONTENT_TYPE = "application/json"


def is_json_media_type(header: str | None) -> bool:
    """Whether a Content-Type header says application/json (any case, any parameters)."""
    return (header or "").split(";", 1)[0].strip().lower() == CONTENT_TYPE
SCHEME = "sha256"

# Unix seconds, no sign or fraction; 12 digits reach the year 33658, enough to tell
# "malformed" from "far in the future" without integer-parsing megabytes of digits.
_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")
_SIGNATURE = re.compile(r"^sha256=([0-9a-fA-F]{64})$")


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header value, "sha256=<hex>", for a body signed at `timestamp`."""
    message = f"{int(timestamp)}.".encode("ascii") + body
    digest = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()
    return f"{SCHEME}={digest}"


def signed_headers(secret: str, timestamp: int, body: bytes) -> dict[str, str]:
    """Every header a sender needs (for the CMS side, the CLI and tests)."""
    return {
        "Content-Type": CONTENT_TYPE,
        TIMESTAMP_HEADER: str(int(timestamp)),
        SIGNATURE_HEADER: sign(secret, timestamp, body),
    }


def normalise_signature(signature_header: str) -> str:
    """The canonical (lower-case hex) form, so case changes cannot dodge replay checks."""
    return signature_header.strip().lower()


def verify(
    secret: str,
    timestamp_header: str | None,
    signature_header: str | None,
    body: bytes,
    *,
    now: float | datetime,
    max_age_seconds: int,
) -> int:
    """Check a request's signature and freshness; return its timestamp.

    `now` is unix seconds or an aware datetime. A timestamp more than `max_age_seconds`
    away from `now`, in the past or the future (a skewed or forged clock), is refused.
    Raises SignatureError whose message is the reason, safe to show to the caller.
    """
    if not timestamp_header:
        raise SignatureError(f"missing {TIMESTAMP_HEADER} header")
    if not signature_header:
        raise SignatureError(f"missing {SIGNATURE_HEADER} header")
    stamp = timestamp_header.strip()
    if not _TIMESTAMP.match(stamp):
        raise SignatureError(f"malformed {TIMESTAMP_HEADER} header: expected unix seconds")
    timestamp = int(stamp)
    match = _SIGNATURE.match(signature_header.strip())
    if not match:
        raise SignatureError(f"malformed {SIGNATURE_HEADER} header: expected sha256=<64 hex digits>")

    current = now.timestamp() if isinstance(now, datetime) else float(now)
    age = current - timestamp
    if age > max_age_seconds:
        raise SignatureError(
            f"timestamp too old: {int(age)} s, more than {max_age_seconds} s "
            f"(webhook.max_age_seconds)"
        )
    if -age > max_age_seconds:
        raise SignatureError(
            f"timestamp in the future by {int(-age)} s, more than {max_age_seconds} s "
            f"(webhook.max_age_seconds)"
        )

    expected = sign(secret, timestamp, body)
    given = f"{SCHEME}={match.group(1).lower()}"
    if not hmac.compare_digest(expected.encode("ascii"), given.encode("ascii")):
        raise SignatureError("bad signature")
    return timestamp


class PayloadError(DistributorError, ValueError):
    """The webhook body is not the JSON shape we take (the whole request is refused)."""


def parse_payload(body: bytes) -> list[object]:
    """The article objects of a webhook body: one article object, or {"articles": [...]}.

    Items are returned as they are (each may still be rejected on its own); raises
    PayloadError naming the problem when the body as a whole is unusable.
    """
    try:
        data = jsonlimits.loads(body)
    except jsonlimits.JsonBodyError as exc:
        raise PayloadError(str(exc)) from None
    if not isinstance(data, dict):
        raise PayloadError(
            'body must be a JSON object: one article, or {"articles": [article, ...]}'
        )
    if "articles" not in data:
        return [data]
    items = data["articles"]
    if not isinstance(items, list):
        raise PayloadError('"articles" must be a list of article objects')
    if not items:
        raise PayloadError('"articles" is an empty list')
    return items
