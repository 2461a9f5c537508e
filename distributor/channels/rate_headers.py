"""What a social service's rate-limit headers say: requests left and when they come back.

Mastodon (X-RateLimit-*) and Bluesky's PDS (RateLimit-*) both send them on every
answer; each channel kind reads them here so the delivery can hold a channel whose
budget is spent before it meets a 429. Imports no channel; each kind imports it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime


def rate_headers(headers: Mapping[str, str], prefix: str, *, now: float | None = None) -> tuple[int | None, float]:
    """(remaining, seconds until the reset) from a response's `<prefix>Remaining` and
    `<prefix>Reset` headers (Mastodon: "X-RateLimit-", Bluesky: "RateLimit-"); (None, 0.0)
    when the service did not send them.

    The reset may be an ISO 8601 time (Mastodon), a Unix time (Bluesky's PDS, GoToSocial)
    or seconds from now (the IETF draft's form). A time is measured against the answer's
    own Date header when there is one, so a skewed local clock does not stretch the wait.
    `headers` must look names up case-insensitively (requests' and httpx's both do).
    """
    remaining_text = headers.get(f"{prefix}Remaining")
    try:
        remaining = int(str(remaining_text).strip()) if remaining_text is not None else None
    except ValueError:
        remaining = None
    reset_text = str(headers.get(f"{prefix}Reset") or "").strip()
    if remaining is None or not reset_text:
        return remaining, 0.0
    clock = now if now is not None else time.time()
    date_text = headers.get("Date")
    if date_text:
        try:
            clock = parsedate_to_datetime(str(date_text)).timestamp()
        except (TypeError, ValueError):
            pass
    try:
        number = float(reset_text)
    except ValueError:
        try:
            moment = datetime.fromisoformat(reset_text.replace("Z", "+00:00"))
        except ValueError:
            return remaining, 0.0
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return remaining, max(moment.timestamp() - clock, 0.0)
    # A Unix time is far larger than any window a service counts in seconds.
    return remaining, max(number - clock, 0.0) if number > 1_000_000_000 else max(number, 0.0)
