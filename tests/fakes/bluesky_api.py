"""A fake Bluesky PDS (XRPC) on 127.0.0.1, driven by the real `atproto` SDK client.

It implements what our channel uses and checks what a PDS and the app.bsky lexicons
check:

- com.atproto.server.createSession (handle + app password; counted in `logins`, since
  the real limit is tight) and refreshSession (the refresh token; counted in `refreshes`);
  access tokens are JWTs that expire after `access_seconds`;
- com.atproto.repo.uploadBlob: the raw body, refused over `max_blob_bytes` (1,000,000, a
  link card thumbnail's limit);
- com.atproto.repo.createRecord for app.bsky.feed.post: the repo is the session's DID,
  text within 300 graphemes and 3,000 UTF-8 bytes, every facet's byte range inside the
  text (start < end <= length, on character boundaries), reply refs naming existing
  posts with their cid, an embed thumbnail naming an uploaded blob, `langs` given, a
  record key not used before ("already exists" otherwise);
- com.atproto.repo.getRecord and deleteRecord;
- com.atproto.server.getSession: the session's handle and DID.

Failures on demand: `fail_next(kind, count=, path=)` with kind "429" (ratelimit-reset
`reset_in` seconds ahead), "401", "takedown" (AccountTakedown), "500", or "timeout" (the request is carried out, the
answer held back past the client's timeout).

A budget on demand: `limit(remaining, path=)` makes answers to that method carry
ratelimit-limit, -remaining (counting down) and -reset (a Unix time `reset_in` seconds
ahead), as a PDS's do; once nothing is left, calls to it are answered 429 until `reset()`.

Use the `fake_bluesky` fixture (registered in tests/conftest.py).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Self

import pytest
import regex
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

HANDLE = "news.test"
APP_PASSWORD = "abcd-efgh-ijkl-mnop"
DID = "did:plc:fakenewsarena0000000000"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(scope: str, exp: float) -> str:
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = _b64(json.dumps({"scope": scope, "sub": DID, "aud": "did:web:fake", "iat": int(time.time()),
                               "exp": int(exp), "jti": hashlib.sha1(str(time.monotonic_ns()).encode()).hexdigest()}).encode())
    return f"{header}.{payload}.{_b64(b'fake-signature')}"


def cid_of(data: bytes) -> str:
    return "bafyrei" + base64.b32encode(hashlib.sha256(data).digest()).decode().lower().rstrip("=")[:52]


@dataclass
class Post:
    uri: str
    cid: str
    rkey: str
    record: dict[str, Any]


class FakeBluesky:
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self.hang_seconds = 3.0
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.posts: dict[str, Post] = {}  # rkey -> post
            self.deleted: list[Post] = []
            self.blobs: dict[str, int] = {}  # cid -> size
            self.calls: list[tuple[str, int]] = []
            self.logins = 0
            self.refreshes = 0
            self.access_seconds = 7200.0
            self.max_blob_bytes = 1_000_000
            self.reset_in = 120
            self._access: set[str] = set()
            self._refresh: set[str] = set()
            self._failures: list[dict[str, Any]] = []
            self._budget: dict[str, Any] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def fail_next(self, kind: str, *, count: int = 1, path: str = "") -> None:
        with self._lock:
            self._failures.append({"kind": kind, "count": count, "path": path})

    def limit(self, remaining: int, *, path: str = "") -> None:
        """Answers to methods starting with `path` say how many calls are left (from
        `remaining`, this one counted); past the last, 429. Reset `reset_in` s from now."""
        with self._lock:
            self._budget = {"path": path, "left": remaining, "limit": remaining,
                            "reset": int(time.time() + self.reset_in)}

    def _spend(self, method: str) -> dict[str, str] | None:
        with self._lock:
            budget = self._budget
            if budget is None or not method.startswith(budget["path"]):
                return None
            budget["left"] -= 1
            return {"ratelimit-limit": str(budget["limit"]), "ratelimit-remaining": str(max(budget["left"], 0)),
                    "ratelimit-reset": str(budget["reset"]), "ratelimit-policy": f"{budget['limit']};w=3600",
                    "spent": "yes" if budget["left"] < 0 else ""}

    def thread(self) -> list[Post]:
        with self._lock:
            return sorted(self.posts.values(), key=lambda p: p.record["createdAt"] + p.rkey)

    # --- the app ---------------------------------------------------------------------

    def _failure(self, method: str) -> str | None:
        with self._lock:
            for failure in self._failures:
                if method.startswith(failure["path"]) and failure["count"] > 0:
                    failure["count"] -= 1
                    return failure["kind"]
        return None

    def _session(self) -> dict[str, Any]:
        access = jwt("com.atproto.appPass", time.time() + self.access_seconds)
        refresh = jwt("com.atproto.refresh", time.time() + 90 * 86400)
        self._access.add(access)
        self._refresh.add(refresh)
        return {"accessJwt": access, "refreshJwt": refresh, "handle": HANDLE, "did": DID, "active": True}

    async def _handle(self, request: Request) -> JSONResponse:
        method = request.path_params["method"]
        failure = self._failure(method)
        budget = self._spend(method)
        if budget is not None and budget.pop("spent"):
            return self._answer(method, _error(429, "RateLimitExceeded", "Rate Limit Exceeded"), headers=budget)
        if failure == "429":
            reset = int(time.time() + self.reset_in)
            return self._answer(method, _error(429, "RateLimitExceeded", "Rate Limit Exceeded"),
                                headers={"ratelimit-limit": "5000", "ratelimit-remaining": "0",
                                         "ratelimit-reset": str(reset)})
        if failure == "401":
            return self._answer(method, _error(401, "ExpiredToken", "Token has expired"))
        if failure == "takedown":  # the account was taken down by the service
            return self._answer(method, _error(400, "AccountTakedown", "Account has been taken down"))
        if failure == "500":
            return self._answer(method, _error(500, "InternalServerError", "Internal Server Error"))
        response = await self._route(request, method)
        self._answer(method, response, headers=budget)
        if failure == "timeout":
            await asyncio.sleep(self.hang_seconds)
        return response

    def _answer(self, method: str, response: JSONResponse, headers: dict | None = None) -> JSONResponse:
        if headers:
            response.headers.update(headers)
        with self._lock:
            self.calls.append((method, response.status_code))
        return response

    def _bearer(self, request: Request) -> str:
        value = request.headers.get("authorization", "")
        return value.removeprefix("Bearer ") if value.startswith("Bearer ") else ""

    async def _route(self, request: Request, method: str) -> JSONResponse:
        with self._lock:
            if method == "com.atproto.server.createSession":
                body = await request.json()
                if body.get("identifier") != HANDLE or body.get("password") != APP_PASSWORD:
                    return _error(401, "AuthenticationRequired", "Invalid identifier or password")
                self.logins += 1
                return JSONResponse(self._session())
            if method == "com.atproto.server.refreshSession":
                token = self._bearer(request)
                if token not in self._refresh:
                    return _error(400, "ExpiredToken", "Token has been revoked")
                self._refresh.discard(token)
                self.refreshes += 1
                return JSONResponse(self._session())
            token = self._bearer(request)
            if token not in self._access:
                return _error(401, "AuthenticationRequired", "Authentication Required")
            if _exp(token) < time.time():
                return _error(400, "ExpiredToken", "Token has expired")
        if method == "com.atproto.server.getSession":
            return JSONResponse({"handle": HANDLE, "did": DID, "active": True})
        if method == "com.atproto.repo.uploadBlob":
            data = await request.body()
            if len(data) > self.max_blob_bytes:
                return _error(400, "BlobTooLarge", f"This file is too large. It is {len(data)} bytes")
            cid = cid_of(data)
            with self._lock:
                self.blobs[cid] = len(data)
            return JSONResponse({"blob": {"$type": "blob", "ref": {"$link": cid},
                                          "mimeType": request.headers.get("content-type", "*/*"), "size": len(data)}})
        if method == "com.atproto.repo.createRecord":
            return self._create(await request.json())
        if method == "com.atproto.repo.getRecord":
            with self._lock:
                post = self.posts.get(request.query_params.get("rkey", ""))
            if post is None or request.query_params.get("repo") not in (DID, HANDLE):
                return _error(400, "RecordNotFound", "Could not locate record")
            return JSONResponse({"uri": post.uri, "cid": post.cid, "value": post.record})
        if method == "com.atproto.repo.deleteRecord":
            body = await request.json()
            with self._lock:
                post = self.posts.pop(body.get("rkey", ""), None)
                if post is not None:
                    self.deleted.append(post)
            return JSONResponse({})
        return _error(501, "MethodNotImplemented", f"Method Not Implemented: {method}")

    def _create(self, body: dict[str, Any]) -> JSONResponse:
        with self._lock:
            if body.get("repo") not in (DID, HANDLE):
                return _error(400, "InvalidRequest", "Input/repo must be the session's account")
            if body.get("collection") != "app.bsky.feed.post":
                return _error(400, "InvalidRequest", "unsupported collection")
            record = body.get("record") or {}
            problem = self._check(record)
            if problem:
                return _error(400, "InvalidRecord", problem)
            rkey = body.get("rkey") or f"auto{len(self.posts) + len(self.deleted)}"
            if not regex.fullmatch(r"[234567a-z]{13}|auto\d+", rkey):
                return _error(400, "InvalidRequest", f"Invalid record key: {rkey}")
            if rkey in self.posts:
                return _error(400, "InvalidRequest", "Record already exists")
            uri = f"at://{DID}/app.bsky.feed.post/{rkey}"
            post = Post(uri, cid_of(json.dumps(record, sort_keys=True).encode()), rkey, record)
            self.posts[rkey] = post
            return JSONResponse({"uri": uri, "cid": post.cid})

    def _check(self, record: dict[str, Any]) -> str | None:
        text = record.get("text", "")
        data = text.encode("utf-8")
        if len(regex.findall(r"\X", text)) > 300:
            return "Invalid app.bsky.feed.post record: Record/text must not be longer than 300 graphemes"
        if len(data) > 3000:
            return "Invalid app.bsky.feed.post record: Record/text must not be longer than 3000 characters"
        if not record.get("createdAt"):
            return "Record/createdAt must be set"
        if not record.get("langs"):
            return "Record/langs: our posts always name their language"
        for facet in record.get("facets") or []:
            start, end = facet["index"]["byteStart"], facet["index"]["byteEnd"]
            if not 0 <= start < end <= len(data):
                return f"facet byte range {start}-{end} outside the text ({len(data)} bytes)"
            try:
                data[start:end].decode("utf-8")
            except UnicodeDecodeError:
                return f"facet byte range {start}-{end} splits a character"
            for feature in facet["features"]:
                if feature.get("$type") == "app.bsky.richtext.facet#link" and not feature.get("uri", "").startswith("http"):
                    return "facet link uri must be a URL"
        reply = record.get("reply")
        if reply:
            for ref in (reply.get("root"), reply.get("parent")):
                found = [p for p in self.posts.values() if p.uri == (ref or {}).get("uri")]
                if not found or found[0].cid != ref.get("cid"):
                    return "reply ref does not name an existing post and its cid"
        embed = record.get("embed") or {}
        thumb = (embed.get("external") or {}).get("thumb")
        if thumb and thumb.get("ref", {}).get("$link") not in self.blobs:
            return "embed thumb is not an uploaded blob"
        return None

    # --- the server ------------------------------------------------------------------

    def start(self) -> Self:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        app = Starlette(routes=[Route("/xrpc/{method}", self._handle, methods=["GET", "POST"])])
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]},
                                        name="fake-bluesky", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the fake Bluesky server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)


def _exp(token: str) -> float:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["exp"]


def _error(status: int, error: str, message: str) -> JSONResponse:
    return JSONResponse({"error": error, "message": message}, status_code=status)


@pytest.fixture(scope="session")
def fake_bluesky_server() -> Iterator[FakeBluesky]:
    server = FakeBluesky().start()
    yield server
    server.stop()


@pytest.fixture
def fake_bluesky(fake_bluesky_server: FakeBluesky) -> Iterator[FakeBluesky]:
    from distributor.channels import bluesky

    fake_bluesky_server.reset()
    bluesky._sessions.clear()
    yield fake_bluesky_server
    fake_bluesky_server.reset()
    bluesky._sessions.clear()
