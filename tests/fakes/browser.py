"""Headless Chromium from Debian's packages (chromium + chromium-driver) through selenium.

Used by the console's browser test and by `make screenshots`. Browsers that tools download
at run time are not available here, so only the system's binaries are used; when they
are missing the caller skips loudly (tests) or stops with the apt command (screenshots).
"""

from __future__ import annotations

import shutil
import tempfile
from contextlib import contextmanager
from typing import Iterator

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
DRIVER_CANDIDATES = ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver")
INSTALL_HINT = "apt-get install -y chromium chromium-driver"


def find_binaries() -> tuple[str, str] | None:
    """(chromium, chromedriver) paths, or None when either is missing."""
    browser = next((p for p in CHROMIUM_CANDIDATES if shutil.which(p)), None) or shutil.which("chromium")
    driver = next((p for p in DRIVER_CANDIDATES if shutil.which(p)), None) or shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


@contextmanager
def chromium(width: int = 1280, height: int = 900) -> Iterator["object"]:
    """A selenium WebDriver on headless Chromium with a fresh profile."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    found = find_binaries()
    if found is None:
        raise RuntimeError(f"Chromium or chromedriver is not installed ({INSTALL_HINT})")
    browser, driver_path = found
    profile = tempfile.mkdtemp(prefix="distributor-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    # This machine has no network but loopback: without the background-networking flags
    # Chromium keeps trying Google's hosts at start.
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-extensions", "--hide-scrollbars", f"--user-data-dir={profile}", f"--window-size={width},{height}",
        "--force-device-scale-factor=1", "--lang=en-GB",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        driver.set_page_load_timeout(60)
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def full_page_screenshot(driver, path: str, width: int) -> None:  # noqa: ANN001
    """A PNG of the whole page at `width` CSS pixels, however tall (Chrome DevTools'
    captureBeyondViewport: resizing a headless window stops at the screen's height)."""
    import base64

    height = driver.execute_script(
        "return Math.max(document.body.scrollHeight, document.documentElement.scrollHeight)"
    )
    height = min(max(int(height), 400), 8000)
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 500}
    )
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {"format": "png", "captureBeyondViewport": True, "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}},
    )
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    with open(path, "wb") as out:
        out.write(base64.b64decode(shot["data"]))
