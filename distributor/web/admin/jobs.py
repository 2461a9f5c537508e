"""Background jobs of the console (CSV imports): a thread in the web process each, and a
small in-memory registry of their progress keyed by an unguessable id.

In memory on purpose: a job lives only as long as the process that runs it, and its page
is read from the same process. With several web processes behind one address, a job's
page may land on another process and answer 404; the console is run with one web
process (see the README), and a lost job page loses nothing (the rows are stored).
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

log = logging.getLogger(__name__)

KEEP_JOBS = 50  # finished jobs kept for their pages; the oldest go first


@dataclass
class Job:
    """One background job's state, written by its thread, read by pages."""

    id: str
    kind: str
    owner: str  # the operator who started it
    title: str
    status: str = "running"  # running | done | failed
    stage: str = "starting"
    done: int = 0
    total: int = 0
    started: float = field(default_factory=time.time)
    finished: float | None = None
    result: Any = None
    error: str = ""

    @property
    def percent(self) -> int:
        if self.status != "running":
            return 100
        return 0 if not self.total else min(100, int(100 * self.done / self.total))

    def as_dict(self) -> dict:
        return {
            "id": self.id,
            "kind": self.kind,
            "owner": self.owner,
            "title": self.title,
            "status": self.status,
            "stage": self.stage,
            "done": self.done,
            "total": self.total,
            "percent": self.percent,
            "error": self.error,
        }


class Jobs:
    """The registry: start a job in a thread, report its progress, find it by id."""

    def __init__(self, keep: int = KEEP_JOBS) -> None:
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._keep = keep

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def start(self, kind: str, owner: str, title: str, work: Callable[[Job], Any]) -> tuple[Job, threading.Thread]:
        """Run `work(job)` in a new thread; its return value becomes `job.result`."""
        job = Job(secrets.token_urlsafe(12), kind, owner, title)
        with self._lock:
            self._jobs[job.id] = job
            self._forget_old()
        thread = threading.Thread(target=self._run, args=(job, work), name=f"console-{kind}-{job.id}", daemon=True)
        thread.start()
        return job, thread

    def _run(self, job: Job, work: Callable[[Job], Any]) -> None:
        try:
            job.result = work(job)
            job.status = "done"
        except Exception as exc:  # noqa: BLE001 - the job's page reports it; the process goes on
            log.exception("console job failed", extra={"job": job.id, "kind": job.kind})
            job.error = f"{type(exc).__name__}: {exc}"
            job.status = "failed"
        finally:
            job.finished = time.time()

    def _forget_old(self) -> None:
        finished = sorted((j for j in self._jobs.values() if j.status != "running"), key=lambda j: j.started)
        for job in finished[: max(0, len(self._jobs) - self._keep)]:
            del self._jobs[job.id]


def progress_of(job: Job) -> Callable[[str, int, int], None]:
    """A progress callback (stage, done, total) that writes into `job`."""

    def report(stage: str, done: int, total: int) -> None:
        job.stage, job.done, job.total = stage, done, total

    return report
