"""The factory that picks the mail channel: SMTP when SMTP_URL is set, else the outbox.

Channels: `SmtpChannel` (smtp.py, the only code that touches an SMTP socket) or `Outbox`
(outbox.py, one .eml file per message). What both take and give back (`Envelope`,
`SendResult`, the `MailChannel` interface the dispatch stage owns) is in contracts.py;
this module imports the kinds and nothing imports it back from among them, so the
import graph runs one way.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from distributor.channels.contracts import MailChannel
from distributor.channels.outbox import Outbox
from distributor.channels.smtp import SmtpChannel

if TYPE_CHECKING:
    from distributor.settings import Settings


def mail_channel(settings: Settings) -> MailChannel:
    """SMTP when SMTP_URL is set, else the outbox folder var/outbox/email/."""
    if settings.env.smtp_url is not None:
        return SmtpChannel(settings.env.smtp_url.get_secret_value())
    return Outbox(outbox_email_dir(settings))


def outbox_email_dir(settings: Settings) -> Path:
    """Where outbox mode writes messages."""
    return settings.outbox_dir / "email"
