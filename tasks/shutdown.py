"""Warm shutdown reaches the senders: SIGTERM makes every batch stop between messages.

Celery's warm shutdown (SIGTERM to the worker, as `docker stop` sends) stops taking new
tasks and waits for the running ones; a 1,000-message batch would outlast the 10 s before
Docker's SIGKILL. So the stop is passed on to the domain (leases.request_stop): each
batch finishes the messages in flight, records every answer and releases the rows it has
not started, and the task queues the batch again for the next worker.

The main process learns of the shutdown (worker_shutting_down) and forwards SIGTERM to
its pool processes, which Celery otherwise leaves to finish; each pool process turns
SIGTERM into a stop request instead of dying on it.
"""

from __future__ import annotations

import logging
import os
import signal

from celery import signals

from distributor.delivery import leases

log = logging.getLogger(__name__)


def _stop_on_sigterm(signum: int, frame: object) -> None:  # noqa: ARG001 - a signal handler
    leases.request_stop()


@signals.worker_process_init.connect
def _pool_process_started(**_: object) -> None:
    """In each prefork pool process: SIGTERM asks the senders to stop, it does not kill."""
    signal.signal(signal.SIGTERM, _stop_on_sigterm)


@signals.worker_shutting_down.connect
def _worker_shutting_down(how: str = "Warm", **_: object) -> None:
    """In the main process: stop this process's senders (threads pool) and the pool's."""
    leases.request_stop()
    from billiard.process import active_children

    for child in active_children():
        try:
            os.kill(child.pid, signal.SIGTERM)
        except (ProcessLookupError, TypeError):
            pass  # already gone
