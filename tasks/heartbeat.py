"""Workers say they are alive: after a task finishes, the worker's hostname is stamped in
the database (at most every 15 s per process), which the console's overview reads as
"workers seen in the last minute". The beat's tick and the deferred-mail retry run every
tick on some worker, so an idle pool still shows up."""

from __future__ import annotations

import logging
import socket
import time

from celery.signals import task_postrun

from distributor import monitor
from tasks.runtime import context

log = logging.getLogger(__name__)
EVERY_SECONDS = 15.0
_last = [0.0]


@task_postrun.connect
def _stamp(sender=None, **_: object) -> None:  # noqa: ANN001
    now = time.monotonic()
    if now - _last[0] < EVERY_SECONDS:
        return
    _last[0] = now
    try:
        hostname = getattr(getattr(sender, "request", None), "hostname", None) or socket.gethostname()
        monitor.worker_seen(context()[1], str(hostname))
    except Exception:  # noqa: BLE001 - a heartbeat must never fail a task
        log.warning("could not record the worker heartbeat", exc_info=True)
