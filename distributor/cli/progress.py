"""Progress for long commands: a bar on a terminal (rich, which typer brings), one line at
each tenth otherwise (logs and CI keep a readable trace without a line per item).

Progress goes to standard error, so `--json` output on standard output stays clean.
"""

from __future__ import annotations

import sys
import threading
from contextlib import contextmanager
from typing import Callable, Iterator, TextIO


class Progress:
    """`update(done, total)` as work advances; `finish()` at the end."""

    def __init__(self, label: str, *, stream: TextIO | None = None, force_lines: bool = False, enabled: bool = True) -> None:
        self.label = label
        self.enabled = enabled  # off for --json: scripts read the output whole
        self.stream = stream or sys.stderr
        self.lines = force_lines or not self.stream.isatty()
        self._printed_tenth = -1
        self._bar = None
        self._task = None
        self._lock = threading.Lock()

    def update(self, done: int, total: int) -> None:
        with self._lock:
            if total <= 0 or not self.enabled:
                return
            done = min(done, total)
            if self.lines:
                tenth = done * 10 // total
                if tenth > self._printed_tenth:
                    self._printed_tenth = tenth
                    self.stream.write(f"{self.label}: {tenth * 10} % ({done:,} of {total:,})\n")
                    self.stream.flush()
                return
            if self._bar is None:
                from rich.console import Console
                from rich.progress import BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn, TimeRemainingColumn

                self._bar = Bar(
                    TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=Console(file=self.stream), transient=False,
                )
                self._bar.start()
                self._task = self._bar.add_task(self.label, total=total)
            self._bar.update(self._task, completed=done, total=total)

    def finish(self) -> None:
        with self._lock:
            if self._bar is not None:
                self._bar.stop()
                self._bar = None


@contextmanager
def polled(
    label: str, read: Callable[[], tuple[int, int]], *, every: float = 0.5, stream: TextIO | None = None, enabled: bool = True
) -> Iterator[Progress]:
    """Report `read() -> (done, total)` every `every` seconds while the block runs (for
    work that does not report its own progress, e.g. the ledger of a send)."""
    progress = Progress(label, stream=stream, enabled=enabled)
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(every):
            try:
                progress.update(*read())
            except Exception:  # noqa: BLE001 - a progress read must never stop the work
                pass

    thread = threading.Thread(target=watch, name="progress", daemon=True)
    thread.start()
    try:
        yield progress
    finally:
        stop.set()
        thread.join()
        try:
            progress.update(*read())
        except Exception:  # noqa: BLE001
            pass
        progress.finish()
