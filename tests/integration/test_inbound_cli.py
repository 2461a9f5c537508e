"""`distributor inbound` as an operator runs it: a real process serving SMTP, and --file."""

from __future__ import annotations

import json
import os
import signal
import smtplib
import socket
import subprocess
import sys
from datetime import datetime, timezone

from typer.testing import CliRunner

from distributor import subscribers
from distributor.cli import app
from distributor.inbound import events, tokens
from distributor.settings import PROJECT_ROOT, load_settings
from distributor.store import Store
from distributor.store.models import DeliveryRow, EditionRunRow
from tests.conftest import CONFIG, FIXTURES
from tests.fakes.processes import free_port, wait_for

T0 = datetime(2026, 11, 26, 1, 30, tzinfo=timezone.utc)


def prepared(tmp_path) -> tuple[str, Store, int]:
    """A migrated SQLite database with one confirmed reader and one delivery to them."""
    url = f"sqlite:///{tmp_path / 'inbound.db'}"
    store = Store(url)
    store.migrate()
    settings = load_settings(CONFIG)
    reader, _ = subscribers.subscribe(settings, store, "asha@example.org", confirmed=True, source="cli", now=T0)
    with store.session() as session:
        run = EditionRunRow(edition="morning", slot=T0, local_slot=T0.strftime("%Y-%m-%dT%H:%M:%S"), window_start=T0, window_end=T0, status="done")
        session.add(run)
        session.flush()
        delivery = DeliveryRow(run_id=run.id, subscriber_id=reader.id, status="sent")
        session.add(delivery)
        session.flush()
        delivery_id = delivery.id
    return url, store, delivery_id


def unsubscribe_message(settings, delivery_id: int, mid: str) -> bytes:
    text = (FIXTURES / "inbound" / "mailto_unsubscribe.eml").read_text("utf-8")
    text = text.replace("{{UNSUBSCRIBE}}", tokens.address_for(settings, "unsubscribe", delivery_id))
    text = text.replace("{{RECIPIENT}}", "asha@example.org").replace("{{MID}}", mid)
    return text.replace("\n", "\r\n").encode()


def test_inbound_server_process_handles_a_mailto_unsubscribe_and_stops_on_sigterm(tmp_path):
    url, store, delivery_id = prepared(tmp_path)
    settings = load_settings(CONFIG)
    port = free_port()
    env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(PROJECT_ROOT)}
    for key in ("SMTP_URL", "TELEGRAM_BOT_TOKEN", "PUBLIC_BASE_URL", "SECRET_KEY"):
        env.pop(key, None)
    process = subprocess.Popen(
        [sys.executable, "-m", "distributor", "--config", str(CONFIG), "inbound", "--port", str(port)],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )

    def answers() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return process.poll() is not None

    try:
        wait_for(answers, timeout=60, what="distributor inbound to listen")
        assert process.poll() is None, process.stdout.read().decode() if process.stdout else ""
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            assert client.sendmail("asha@example.org", [tokens.address_for(settings, "unsubscribe", delivery_id)],
                                   unsubscribe_message(settings, delivery_id, "")) == {}
            client.mail("")
            code, _ = client.rcpt("someone@example.com")
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=30)[0].decode()
    assert process.returncode == 0, output
    assert code == 550
    reader = subscribers.find(store, "asha@example.org")
    assert reader.status == "unsubscribed"
    assert [(e.kind, e.source, e.delivery_id) for e in events.events_for(store, reader.id)] == [("unsubscribed", "smtp", delivery_id)]
    store.dispose()


def test_inbound_file_mode_and_refusals(tmp_path, monkeypatch):
    url, store, delivery_id = prepared(tmp_path)
    settings = load_settings(CONFIG)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", url)
    message = tmp_path / "unsubscribe.eml"
    message.write_bytes(unsubscribe_message(settings, delivery_id, ".file"))
    runner = CliRunner()
    result = runner.invoke(app, ["--config", str(CONFIG), "inbound", "--file", str(message), "--file", str(tmp_path / "missing.eml")])
    assert result.exit_code == 0, result.output
    [line] = [json.loads(x) for x in result.stdout.splitlines() if x.startswith("{")]
    assert line["outcome"] == "unsubscribe" and line["events"] == ["unsubscribed"] and line["delivery"] == delivery_id
    assert "missing.eml: cannot read" in result.output
    junk = tmp_path / "junk.eml"
    junk.write_bytes(b"From: a@example.com\r\nSubject: hello there\r\nMessage-ID: <junk@example.com>\r\n\r\nhi\r\n")
    assert runner.invoke(app, ["--config", str(CONFIG), "inbound", "--file", str(junk)]).exit_code == 0
    log = runner.invoke(app, ["--config", str(CONFIG), "inbound-log", "--outcome", "unknown", "--show"])
    assert log.exit_code == 0 and "mid:<junk@example.com>" in log.output and "Subject: hello there" in log.output
    listed = json.loads(runner.invoke(app, ["--config", str(CONFIG), "inbound-log", "--json"]).stdout)
    assert [i["outcome"] for i in listed] == ["unknown", "unsubscribe"]
    assert runner.invoke(app, ["--config", str(CONFIG), "inbound-log", "--outcome", "nonsense"]).exit_code == 2
    # Listening on every address with the public demo key: refused.
    result = runner.invoke(app, ["--config", str(CONFIG), "inbound", "--host", "0.0.0.0"])
    assert result.exit_code == 2 and "refuses to start" in result.output
    result = runner.invoke(app, ["--config", str(CONFIG), "inbound", "--imap", "imaps://u:p@imap.example.com/INBOX"])
    assert result.exit_code == 2 and "SECRET_KEY" in result.output
    store.dispose()
