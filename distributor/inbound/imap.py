"""`distributor inbound --imap URL`: for operators whose MX is elsewhere.

Reads inbound.imap_folder, hands each message to process.handle_message, then moves it
to inbound.imap_done_folder (or, with that set to "", flags it \\Seen plus the keyword
$DistributorHandled and leaves it). A rerun reads only what is left unhandled, and
handling is idempotent by Message-ID anyway, so a crash between handling and moving
costs nothing. A message that fails to be handled stays where it is, for the next run.

URL: imaps://user:password@host[:port][/folder] (TLS), imap+starttls://... (STARTTLS),
or imap://... (no TLS: only for a server on the same machine or network). The password
is percent-decoded; it is never logged or shown.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from distributor.errors import DistributorError
from distributor.inbound.process import handle_message
from distributor.settings import Settings
from distributor.store import Store

log = logging.getLogger(__name__)

HANDLED_KEYWORD = "$DistributorHandled"
SCHEMES = {"imap": 143, "imap+starttls": 143, "imaps": 993}
# Messages fetched per round trip; a backlog is read in several.
FETCH_BATCH = 100


class ImapError(DistributorError, RuntimeError):
    """The mailbox could not be read (bad URL, refused login, folder missing)."""


@dataclass
class ImapReport:
    fetched: int = 0
    handled: int = 0
    duplicates: int = 0
    failed: int = 0
    outcomes: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict:
        return {
            "fetched": self.fetched, "handled": self.handled, "duplicates": self.duplicates,
            "failed": self.failed, "outcomes": dict(sorted(self.outcomes.items())),
        }


@dataclass(frozen=True)
class ImapTarget:
    scheme: str
    host: str
    port: int
    user: str
    password: str
    folder: str | None

    def __repr__(self) -> str:  # never the password
        return f"ImapTarget({self.scheme}://{self.user}@{self.host}:{self.port})"


def parse_url(url: str) -> ImapTarget:
    """The parts of an IMAP URL; ImapError naming what is wrong (never echoing the password)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise ImapError(f"the URL must start with {', '.join(s + '://' for s in SCHEMES)}, not {scheme or 'nothing'}://")
    if not parts.hostname:
        raise ImapError("the URL has no host")
    if not parts.username or parts.password is None:
        raise ImapError("the URL needs user:password@ before the host")
    try:
        port = parts.port or SCHEMES[scheme]
    except ValueError:
        raise ImapError("the URL's port is not a number") from None
    folder = unquote(parts.path.lstrip("/")) or None
    return ImapTarget(scheme, parts.hostname, port, unquote(parts.username), unquote(parts.password), folder)


def _mailbox(target: ImapTarget):  # noqa: ANN202 - an imap_tools mailbox
    from imap_tools import MailBox, MailBoxStartTls, MailBoxUnencrypted

    kind = {"imap": MailBoxUnencrypted, "imap+starttls": MailBoxStartTls, "imaps": MailBox}[target.scheme]
    return kind(target.host, target.port, timeout=60)


def fetch_and_handle(settings: Settings, store: Store, url: str) -> ImapReport:
    """Read the folder once, handle every unhandled message, move or flag it."""
    from imap_tools import AND, MailboxLoginError
    from imap_tools.errors import ImapToolsError

    target = parse_url(url)
    cfg = settings.file.inbound
    folder = target.folder or cfg.imap_folder
    done = cfg.imap_done_folder
    report = ImapReport()
    try:
        box = _mailbox(target)
    except OSError as exc:
        raise ImapError(f"cannot connect to {target.host}:{target.port}: {exc.strerror or exc}") from None
    try:
        try:
            box.login(target.user, target.password, initial_folder=folder)
        except MailboxLoginError:
            raise ImapError(f"login refused for {target.user} at {target.host}") from None
        except ImapToolsError as exc:
            raise ImapError(f"cannot open folder {folder!r}: {type(exc).__name__}") from None
        if done and not box.folder.exists(done):
            box.folder.create(done)
        criteria = AND(all=True) if done else AND(no_keyword=HANDLED_KEYWORD)
        while True:
            handled_uids: list[str] = []
            batch = list(box.fetch(criteria, mark_seen=False, bulk=FETCH_BATCH, limit=FETCH_BATCH))
            if not batch:
                break
            for message in batch:
                report.fetched += 1
                try:
                    result = handle_message(settings, store, message.obj.as_bytes(), source="imap")
                except Exception:  # noqa: BLE001 - leave it for the next run; go on with the rest
                    log.exception("could not handle an IMAP message", extra={"uid": message.uid})
                    report.failed += 1
                    continue
                report.outcomes[result.found.outcome] += 1
                if result.duplicate:
                    report.duplicates += 1
                else:
                    report.handled += 1
                handled_uids.append(message.uid)
            if handled_uids:
                if done:
                    box.move(handled_uids, done)
                else:
                    box.flag(handled_uids, ("\\Seen", HANDLED_KEYWORD), True)
            if len(batch) < FETCH_BATCH or not handled_uids:
                break
    finally:
        try:
            box.logout()
        except Exception:  # noqa: BLE001 - the work is done; a failed goodbye changes nothing
            pass
    return report
