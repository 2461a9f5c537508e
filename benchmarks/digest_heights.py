"""Screenshots and page heights of the shipped sample's morning digest, as readers see it.

Ingests config/samples/newsarena.xml into a throwaway SQLite database (as the first cycle
does), builds the morning issue, renders its all-sections variant, and has headless
Chromium (Debian's chromium + chromium-driver) draw it at 600 and 375 px wide, light and
dark, images on and off. There is no network here: "images on" points every image at a
local grey 16:9 SVG so it keeps the site's crop; "images off" gives each image an address
that does not load, as a client that blocks images shows it.

    PYTHONPATH=. .venv/bin/python benchmarks/digest_heights.py [OUT_DIR]

Prints one line per screenshot with its height in CSS pixels, and a JSON summary.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="1600" height="900">'
    '<rect width="1600" height="900" fill="#8a9099"/></svg>'
)


def render_sample(work: Path) -> tuple[str, int]:
    from distributor.cycle import first_cycle
    from distributor.editions import build_edition
    from distributor.render.email import fill_html, render_variant
    from distributor.settings import PathsConfig, Settings, load_settings
    from distributor.store import Store

    for key in ("DATABASE_URL", "REDIS_URL", "SMTP_URL", "TELEGRAM_BOT_TOKEN", "PUBLIC_BASE_URL"):
        os.environ.pop(key, None)
    shipped = load_settings(ROOT / "config" / "distributor.toml")
    settings = Settings(
        shipped.file.model_copy(update={"paths": PathsConfig(var_dir=str(work / "var"))}), shipped.env, shipped.config_path
    )
    store = Store(settings.database_url)
    store.migrate()
    now = datetime.now(timezone.utc)
    first_cycle(settings, store, now)
    issue = build_edition(settings, store, "morning", at=now)
    variant = render_variant(settings, issue, sections=None, run_id=1, now=now)
    return fill_html(variant, None), variant.count


def main() -> int:
    from tests.fakes.browser import chromium, full_page_screenshot

    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="digest-shots-"))
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="digest-heights-"))
    cwd = os.getcwd()
    os.chdir(work)
    try:
        html, count = render_sample(work)
    finally:
        os.chdir(cwd)
    (out / "placeholder.svg").write_text(SVG, encoding="utf-8")
    on = re.sub(r'src="https?://[^"]+"', f'src="{(out / "placeholder.svg").as_uri()}"', html)
    off = re.sub(r'src="https?://[^"]+"', f'src="{(out / "missing.png").as_uri()}"', html)
    pages = {"on": out / "digest-images-on.html", "off": out / "digest-images-off.html"}
    pages["on"].write_text(on, encoding="utf-8")
    pages["off"].write_text(off, encoding="utf-8")
    heights = {}
    with chromium(600, 900) as browser:
        for images, page in pages.items():
            for scheme in ("light", "dark"):
                for width in (600, 375):
                    browser.execute_cdp_cmd(
                        "Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": scheme}]}
                    )
                    browser.execute_cdp_cmd(
                        "Emulation.setDeviceMetricsOverride",
                        {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 500},
                    )
                    browser.get(page.as_uri())
                    height = browser.execute_script(
                        "return Math.max(document.body.scrollHeight, document.documentElement.scrollHeight)"
                    )
                    name = f"digest-{width}-{scheme}-images-{images}"
                    full_page_screenshot(browser, str(out / f"{name}.png"), width)
                    heights[name] = int(height)
                    print(f"{name}: {height} px")
    print(json.dumps({"articles": count, "out": str(out), "heights": heights}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
