"""What every task shares: which failures are temporary, and how to retry them."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, OperationalError

from distributor.errors import TemporaryFailure
from tasks.app import SETTINGS

# Failures worth retrying with backoff: the database or a remote was briefly away.
# Anything else is a bug or bad data and is logged, not retried forever.
TEMPORARY = (TemporaryFailure, OperationalError, DBAPIError, ConnectionError, TimeoutError)

RETRY = {
    "autoretry_for": TEMPORARY,
    "retry_backoff": 5,  # seconds, doubled each attempt
    # Redis's visibility timeout exceeds it (the settings check), so a task waiting
    # for its retry is never handed to a second worker meanwhile.
    "retry_backoff_max": SETTINGS.file.celery.retry_backoff_max_seconds,
    "retry_jitter": True,
    "max_retries": 12,
}
