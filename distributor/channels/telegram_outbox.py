"""Telegram without a bot token: each call becomes a JSON file in var/outbox/telegram/.

Each file holds exactly what would have been sent: the Bot API method and its
parameters, chat_id included. The name is derived from that content (chat, method, a
hash), so the same call always lands in the same file, and a re-run overwrites rather
than duplicates. Message ids are derived from the same hash, so later edits of an
outbox post name the message they would edit.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from distributor.channels.contracts import TelegramResult, bot_api_chat_id

if TYPE_CHECKING:
    from distributor.render.telegram import BotCall


def outbox_payload(chat_id: str | int, call: BotCall) -> dict:
    """The Bot API request `call` makes to `chat_id`: {"method", "params"} with chat_id first."""
    return {"method": call.method, "params": {"chat_id": bot_api_chat_id(chat_id), **call.params}}


class TelegramOutbox:
    """Writes calls to files instead of sending them; same interface as TelegramChannel."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def call(self, chat_id: str | int, call: BotCall) -> TelegramResult:
        """Write the call's file and answer as Telegram would have (with a stable message id)."""
        payload = outbox_payload(chat_id, call)
        text = json.dumps(payload, indent=2, ensure_ascii=False, sort_keys=False) + "\n"
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
        chat = re.sub(r"[^A-Za-z0-9_-]+", "", str(chat_id)) or "chat"
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{chat}-{call.method}-{digest[:16]}.json"
        temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)  # readers never see a half-written file
        if call.method.startswith("edit"):
            return TelegramResult("ok", message_ids=(int(call.params.get("message_id", 0)),))
        # Positive and within Telegram's 31-bit message id range.
        return TelegramResult("ok", message_ids=(int(digest[:7], 16) + 1,), description=str(path))
