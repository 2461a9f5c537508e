"""Starting Celery processes: worker, beat, or everything in one process.

The CLI (`distributor worker|beat|run`) calls these; they are here, not in the domain
package, because the domain never imports Celery.
"""

from __future__ import annotations

import logging
import socket
import threading
from pathlib import Path
from typing import Sequence

from tasks.app import QUEUES, app

log = logging.getLogger(__name__)


def start_worker(
    queues: Sequence[str] = QUEUES, concurrency: int = 2, pool: str = "prefork", loglevel: str = "INFO", events: bool = False
) -> None:
    """A worker consuming the given queues (blocks). `events`: send task events, which
    Flower and `celery events` read (off by default: they cost a broker message a task)."""
    argv = ["worker", f"--queues={','.join(queues)}", f"--concurrency={concurrency}", f"--pool={pool}", f"--loglevel={loglevel}", "--without-gossip", "--without-mingle"]
    if events:
        argv.append("--task-events")
    app.worker_main(argv)


def start_beat(loglevel: str = "INFO", schedule_file: str | None = None) -> None:
    """The heartbeat process (blocks). Two of them at once are harmless: runs are unique."""
    argv = ["beat", f"--loglevel={loglevel}"]
    if schedule_file:
        # Its folder (var/) exists only if something wrote there before: with the
        # database elsewhere (PostgreSQL, or DATABASE_URL pointing away) nothing has.
        Path(schedule_file).parent.mkdir(parents=True, exist_ok=True)
        argv.append(f"--schedule={schedule_file}")
    app.start(argv)


def start_all(*, web: socket.socket | None, loglevel: str = "INFO", schedule_file: str | None = None) -> None:
    """Worker, beat and (optionally) web, on its bound socket, in this process: the
    one-process mode.

    On the in-memory transport the broker lives in this process, so worker and beat must
    share it; threads give the worker a little concurrency without forking.
    """
    from celery.beat import EmbeddedService

    if web is not None:
        threading.Thread(target=_serve_web, args=(web,), name="web", daemon=True).start()
    # Beat as a thread of this process: the worker's own `beat=True` forks a child
    # process, which cannot reach an in-memory broker.
    schedule_file = schedule_file or "var/celerybeat-schedule"
    Path(schedule_file).parent.mkdir(parents=True, exist_ok=True)
    EmbeddedService(app, thread=True, schedule_filename=schedule_file).start()
    worker = app.Worker(
        queues=list(QUEUES),
        pool="threads",
        concurrency=4,
        loglevel=loglevel,
        without_gossip=True,
        without_mingle=True,
        without_heartbeat=True,
    )
    worker.start()


def _serve_web(sock: socket.socket) -> None:
    from distributor.web.app import create_app
    from distributor.web.serving import serve
    from tasks.ingest import queue_after_ingest
    from tasks.runtime import context
    from tasks.subscribers import queue_signup

    settings, store = context()
    serve(create_app(settings, store, on_ingested=queue_after_ingest, on_signup=queue_signup), sock)
