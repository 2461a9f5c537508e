"""What the delivery stage hands each kind of channel, and what it gets back.

Every channel module (smtp.py, outbox.py, telegram.py, telegram_outbox.py, mastodon.py,
bluesky.py, social_outbox.py) imports these values from here and imports no other
channel module (Mastodon and Bluesky also share rate_headers.py, which imports none), so the kinds never depend on one another and `distributor.channels` has
no import circle. The one module that picks a kind (mail.py, for email) imports the
kinds; nothing imports it back.

One shape for every kind: a channel is called with a finished message and answers a
result per message, classified, never raising for anything the network or the service
did; the delivery stage (`distributor.delivery`) decides what a result means.

- email: `Envelope`s in, one `SendResult` each, through `MailChannel.send`;
- Telegram: a rendered `BotCall` (render/telegram.py) to a chat id in, a `TelegramResult` out;
- Mastodon and Bluesky: a `SocialRequest` in, a `SocialResult` out.

What each kind may carry (lengths, images, requests per second) is declared as data
with its renderer: `TelegramLimits`, `MastodonLimits`, `BlueskyLimits`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Literal, Protocol

# --- email ----------------------------------------------------------------------------

MailOutcome = Literal["sent", "temporary", "permanent"]


@dataclass(frozen=True, slots=True)
class Envelope:
    """One message for one recipient: SMTP envelope addresses plus the finished bytes.

    `ref` names the delivery it belongs to (e.g. "12-3456": run 12, subscriber 3456); it
    comes back in the result and names the outbox file.
    """

    sender: str
    recipient: str
    data: bytes
    ref: str

    def __repr__(self) -> str:
        # The bytes are tens of kilobytes; a repr in a log line should not be.
        return f"Envelope(ref={self.ref!r}, recipient={self.recipient!r}, {len(self.data)} bytes)"


@dataclass(frozen=True, slots=True)
class SendResult:
    """What happened to one envelope. `code` is the server's reply code (None when no
    server answered, e.g. the connection failed); `reply` is its text, or our account of
    why there was none. `skipped`: the channel did not try this envelope at all (it
    stopped after the server refused connection after connection), so the result says
    nothing about the recipient; always "temporary". Never holds a secret."""

    ref: str
    recipient: str
    outcome: MailOutcome
    code: int | None
    reply: str
    skipped: bool = False


# Called with each envelope's result as soon as it is known. It may return a callable
# that blocks until the result is recorded (see MailChannel.send), or None.
ResultHook = Callable[[SendResult], "Callable[[], object] | None"]


class MailChannel(Protocol):
    """The narrow interface the dispatch stage owns; smtp.py and outbox.py implement it.

    The channel never raises for a refused recipient or a lost connection; the caller
    decides what a result means for the ledger and the subscriber.
    """

    def send(self, envelopes: Iterable[Envelope], on_result: ResultHook | None = None) -> list[SendResult]:
        """Send each envelope (one connection per call); one result per envelope, in order.

        `envelopes` may be a generator, consumed one at a time (a batch's messages are
        built as they go out, never all held at once). `on_result`, when given, is called
        with each result as soon as it is known, in the calling thread, before the next
        envelope is taken. What it returns, when callable, is called before the next
        message is committed (its body sent), so the caller can hold a message back
        until the last accepted one is in its ledger: a crash leaves at most one message
        per connection taken by the server but unrecorded."""
        ...


# --- Telegram -------------------------------------------------------------------------

TelegramOutcome = Literal[
    "ok",  # done; message_ids holds what Telegram created or edited
    "retry_after",  # flood control: wait retry_after seconds, then send again
    "permanent",  # the bot cannot post to this chat: pause the channel
    "migrated",  # the group became a supergroup: resend to new_chat_id
    "formatting",  # Telegram refused the markup ("can't parse entities")
    "ambiguous",  # failed after the request may have reached Telegram: maybe posted
    "temporary",  # failed before Telegram acted (or it answered 5xx): safe to resend
    "photo_refused",  # Telegram could not fetch or use the photo: post the article as text
    "rejected",  # Telegram refused this one message (too long, nothing to edit...)
    "unauthorized",  # the bot token is wrong or revoked: no channel can work
]


@dataclass(frozen=True, slots=True)
class TelegramResult:
    """What one Bot API call came to."""

    outcome: TelegramOutcome
    # Telegram's own message ids (numbers); the ledger reports them as text, as every kind's.
    message_ids: tuple[int, ...] = ()
    retry_after: float = 0.0
    new_chat_id: str | None = None
    # Telegram's description or the transport's error, with the token removed.
    description: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


def bot_api_chat_id(chat_id: str | int) -> str | int:
    """A chat id as the Bot API takes it: a numeric one as an int (as Telegram documents
    it), a @username unchanged. The channel and its outbox send the same value."""
    text = str(chat_id)
    return int(text) if text.lstrip("-").isdigit() else text


# --- Mastodon and Bluesky -------------------------------------------------------------

SocialOutcome = Literal[
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
    """What one request came to. `remote_ids` are text: Mastodon status ids are strings,
    a Bluesky post is named by "<at-uri> <cid>"."""

    outcome: SocialOutcome
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
