"""Where a channel posts, for people: its kind, its address, the account, and the way
its posts leave (the service's API, or outbox files without credentials).

Read from the settings and the environment only (no request), so the console and the
CLI can show every channel at any time. Credentials are named (the variable that holds
them), never shown: a Bluesky handle is public and is shown; a Mastodon token, a Bluesky
app password and the Telegram bot token are not.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from distributor.settings import Settings


@dataclass(frozen=True)
class Destination:
    """One channel's destination as the console and `channels list` show it."""

    kind: str  # telegram | mastodon | bluesky
    # The chat id (Telegram), the instance (Mastodon) or the PDS (Bluesky).
    address: str
    # The account posting there when it is known without asking the service: the
    # Bluesky handle from BLUESKY_<NAME>_HANDLE; "" otherwise (a Mastodon account is
    # known from its token only: `channels test` asks the instance).
    account: str
    # How posts leave: "Bot API", "Mastodon API (token in MASTODON_<NAME>_TOKEN)", or
    # "outbox: <var>/outbox/<kind>/" when the credentials are not set.
    via: str
    outbox: bool

    def line(self) -> str:
        """One line: kind, address, account, via."""
        account = f" as {self.account}" if self.account else ""
        return f"{self.kind} {self.address}{account} · {self.via}"


def destination(settings: Settings, channel: str, *, chat_id: str | None = None) -> Destination:
    """The channel's destination; `chat_id` is Telegram's current chat when it moved
    the channel (a supergroup migration), else the configured one is shown."""
    config = settings.channels[channel]
    kind = config.kind
    outbox = f"outbox: {settings.outbox_dir / kind}/"
    if kind == "telegram":
        token = settings.env.telegram_bot_token is not None
        return Destination(kind, chat_id or config.chat_id, "", "Bot API" if token else outbox, not token)
    names = settings.credential_names(channel)
    has_credentials = bool(settings.channel_credentials(channel))
    if kind == "mastodon":
        via = f"Mastodon API (token in {names[0]})" if has_credentials else outbox
        return Destination(kind, config.instance_url, "", via, not has_credentials)
    handle = os.environ.get(names[0], "").strip()
    via = f"Bluesky API (app password in {names[1]})" if has_credentials else outbox
    return Destination(kind, config.service, f"@{handle.lstrip('@')}" if handle else "", via, not has_credentials)
