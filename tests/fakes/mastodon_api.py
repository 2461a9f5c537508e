"""A fake Mastodon instance on 127.0.0.1, driven by the real Mastodon.py client.

It implements what our channel uses and checks what Mastodon checks:

- GET /api/v1/instance: `configuration.statuses.max_characters` (`max_characters`,
  default 500) and the URL length (23);
- POST /api/v2/media: multipart `file` and `description`; refuses files over
  `max_media_bytes` (422) and alt text over 1,500 characters;
- POST /api/v1/statuses: length counted as Mastodon counts it (grapheme clusters,
  every URL 23; the fake uses the `regex` package's \\X, as Ruby's grapheme_length
  does), `in_reply_to_id` must name a status, `media_ids` must name uploaded media,
  `visibility` one of four, and an `Idempotency-Key` seen before answers the status it
  made then instead of posting again;
- PUT /api/v1/statuses/:id: the edit, with the same checks;
- GET /api/v1/accounts/verify_credentials: the token's account (`news`);
- auth: `Authorization: Bearer <TOKEN>`, anything else 401.

Failures on demand: `fail_next(kind, count=, path=)` with kind "429" (X-RateLimit-Reset
`reset_in` seconds ahead), "401", "403" (a disabled account), "500", or "timeout" (the request is carried out, then
the answer is held back longer than the client waits: the ambiguous case).

A budget on demand: `limit(remaining, path=)` makes answers on that path carry
X-RateLimit-Limit, -Remaining (counting down) and -Reset (`reset_in` seconds ahead), as
Mastodon's do; once nothing is left, requests there are answered 429 until `reset()`.

Use the `fake_mastodon` fixture (registered in tests/conftest.py); one server per test
session, reset before each test.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Self

import pytest
import regex
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

TOKEN = "fake-mastodon-token-0123456789"
ACCOUNT = {"id": "1", "acct": "news", "username": "news"}
URL_LENGTH = 23
_URL = re.compile(r"https?://\S+")


def mastodon_length(text: str) -> int:
    """Characters as Mastodon counts them: grapheme clusters, every URL as 23."""
    return len(regex.findall(r"\X", _URL.sub("x" * URL_LENGTH, text)))


@dataclass
class Status:
    id: str
    text: str
    visibility: str
    language: str | None
    in_reply_to_id: str | None
    media_ids: list[str]
    idempotency_key: str | None
    edits: list[str] = field(default_factory=list)


@dataclass
class Media:
    id: str
    description: str
    size: int
    content_type: str


@dataclass
class Call:
    method: str
    path: str
    status: int
    headers: dict[str, str]


class FakeMastodon:
    """The server; `statuses` and `media` hold what it accepted, `calls` every request."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self.hang_seconds = 3.0
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.statuses: dict[str, Status] = {}
            self.media: dict[str, Media] = {}
            self.calls: list[Call] = []
            self._keys: dict[str, str] = {}
            self._failures: list[dict[str, Any]] = []
            self._budget: dict[str, Any] | None = None
            self._next_id = 110_000_000_000_000_000
            self.max_characters = 500
            self.max_media_bytes = 1024 * 1024
            self.reset_in = 120.0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def fail_next(self, kind: str, *, count: int = 1, path: str = "") -> None:
        """The next `count` requests (whose path starts with `path`) fail as `kind`."""
        with self._lock:
            self._failures.append({"kind": kind, "count": count, "path": path})

    def limit(self, remaining: int, *, path: str = "") -> None:
        """Answers on `path` say how many requests are left (from `remaining`, this one
        counted); past the last, 429. The reset is `reset_in` seconds from now."""
        with self._lock:
            reset = datetime.now(timezone.utc) + timedelta(seconds=self.reset_in)
            self._budget = {"path": path, "left": remaining, "limit": remaining, "reset": reset}

    def _spend(self, path: str) -> dict[str, str] | None:
        """The rate-limit headers of an answer on `path` (None: not limited); spends one."""
        with self._lock:
            budget = self._budget
            if budget is None or not path.startswith(budget["path"]):
                return None
            budget["left"] -= 1
            return {"X-RateLimit-Limit": str(budget["limit"]), "X-RateLimit-Remaining": str(max(budget["left"], 0)),
                    "X-RateLimit-Reset": budget["reset"].isoformat().replace("+00:00", "Z"),
                    "spent": "yes" if budget["left"] < 0 else ""}

    def posted(self) -> list[Status]:
        """Statuses in the order they were made."""
        with self._lock:
            return sorted(self.statuses.values(), key=lambda s: int(s.id))

    # --- the app -------------------------------------------------------------------

    def _new_id(self) -> str:
        self._next_id += 1
        return str(self._next_id)

    def _failure(self, path: str) -> str | None:
        with self._lock:
            for failure in self._failures:
                if path.startswith(failure["path"]) and failure["count"] > 0:
                    failure["count"] -= 1
                    return failure["kind"]
        return None

    def _record(self, request: Request, status: int) -> None:
        with self._lock:
            self.calls.append(Call(request.method, request.url.path, status, dict(request.headers)))

    async def _handle(self, request: Request) -> JSONResponse:
        path = request.url.path.rstrip("/")
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            self._record(request, 401)
            return JSONResponse({"error": "The access token is invalid"}, status_code=401)
        failure = self._failure(path)
        budget = self._spend(path)
        if budget is not None and budget.pop("spent"):
            self._record(request, 429)
            return JSONResponse({"error": "Too many requests"}, status_code=429, headers=budget)
        if failure == "429":
            self._record(request, 429)
            reset = datetime.now(timezone.utc) + timedelta(seconds=self.reset_in)
            return JSONResponse({"error": "Too many requests"}, status_code=429, headers={
                "X-RateLimit-Limit": "300", "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": reset.isoformat().replace("+00:00", "Z")})
        if failure == "401":
            self._record(request, 401)
            return JSONResponse({"error": "The access token was revoked"}, status_code=401)
        if failure == "403":  # what a suspended or disabled account is answered
            self._record(request, 403)
            return JSONResponse({"error": "Your login is currently disabled"}, status_code=403)
        if failure == "500":
            self._record(request, 500)
            return JSONResponse({"error": "Internal server error"}, status_code=500)
        response = await self._route(request, path)
        if budget is not None:
            response.headers.update(budget)
        self._record(request, response.status_code)
        if failure == "timeout":
            # Done, but the answer comes after the client has given up.
            await _sleep(self.hang_seconds)
        return response

    async def _route(self, request: Request, path: str) -> JSONResponse:
        if request.method == "GET" and path == "/api/v1/instance":
            return JSONResponse({
                "uri": "127.0.0.1", "title": "Fake", "version": "4.3.0",
                "max_toot_chars": self.max_characters,
                "configuration": {"statuses": {"max_characters": self.max_characters,
                                               "max_media_attachments": 4,
                                               "characters_reserved_per_url": URL_LENGTH}},
            })
        if request.method == "POST" and path == "/api/v2/media":
            form = await request.form()
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                return _error(422, "Validation failed: File can't be blank")
            data = await upload.read()
            description = str(form.get("description") or "")
            if len(data) > self.max_media_bytes:
                return _error(422, "Validation failed: File file size must be less than the limit")
            if len(description) > 1500:
                return _error(422, "Validation failed: Description is too long")
            with self._lock:
                media = Media(self._new_id(), description, len(data), upload.content_type or "")
                self.media[media.id] = media
            return JSONResponse({"id": media.id, "type": "image", "url": f"{self.base_url}/m/{media.id}",
                                 "description": description})
        if request.method == "GET" and path == "/api/v1/accounts/verify_credentials":
            return JSONResponse({**ACCOUNT, "url": f"{self.base_url}/@news", "note": "", "display_name": "News Arena",
                                 "locked": False, "bot": True, "created_at": "2026-01-01T00:00:00.000Z",
                                 "followers_count": 0, "following_count": 0, "statuses_count": len(self.statuses)})
        if request.method == "POST" and path == "/api/v1/statuses":
            return await self._post_status(request)
        match = re.fullmatch(r"/api/v1/statuses/(\d+)", path)
        if request.method == "PUT" and match:
            return await self._edit_status(request, match.group(1))
        return _error(404, "Record not found")

    async def _params(self, request: Request) -> dict[str, Any]:
        if request.headers.get("content-type", "").startswith("application/json"):
            return await request.json()
        form = await request.form()
        params: dict[str, Any] = {}
        for key, value in form.multi_items():
            if key.endswith("[]"):
                params.setdefault(key[:-2], []).append(value)
            else:
                params[key] = value
        return params

    def _check(self, params: dict[str, Any]) -> str | None:
        text = str(params.get("status") or "")
        media_ids = [str(m) for m in params.get("media_ids") or []]
        if not text and not media_ids:
            return "Validation failed: Text can't be blank"
        if mastodon_length(text) > self.max_characters:
            return f"Validation failed: Text character limit of {self.max_characters} exceeded"
        if any(m not in self.media for m in media_ids):
            return "Validation failed: media not found"
        if params.get("visibility", "public") not in ("public", "unlisted", "private", "direct"):
            return "Validation failed: Visibility is not included in the list"
        reply = params.get("in_reply_to_id")
        if reply and str(reply) not in self.statuses:
            return "Validation failed: the replied-to status does not exist"
        return None

    async def _post_status(self, request: Request) -> JSONResponse:
        params = await self._params(request)
        key = request.headers.get("idempotency-key")
        with self._lock:
            if key and key in self._keys:
                return JSONResponse(self._json(self.statuses[self._keys[key]]))
            problem = self._check(params)
            if problem:
                return _error(422, problem)
            status = Status(self._new_id(), str(params.get("status") or ""), params.get("visibility", "public"),
                            params.get("language"), str(params["in_reply_to_id"]) if params.get("in_reply_to_id") else None,
                            [str(m) for m in params.get("media_ids") or []], key)
            self.statuses[status.id] = status
            if key:
                self._keys[key] = status.id
            return JSONResponse(self._json(status))

    async def _edit_status(self, request: Request, status_id: str) -> JSONResponse:
        params = await self._params(request)
        with self._lock:
            status = self.statuses.get(status_id)
            if status is None:
                return _error(404, "Record not found")
            problem = self._check(params)
            if problem:
                return _error(422, problem)
            status.edits.append(status.text)
            status.text = str(params.get("status") or "")
            status.media_ids = [str(m) for m in params.get("media_ids") or []]
            return JSONResponse(self._json(status))

    def _json(self, status: Status) -> dict[str, Any]:
        return {
            "id": status.id, "uri": f"{self.base_url}/statuses/{status.id}", "content": status.text,
            "visibility": status.visibility, "language": status.language, "in_reply_to_id": status.in_reply_to_id,
            "created_at": "2026-11-27T06:30:00.000Z", "edited_at": None, "sensitive": False, "spoiler_text": "",
            "account": ACCOUNT,
            "media_attachments": [{"id": m, "type": "image"} for m in status.media_ids],
            "mentions": [], "tags": [], "emojis": [],
        }

    # --- the server ----------------------------------------------------------------

    def start(self) -> Self:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["GET", "POST", "PUT", "DELETE"])])
        config = uvicorn.Config(app, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]},
                                        name="fake-mastodon", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the fake Mastodon server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


@pytest.fixture(scope="session")
def fake_mastodon_server() -> Iterator[FakeMastodon]:
    server = FakeMastodon().start()
    yield server
    server.stop()


@pytest.fixture
def fake_mastodon(fake_mastodon_server: FakeMastodon) -> Iterator[FakeMastodon]:
    fake_mastodon_server.reset()
    yield fake_mastodon_server
    fake_mastodon_server.reset()
