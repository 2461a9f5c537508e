"""Subscribe requests, handled after the answer: store the address, mail the confirmation.

The subscribe page answers "check your inbox" as soon as the form is valid and within
its rate limits, the same answer in the same time for every address: new, pending,
confirmed, unsubscribed or suppressed, SMTP up or down. Anything that depends on the
address's state (a row written or not, a confirmation mailed or not, a slow or failing
SMTP server) happens after the answer, so neither the status, the body nor the timing
tells anyone who subscribes.

The work is queued the way webhook ingests queue their Telegram posts: as a Celery task
when the web process has a broker (`tasks.subscribers`), on a background thread of the
web process otherwise (`SignupQueue`). The domain never imports Celery; the web app is
handed a function that queues (`create_app(on_signup=...)`).
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import asdict, dataclass
from datetime import datetime

from distributor import subscribers as subs
from distributor.errors import TemporaryFailure
from distributor.settings import Settings
from distributor.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Signup:
    """A checked subscribe request: the address and the preferences it asked for."""

    email: str
    sections: tuple[str, ...] | None
    editions: tuple[str, ...] | None
    timezone: str
    format: str
    name: str

    def as_dict(self) -> dict:
        """Plain JSON values, for a task's arguments."""
        data = asdict(self)
        for key in ("sections", "editions"):
            if data[key] is not None:
                data[key] = list(data[key])
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Signup:
        """The inverse of `as_dict`."""
        return cls(
            email=data["email"],
            sections=tuple(data["sections"]) if data.get("sections") is not None else None,
            editions=tuple(data["editions"]) if data.get("editions") is not None else None,
            timezone=data["timezone"],
            format=data["format"],
            name=data.get("name") or "",
        )


def process(settings: Settings, store: Store, signup: Signup, *, now: datetime | None = None) -> str:
    """Store the signup (see `subscribers.subscribe`) and mail the confirmation when one
    is due. Returns "not_due" (already confirmed) or the send's outcome; raises
    TemporaryFailure when the SMTP server could not take the mail for now, so a task
    retries (running it again is harmless: the row is the same, the mail goes again).
    """
    subscriber, needs_confirmation = subs.subscribe(
        settings,
        store,
        signup.email,
        sections=signup.sections,
        editions=signup.editions,
        timezone=signup.timezone,
        format=signup.format,
        name=signup.name,
        now=now,
        source="web",
    )
    if not needs_confirmation:
        return "not_due"
    [result] = subs.send_confirmations(settings, [subscriber], now=now)
    if result.outcome == "temporary":
        raise TemporaryFailure(f"confirmation email to subscriber {subscriber.id} not sent for now: {result.reply}")
    return result.outcome


class SignupQueue:
    """Signups handled one at a time by a background thread of this process: the web
    app's queue when it has no broker (`distributor web` without REDIS_URL).

    `put` never waits, so the request that queues returns at once. The queue is bounded:
    when it is full (a flood the rate limits did not stop), a signup is dropped and
    logged rather than held in memory. A temporary SMTP failure is logged and not retried
    here (with a broker the task retries); the reader can submit the form again.
    """

    def __init__(self, settings: Settings, store: Store, *, maxsize: int = 1000) -> None:
        self.settings = settings
        self.store = store
        self._queue: queue.Queue[Signup] = queue.Queue(maxsize=maxsize)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def put(self, signup: Signup) -> None:
        """Queue a signup for the background thread (started on first use)."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="signups", daemon=True)
                self._thread.start()
        try:
            self._queue.put_nowait(signup)
        except queue.Full:
            log.error("signup queue full: a subscribe request was dropped")

    def join(self) -> None:
        """Wait until every queued signup has been handled (tests; an orderly stop)."""
        self._queue.join()

    def _work(self) -> None:
        while True:
            signup = self._queue.get()
            try:
                outcome = process(self.settings, self.store, signup)
                if outcome not in ("sent", "not_due"):
                    log.warning("signup: confirmation email %s", outcome)
            except TemporaryFailure as exc:
                log.warning("signup: %s", exc)
            except Exception:  # noqa: BLE001 - one bad signup must not stop the thread
                log.exception("signup failed")
            finally:
                self._queue.task_done()
