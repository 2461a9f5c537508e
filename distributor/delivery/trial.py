"""Test sends: one rendered variant mailed to one address, outside the ledger.

Used by `distributor preview EDITION --to ADDRESS` and the console's preview page. The
Subject carries "[Test] " (given to render_variant), no delivery row is written and no
click is attributed to a run (the variant is rendered with run_id=None)."""

from __future__ import annotations

import time

from distributor.channels.contracts import Envelope, SendResult
from distributor.channels.mail import mail_channel
from distributor.render.email import Recipient, RenderedVariant, envelope_sender
from distributor.settings import Settings

TEST_PREFIX = "[Test] "


def send_test(settings: Settings, variant: RenderedVariant, to: str, *, name: str = "", text_only: bool = False,
              label: str = "cli") -> SendResult:
    """Mail `variant` to `to` (already a normalised address); the channel's result."""
    envelope = Envelope(
        sender=envelope_sender(settings),
        recipient=to,
        data=variant.message(Recipient(email=to, name=name), text_only=text_only),
        ref=f"test-{label}-{int(time.time())}",
    )
    [result] = mail_channel(settings).send([envelope])
    return result
