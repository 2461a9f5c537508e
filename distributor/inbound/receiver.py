"""`distributor inbound`: the SMTP (or LMTP) server the bounce domain's MX points at.

It accepts mail only for bounces+TOKEN@, unsubscribe+TOKEN@ (tokens that verify) and the
plain bounces@ (for feedback loops, whose reports quote our original message) at
email.bounce_domain, and refuses every other recipient at RCPT with 550, so it is never
an open relay and forged tokens cost nothing. Messages above inbound.max_message_bytes
are refused (552). Each accepted message goes to process.handle_message, in a worker
thread so the server keeps answering while the database works.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP

from distributor.inbound.process import handle_message
from distributor.inbound.tokens import parse_address
from distributor.settings import Settings
from distributor.store import Store

log = logging.getLogger(__name__)


class InboundHandler:
    """aiosmtpd handler: RCPT checks and one hand-off per message."""

    def __init__(self, settings: Settings, store: Store, *, lmtp: bool = False) -> None:
        self.settings = settings
        self.store = store
        self.lmtp = lmtp
        self.handled = 0  # messages handed to the classifier (for logs and tests)

    async def handle_RCPT(self, server: SMTP, session, envelope, address: str, rcpt_options: list) -> str:  # noqa: ANN001, N802
        if parse_address(self.settings, address) is None:
            return "550 5.1.1 Mailbox unavailable: this server takes only bounces and unsubscribes"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session, envelope) -> str:  # noqa: ANN001, N802
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        work = functools.partial(
            handle_message, self.settings, self.store, raw, list(envelope.rcpt_tos), source="smtp"
        )
        try:
            await asyncio.get_running_loop().run_in_executor(None, work)
        except Exception:  # noqa: BLE001 - the sender keeps the message and retries
            log.exception("could not handle an inbound message")
            reply = "451 4.3.0 Could not handle the message now; try again later"
        else:
            self.handled += 1
            reply = "250 2.0.0 OK: handled"
        # LMTP answers DATA once per recipient (RFC 2033 section 4.2).
        return "\r\n".join([reply] * len(envelope.rcpt_tos)) if self.lmtp else reply


class _LmtpController(Controller):
    def factory(self) -> SMTP:
        return LMTP(self.handler, **self.SMTP_kwargs)


def server(settings: Settings, store: Store, *, host: str, port: int, lmtp: bool = False) -> Controller:
    """A controller (not yet started) for the inbound server on host:port."""
    if not settings.file.email.bounce_domain:
        raise ValueError("email.bounce_domain is not set: there is no address for bounces to come back to")
    handler = InboundHandler(settings, store, lmtp=lmtp)
    kind = _LmtpController if lmtp else Controller
    return kind(
        handler,
        hostname=host,
        port=port,
        server_hostname=settings.file.email.bounce_domain,
        ident="distributor inbound",
        data_size_limit=settings.file.inbound.max_message_bytes,
        decode_data=False,
    )


def serve(settings: Settings, store: Store, *, host: str, port: int, lmtp: bool = False) -> None:
    """Run the inbound server until SIGTERM or SIGINT."""
    controller = server(settings, store, host=host, port=port, lmtp=lmtp)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    controller.start()
    log.info("inbound %s server listening", "LMTP" if lmtp else "SMTP", extra={"host": host, "port": port})
    try:
        stop.wait()
    finally:
        controller.stop()
