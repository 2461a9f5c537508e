"""Render the console, the public pages and a digest with headless Chromium into
docs/screenshots/ (`make screenshots`).

Everything runs on a throwaway SQLite database under a temporary folder: the shipped
sample feed is ingested (re-dated to now), the demo subscribers are imported, one full
cycle sends every edition to the outbox, and the app is served on a free loopback port.
Needs Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver).
"""

from __future__ import annotations

import os
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

OUT = ROOT / "docs" / "screenshots"
DESKTOP, MOBILE, EMAIL_DESKTOP = 1280, 390, 700
PASSWORD = "screenshots-only-password"


def main() -> int:
    from tests.fakes.browser import INSTALL_HINT, chromium, find_binaries, full_page_screenshot

    if find_binaries() is None:
        print(f"make screenshots: Chromium is not installed ({INSTALL_HINT})", file=sys.stderr)
        return 1
    for key in ("DATABASE_URL", "REDIS_URL", "SMTP_URL", "TELEGRAM_BOT_TOKEN", "PUBLIC_BASE_URL"):
        os.environ.pop(key, None)
    work = Path(tempfile.mkdtemp(prefix="distributor-shots-"))
    os.chdir(work)

    from distributor import operators
    from distributor.cycle import first_cycle
    from distributor.settings import PathsConfig, Settings, load_settings
    from distributor.store import Store
    from distributor.web.app import create_app
    from tests.fakes.webserver import serve

    shipped = load_settings(ROOT / "config" / "distributor.toml")
    settings = Settings(shipped.file.model_copy(update={"paths": PathsConfig(var_dir=str(work / "var"))}), shipped.env, shipped.config_path)
    store = Store(settings.database_url)
    store.migrate()
    print(first_cycle(settings, store, datetime.now(timezone.utc)))
    operators.add(store, "editor-in-chief", "admin", PASSWORD)
    OUT.mkdir(parents=True, exist_ok=True)

    with serve(create_app(settings, store)) as client, chromium(DESKTOP, 900) as browser:
        base = str(client.base_url)

        def shot(path: str, name: str, width: int = DESKTOP) -> None:
            browser.execute_cdp_cmd(
                "Emulation.setDeviceMetricsOverride", {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 500}
            )
            browser.get(base + path)
            full_page_screenshot(browser, str(OUT / f"{name}.png"), width)
            print(f"wrote {OUT / (name + '.png')}")

        shot("/subscribe", "public-subscribe")
        shot("/archive", "public-archive")
        shot("/admin/login", "console-login")
        browser.find_element("id", "name").send_keys("editor-in-chief")
        browser.find_element("id", "password").send_keys(PASSWORD)
        browser.find_element("css selector", "form button[type=submit]").click()
        runs = client.get("/admin/runs.json", params={"edition": "morning"}, cookies=browser_cookies(browser))
        latest = runs.json()["runs"][0]["id"] if runs.status_code == 200 and runs.json()["runs"] else None
        shot("/admin", "console-overview")
        shot("/admin/schedules", "console-schedules")
        shot("/admin/runs", "console-runs")
        if latest is not None:
            shot(f"/admin/runs/{latest}", "console-run")
        shot("/admin/preview?edition=morning", "console-preview")
        for path, name in (("/admin/subscribers", "console-subscribers"), ("/admin/channels", "console-channels"),
                           ("/admin/sources", "console-sources"), ("/admin/trending", "console-trending")):
            shot(path, name)
        shot("/admin/preview/email.html?edition=morning", "digest-desktop", EMAIL_DESKTOP)
        shot("/admin/preview/email.html?edition=morning", "digest-mobile", MOBILE)
    return 0


def browser_cookies(browser) -> dict:  # noqa: ANN001
    return {c["name"]: c["value"] for c in browser.get_cookies()}


if __name__ == "__main__":
    sys.exit(main())
