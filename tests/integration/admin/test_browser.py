"""The console in a real browser: headless Chromium (Debian's chromium + chromium-driver)
driven by selenium against the app under uvicorn, with a real SMTP server.

A "worker" thread stands in for Celery here: it builds and sends every run the console
opens through the same domain stages the tasks call (distributor.cycle.process_run), so
the page's progress bar is watched filling from the ledger, as an operator would.
"""

from __future__ import annotations

import email
import os
import threading
import time
from email import policy
from pathlib import Path

import pytest

from distributor import operators, subscribers
from distributor.ingest.pipeline import ingest_source
from distributor.settings import PROJECT_ROOT, AdminConfig
from tests.conftest import REQUIRE_SERVICES, settings_for
from tests.fakes.browser import INSTALL_HINT, chromium, find_binaries
from tests.fakes.smtp_server import FakeSmtpServer
from tests.fakes.webserver import serve
from tests.integration.admin.conftest import PASSWORD

SAMPLE = PROJECT_ROOT / "config" / "samples" / "newsarena.xml"
READERS = 200

if find_binaries() is None:
    message = f"CHROMIUM NOT AVAILABLE ({INSTALL_HINT}): console browser test NOT RUN"
    if REQUIRE_SERVICES or os.environ.get("DISTRIBUTOR_REQUIRE_BROWSER") == "1":
        pytest.fail(message, pytrace=False)
    pytest.skip(message, allow_module_level=True)

from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


class Worker(threading.Thread):
    """Builds and sends runs the console opened, as the tick and batch tasks would."""

    def __init__(self, settings, store) -> None:  # noqa: ANN001
        super().__init__(daemon=True)
        self.settings, self.store = settings, store
        self.stop = threading.Event()

    def run(self) -> None:
        from sqlalchemy import select

        from distributor.cycle import CycleReport, process_run
        from distributor.runs import get_run
        from distributor.store.models import EditionRunRow, utcnow

        while not self.stop.wait(0.3):
            with self.store.session() as session:
                ids = list(session.scalars(select(EditionRunRow.id).where(EditionRunRow.status == "building")))
            for run_id in ids:
                process_run(self.settings, self.store, get_run(self.store, run_id), utcnow(), CycleReport())


@pytest.fixture
def smtp():
    server = FakeSmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sqlite_store, smtp):
    monkeypatch.setenv("SECRET_KEY", "browser-test-secret-" + "7" * 40)
    monkeypatch.setenv("SMTP_URL", smtp.url)
    settings = settings_for(tmp_path, admin=AdminConfig(refresh_seconds=1))
    store = sqlite_store
    cheap = operators.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(operators, "_hasher", cheap)
    assert ingest_source(settings, store, str(SAMPLE), redate_dates=True).ok
    for n in range(READERS):
        subscribers.subscribe(settings, store, f"reader{n:03d}@example.org", confirmed=True, source="cli")
    operators.add(store, "chief", "admin", PASSWORD)
    worker = Worker(settings, store)
    worker.start()
    with serve(create_app_for(settings, store)) as client:
        yield str(client.base_url), settings, store
    worker.stop.set()
    worker.join(timeout=30)


def create_app_for(settings, store):  # noqa: ANN001, ANN201
    from distributor.web.app import create_app

    return create_app(settings, store)


def test_an_operator_signs_in_schedules_sends_previews_tests_and_signs_out(site, smtp):
    base, settings, store = site
    with chromium() as browser:
        wait = WebDriverWait(browser, 90, ignored_exceptions=(StaleElementReferenceException,))
        browser.get(base + "/admin/schedules")
        assert "/admin/login" in browser.current_url  # signed out: sent to the login form
        browser.find_element(By.ID, "name").send_keys("chief")
        browser.find_element(By.ID, "password").send_keys(PASSWORD)
        browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "body.page-schedules")))

        # Change the evening schedule: the next slots show before saving, then in the list.
        cron = browser.find_element(By.ID, "cron-evening")
        cron.clear()
        cron.send_keys("30 18 * * *")
        browser.find_element(By.CSS_SELECTOR, "#evening form.edit button").click()
        slots = wait.until(EC.presence_of_all_elements_located((By.CSS_SELECTOR, "ol.proposed-slots li")))
        assert len(slots) == 5 and all("18:30" in s.text for s in slots)
        browser.find_element(By.CSS_SELECTOR, ".proposal form button").click()
        wait.until(lambda d: "30 18 * * *" in d.find_element(By.CSS_SELECTOR, "#evening code.cron").text)
        assert "18:30" in browser.find_element(By.CSS_SELECTOR, "#evening .next-slots").text

        # Run the morning edition now, to 200 readers, and watch the bar fill.
        browser.get(base + "/admin/schedules/morning/run-now")
        assert f"{READERS} subscriber(s)" in browser.find_element(By.CSS_SELECTOR, ".recipient-count").text
        # The SMTP server holds its answers after 120 messages, so the page is seen part
        # way; once released, the bar must reach 100 % on the same page.
        smtp.hold_after(120)
        browser.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "body.page-run")))
        run_url = browser.current_url
        bar = ".progress progress"
        wait.until(lambda d: 0 < int(d.find_element(By.CSS_SELECTOR, bar).get_attribute("value")) < 100)
        wait.until(lambda d: smtp.held > 0)
        smtp.release()
        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, bar).get_attribute("value") == "100")
        assert browser.current_url == run_url  # filled in place by admin.js, not by reloading
        assert browser.find_element(By.CSS_SELECTOR, ".progress .total").text == f"{READERS:,}"
        assert len([m for m in smtp.messages if not m.message["Subject"].startswith("[Test]")]) == READERS

        # Preview the morning edition and send it as a test.
        browser.get(base + "/admin/preview?edition=morning")
        frame = browser.find_element(By.CSS_SELECTOR, "iframe.desktop")
        assert frame.get_attribute("sandbox") == ""
        subject = browser.find_element(By.CSS_SELECTOR, "p.subject").text
        browser.find_element(By.ID, "to").send_keys("desk@newsroom.example")
        browser.find_element(By.CSS_SELECTOR, "form.test-send button").click()
        result = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, ".test-result")))
        assert "Test sent to desk@newsroom.example" in result.text
        [test] = [m for m in smtp.messages if m.rcpt_tos == ["desk@newsroom.example"]]
        assert email.message_from_bytes(test.data, policy=policy.default)["Subject"] == "[Test] " + subject

        # Import a CSV with one bad line: the rest are added, the bad one named by number.
        csv_file = Path(settings.var_dir) / "import.csv"
        csv_file.parent.mkdir(parents=True, exist_ok=True)
        csv_file.write_text("email,name\nnew.reader@example.org,Asha\nnot-an-address,Bad\nsecond.reader@example.org,Ravi\n")
        browser.get(base + "/admin/subscribers/import")
        browser.find_element(By.ID, "file").send_keys(str(csv_file))
        browser.find_element(By.CSS_SELECTOR, "input[name=confirmed]").click()
        browser.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, ".job .status").text == "done")
        assert browser.find_element(By.CSS_SELECTOR, "td.added").text == "2"
        bad = browser.find_elements(By.CSS_SELECTOR, "table.import-errors tbody tr")
        assert len(bad) == 1 and bad[0].find_elements(By.TAG_NAME, "td")[0].text == "3"
        assert subscribers.find(store, "second.reader@example.org").status == "confirmed"

        # Pin an article from the trending page: it leads the ranking, marked pinned.
        from distributor.store.articles import list_articles, pins

        target = list_articles(store, limit=1)[0]
        browser.get(base + "/admin/trending")
        browser.find_element(By.ID, "target").send_keys(target.url)
        browser.find_element(By.CSS_SELECTOR, "form.pin button").click()
        # The page before the click is the trending page too: wait for the pin itself.
        wait.until(lambda d: target.url in pins(store))
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "body.page-trending p.notice")))

        # Sign out: the console is closed again.
        browser.get(base + "/admin")
        browser.find_element(By.CSS_SELECTOR, "form.whoami button").click()
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "body.page-login")))
        browser.get(base + "/admin/runs")
        assert "/admin/login" in browser.current_url
