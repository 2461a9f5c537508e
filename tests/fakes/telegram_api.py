"""A fake Telegram Bot API server on 127.0.0.1 for tests and benchmarks.

The real python-telegram-bot client talks to it over HTTP, exactly as it talks to
api.telegram.org: `Bot(token, base_url=fake.base_url)` (or TELEGRAM_API_BASE_URL set to
`fake.base_url`). The server

- records every call in order (`fake.calls`: method, chat id as sent, decoded params,
  monotonic time, HTTP status, description, message id);
- keeps the messages of each chat with per-chat message ids, so edits and deletes work
  and "message is not modified" is answered for an identical edit;
- checks what Telegram checks: HTML parse mode (allowed tags, attributes, nesting,
  character references: see tests/fakes/telegram_html.py), 4096 / 1024 limits in UTF-16
  code units of the text after parsing, empty text, inline keyboard URLs;
- answers errors with Telegram's status codes and wording, so the client raises the same
  exceptions (BadRequest, Forbidden, RetryAfter, ChatMigrated, TimedOut);
- can be told to fail: `fail_next(kind, count=, chat_id=, method=)` for the next matching
  calls, `fail_chat(chat_id, kind)` until `reset()`, `enforce_limits(...)` for flood
  control. Kinds are the keys of FAILURES plus "timeout". `refuse_photo(url, kind)`
  makes every sendPhoto of that URL fail as Telegram does when it cannot fetch or use
  the photo (kinds: the keys of PHOTO_REFUSALS).

"timeout" is the ambiguous case: the call is recorded and the message is delivered, then
the answer is held back longer than the client waits (until `hang_seconds`, or until
`reset()` / shutdown releases it), so the client sees TimedOut for a message that exists.

The fake answers only its own token (`TOKEN`, also `fake.token`; anything else gets 401
Unauthorized), so code under test sets TELEGRAM_BOT_TOKEN=fake.token and
TELEGRAM_API_BASE_URL=fake.base_url.

Use the `fake_telegram` fixture (register this module in tests/conftest.py with
`pytest_plugins = ["tests.fakes.telegram_api"]`); one server per test session, reset
before each test.
"""

from __future__ import annotations

import asyncio
import collections
import json
import math
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Self

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.fakes.telegram_html import EntityParseError, parse_html, utf16_len

TOKEN = "123456789:TEST-fake-token_for-tests"
MESSAGE_LIMIT = 4096  # UTF-16 code units of the text after entity parsing
CAPTION_LIMIT = 1024

# kind -> (HTTP status, description, parameters). Wording as the Bot API answers.
FAILURES: dict[str, tuple[int, str, dict]] = {
    "retry_after": (429, "Too Many Requests: retry after {retry_after}", {"retry_after": None}),
    "kicked": (403, "Forbidden: bot was kicked from the channel chat", {}),
    "not_member": (403, "Forbidden: bot is not a member of the channel chat", {}),
    "need_admin": (400, "Bad Request: need administrator rights in the channel chat", {}),
    "chat_not_found": (400, "Bad Request: chat not found", {}),
    "migrated": (
        400,
        "Bad Request: group chat was upgraded to a supergroup chat",
        {"migrate_to_chat_id": None},
    ),
    "bad_gateway": (502, "Bad Gateway", {}),
}
FAILURE_KINDS = (*FAILURES, "timeout")

# kind -> what Telegram answers (400) when it cannot fetch or use the photo of a
# sendPhoto: the photo URL is refused, the rest of the request would have been fine.
PHOTO_REFUSALS: dict[str, str] = {
    "wrong_file": "Bad Request: wrong file identifier/HTTP URL specified",
    "fetch_failed": "Bad Request: failed to get HTTP URL content",
    "wrong_type": "Bad Request: wrong type of the web page content",
    "not_an_image": "Bad Request: IMAGE_PROCESS_FAILED",
    "dimensions": "Bad Request: PHOTO_INVALID_DIMENSIONS",
    "too_big": "Bad Request: file is too big",
}

# Parameters sent JSON-encoded inside form fields (python-telegram-bot does this).
_JSON_FIELDS = {"reply_markup", "link_preview_options", "entities", "caption_entities", "reply_parameters"}
_INT_FIELDS = {"chat_id", "message_id", "message_thread_id", "from_chat_id"}
_BOOL_FIELDS = {
    "disable_notification",
    "protect_content",
    "disable_web_page_preview",
    "show_caption_above_media",
    "has_spoiler",
    "allow_sending_without_reply",
}
_SEND_METHODS = {"sendMessage", "sendPhoto"}
_CHAT_METHODS = _SEND_METHODS | {"editMessageText", "editMessageCaption", "deleteMessage", "getChat"}


@dataclass
class Call:
    """One request the fake received, in arrival order."""

    method: str
    chat_id: int | str | None  # as the client sent it ("@name" or a number)
    params: dict
    time: float  # time.monotonic() on arrival
    status: int = 200
    description: str | None = None
    message_id: int | None = None
    outcome: str = "ok"  # ok | error | timeout

    @property
    def ok(self) -> bool:
        """Telegram accepted the call (a timed-out call was accepted too: that is the point)."""
        return self.outcome in ("ok", "timeout")


@dataclass
class Message:
    """A message as the fake stores it."""

    chat_id: int
    message_id: int
    kind: str  # text | photo
    html: str | None  # what the client sent (text or caption)
    text: str  # after entity parsing
    entities: list[dict]
    reply_markup: dict | None
    photo: Any = None
    deleted: bool = False
    edits: int = 0


@dataclass
class _Rule:
    kind: str
    remaining: int | None  # None: until reset
    chat_id: int | str | None = None
    method: str | None = None
    retry_after: int = 3
    migrate_to_chat_id: int | None = None
    description: str | None = None


class TelegramError(Exception):
    """An error answer: status code, description and optional parameters."""

    def __init__(self, status: int, description: str, parameters: dict | None = None):
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters or {}


def _bad(description: str) -> TelegramError:
    return TelegramError(400, f"Bad Request: {description}")


@dataclass
class _Limits:
    per_chat: tuple[int, float] | None
    overall: tuple[int, float] | None
    chat_times: dict[int, collections.deque] = field(default_factory=dict)
    overall_times: collections.deque = field(default_factory=collections.deque)


class FakeTelegram:
    """The fake server's state and controls; `start()` serves it on a free port."""

    def __init__(self, token: str = TOKEN, *, hang_seconds: float = 30.0):
        self.token = token
        self.hang_seconds = hang_seconds
        self.host = "127.0.0.1"
        self.port: int | None = None
        self._lock = threading.RLock()
        self._released = threading.Event()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.reset()

    # ----------------------------------------------------------------- controls

    @property
    def base_url(self) -> str:
        """What `Bot(token, base_url=...)` and TELEGRAM_API_BASE_URL want: the token is appended."""
        return f"http://{self.host}:{self.port}/bot"

    @property
    def calls(self) -> list[Call]:
        """Every call so far, in arrival order (a copy)."""
        with self._lock:
            return list(self._calls)

    def calls_to(self, method: str | None = None, chat_id: int | str | None = None) -> list[Call]:
        """Calls filtered by method and/or chat id (as sent)."""
        return [
            c
            for c in self.calls
            if (method is None or c.method == method) and (chat_id is None or c.chat_id == chat_id)
        ]

    @property
    def chat_calls(self) -> list[Call]:
        """Calls addressed to a chat, i.e. all but getMe (which `async with Bot` sends first)."""
        return [c for c in self.calls if c.method != "getMe"]

    @property
    def delivered(self) -> list[Call]:
        """Send calls that put a message in a chat, including the ones whose answer timed out."""
        return [c for c in self.calls if c.method in _SEND_METHODS and c.ok]

    def messages(self, chat_id: int | str) -> list[Message]:
        """The chat's live messages (not deleted), oldest first."""
        with self._lock:
            cid = self._resolve(chat_id)
            return [m for (c, _), m in sorted(self._messages.items()) if c == cid and not m.deleted]

    def message(self, chat_id: int | str, message_id: int) -> Message | None:
        with self._lock:
            return self._messages.get((self._resolve(chat_id), message_id))

    def reset(self) -> None:
        """Forget calls, messages, chats, failures and limits; release any held answer."""
        with self._lock:
            self._released.set()
            self._released = threading.Event()
            self._calls: list[Call] = []
            self._messages: dict[tuple[int, int], Message] = {}
            self._next_id: dict[int, int] = {}
            self._usernames: dict[str, int] = {}
            self._rules: list[_Rule] = []
            self._migrated: dict[int, int] = {}
            self._limits: _Limits | None = None
            # photo URL -> the BadRequest description sendPhoto answers for it
            self.bad_photo_urls: dict[str, str] = {}

    def fail_next(
        self,
        kind: str,
        count: int = 1,
        *,
        chat_id: int | str | None = None,
        method: str | None = None,
        retry_after: int = 3,
        migrate_to_chat_id: int | None = None,
        description: str | None = None,
    ) -> None:
        """Answer the next `count` matching calls with a failure of `kind` (see FAILURE_KINDS)."""
        self._add_rule(kind, count, chat_id, method, retry_after, migrate_to_chat_id, description)

    def fail_chat(
        self,
        chat_id: int | str,
        kind: str,
        *,
        method: str | None = None,
        retry_after: int = 3,
        migrate_to_chat_id: int | None = None,
        description: str | None = None,
    ) -> None:
        """Answer every call for `chat_id` with a failure of `kind` until `reset()`.

        "migrated" also makes the new chat id usable, as a supergroup upgrade does.
        """
        self._add_rule(kind, None, chat_id, method, retry_after, migrate_to_chat_id, description)

    def refuse_photo(self, url: str, kind: str = "fetch_failed") -> None:
        """Answer every sendPhoto of `url` with Telegram's BadRequest for `kind` until `reset()`."""
        if kind not in PHOTO_REFUSALS:
            raise ValueError(f"unknown photo refusal {kind!r}; known: {', '.join(PHOTO_REFUSALS)}")
        with self._lock:
            self.bad_photo_urls[url] = PHOTO_REFUSALS[kind]

    def enforce_limits(
        self,
        per_chat: tuple[int, float] | None = (20, 60.0),
        overall: tuple[int, float] | None = (30, 1.0),
    ) -> None:
        """Flood control: more than N sends in a sliding window of S seconds answers 429.

        `per_chat` counts per chat, `overall` across all chats; retry_after is the whole
        seconds until the oldest send in the full window leaves it.
        """
        with self._lock:
            self._limits = _Limits(per_chat, overall)

    def release(self) -> None:
        """Let held ("timeout") answers go now."""
        self._released.set()

    def _add_rule(self, kind, count, chat_id, method, retry_after, migrate_to, description) -> None:
        if kind not in FAILURE_KINDS:
            raise ValueError(f"unknown failure kind {kind!r}; known: {', '.join(FAILURE_KINDS)}")
        if kind == "migrated" and migrate_to is None:
            raise ValueError("a 'migrated' failure needs migrate_to_chat_id")
        with self._lock:
            self._rules.append(
                _Rule(kind, count, _norm_chat(chat_id), method, retry_after, migrate_to, description)
            )

    # ----------------------------------------------------------------- server

    def start(self) -> Self:
        """Serve on a free port in a background thread; returns once it accepts connections."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, 0))
        self.port = sock.getsockname()[1]
        app = Starlette(routes=[Route("/bot{token}/{method}", self._endpoint, methods=["GET", "POST"])])
        config = uvicorn.Config(
            app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=2
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="fake-telegram", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("fake Telegram server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Release held answers and shut the server down."""
        self._released.set()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    async def _endpoint(self, request: Request) -> JSONResponse:
        token = request.path_params["token"]
        method = request.path_params["method"]
        if token != self.token:
            return _error(TelegramError(401, "Unauthorized"))
        params = await _read_params(request)
        chat = params.get("chat_id")
        call = Call(method=method, chat_id=chat, params=params, time=time.monotonic())
        with self._lock:
            self._calls.append(call)
            released = self._released
            try:
                hang, result = self._handle(method, params, call)
            except TelegramError as exc:
                call.status, call.description, call.outcome = exc.status, exc.description, "error"
                return _error(exc)
        if hang:
            call.outcome = "timeout"
            start = time.monotonic()
            while not released.is_set() and time.monotonic() - start < self.hang_seconds:
                await asyncio.sleep(0.02)
        return JSONResponse({"ok": True, "result": result})

    # ----------------------------------------------------------------- Bot API

    def _handle(self, method: str, params: dict, call: Call) -> tuple[bool, Any]:
        """Run one call under the lock; returns (hold the answer?, result)."""
        if method == "getMe":
            return False, {
                "id": int(self.token.split(":")[0]),
                "is_bot": True,
                "first_name": "Fake News Bot",
                "username": "fake_news_bot",
                "can_join_groups": True,
                "can_read_all_group_messages": False,
                "supports_inline_queries": False,
            }
        if method not in _CHAT_METHODS:
            raise TelegramError(404, "Not Found")
        if "chat_id" not in params or params["chat_id"] in ("", None):
            raise _bad("chat_id is empty")
        hang = self._apply_rules(method, params["chat_id"])
        chat_id = self._resolve(params["chat_id"])
        if chat_id in self._migrated:
            raise TelegramError(
                400,
                FAILURES["migrated"][1],
                {"migrate_to_chat_id": self._migrated[chat_id]},
            )
        if method in _SEND_METHODS:
            self._check_flood(chat_id)
        handler = getattr(self, f"_{method}")
        result = handler(chat_id, params, call)
        if method in _SEND_METHODS:
            self._count_send(chat_id)
        return hang, result

    def _apply_rules(self, method: str, chat: int | str) -> bool:
        for rule in self._rules:
            if rule.remaining == 0:
                continue
            if rule.method is not None and rule.method != method:
                continue
            if rule.chat_id is not None and rule.chat_id != _norm_chat(chat):
                continue
            if rule.remaining is not None:
                rule.remaining -= 1
            if rule.kind == "timeout":
                return True
            status, description, parameters = FAILURES[rule.kind]
            parameters = dict(parameters)
            if rule.kind == "retry_after":
                parameters["retry_after"] = rule.retry_after
                description = description.format(retry_after=rule.retry_after)
            if rule.kind == "migrated":
                parameters["migrate_to_chat_id"] = rule.migrate_to_chat_id
                if rule.remaining is None:
                    self._migrated[self._resolve(chat)] = rule.migrate_to_chat_id
            raise TelegramError(status, rule.description or description, parameters)
        return False

    def _check_flood(self, chat_id: int) -> None:
        limits = self._limits
        if limits is None:
            return
        now = time.monotonic()
        checks = []
        if limits.per_chat:
            checks.append((limits.chat_times.setdefault(chat_id, collections.deque()), *limits.per_chat))
        if limits.overall:
            checks.append((limits.overall_times, *limits.overall))
        for times, count, window in checks:
            while times and times[0] <= now - window:
                times.popleft()
            if len(times) >= count:
                wait = max(1, math.ceil(times[0] + window - now))
                raise TelegramError(
                    429, f"Too Many Requests: retry after {wait}", {"retry_after": wait}
                )

    def _count_send(self, chat_id: int) -> None:
        limits = self._limits
        if limits is None:
            return
        now = time.monotonic()
        limits.chat_times.setdefault(chat_id, collections.deque()).append(now)
        limits.overall_times.append(now)

    def _resolve(self, chat: int | str) -> int:
        chat = _norm_chat(chat)
        if isinstance(chat, int):
            return chat
        if not chat.startswith("@") or len(chat) < 2:
            raise _bad("chat not found")
        name = chat.lower()
        if name not in self._usernames:
            self._usernames[name] = -1001000000000 - len(self._usernames) - 1
        return self._usernames[name]

    def _chat_json(self, chat_id: int) -> dict:
        username = next((n[1:] for n, cid in self._usernames.items() if cid == chat_id), None)
        chat: dict = {"id": chat_id, "type": "channel" if chat_id < 0 else "private"}
        if chat_id < 0:
            chat["title"] = username or f"Channel {chat_id}"
        else:
            chat["first_name"] = "Reader"
        if username:
            chat["username"] = username
        return chat

    def _parse(self, params: dict, key: str, limit: int, too_long: str) -> tuple[str | None, str, list]:
        html = params.get(key)
        if html is None:
            return None, "", []
        html = str(html)
        mode = params.get("parse_mode")
        if mode:
            if str(mode).lower() != "html":
                raise _bad("unsupported parse_mode")
            try:
                parsed = parse_html(html)
            except EntityParseError as exc:
                raise _bad(str(exc)) from None
            text, entities = parsed.text, parsed.entities
        else:
            text, entities = html, list(params.get("entities" if key == "text" else "caption_entities") or [])
        if utf16_len(text) > limit:
            raise _bad(too_long)
        return html, text, entities

    def _check_markup(self, params: dict) -> dict | None:
        markup = params.get("reply_markup")
        if markup is None:
            return None
        if not isinstance(markup, dict):
            raise _bad("can't parse reply keyboard markup JSON object")
        rows = markup.get("inline_keyboard")
        if rows is None:
            return markup
        if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
            raise _bad("field \"inline_keyboard\" of the InlineKeyboardMarkup must be an Array of Arrays")
        for row in rows:
            for button in row:
                if not isinstance(button, dict) or not str(button.get("text", "")).strip():
                    raise _bad("BUTTON_TEXT_INVALID")
                url = button.get("url")
                if url is not None and not str(url).startswith(("http://", "https://", "tg://")):
                    raise _bad("BUTTON_URL_INVALID")
        return markup

    def _new_message(self, chat_id: int, call: Call, **fields) -> Message:
        message_id = self._next_id.get(chat_id, 0) + 1
        self._next_id[chat_id] = message_id
        message = Message(chat_id=chat_id, message_id=message_id, **fields)
        self._messages[(chat_id, message_id)] = message
        call.message_id = message_id
        return message

    def _message_json(self, message: Message) -> dict:
        result: dict = {
            "message_id": message.message_id,
            "date": int(time.time()),
            "chat": self._chat_json(message.chat_id),
        }
        if message.chat_id < 0:
            result["sender_chat"] = result["chat"]
        if message.edits:
            result["edit_date"] = int(time.time())
        if message.kind == "text":
            result["text"] = message.text
            if message.entities:
                result["entities"] = message.entities
        else:
            result["photo"] = [
                {
                    "file_id": f"photo-{message.chat_id}-{message.message_id}",
                    "file_unique_id": f"u{message.chat_id}{message.message_id}",
                    "width": 1280,
                    "height": 720,
                    "file_size": 1000,
                }
            ]
            if message.text:
                result["caption"] = message.text
            if message.entities:
                result["caption_entities"] = message.entities
        if message.reply_markup:
            result["reply_markup"] = message.reply_markup
        return result

    def _sendMessage(self, chat_id: int, params: dict, call: Call) -> dict:
        html, text, entities = self._parse(params, "text", MESSAGE_LIMIT, "message is too long")
        if not text.strip():
            raise _bad("message text is empty")
        markup = self._check_markup(params)
        message = self._new_message(
            chat_id, call, kind="text", html=html, text=text, entities=entities, reply_markup=markup
        )
        return self._message_json(message)

    def _sendPhoto(self, chat_id: int, params: dict, call: Call) -> dict:
        photo = params.get("photo")
        if photo in (None, ""):
            raise _bad("there is no photo in the request")
        if isinstance(photo, str):
            if photo in self.bad_photo_urls:
                raise TelegramError(400, self.bad_photo_urls[photo])
            if not photo.startswith(("http://", "https://")) and not photo.startswith("photo-"):
                raise _bad("wrong remote file identifier specified: Wrong string length")
        html, text, entities = self._parse(params, "caption", CAPTION_LIMIT, "message caption is too long")
        markup = self._check_markup(params)
        message = self._new_message(
            chat_id, call, kind="photo", html=html, text=text, entities=entities,
            reply_markup=markup, photo=photo,
        )
        return self._message_json(message)

    def _edit_target(self, chat_id: int, params: dict) -> Message:
        message = self._messages.get((chat_id, params.get("message_id")))
        if message is None or message.deleted:
            raise _bad("message to edit not found")
        return message

    def _apply_edit(self, message: Message, html, text, entities, params) -> dict:
        markup = self._check_markup(params)
        if (text, entities, markup) == (message.text, message.entities, message.reply_markup):
            raise _bad(
                "message is not modified: specified new message content and reply markup are "
                "exactly the same as a current content and reply markup of the message"
            )
        message.html, message.text, message.entities, message.reply_markup = html, text, entities, markup
        message.edits += 1
        return self._message_json(message)

    def _editMessageText(self, chat_id: int, params: dict, call: Call) -> dict:
        message = self._edit_target(chat_id, params)
        if message.kind != "text":
            raise _bad("there is no text in the message to edit")
        html, text, entities = self._parse(params, "text", MESSAGE_LIMIT, "message is too long")
        if not text.strip():
            raise _bad("message text is empty")
        call.message_id = message.message_id
        return self._apply_edit(message, html, text, entities, params)

    def _editMessageCaption(self, chat_id: int, params: dict, call: Call) -> dict:
        message = self._edit_target(chat_id, params)
        if message.kind == "text":
            raise _bad("there is no caption in the message to edit")
        html, text, entities = self._parse(params, "caption", CAPTION_LIMIT, "message caption is too long")
        call.message_id = message.message_id
        return self._apply_edit(message, html, text, entities, params)

    def _deleteMessage(self, chat_id: int, params: dict, call: Call) -> bool:
        message = self._messages.get((chat_id, params.get("message_id")))
        if message is None or message.deleted:
            raise _bad("message to delete not found")
        message.deleted = True
        call.message_id = message.message_id
        return True

    def _getChat(self, chat_id: int, params: dict, call: Call) -> dict:
        chat = self._chat_json(chat_id)
        chat.update(
            {
                "accent_color_id": 0,
                "max_reaction_count": 11,
                "accepted_gift_types": {
                    "unlimited_gifts": False,
                    "limited_gifts": False,
                    "unique_gifts": False,
                    "premium_subscription": False,
                },
            }
        )
        return chat


def _norm_chat(chat: Any) -> int | str | None:
    """Chat ids arrive as ints (JSON) or strings (form fields); compare them as Telegram does."""
    if chat is None or isinstance(chat, int):
        return chat
    text = str(chat).strip()
    if text.lstrip("-").isdigit():
        return int(text)
    return text


def _decode_field(name: str, value: Any) -> Any:
    if isinstance(value, UploadFile):
        return {"filename": value.filename, "content_type": value.content_type}
    if name in _JSON_FIELDS and isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    if name in _INT_FIELDS:
        return _norm_chat(value)
    if name in _BOOL_FIELDS and isinstance(value, str):
        return value.strip().lower() in ("true", "1")
    return value


async def _read_params(request: Request) -> dict:
    """Query string, then JSON or form/multipart body, as the Bot API accepts them."""
    params: dict[str, Any] = dict(request.query_params)
    content_type = request.headers.get("content-type", "")
    if request.method == "POST":
        if content_type.startswith("application/json"):
            body = await request.body()
            if body:
                data = json.loads(body)
                if isinstance(data, dict):
                    params.update(data)
        elif content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            for key, value in form.multi_items():
                if isinstance(value, UploadFile):
                    # attach://name uploads: keep what was uploaded, not its bytes
                    params[key] = {"filename": value.filename, "content_type": value.content_type}
                else:
                    params[key] = value
    return {key: _decode_field(key, value) for key, value in params.items()}


def _error(exc: TelegramError) -> JSONResponse:
    body: dict = {"ok": False, "error_code": exc.status, "description": exc.description}
    if exc.parameters:
        body["parameters"] = exc.parameters
    return JSONResponse(body, status_code=exc.status)


# ----------------------------------------------------------------- pytest fixtures


@pytest.fixture(scope="session")
def fake_telegram_server() -> Iterator[FakeTelegram]:
    """One fake Bot API server for the whole session."""
    fake = FakeTelegram().start()
    yield fake
    fake.stop()


@pytest.fixture
def fake_telegram(fake_telegram_server: FakeTelegram) -> Iterator[FakeTelegram]:
    """The session's fake Bot API server, reset for this test (no calls, no failures)."""
    fake_telegram_server.reset()
    yield fake_telegram_server
    fake_telegram_server.reset()
