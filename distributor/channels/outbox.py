"""The outbox: with no SMTP_URL, each message becomes a file, so the whole pipeline runs
and shows its output on any machine.

`var/outbox/email/{ref}.eml`, one file per envelope, named from the envelope's ref (the
dispatch stage uses "{run_id}-{subscriber_id}") so the same delivery always lands on the
same name and a re-run overwrites rather than piles up. Each file is written to a
temporary name in the same folder and renamed into place, so a reader (or a crash) never
sees half a message. Any mail client opens .eml files.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path
from typing import Iterable

from distributor.channels.contracts import Envelope, ResultHook, SendResult

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def outbox_name(ref: str) -> str:
    """The file name for an envelope ref: safe characters only, never a path."""
    name = _UNSAFE.sub("_", ref).strip("._") or "message"
    return f"{name}.eml"


class Outbox:
    """Writes envelopes to `directory` as .eml files; each counts as sent once written."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)

    def __repr__(self) -> str:
        return f"Outbox({str(self.directory)!r})"

    def send(self, envelopes: Iterable[Envelope], on_result: ResultHook | None = None) -> list[SendResult]:
        """Write each envelope's message to its file; one result per envelope, in order
        (each also given to `on_result` once its file is written or has failed)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        results = []
        # Temporary names carry process and thread so concurrent writers never collide.
        tag = f"{os.getpid()}-{threading.get_ident()}"
        for envelope in envelopes:
            path = self.directory / outbox_name(envelope.ref)
            temporary = self.directory / f".{path.name}.{tag}.tmp"
            try:
                with open(temporary, "wb") as handle:
                    handle.write(envelope.data)
                os.replace(temporary, path)
            except OSError as exc:  # disk full, permissions: retry later, like a busy server
                temporary.unlink(missing_ok=True)
                result = SendResult(envelope.ref, envelope.recipient, "temporary", None, f"outbox write failed: {exc.strerror or exc}")
            else:
                result = SendResult(ref=envelope.ref, recipient=envelope.recipient, outcome="sent", code=None, reply=f"outbox: {path.name}")
            results.append(result)
            if on_result is not None:
                on_result(result)
        return results
