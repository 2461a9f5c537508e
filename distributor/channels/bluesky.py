"""The one place that talks to a Bluesky PDS: send one request, classify the answer.

`BlueskyChannel.call(request)` makes one XRPC call with the `atproto` SDK's Client
(pointed at the channel's `service_url`) and returns a `SocialResult` (contracts.py); it
never raises for anything the PDS or the network did.

Sessions: login limits are tight (createSession is limited per account per day), so the
session is made once per process and account and kept (`_sessions`, as the SDK's session
string); the SDK refreshes the access token with refreshSession before it expires, and
the refreshed session replaces the kept one. A refused session is dropped and the next
call logs in again.

Rate limits: a 429 comes back as "retry_after" with the wait its RateLimit-Reset gave;
every result also carries what the answer's RateLimit-Remaining and RateLimit-Reset said
(`remaining`, `reset_in`), so a budget spent by this very request holds the channel
before the PDS has to answer 429.

Exactly once: Bluesky has no idempotency key, but a post's record key can be chosen.
The ledger gives each post a record key made from its row and part (`rkey`), so a
resend after a lost answer meets "already exists" and reads the record the first attempt
made (com.atproto.repo.getRecord) instead of posting twice.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

import httpx
from atproto import Client
from atproto_client.exceptions import (
    AtProtocolError,
    BadRequestError,
    InvokeTimeoutError,
    NetworkError,
    RateLimitExceededError,
    RequestErrorBase,
    UnauthorizedError,
)
from atproto_client.request import Request

from distributor.channels.contracts import SocialRequest, SocialResult
from distributor.channels.rate_headers import rate_headers

POST = "app.bsky.feed.post"
DEFAULT_RETRY_SECONDS = 60.0

# (service, handle) -> the SDK's session string, kept for the process.
_sessions: dict[tuple[str, str], str] = {}
_sessions_lock = threading.Lock()


# XRPC error names that say the account itself cannot post (taken down, suspended or
# deactivated): every later post would meet the same answer, so the channel pauses.
ACCOUNT_ERRORS = frozenset({
    "AccountTakedown", "AccountSuspended", "AccountDeactivated",
    "RepoTakendown", "RepoSuspended", "RepoDeactivated",
})


def _xrpc_error(exc: AtProtocolError) -> str:
    response = getattr(exc, "response", None)
    content = getattr(response, "content", None)
    return str(getattr(content, "error", "") or "")


def classify(exc: AtProtocolError, now: datetime | None = None) -> SocialResult:
    """Map an atproto error to an outcome (pure: tested without a network)."""
    text = str(exc)
    if _xrpc_error(exc) in ACCOUNT_ERRORS:
        return SocialResult("permanent", description=text)
    if isinstance(exc, RateLimitExceededError):
        reset = exc.reset_at
        wait = (reset - (now or datetime.now(timezone.utc))).total_seconds() if reset else DEFAULT_RETRY_SECONDS
        return SocialResult("retry_after", retry_after=max(1.0, wait), description=text)
    if isinstance(exc, UnauthorizedError):
        return SocialResult("unauthorized", description=text)
    if isinstance(exc, InvokeTimeoutError):
        return SocialResult("ambiguous", description=text)
    if isinstance(exc, NetworkError):
        return SocialResult("temporary" if exc.response is not None else "ambiguous", description=text)
    if isinstance(exc, BadRequestError):
        return SocialResult("rejected", description=text)
    if isinstance(exc, RequestErrorBase) and exc.response is not None and exc.response.status_code >= 500:
        return SocialResult("temporary", description=text)
    return SocialResult("rejected", description=text)


class BlueskyChannel:
    """Posts to one Bluesky account with the atproto SDK."""

    def __init__(self, service_url: str, handle: str, app_password: str, *, timeout: float = 15.0) -> None:
        if not handle or not app_password:
            raise ValueError("a Bluesky handle and app password are required (else use the outbox)")
        self.service_url = service_url.rstrip("/")
        self.handle = handle
        self._password = app_password
        self.timeout = timeout
        # The rate-limit headers of the last answer in this thread: the request's own,
        # since a session refresh comes before it.
        self._answers = threading.local()

    def __repr__(self) -> str:
        return f"BlueskyChannel(service_url={self.service_url!r}, handle={self.handle!r})"

    def _client(self) -> Client:
        client = Client(base_url=self.service_url,
                        request=Request(timeout=self.timeout, event_hooks={"response": [self._keep_rate_headers]}))
        key = (self.service_url, self.handle)

        def keep(_event: Any, session: Any) -> None:
            with _sessions_lock:
                _sessions[key] = session.export()

        client.on_session_change(keep)
        with _sessions_lock:
            kept = _sessions.get(key)
        if kept:
            client.login(session_string=kept, fetch_bsky_profile=False)
        else:
            client.login(self.handle, self._password, fetch_bsky_profile=False)
        return client

    def _keep_rate_headers(self, response: httpx.Response) -> None:
        self._answers.rate = rate_headers(response.headers, "RateLimit-")

    def call(self, request: SocialRequest) -> SocialResult:
        """Make one request and classify the answer. The only network I/O to Bluesky."""
        self._answers.rate = (None, 0.0)
        try:
            client = self._client()
            self._answers.rate = (None, 0.0)  # the login's budget is not the request's
            result = self._send(client, request)
        except AtProtocolError as exc:
            result = classify(exc)
            if result.outcome == "unauthorized":
                with _sessions_lock:  # log in afresh next time
                    _sessions.pop((self.service_url, self.handle), None)
        remaining, reset_in = self._answers.rate
        result = replace(result, remaining=remaining, reset_in=reset_in)
        if self._password in result.description:
            result = replace(result, description=result.description.replace(self._password, "***"))
        return result

    def _send(self, client: Client, request: SocialRequest) -> SocialResult:
        did = client.me.did if client.me else client._session.did  # noqa: SLF001 - set by login
        if request.action == "blob":
            mime = request.params.get("mime_type") or "application/octet-stream"
            answer = client.com.atproto.repo.upload_blob(request.data, headers={"Content-Type": mime})
            return SocialResult("ok", extra={"blob": answer.blob.model_dump(by_alias=True, exclude_none=True)})
        if request.action == "post":
            rkey = request.params["rkey"]
            try:
                answer = client.com.atproto.repo.create_record(
                    {"repo": did, "collection": POST, "rkey": rkey, "record": request.params["record"]})
                uri, cid = answer.uri, answer.cid
            except BadRequestError as exc:
                if "already exists" not in str(exc).lower():
                    raise
                # A resend of a post the first attempt made: read it back.
                found = client.com.atproto.repo.get_record({"repo": did, "collection": POST, "rkey": rkey})
                uri, cid = found.uri, found.cid
            return SocialResult("ok", remote_ids=(f"{uri} {cid}",))
        if request.action == "session":  # `channels test`: the session's account; posts nothing
            session = client.com.atproto.server.get_session()
            return SocialResult("ok", remote_ids=(session.did,), extra={"account": f"@{session.handle}"})
        if request.action == "delete":
            client.com.atproto.repo.delete_record({"repo": did, "collection": POST, "rkey": request.params["rkey"]})
            return SocialResult("ok")
        raise ValueError(f"unknown Bluesky action {request.action!r}")
