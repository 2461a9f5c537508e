"""A real SMTP server on 127.0.0.1 (aiosmtpd) for tests: records, counts, and fails on cue.

`FakeSmtpServer` runs aiosmtpd in its own thread on a free port. It

- records every accepted message (`server.messages`: envelope sender and recipients,
  the raw bytes, the parsed message, which connection carried it, TLS and login);
- counts connections (`server.connections`; STARTTLS on a connection is not a new one);
- can be told to answer a given reply (421, 451, 550 5.1.1, 552, ...) at MAIL, RCPT or
  DATA, for one address or for the Nth transaction, every time or a number of times:
  `server.fail("550 5.1.1 no such user", at="RCPT", address="x@example.com")`;
  a 421 is answered and the connection then closed, as real servers do; the reply
  `DROP` closes the connection at that command without any reply;
- can drop the connection without any reply at the DATA of the message after the next
  N accepted ones (`server.drop_after(n)`), the message not recorded;
- can hold back the reply to every DATA after the next N accepted messages
  (`server.hold_after(n)`, `server.held` counts the replies waiting) until
  `server.release()`; a message whose client goes away meanwhile is not recorded, as a
  real MTA does not queue a message it never confirmed. Tests use it to stop a sender
  at a known point (e.g. to kill it there);
- can be stopped and started again on the same port (`server.stop()`, `server.start()`,
  or `with server.down(): ...`), so a client finds it refusing connections meanwhile;
- answers every DATA `server.slow` seconds late (0 by default), like a distant MTA;
- records the order of the commands it handles (`server.commands`: connection, verb,
  argument, and how many bytes the client had already sent past the command when it was
  handled), so a test can see whether a client sent anything past the end of a
  message before its reply (`server.sent_past_unanswered_data()`);
- calls `server.on_data(fn)`'s `fn(connection)` when a message's data has been read,
  before answering it (in the server's thread), so a test can check the state of the
  world at the moment a client commits a message;
- advertises PIPELINING when built with `pipelining=True`;
- speaks STARTTLS, implicit TLS and AUTH when built with a certificate and credentials
  (`tls_files()` makes a throwaway self-signed certificate with the openssl command).

Use the `smtp_server` fixture (import it into the test module, or list this module in
tests/conftest.py's `pytest_plugins`): a fresh started server per test, stopped after.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import shutil
import socket
import ssl
import subprocess
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Iterator

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


@dataclass
class Received:
    """One message the server accepted."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    message: EmailMessage
    connection: int  # 1 for the first connection the server saw, 2 for the next, ...
    tls: bool
    login: str | None


# A rule's reply that closes the connection at that command without answering.
DROP = "drop"


@dataclass
class Command:
    """One command the server handled, in the order it handled them."""

    connection: int
    verb: str  # MAIL, RCPT, or DATA (recorded when the message's data has been read)
    argument: str
    # Bytes the client had already sent past this command when the server handled it: a
    # client that waits for each reply has sent nothing past the end of a message's data.
    sent_ahead: int


@dataclass
class Rule:
    """Answer `reply` at command `at` when the address (RCPT/DATA: any recipient; MAIL: the
    sender) or the transaction number (1-based, counted since the server was made) match."""

    reply: str
    at: str = "RCPT"
    address: str | None = None
    nth: int | None = None
    times: int | None = None  # None: every time; n: the next n matches only
    used: int = 0

    def matches(self, command: str, addresses: list[str], number: int) -> bool:
        if command != self.at or (self.times is not None and self.used >= self.times):
            return False
        if self.address is not None and self.address.lower() not in {a.lower() for a in addresses}:
            return False
        if self.nth is not None and self.nth != number:
            return False
        return True


class _CountingSMTP(SMTP):
    """aiosmtpd's SMTP protocol, counting connections and numbering them."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        first = self.transport is None  # a STARTTLS upgrade calls this again: not a new connection
        super().connection_made(transport)
        if first:
            self.connection_number = self.event_handler._connected()


class _Controller(Controller):
    def factory(self) -> SMTP:
        return _CountingSMTP(self.handler, **self.SMTP_kwargs)


class FakeSmtpServer:
    """The server, its rules and what it received. Also the aiosmtpd handler."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        tls: tuple[Path, Path] | None = None,
        implicit_tls: bool = False,
        require_starttls: bool = False,
        credentials: tuple[str, str] | None = None,
        pipelining: bool = False,
    ) -> None:
        self.host = host
        self.pipelining = pipelining
        self.port = port or free_port(host)
        self.implicit_tls = implicit_tls
        self.credentials = credentials
        self.messages: list[Received] = []
        self.commands: list[Command] = []
        self.rules: list[Rule] = []
        self.slow = 0.0  # seconds each DATA reply waits
        self._on_data = None
        self.connections = 0
        self.transactions = 0
        self.logins: list[str] = []
        self.failed_logins = 0
        self._drop_at: int | None = None
        self._hold_at: int | None = None
        self._held = 0
        self._lock = threading.Lock()
        self._tls_context: ssl.SSLContext | None = None
        if tls is not None:
            self._tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self._tls_context.load_cert_chain(str(tls[0]), str(tls[1]))
        self._require_starttls = require_starttls
        self._controller: _Controller | None = None

    # --- lifecycle -------------------------------------------------------------------

    @property
    def url(self) -> str:
        """An SMTP_URL for this server (credentials included when it has them)."""
        scheme = "smtps" if self.implicit_tls else "smtp"
        user = f"{self.credentials[0]}:{self.credentials[1]}@" if self.credentials else ""
        return f"{scheme}://{user}{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._controller is not None

    def start(self) -> "FakeSmtpServer":
        """Listen on the server's port (the same one after a stop)."""
        if self._controller is not None:
            return self
        kwargs: dict = {"hostname": self.host, "port": self.port}
        smtp_kwargs: dict = {"server_hostname": "fake-smtp.test", "ident": "fake-smtp"}
        if self.implicit_tls:
            kwargs["ssl_context"] = self._tls_context
        elif self._tls_context is not None:
            smtp_kwargs["tls_context"] = self._tls_context
            smtp_kwargs["require_starttls"] = self._require_starttls
        if self.credentials is not None:
            smtp_kwargs["authenticator"] = self._authenticate
            # Let tests exercise AUTH in the clear too; real servers decide this themselves.
            smtp_kwargs["auth_require_tls"] = False
        controller = _Controller(self, **kwargs, **smtp_kwargs)
        with self._lock:
            before = self.connections
        controller.start()
        with self._lock:
            # Controller.start() opens one probe connection of its own: not a client's.
            self.connections = before
        self._controller = controller
        return self

    def stop(self) -> None:
        """Stop listening and close every connection; clients get "connection refused"."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
        with self._lock:
            # Held replies died with their connections (their handlers may not have
            # run their cleanup before the loop stopped).
            self._held = 0

    @contextmanager
    def down(self) -> Iterator[None]:
        """Stopped inside the block, listening again on the same port after it."""
        self.stop()
        try:
            yield
        finally:
            self.start()

    # --- cues ------------------------------------------------------------------------

    def fail(self, reply: str, *, at: str = "RCPT", address: str | None = None, nth: int | None = None, times: int | None = None) -> Rule:
        """Answer `reply` (e.g. "550 5.1.1 no such user") at MAIL, RCPT or DATA."""
        if at not in ("MAIL", "RCPT", "DATA"):
            raise ValueError(f"at must be MAIL, RCPT or DATA, not {at!r}")
        rule = Rule(reply=reply, at=at, address=address, nth=nth, times=times)
        with self._lock:
            self.rules.append(rule)
        return rule

    def on_data(self, fn) -> None:  # noqa: ANN001 - a callable(connection number)
        """Call `fn(connection)` when a message's data has been read, before answering it
        (None: stop)."""
        self._on_data = fn

    def drop_after(self, count: int) -> None:
        """Accept `count` more messages, then drop the connection, without a reply, at the
        end of the next message's DATA (that message is not recorded). Happens once."""
        with self._lock:
            self._drop_at = len(self.messages) + count

    def hold_after(self, count: int) -> None:
        """Accept `count` more messages, then hold the reply to every further DATA until
        `release()`. A held message is recorded only if its client is still there then."""
        with self._lock:
            self._hold_at = len(self.messages) + count

    def release(self) -> None:
        """Answer the held DATA commands (and hold no more)."""
        with self._lock:
            self._hold_at = None

    @property
    def held(self) -> int:
        """DATA replies being held back right now."""
        with self._lock:
            return self._held

    def clear(self) -> None:
        """Forget the rules, a pending drop and a hold (what was received is kept)."""
        with self._lock:
            self.rules.clear()
            self._drop_at = None
            self._hold_at = None

    # --- what arrived ----------------------------------------------------------------

    def recipients(self) -> list[str]:
        """Every recipient of every accepted message, in arrival order (repeats kept)."""
        return [r for m in self.messages for r in m.rcpt_tos]

    def received_by(self, address: str) -> list[Received]:
        return [m for m in self.messages if address.lower() in {r.lower() for r in m.rcpt_tos}]

    def sent_past_unanswered_data(self) -> list[Command]:
        """The ends of message data past which the client had already sent more (its next
        MAIL FROM, say) before the server answered: a message pipelined behind another."""
        with self._lock:
            return [c for c in self.commands if c.verb == "DATA" and c.sent_ahead]

    def _log(self, server: SMTP, verb: str, argument: str) -> None:
        reader = getattr(server, "_reader", None)
        ahead = len(getattr(reader, "_buffer", b"")) if reader is not None else 0
        with self._lock:
            self.commands.append(Command(getattr(server, "connection_number", 0), verb, argument, ahead))

    # --- aiosmtpd handler hooks ------------------------------------------------------

    def _connected(self) -> int:
        with self._lock:
            self.connections += 1
            return self.connections

    async def handle_EHLO(self, server: SMTP, session, envelope, hostname: str, responses: list[str]) -> list[str]:  # noqa: ANN001
        session.host_name = hostname
        if self.pipelining:
            # aiosmtpd reads one command line at a time from its stream, so commands a
            # client pipelines simply wait in the buffer and are answered in order.
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_MAIL(self, server: SMTP, session, envelope, address: str, mail_options: list) -> str:  # noqa: ANN001
        self._log(server, "MAIL", address)
        with self._lock:
            self.transactions += 1
            envelope.number = self.transactions
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return await self._answer(server, "MAIL", [address], envelope.number, "250 OK")

    async def handle_RCPT(self, server: SMTP, session, envelope, address: str, rcpt_options: list) -> str:  # noqa: ANN001
        self._log(server, "RCPT", address)
        status = await self._answer(server, "RCPT", [address], getattr(envelope, "number", 0), "250 OK")
        if status.startswith("2"):
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(rcpt_options)
        return status

    async def handle_DATA(self, server: SMTP, session, envelope) -> str:  # noqa: ANN001
        self._log(server, "DATA", ",".join(envelope.rcpt_tos))
        if self._on_data is not None:
            self._on_data(getattr(server, "connection_number", 0))
        with self._lock:
            drop = self._drop_at is not None and len(self.messages) >= self._drop_at
            if drop:
                self._drop_at = None
        if drop:
            server.transport.abort()
            raise asyncio.CancelledError("fake server dropped the connection")
        await self._hold(server)
        if self.slow:
            await asyncio.sleep(self.slow)
        status = await self._answer(server, "DATA", list(envelope.rcpt_tos), getattr(envelope, "number", 0), "250 OK queued")
        if status.startswith("2"):
            data = envelope.original_content or b""
            received = Received(
                mail_from=envelope.mail_from,
                rcpt_tos=list(envelope.rcpt_tos),
                data=data,
                message=email.message_from_bytes(data, policy=email.policy.default),
                connection=getattr(server, "connection_number", 0),
                tls=self.implicit_tls or session.ssl is not None,
                login=(session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None),
            )
            with self._lock:
                self.messages.append(received)
        return status

    async def _hold(self, server: SMTP) -> None:
        """Wait while a hold is on; a client that went away meanwhile gets nothing recorded."""
        with self._lock:
            if self._hold_at is None or len(self.messages) < self._hold_at:
                return
            self._held += 1
        try:
            # aiosmtpd cancels this handler when the client's connection is lost.
            while True:
                with self._lock:
                    if self._hold_at is None:
                        break
                await asyncio.sleep(0.02)
        finally:
            with self._lock:
                self._held -= 1
        if server.transport is None or server.transport.is_closing():
            raise asyncio.CancelledError("the client went away while its reply was held")

    async def _answer(self, server: SMTP, command: str, addresses: list[str], number: int, default: str) -> str:
        with self._lock:
            rule = next((r for r in self.rules if r.matches(command, addresses, number)), None)
            if rule is not None:
                rule.used += 1
        if rule is None:
            return default
        if rule.reply == DROP:
            server.transport.abort()
            raise asyncio.CancelledError("fake server dropped the connection")
        if rule.reply.startswith("421"):
            # 421 means "closing the transmission channel": answer, then hang up.
            await server.push(rule.reply)
            server.transport.close()
            raise asyncio.CancelledError("fake server closed after 421")
        return rule.reply

    def _authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:  # noqa: ANN001
        ok = (
            isinstance(auth_data, LoginPassword)
            and self.credentials is not None
            and auth_data.login.decode() == self.credentials[0]
            and auth_data.password.decode() == self.credentials[1]
        )
        with self._lock:
            if ok:
                self.logins.append(auth_data.login.decode())
            else:
                self.failed_logins += 1
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def tls_files(directory: Path) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for 127.0.0.1 and localhost: (cert, key)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def client_context(cert: Path) -> ssl.SSLContext:
    """A client TLS context that trusts only the test certificate (verification on)."""
    context = ssl.create_default_context(cafile=str(cert))
    return context


@pytest.fixture(params=[False, True], ids=["plain", "pipelining"])
def smtp_server(request: pytest.FixtureRequest) -> Iterator[FakeSmtpServer]:
    """A started FakeSmtpServer, stopped after the test; once without and once with
    PIPELINING, so both ways the client talks are covered."""
    server = FakeSmtpServer(pipelining=request.param).start()
    try:
        yield server
    finally:
        server.stop()
