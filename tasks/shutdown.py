"""Warm shutdown reaches the senders: SIGTERM makes every batch stop between messages.

Celery's warm shutdown (SIGTERM to the worker, as `docker stop` sends) stops taking new
tasks and waits for the running ones; a 1,000-message batch would outlast the 10 s before
Docker's SIGKILL. So the stop is passed on to the domain (leases.request_stop): each
batch finishes the messages in flight, records every answer and releases the rows it has
not started, and the task queues the batch again for the next worker.

The main process learns of the shutdown (worker_shutting_down) and forwards SIGTERM to
its pool processes, which Celery otherwise leaves to finish their tasks. A pool process
turns SIGTERM into a stop request instead of exiting mid-batch (billiard's own handler
raises SystemExit wherever the process is); ours is installed before each task, since
billiard installs its handler after the process-init signal.
"""

from __future__ import annotations

import logging
import os
import signal
import threading

from celery import signals

from distributor.delivery import leases

log = logging.getLogger(__name__)


def _stop_on_sigterm(signum: int, frame: object) -> None:  # noqa: ARG001 - a signal handler
    # Every SIGTERM only asks: a pool process stuck for good is ended by the task time
    # limit, or by the kernel when the main process exits (Celery's PDEATHSIG).
    leases.request_stop()


@signals.task_prerun.connect
def _pool_process_takes_sigterm(**_: object) -> None:
    """In a prefork pool process: SIGTERM asks the senders to stop; it does not kill."""
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) is not _stop_on_sigterm:
        signal.signal(signal.SIGTERM, _stop_on_sigterm)


@signals.worker_shutting_down.connect
def _worker_shutting_down(**_: object) -> None:
    """In the main process: stop this process's senders (threads pool) and the pool's."""
    leases.request_stop()
    from billiard.process import active_children

    children = [child.pid for child in active_children() if child.pid]
    log.warning("warm shutdown: asking the senders of %d pool process(es) to stop", len(children))
    for pid in children:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass  # already gone
