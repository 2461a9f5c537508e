"""Mastodon and Bluesky without credentials: each request becomes a JSON file.

A `SocialOutbox` takes a Mastodon or Bluesky channel's place: it is called with the
same `SocialRequest` (contracts.py) and answers a `SocialResult` as the service would
have, writing each request to `var/outbox/<kind>/` as Telegram's outbox does, so the
demo shows what would be sent.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from pathlib import Path
from typing import Any

from distributor.channels.contracts import SocialRequest, SocialResult


class SocialOutbox:
    """Writes requests to files instead of sending them; the same `call` as a channel.

    The file name comes from the content (channel, action, a hash), so a repeat lands in
    the same file; the remote id is derived from the same hash, so a thread's replies
    and later edits name the status they would follow or edit.
    """

    def __init__(self, directory: str | os.PathLike[str], channel: str) -> None:
        self.directory = Path(directory)
        self.channel = channel

    def call(self, request: SocialRequest) -> SocialResult:
        """Write the request's file and answer as the service would have."""
        payload: dict[str, Any] = {"channel": self.channel, "action": request.action}
        if request.idempotency_key:
            payload["idempotency_key"] = request.idempotency_key
        payload["params"] = request.params
        if request.data:
            payload["bytes"] = len(request.data)
        text = json.dumps(payload, indent=2, ensure_ascii=False) + "\n"
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
        stem = re.sub(r"[^A-Za-z0-9_-]+", "", self.channel) or "channel"
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{stem}-{request.action}-{digest[:16]}.json"
        temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)  # readers never see a half-written file
        if request.action == "edit":
            return SocialResult("ok", remote_ids=(str(request.params.get("id", "")),), description=str(path))
        if "rkey" in request.params:  # a Bluesky record: "uri cid", as the PDS would name it
            uri = f"at://{stem}/app.bsky.feed.post/{request.params['rkey']}"
            return SocialResult("ok", remote_ids=(f"{uri} outbox{digest[:16]}",), description=str(path))
        return SocialResult("ok", remote_ids=(str(int(digest[:12], 16)),), description=str(path))
