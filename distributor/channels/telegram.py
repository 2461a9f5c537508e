"""The one place that talks to the Telegram Bot API: send one call, classify the answer.

`TelegramChannel.call(chat_id, call)` sends one rendered `BotCall` with
python-telegram-bot's `Bot` and returns a `TelegramResult` (contracts.py); it never
raises for anything Telegram or the network did. Everything around it (rate limits,
what to do with each outcome) lives in `distributor.delivery.telegram`, on the channel
ledger (`distributor.delivery.ledger`), and is tested against a fake Bot API server on
localhost.

Event loops: Celery tasks are synchronous and each runs its own `asyncio.run`, so an
HTTP client kept between calls would end up bound to a loop that no longer exists. Each
call therefore builds its Bot and HTTP client inside the loop that uses them and closes
them before the loop ends. We open only the HTTP client (`async with request`), not the
whole Bot: `Bot.initialize()` calls getMe first, one more request per message, and its
InvalidToken message quotes the token.

The token is part of every Bot API URL. Nothing we return or log contains it: results
are scrubbed, and a logging filter scrubs the loggers that print request URLs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import threading
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import httpx
from telegram import Bot, InlineKeyboardMarkup, LinkPreviewOptions, Message
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.request import HTTPXRequest

from distributor.channels.contracts import TelegramResult, bot_api_chat_id

# Opt in to python-telegram-bot's coming behaviour (RetryAfter.retry_after as a timedelta)
# now: otherwise every 429 it parses emits a deprecation warning. We read both forms.
os.environ.setdefault("PTB_TIMEDELTA", "true")

if TYPE_CHECKING:
    from distributor.render.telegram import BotCall
    from distributor.settings import Settings

DEFAULT_BASE_URL = "https://api.telegram.org/bot"

# BadRequest descriptions that mean "this chat is closed to the bot", not "this message".
_PERMANENT_400 = (
    "chat not found",
    "need administrator rights",
    "not enough rights",
    "have no rights",
    "chat_write_forbidden",
    "chat_admin_required",
    "bot is not a member",
    "bot was kicked",
    "channel_private",
    "peer_id_invalid",
)
# BadRequest descriptions that mean the HTML could not be parsed.
_FORMATTING_400 = ("can't parse entities", "can't parse", "unsupported start tag", "can't find end tag")
# BadRequest descriptions that mean Telegram could not fetch or use the photo of a
# sendPhoto: the post itself is fine and goes out as a text message instead. Matched
# lowercased, anywhere in the description (python-telegram-bot strips "Bad Request: ").
PHOTO_REFUSED_400 = (
    "wrong file identifier/http url specified",  # the URL did not answer with a file
    "wrong remote file identifier specified",  # neither a URL nor a file_id
    "failed to get http url content",  # Telegram's fetch failed (404, timeout, refused)
    "wrong type of the web page content",  # the URL answered with HTML, not an image
    "image_process_failed",  # an image Telegram cannot decode
    "photo_invalid_dimensions",  # too narrow, too tall, or too many pixels
    "photo_invalid",
    "photo_ext_invalid",
    "photo_save_file_invalid",
    "webpage_curl_failed",
    "webpage_media_empty",
    "file is too big",  # over the 5 MB Telegram fetches for a photo URL
)
# An edit that changes nothing: the message already says what we wanted.
_NOT_MODIFIED_400 = "message is not modified"

# Transport failures that happen before any byte of the request left: safe to resend.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)

# The loggers that print Bot API URLs (and so the token) at DEBUG or INFO.
_URL_LOGGERS = (
    "httpx",
    "telegram.Bot",
    "telegram.request.BaseRequest",
    "telegram.request.HTTPXRequest",
)


class _ScrubToken(logging.Filter):
    """Replace the token in log records of the loggers that print request URLs."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self.token in message:
            record.msg = message.replace(self.token, "***")
            record.args = ()
        return True


_scrubbed_tokens: set[str] = set()


def _install_scrubber(token: str) -> None:
    if token in _scrubbed_tokens:
        return
    _scrubbed_tokens.add(token)
    for name in _URL_LOGGERS:
        logging.getLogger(name).addFilter(_ScrubToken(token))


_tls: list[ssl.SSLContext] = []
_tls_lock = threading.Lock()


def _tls_context() -> ssl.SSLContext:
    """One TLS context per process. Loading the CA bundle costs ~60 ms, far more than a
    post; the context holds no connection and no event loop, so sharing it is safe."""
    with _tls_lock:
        if not _tls:
            _tls.append(httpx.create_ssl_context())
        return _tls[0]


def _retry_seconds(exc: RetryAfter) -> float:
    # PTB 22 keeps a timedelta and warns when the public attribute is read as a number.
    value: Any = getattr(exc, "_retry_after", None)
    if value is None:
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def classify(exc: TelegramError) -> TelegramResult:
    """Map a python-telegram-bot error to an outcome (pure: tested without a network)."""
    text = str(exc)
    lowered = text.lower()
    if isinstance(exc, RetryAfter):
        return TelegramResult("retry_after", retry_after=_retry_seconds(exc), description=text)
    if isinstance(exc, ChatMigrated):
        return TelegramResult("migrated", new_chat_id=str(exc.new_chat_id), description=text)
    if isinstance(exc, Forbidden):
        return TelegramResult("permanent", description=text)
    if isinstance(exc, InvalidToken):
        return TelegramResult("unauthorized", description=text)
    if isinstance(exc, BadRequest):
        if _NOT_MODIFIED_400 in lowered:
            return TelegramResult("ok", description=text)
        if any(marker in lowered for marker in _PERMANENT_400):
            return TelegramResult("permanent", description=text)
        if any(marker in lowered for marker in _FORMATTING_400):
            return TelegramResult("formatting", description=text)
        if any(marker in lowered for marker in PHOTO_REFUSED_400):
            return TelegramResult("photo_refused", description=text)
        return TelegramResult("rejected", description=text)
    if isinstance(exc, NetworkError):  # TimedOut included
        cause = exc.__cause__
        if isinstance(cause, _NOT_SENT):
            return TelegramResult("temporary", description=text)
        if isinstance(exc, TimedOut) or cause is not None:
            # A read or write timeout, a dropped connection: Telegram may have posted.
            return TelegramResult("ambiguous", description=text)
        # No transport error underneath: Telegram answered with an error status (5xx).
        return TelegramResult("temporary", description=text)
    return TelegramResult("temporary", description=text)


def _message_ids(answer: Any) -> tuple[int, ...]:
    if isinstance(answer, Message):
        return (answer.message_id,)
    if isinstance(answer, (list, tuple)):
        return tuple(m.message_id for m in answer if isinstance(m, Message))
    return ()  # an edit of an inline message answers True


class TelegramChannel:
    """Sends Bot API calls with python-telegram-bot; one fresh HTTP client per call."""

    def __init__(
        self,
        token: str,
        *,
        base_url: str | None = None,
        connect_timeout: float = 5.0,
        write_timeout: float = 15.0,
        read_timeout: float = 15.0,
    ) -> None:
        if not token:
            raise ValueError("a Telegram bot token is required (else use the outbox)")
        self._token = token
        self.base_url = base_url or DEFAULT_BASE_URL
        self.timeouts = {
            "connect_timeout": connect_timeout,
            "write_timeout": write_timeout,
            "read_timeout": read_timeout,
            # We open one connection per call, so waiting for a pool slot means a bug.
            "pool_timeout": connect_timeout,
        }
        _install_scrubber(token)

    @classmethod
    def from_settings(cls, settings: Settings) -> TelegramChannel:
        """The channel for TELEGRAM_BOT_TOKEN and TELEGRAM_API_BASE_URL."""
        token = settings.env.telegram_bot_token
        if token is None:
            raise ValueError("TELEGRAM_BOT_TOKEN is not set")
        config = settings.file.telegram
        return cls(
            token.get_secret_value(),
            base_url=settings.env.telegram_api_base_url or None,
            connect_timeout=config.connect_timeout_seconds,
            write_timeout=config.write_timeout_seconds,
            read_timeout=config.read_timeout_seconds,
        )

    def __repr__(self) -> str:
        return f"TelegramChannel(base_url={self.base_url!r})"

    def scrub(self, text: str) -> str:
        """`text` with the token replaced by ***."""
        return text.replace(self._token, "***")

    def call(self, chat_id: str | int, call: BotCall) -> TelegramResult:
        """Send `call` to `chat_id` and classify the answer. The only network I/O to Telegram."""
        try:
            result = asyncio.run(self._send(bot_api_chat_id(chat_id), call))
        except TelegramError as exc:
            result = classify(exc)
        except httpx.HTTPError as exc:  # not wrapped by PTB (should not happen)
            result = TelegramResult(
                "temporary" if isinstance(exc, _NOT_SENT) else "ambiguous",
                description=f"{type(exc).__name__}: {exc}",
            )
        if self._token in result.description:
            result = TelegramResult(
                result.outcome,
                result.message_ids,
                result.retry_after,
                result.new_chat_id,
                self.scrub(result.description),
            )
        return result

    async def _send(self, chat_id: str | int, call: BotCall) -> TelegramResult:
        request = HTTPXRequest(connection_pool_size=1, httpx_kwargs={"verify": _tls_context()}, **self.timeouts)
        bot = Bot(self._token, base_url=self.base_url, request=request, get_updates_request=request)
        async with request:  # the HTTP client lives and dies inside this event loop
            answer = await _dispatch(bot, chat_id, call.method, dict(call.params))
        return TelegramResult("ok", message_ids=_message_ids(answer))


# Parameters that python-telegram-bot wants as its own objects rather than plain JSON.
def _typed(name: str, value: Any, bot: Bot) -> Any:
    if name == "reply_markup" and isinstance(value, dict):
        return InlineKeyboardMarkup.de_json(value, bot)
    if name == "link_preview_options" and isinstance(value, dict):
        return LinkPreviewOptions.de_json(value, bot)
    return value


# Bot API method -> (python-telegram-bot method, parameters it takes by name).
# Everything else in a call's params travels as api_kwargs, exactly as given.
_METHODS: dict[str, tuple[str, tuple[str, ...]]] = {
    "sendMessage": (
        "send_message",
        ("text", "parse_mode", "reply_markup", "link_preview_options", "disable_notification"),
    ),
    "sendPhoto": (
        "send_photo",
        ("photo", "caption", "parse_mode", "reply_markup", "disable_notification"),
    ),
    "editMessageText": (
        "edit_message_text",
        ("text", "message_id", "parse_mode", "reply_markup", "link_preview_options"),
    ),
    "editMessageCaption": (
        "edit_message_caption",
        ("message_id", "caption", "parse_mode", "reply_markup"),
    ),
    "deleteMessage": ("delete_message", ("message_id",)),
}


async def _dispatch(bot: Bot, chat_id: str | int, method: str, params: dict) -> Any:
    params.pop("chat_id", None)
    if method not in _METHODS:
        return await bot.do_api_request(method, api_kwargs={"chat_id": chat_id, **params})
    name, named = _METHODS[method]
    kwargs = {key: _typed(key, params.pop(key), bot) for key in named if key in params}
    return await getattr(bot, name)(chat_id=chat_id, **kwargs, api_kwargs=params or None)
