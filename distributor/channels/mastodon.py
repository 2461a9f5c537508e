"""The one place that talks to a Mastodon instance: send one request, classify the answer.

`MastodonChannel.call(request)` makes one API call with Mastodon.py and returns a
`SocialResult` (contracts.py); it never raises for anything the instance or the network
did. Everything around it (retries, threads, edits) lives in `distributor.delivery.social`,
on the channel ledger (`distributor.delivery.ledger`), and is tested against a fake
instance on localhost.

Rate limits: the client runs with `ratelimit_method="throw"`, so a 429 comes back at
once as "retry_after" with the wait the X-RateLimit-Reset header gave; the ledger defers
the post rather than a worker sleeping. Every result also carries what the answer's
X-RateLimit-Remaining and X-RateLimit-Reset said (`remaining`, `reset_in`), so a budget
spent by this very request holds the channel before the instance has to answer 429.

The access token travels in the Authorization header only; descriptions are scrubbed of
it all the same.
"""

from __future__ import annotations

import io
import threading
import time
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import requests
from mastodon import Mastodon
from mastodon.errors import (
    MastodonAPIError,
    MastodonError,
    MastodonNetworkError,
    MastodonNotFoundError,
    MastodonRatelimitError,
    MastodonServerError,
    MastodonUnauthorizedError,
)

from distributor.channels.contracts import SocialRequest, SocialResult
from distributor.channels.rate_headers import rate_headers

# Transport failures that happen before the request left: safe to resend.
_NOT_SENT = (requests.exceptions.ConnectionError,)
# When the instance does not say how long to wait after a 429.
DEFAULT_RETRY_SECONDS = 60.0
# The Mastodon version we declare, so Mastodon.py uses today's endpoints (/api/v2/media)
# without asking the instance first (one request fewer per process).
API_VERSION = "4.3.0"

# max_characters per instance URL, read once per process (it changes with a server
# upgrade, not between posts).
_max_characters: dict[str, int] = {}
_cache_lock = threading.Lock()


def classify(exc: MastodonError, reset: float | None = None, now: float | None = None) -> SocialResult:
    """Map a Mastodon.py error to an outcome (pure: tested without a network)."""
    text = str(exc)
    if isinstance(exc, MastodonRatelimitError):
        wait = (reset - (now or time.time())) if reset else DEFAULT_RETRY_SECONDS
        return SocialResult("retry_after", retry_after=max(1.0, wait), description=text)
    if isinstance(exc, MastodonUnauthorizedError):
        return SocialResult("unauthorized", description=text)
    if isinstance(exc, MastodonServerError):
        return SocialResult("temporary", description=text)
    if isinstance(exc, MastodonNotFoundError):
        return SocialResult("rejected", description=text)
    if isinstance(exc, MastodonAPIError):
        # Mastodon.py puts the HTTP status second in the error's arguments.
        status = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], int) else 0
        if status == 403:
            return SocialResult("permanent", description=text)
        if status == 429:
            return classify(MastodonRatelimitError(text), reset, now)
        return SocialResult("rejected", description=text)
    if isinstance(exc, MastodonNetworkError):
        cause = exc.args[-1] if exc.args else None
        causes = [cause, exc.__cause__, exc.__context__]
        if any(isinstance(c, _NOT_SENT) and not isinstance(c, requests.exceptions.ReadTimeout) for c in causes):
            return SocialResult("temporary", description=text)
        return SocialResult("ambiguous", description=text)
    return SocialResult("temporary", description=text)


class MastodonChannel:
    """Posts to one Mastodon account with Mastodon.py."""

    def __init__(self, instance_url: str, token: str, *, timeout: float = 15.0) -> None:
        if not token:
            raise ValueError("a Mastodon access token is required (else use the outbox)")
        self.instance_url = instance_url.rstrip("/")
        self._token = token
        # The rate-limit headers of the last answer in this thread (Mastodon.py keeps only
        # its own reading of them, which outlives the answer that carried them).
        self._answers = threading.local()
        session = requests.Session()
        session.hooks["response"].append(self._keep_rate_headers)
        self._api = Mastodon(
            access_token=token,
            api_base_url=self.instance_url,
            ratelimit_method="throw",
            request_timeout=timeout,
            mastodon_version=API_VERSION,
            version_check_mode="created",  # parse API_VERSION: no request, today's endpoints
            session=session,
        )

    def _keep_rate_headers(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self._answers.rate = rate_headers(response.headers, "X-RateLimit-")

    def __repr__(self) -> str:
        return f"MastodonChannel(instance_url={self.instance_url!r})"

    def max_characters(self) -> int | None:
        """The instance's status length limit (cached per process); None if unreadable."""
        with _cache_lock:
            if self.instance_url in _max_characters:
                return _max_characters[self.instance_url]
        result = self.call(SocialRequest("instance"))
        if not result.ok:
            return None
        value = int(result.extra.get("max_characters") or 500)
        with _cache_lock:
            _max_characters[self.instance_url] = value
        return value

    def call(self, request: SocialRequest) -> SocialResult:
        """Make one API call and classify the answer. The only network I/O to Mastodon."""
        self._answers.rate = (None, 0.0)
        try:
            result = self._send(request)
        except MastodonError as exc:
            result = classify(exc, getattr(self._api, "ratelimit_reset", None))
        remaining, reset_in = self._answers.rate
        result = replace(result, remaining=remaining, reset_in=reset_in)
        if self._token in result.description:
            result = replace(result, description=result.description.replace(self._token, "***"))
        return result

    def _send(self, request: SocialRequest) -> SocialResult:
        params: dict[str, Any] = dict(request.params)
        if request.action == "instance":
            answer = self._api.instance_v1()
            statuses = (answer.get("configuration") or {}).get("statuses") or {}
            limit = statuses.get("max_characters") or answer.get("max_toot_chars") or 500
            return SocialResult("ok", extra={"max_characters": int(limit)})
        if request.action == "account":  # `channels test`: the token's account; posts nothing
            answer = self._api.account_verify_credentials()
            acct = str(answer.get("acct") or answer.get("username") or "")
            if acct and "@" not in acct:  # a local account: name its instance
                acct = f"{acct}@{urlsplit(self.instance_url).netloc}"
            return SocialResult("ok", remote_ids=(str(answer["id"]),), extra={"account": f"@{acct}"})
        if request.action == "media":
            answer = self._api.media_post(
                io.BytesIO(request.data),
                mime_type=params.get("mime_type") or "image/jpeg",
                description=params.get("description") or None,
                file_name=params.get("file_name") or "image",
            )
            return SocialResult("ok", remote_ids=(str(answer["id"]),))
        if request.action == "status":
            answer = self._api.status_post(
                params["status"],
                in_reply_to_id=params.get("in_reply_to_id"),
                media_ids=params.get("media_ids") or None,
                visibility=params.get("visibility"),
                language=params.get("language"),
                idempotency_key=request.idempotency_key or None,
            )
            return SocialResult("ok", remote_ids=(str(answer["id"]),))
        if request.action == "edit":
            answer = self._api.status_update(
                params["id"],
                params["status"],
                media_ids=params.get("media_ids") or None,
            )
            return SocialResult("ok", remote_ids=(str(answer["id"]),))
        raise ValueError(f"unknown Mastodon action {request.action!r}")
