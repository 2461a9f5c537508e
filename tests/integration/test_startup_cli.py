"""Processes refuse to start outside the demo with a public or weak key or a dead link
address; the demo still starts; a taken port stops `run` and `web` with a message.

Each process kind is started as an operator starts it: the CLI in-process (CliRunner)
for the refusals, which happen before anything is opened, and real subprocesses for
Celery launched directly, for the demo and for the port.
"""

from __future__ import annotations

import socket
import subprocess
import sys

import httpx
import pytest
from typer.testing import CliRunner

from distributor.cli import app
from distributor.settings import DEMO_SECRET
from tests.conftest import CONFIG
from tests.fakes.processes import free_port, process_env, wait_for

GOOD_KEY = "9f2c1b7e5a3d4c6b8e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d"
GOOD_URL = "https://news.newsarenaindia.com"
# Nothing listens on port 1: a process that got as far as connecting would fail there,
# with another message, so the refusal is seen to come first.
DEAD_REDIS = "redis://127.0.0.1:1/0"

# run and web get a port the test holds: a process that got past the check would stop at
# binding it (exit 1) instead of serving until the test times out.
PROCESSES = {
    "run": ["run", "--port", "{port}"],
    "web": ["web", "--port", "{port}"],
    "worker": ["worker"],
    "beat": ["beat"],
    "send": ["send", "morning"],
}
KEYS = {
    "unset": None,
    "demo": DEMO_SECRET,
    "placeholder": "replace-with-64-hex-characters",
    "short": "short-but-secret-7781",
}
BREAKERS = {
    "smtp": {"SMTP_URL": "smtp://mail.newsarenaindia.com:587"},
    "telegram": {"TELEGRAM_BOT_TOKEN": "123456:TOKEN-NOT-TO-PRINT"},
}


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'var' / 'distributor.db'}")
    monkeypatch.setenv("REDIS_URL", DEAD_REDIS)
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = str(taken.getsockname()[1])

    def invoke(*args: str, env: dict[str, str | None]):
        for key, value in env.items():
            if value is None:
                monkeypatch.delenv(key, raising=False)
            else:
                monkeypatch.setenv(key, value)
        args = tuple(port if a == "{port}" else a for a in args)
        return CliRunner().invoke(app, ["--config", str(CONFIG), *args], catch_exceptions=False)

    yield invoke
    taken.close()


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("breaker", BREAKERS)
@pytest.mark.parametrize("process", PROCESSES)
def test_every_process_refuses_a_public_or_weak_key_outside_the_demo(cli, tmp_path, process, breaker, key):
    result = cli(*PROCESSES[process], env={**BREAKERS[breaker], "SECRET_KEY": KEYS[key], "PUBLIC_BASE_URL": GOOD_URL})
    assert result.exit_code == 2, result.output
    first, *problems = result.output.strip().splitlines()[1:]
    assert first.startswith(f"distributor {process} refuses to start: this is not the local demo")
    assert [p.split()[0] for p in problems] == ["SECRET_KEY"]
    assert 'python3 -c "import secrets; print(secrets.token_hex(32))"' in problems[0]
    assert "short-but-secret-7781" not in result.output and "TOKEN-NOT-TO-PRINT" not in result.output
    assert not (tmp_path / "var" / "distributor.db").exists(), "refused before opening anything"


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("process", ["run", "web"])
def test_serving_the_web_app_beyond_loopback_ends_the_demo(cli, process, key):
    args = [*PROCESSES[process], "--host", "0.0.0.0"]
    result = cli(*args, env={"SECRET_KEY": KEYS[key]})
    assert result.exit_code == 2, result.output
    assert "(the web app binds 0.0.0.0)" in result.output and "SECRET_KEY " in result.output


@pytest.mark.parametrize("process", PROCESSES)
def test_real_mail_needs_a_public_https_address(cli, process):
    result = cli(*PROCESSES[process], env={"SMTP_URL": "smtp://mail.newsarenaindia.com:587", "SECRET_KEY": GOOD_KEY})
    assert result.exit_code == 2, result.output
    assert "PUBLIC_BASE_URL is not set, so every unsubscribe, preferences and click link would point at http://127.0.0.1:8000" in result.output
    result = cli(*PROCESSES[process], env={"PUBLIC_BASE_URL": "http://news.newsarenaindia.com"})
    assert result.exit_code == 2 and "is not https" in result.output


def test_config_check_reports_what_the_processes_refuse(cli):
    result = cli("config", "check", env={"TELEGRAM_BOT_TOKEN": "123456:TOKEN-NOT-TO-PRINT", "SECRET_KEY": "replace-with-64-hex-characters"})
    assert result.exit_code == 2
    assert "SECRET_KEY is a placeholder" in result.output and "PUBLIC_BASE_URL is not set" in result.output
    assert "TOKEN-NOT-TO-PRINT" not in result.output
    demo = cli("config", "check", env={"TELEGRAM_BOT_TOKEN": None, "SECRET_KEY": None})
    assert demo.exit_code == 0 and "local demo" in demo.output
    good = cli("config", "check", env={"TELEGRAM_BOT_TOKEN": "123:abc", "SECRET_KEY": GOOD_KEY, "PUBLIC_BASE_URL": GOOD_URL})
    assert good.exit_code == 0, good.output


@pytest.mark.parametrize("kind", ["worker", "beat"])
def test_celery_launched_directly_refuses_too(tmp_path, kind):
    env = process_env(
        DISTRIBUTOR_CONFIG=str(CONFIG),
        DATABASE_URL=f"sqlite:///{tmp_path / 'distributor.db'}",
        REDIS_URL=DEAD_REDIS,
        SMTP_URL="smtp://mail.newsarenaindia.com:587",
        PUBLIC_BASE_URL=GOOD_URL,
    )
    done = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "tasks.app", kind, "--loglevel=WARNING"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"celery {kind} refuses to start: this is not the local demo (SMTP_URL is set; PUBLIC_BASE_URL is not loopback)" in done.stderr
    assert "SECRET_KEY is not set" in done.stderr


def test_the_demo_web_app_still_starts_on_loopback(tmp_path):
    port = free_port()
    env = process_env(DISTRIBUTOR_CONFIG=str(CONFIG))
    assert subprocess.run([sys.executable, "-m", "distributor", "init"], cwd=tmp_path, env=env, capture_output=True, timeout=120).returncode == 0
    web = subprocess.Popen(
        [sys.executable, "-m", "distributor", "web", "--port", str(port)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        def healthy() -> bool:
            assert web.poll() is None, web.stdout.read()
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2, trust_env=False).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(healthy, timeout=60, what="the demo web app")
    finally:
        web.terminate()
        web.wait(timeout=30)


@pytest.mark.parametrize("command", [["run"], ["web"]])
def test_a_taken_port_stops_the_process_with_a_message(tmp_path, command):
    env = process_env(DISTRIBUTOR_CONFIG=str(CONFIG))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        if command == ["web"]:
            subprocess.run([sys.executable, "-m", "distributor", "init"], cwd=tmp_path, env=env, capture_output=True, timeout=120)
        done = subprocess.run(
            [sys.executable, "-m", "distributor", *command, "--port", str(port)],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
        )
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"cannot serve the web app on 127.0.0.1:{port}: the address is in use" in done.stderr
    assert "web on http://" not in done.stdout
    assert "Traceback" not in done.stderr
