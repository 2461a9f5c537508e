"""GET /metrics: off by default, behind the operator token, counters that move with the
work (read before and after, as counters are per process) and state gauges."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from distributor.ingest.pipeline import ingest_source
from distributor.settings import MetricsConfig, PROJECT_ROOT
from distributor.web.app import create_app
from tests.conftest import settings_for
from tests.fakes.webserver import serve

TOKEN = "metrics-operator-token-" + "3" * 40
SAMPLE = PROJECT_ROOT / "config" / "samples" / "newsarena.xml"


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        match = re.match(r"^(\w+)(?:\{(.*)\})? (\S+)$", line)
        if match and match.group(1) == name and ",".join(sorted((match.group(2) or "").split(","))) == wanted:
            return float(match.group(3))
    return 0.0


@pytest.fixture
def make(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("OPERATOR_TOKEN", TOKEN)
    monkeypatch.setenv("SECRET_KEY", "metrics-secret-" + "2" * 40)
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)

    def build(enabled: bool = True):
        return settings_for(tmp_path, metrics=MetricsConfig(enabled=enabled))

    return build


def test_metrics_are_off_by_default_and_need_the_token(make, store):
    with serve(create_app(make(enabled=False), store)) as client:
        assert client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 404
    with serve(create_app(make(), store)) as client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_feed_fetches_count_and_state_gauges_show(make, store):
    settings = make()
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with serve(create_app(settings, store)) as client:
        before = client.get("/metrics", headers=headers).text
        assert ingest_source(settings, store, str(SAMPLE)).ok
        assert not ingest_source(settings, store, str(SAMPLE.parent / "missing.xml")).ok
        after = client.get("/metrics", headers=headers).text
    assert sample(after, "distributor_feed_fetches_total", outcome="ok") == sample(before, "distributor_feed_fetches_total", outcome="ok") + 1
    assert sample(after, "distributor_feed_fetches_total", outcome="error") == sample(before, "distributor_feed_fetches_total", outcome="error") + 1
    assert sample(after, "distributor_component_up", component="database") == 1.0
    assert sample(after, "distributor_component_up", component="beat") == 0.0
    assert "distributor_workers_seen 0.0" in after


def test_a_send_moves_delivery_and_reply_counters(make, store, tmp_path, monkeypatch):
    """An edition sent to three readers through a real SMTP server, one of them refused."""
    from datetime import datetime, timezone

    from distributor import engine, subscribers
    from distributor.cycle import CycleReport, process_run
    from tests.fakes.smtp_server import FakeSmtpServer

    server = FakeSmtpServer().start()
    try:
        monkeypatch.setenv("SMTP_URL", server.url)
        monkeypatch.setenv("PUBLIC_BASE_URL", "https://news.newsarenaindia.com")
        settings = make()
        assert ingest_source(settings, store, str(SAMPLE), redate_dates=True).ok
        for name in ("a", "b", "gone"):
            subscribers.subscribe(settings, store, f"{name}@example.org", confirmed=True, source="cli")
        server.fail("550 5.1.1 no such user", at="RCPT", address="gone@example.org")
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with serve(create_app(settings, store)) as client:
            before = client.get("/metrics", headers=headers).text
            run, _ = engine.run_now(settings, store, "morning", datetime.now(timezone.utc))
            process_run(settings, store, run, datetime.now(timezone.utc), CycleReport())
            after = client.get("/metrics", headers=headers).text
    finally:
        server.stop()

    def delta(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert delta("distributor_deliveries_total", channel="email", status="sent") == 2
    assert delta("distributor_deliveries_total", channel="email", status="failed") == 1
    assert delta("distributor_smtp_replies_total", reply_class="2xx") == 2
    assert delta("distributor_smtp_replies_total", reply_class="5xx") == 1
    assert delta("distributor_run_duration_seconds_count", edition="morning") == 1
    assert sample(after, "distributor_ledger_rows", channel="email", status="sent") >= 2


def test_multiprocess_mode_adds_up_every_worker_process(tmp_path, sqlite_store):
    """Two 'worker' processes count into PROMETHEUS_MULTIPROC_DIR; a third (the web
    process) scrapes the sum, as with Celery's prefork pool."""
    import subprocess
    import sys

    folder = tmp_path / "metrics"
    folder.mkdir()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(folder), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(PROJECT_ROOT)}
    count = (
        "from distributor import metrics\n"
        "metrics.count(metrics.DELIVERIES, 2, channel='email', status='sent')\n"
        "metrics.count(metrics.SMTP_REPLIES, reply_class='4xx')\n"
    )
    for _ in range(2):
        subprocess.run([sys.executable, "-c", count], env=env, check=True, cwd=PROJECT_ROOT)
    scrape = (
        "import sys\n"
        "from distributor import metrics\n"
        "from distributor.store import Store\n"
        "from tests.conftest import settings_for\n"
        "from pathlib import Path\n"
        f"settings = settings_for(Path({str(tmp_path)!r}))\n"
        f"sys.stdout.write(metrics.exposition(settings, Store({sqlite_store.url!r})).decode())\n"
    )
    text = subprocess.run([sys.executable, "-c", scrape], env=env, check=True, cwd=PROJECT_ROOT, capture_output=True, text=True).stdout
    assert sample(text, "distributor_deliveries_total", channel="email", status="sent") == 4
    assert sample(text, "distributor_smtp_replies_total", reply_class="4xx") == 2
