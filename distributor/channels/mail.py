"""What every mail channel takes and gives back, and the factory that picks one.

A channel has one method, `send(envelopes, on_result=None) -> list[SendResult]`: one
result per envelope, in the same order, classified as sent, temporary or permanent, each
also handed to `on_result` the moment it is known (so the caller can record it at once).
`on_result` may return a callable that blocks until the result is recorded; an SMTP
channel calls it before it sends the body of its next message on that connection, so a
crash leaves at most one message per connection taken by the server but unrecorded. The caller (the dispatch stage)
decides what a result means for the ledger and the subscriber; the channel never raises
for a refused recipient or a lost connection.

Channels: `SmtpChannel` (smtp.py, the only code that touches an SMTP socket) when
SMTP_URL is set, else `Outbox` (outbox.py, one .eml file per message).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable, Literal, Protocol

if TYPE_CHECKING:
    from distributor.settings import Settings

Outcome = Literal["sent", "temporary", "permanent"]


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
    outcome: Outcome
    code: int | None
    reply: str
    skipped: bool = False


# Called with each envelope's result as soon as it is known. It may return a callable
# that blocks until the result is recorded (see the module docstring), or None.
ResultHook = Callable[[SendResult], "Callable[[], object] | None"]


class MailChannel(Protocol):
    """The narrow interface the dispatch stage owns; smtp.py and outbox.py implement it."""

    def send(self, envelopes: Iterable[Envelope], on_result: ResultHook | None = None) -> list[SendResult]:
        """Send each envelope (one connection per call); one result per envelope, in order.

        `envelopes` may be a generator, consumed one at a time (a batch's messages are
        built as they go out, never all held at once). `on_result`, when given, is called
        with each result as soon as it is known, in the calling thread, before the next
        envelope is taken. What it returns, when callable, is called before the next
        message is committed (its body sent), so the caller can hold a message back
        until the last accepted one is in its ledger."""
        ...


def mail_channel(settings: "Settings") -> MailChannel:
    """SMTP when SMTP_URL is set, else the outbox folder var/outbox/email/."""
    if settings.env.smtp_url is not None:
        from distributor.channels.smtp import SmtpChannel

        return SmtpChannel(settings.env.smtp_url.get_secret_value())
    from distributor.channels.outbox import Outbox

    return Outbox(outbox_email_dir(settings))


def outbox_email_dir(settings: "Settings"):  # noqa: ANN201 - a Path
    """Where outbox mode writes messages."""
    return settings.outbox_dir / "email"
