"""Real processes for the engine's integration tests: a private redis-server, and
`distributor worker` / `distributor beat` started as the operator would start them.

Tests that stop or restart Redis use their own redis-server on a free port, never the
shared one on 6379.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest

from distributor.settings import PROJECT_ROOT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.1) -> None:
    """Poll until `predicate()` is true; fail naming `what` after `timeout` seconds.

    A deadline for something to happen at all, not a performance assertion.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class RedisServer:
    """A redis-server of our own, with persistence off (the worst case for a restart)."""

    def __init__(self, directory: Path) -> None:
        self.binary = shutil.which("redis-server")
        if not self.binary:
            pytest.skip("redis-server is not installed: engine process tests NOT RUN")
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(self._answers, timeout=15, what=f"redis-server on port {self.port}")
        return self

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=15)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()


class Processes:
    """Starts distributor processes with a shared environment and stops them all at the end."""

    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.env = env
        self.workdir = workdir
        self.started: list[subprocess.Popen] = []
        self.logs: list[Path] = []

    def start(self, *args: str, name: str) -> subprocess.Popen:
        log = self.workdir / f"{name}-{len(self.logs)}.log"
        self.logs.append(log)
        handle = open(log, "wb")  # noqa: SIM115 - closed when the process is reaped
        process = subprocess.Popen(
            [sys.executable, "-m", "distributor", "--log-level", "INFO", *args],
            cwd=self.workdir,
            env=self.env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            # Its own process group, so a kill reaches the worker's pool children too.
            start_new_session=True,
        )
        self.started.append(process)
        return process

    def worker(self, *extra: str) -> subprocess.Popen:
        return self.start("worker", "--concurrency", "2", *extra, name="worker")

    def beat(self) -> subprocess.Popen:
        return self.start("beat", name="beat")

    @staticmethod
    def kill(process: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass
        process.wait(timeout=30)

    def stop_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                self.kill(process, signal.SIGTERM)

    def output(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-4000:]}" for p in self.logs if p.exists())


def process_env(**overrides: str) -> dict[str, str]:
    """The environment a production process would get, plus the test's overrides."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_", "SMTP_", "TELEGRAM_", "DISTRIBUTOR_"))}
    env["PYTHONPATH"] = str(PROJECT_ROOT)
    env.update(overrides)
    return env
