"""The digest's images in a real browser: headless Chromium (Debian's chromium +
chromium-driver) draws the rendered email at phone and desktop widths, and the boxes are
measured with getBoundingClientRect.

Images are blocked (as many mail clients do by default): the boxes must hold from the
width/height attributes and CSS alone, so what is measured is the layout, not a photo.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from distributor.render.email import fill_html, render_variant
from tests.conftest import REQUIRE_SERVICES
from tests.fakes.browser import INSTALL_HINT, chromium, find_binaries
from tests.unit.test_render_email import HAWKS, NOW, RUN_ID, SEED, fixture_edition

if find_binaries() is None:
    message = f"CHROMIUM NOT AVAILABLE ({INSTALL_HINT}): email browser test NOT RUN"
    if REQUIRE_SERVICES or os.environ.get("DISTRIBUTOR_REQUIRE_BROWSER") == "1":
        pytest.fail(message, pytrace=False)
    pytest.skip(message, allow_module_level=True)

# Content widths (padding left out) of the lead's cell, a card's cell and the images.
MEASURE = """
const content = e => {
  const s = getComputedStyle(e);
  return e.getBoundingClientRect().width - parseFloat(s.paddingLeft) - parseFloat(s.paddingRight);
};
const box = e => e ? {width: e.getBoundingClientRect().width, height: e.getBoundingClientRect().height} : null;
return {
  lead: content(document.querySelector('td.lead')),
  card: content(document.querySelector('td.card')),
  hero: box(document.querySelector('img.hero')),
  lead_thumb: box(document.querySelector('td.lead img.thumb')),
  page: document.documentElement.scrollWidth,
};
"""


@pytest.fixture(scope="module")
def browser():
    with chromium(700, 900) as driver:
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": ["http://*", "https://*"]})
        yield driver


def measure(browser, settings, tmp_path: Path, width: int, **lead_image) -> dict:  # noqa: ANN001
    """Render the fixture issue with the lead's image declared as `lead_image`, draw it
    `width` CSS pixels wide, and measure."""
    lead = replace(SEED, **lead_image)
    edition = fixture_edition(trending=(lead, HAWKS))
    page = tmp_path / f"digest-{width}.html"
    page.write_text(fill_html(render_variant(settings, edition, sections=None, run_id=RUN_ID, now=NOW)), "utf-8")
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride", {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 500}
    )
    browser.get(page.as_uri())
    return browser.execute_script(MEASURE)


@pytest.mark.parametrize("width", [600, 610, 620, 375])
def test_a_full_width_hero_is_exactly_as_wide_as_the_text(browser, settings, tmp_path, width):
    # Between 584 and 620 px the column loses 8 px of padding each side: a hero kept at
    # its 552 px attribute was up to 16 px narrower than the text under it.
    found = measure(browser, settings, tmp_path, width)
    assert found["page"] == width
    assert found["lead"] == found["card"]
    assert found["hero"]["width"] == found["lead"]
    assert abs(found["hero"]["height"] - found["hero"]["width"] * 311 / 552) <= 1  # the 16:9 box


@pytest.mark.parametrize("width", [600, 375])
def test_a_hero_in_its_own_proportions_fills_the_text_column(browser, settings, tmp_path, width):
    found = measure(browser, settings, tmp_path, width, image_width=1200, image_height=800)
    assert found["hero"]["width"] == found["lead"]
    assert abs(found["hero"]["height"] - found["hero"]["width"] * 800 / 1200) <= 1


@pytest.mark.parametrize(("width", "drawn"), [(600, 400), (610, 400), (375, 343)])
def test_a_narrower_hero_keeps_its_size_and_only_shrinks_to_fit(browser, settings, tmp_path, width, drawn):
    found = measure(browser, settings, tmp_path, width, image_width=400, image_height=300)
    # Not wider than the screen either: a 400 px image once stretched the whole layout
    # (and the phone's viewport) to 432 px instead of shrinking.
    assert found["page"] == width
    assert found["hero"]["width"] == drawn <= found["lead"]
    assert abs(found["hero"]["height"] - drawn * 300 / 400) <= 1


@pytest.mark.parametrize(("width", "drawn"), [(700, 120), (375, 80)])
def test_a_small_lead_image_is_a_thumbnail_beside_the_text(browser, settings, tmp_path, width, drawn):
    found = measure(browser, settings, tmp_path, width, image_width=200, image_height=112)
    assert found["hero"] is None
    # Its alt text (the caption) does not stretch the box on narrow screens.
    assert found["lead_thumb"]["width"] == drawn
    assert abs(found["lead_thumb"]["height"] - drawn * 112 / 200) <= 1
