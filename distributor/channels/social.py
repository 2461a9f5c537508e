"""What every social channel kind shares: a request, its result, and the outbox.

A Mastodon or Bluesky channel is called with a `SocialRequest` (what to do, its
parameters, the idempotency key the ledger derived for it) and answers a
`SocialResult`, never raising for anything the network or the service did. Without
credentials a `SocialOutbox` takes the channel's place and writes each request as JSON
to `var/outbox/<kind>/`, as Telegram's outbox does, so the demo shows what would be sent.

This module imports no channel; each channel kind imports it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Literal

Outcome = Literal[
    "ok",  # done; remote_ids holds what the service created or edited
    "retry_after",  # rate limited: try again in retry_after seconds
    "permanent",  # the account cannot post (suspended, forbidden): pause the channel
    "unauthorized",  # the credentials were refused: fix the environment
    "ambiguous",  # no answer after the request left: it may have been acted on
    "temporary",  # failed before the service acted, or it answered 5xx: safe to resend
    "rejected",  # the service refused this one request (too long, invalid)
]


@dataclass(frozen=True)
class SocialRequest:
    """One call to a social service: `action` names it (status, edit, media, instance...)."""

    action: str
    params: dict[str, Any] = field(default_factory=dict)
    # The same key for every attempt at the same ledger row and part, so the service
    # can drop a repeat (Mastodon's Idempotency-Key header).
    idempotency_key: str = ""
    # Raw bytes to upload (media); never written to the outbox, only their size.
    data: bytes = b""


@dataclass(frozen=True)
class SocialResult:
    """What one request came to."""

    outcome: Outcome
    remote_ids: tuple[str, ...] = ()
    retry_after: float = 0.0
    description: str = ""  # the service's or transport's words, credentials removed
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. the instance's limits
    # What the answer's rate-limit headers said: requests left in the service's current
    # window (None: no header) and seconds until that window resets.
    remaining: int | None = None
    reset_in: float = 0.0

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


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


class SocialOutbox:
    """Writes requests to files instead of sending them; the same `call` as a channel.

    The file name comes from the content (channel, action, a hash), so a repeat lands in
    the same file; the remote id is derived from the same hash, so a thread's replies
    and later edits name the status they would follow or edit.
    """

    def __init__(self, directory: str | os.PathLike[str], channel: str) -> None:
        self.directory = Path(directory)
        self.channel = channel

    def call(self, request: SocialRequest) -> SocialResult:
        """Write the request's file and answer as the service would have."""
        payload: dict[str, Any] = {"channel": self.channel, "action": request.action}
        if request.idempotency_key:
            payload["idempotency_key"] = request.idempotency_key
        payload["params"] = request.params
        if request.data:
            payload["bytes"] = len(request.data)
        text = json.dumps(payload, indent=2, ensure_ascii=False) + "\n"
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
        stem = re.sub(r"[^A-Za-z0-9_-]+", "", self.channel) or "channel"
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{stem}-{request.action}-{digest[:16]}.json"
        temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)  # readers never see a half-written file
        if request.action == "edit":
            return SocialResult("ok", remote_ids=(str(request.params.get("id", "")),), description=str(path))
        if "rkey" in request.params:  # a Bluesky record: "uri cid", as the PDS would name it
            uri = f"at://{stem}/app.bsky.feed.post/{request.params['rkey']}"
            return SocialResult("ok", remote_ids=(f"{uri} outbox{digest[:16]}",), description=str(path))
        return SocialResult("ok", remote_ids=(str(int(digest[:12], 16)),), description=str(path))
