"""Structured logging: one line per event, `key=value` fields, secrets masked.

Fields passed with `extra={...}` are printed after the message, so operators can grep
`source=` or `edition=` without parsing prose. A final filter replaces any configured
secret that slipped into a message with `***`.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Iterable

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class KeyValueFormatter(logging.Formatter):
    """`2026-11-27T07:00:00Z INFO distributor.ingest message key=value ...`"""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s", "%Y-%m-%dT%H:%M:%S%z")
        self.secrets = [s for s in secrets if s and len(s) >= 4]

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        # Only our own fields: libraries (Celery) attach bulky extras of their own.
        ours = record.name.startswith(("distributor", "tasks"))
        fields = {k: v for k, v in vars(record).items() if k not in _STANDARD} if ours else {}
        if fields:
            line += " " + " ".join(
                f"{k}={json.dumps(v, ensure_ascii=False, default=str)}" for k, v in sorted(fields.items())
            )
        for secret in self.secrets:
            line = line.replace(secret, "***")
        return line


def configure(level: str = "INFO", secrets: Iterable[str] = ()) -> None:
    """Send logs to stderr, one structured line each."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KeyValueFormatter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs every request URL at INFO; feed URLs may carry tokens in query strings.
    logging.getLogger("httpx").setLevel(logging.WARNING)
