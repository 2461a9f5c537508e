"""Colour contrast of the email's text, light and dark, against WCAG 2.1 AA (4.5:1 for
body text; headings and bold 18px+ text need 3:1, but we hold everything to 4.5).

Colours are read from templates/email/styles.css, so a change there is checked here."""

from __future__ import annotations

import re

import pytest

from distributor.render.email import TEMPLATE_DIR

# Comments left out: a comment before a rule is not part of its selector.
CSS = re.sub(r"/\*.*?\*/", "", (TEMPLATE_DIR / "email" / "styles.css").read_text(encoding="utf-8"), flags=re.DOTALL)
LIGHT, DARK = CSS.split("@media (prefers-color-scheme: dark)", 1)


def declared(block: str, selector: str, prop: str) -> str:
    """The value of `prop` in the first rule of `block` whose selector list has `selector`."""
    for selectors, body in re.findall(r"([^{}]+)\{([^{}]*)\}", block):
        if selector in [s.strip() for s in selectors.split(",")]:
            found = re.search(rf"(?:^|;)\s*{re.escape(prop)}\s*:\s*(#[0-9a-fA-F]{{6}})", body)
            if found:
                return found.group(1)
    raise AssertionError(f"{selector} has no {prop}")


def luminance(colour: str) -> float:
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


PAGE, FOOTER = declared(LIGHT, ".container", "background-color"), declared(LIGHT, ".footer", "background-color")
DARK_PAGE, DARK_FOOTER = declared(DARK, ".container", "background-color"), declared(DARK, ".footer", "background-color")

PAIRS = [
    ("light link", declared(LIGHT, "a", "color"), PAGE),
    ("light brand", declared(LIGHT, ".brand", "color"), PAGE),
    ("light edition line", declared(LIGHT, ".edition", "color"), PAGE),
    ("light headline", declared(LIGHT, ".headline a", "color"), PAGE),
    ("light standfirst", declared(LIGHT, ".standfirst", "color"), PAGE),
    ("light kicker", declared(LIGHT, ".kicker", "color"), PAGE),
    ("light meta", declared(LIGHT, ".meta", "color"), PAGE),
    ("light rank", declared(LIGHT, ".rank", "color"), PAGE),
    ("light section title", declared(LIGHT, ".section-title h2", "color"), PAGE),
    ("light updated badge", declared(LIGHT, ".updated", "color"), declared(LIGHT, ".updated", "background-color")),
    ("light footer", declared(LIGHT, ".footer", "color"), FOOTER),
    ("light footer link", declared(LIGHT, ".footer a", "color"), FOOTER),
    ("light image alt", declared(LIGHT, ".thumb", "color"), declared(LIGHT, ".thumb", "background-color")),
    ("dark headline", declared(DARK, ".headline a", "color"), DARK_PAGE),
    ("dark standfirst", declared(DARK, ".standfirst", "color"), DARK_PAGE),
    ("dark meta", declared(DARK, ".meta", "color"), DARK_PAGE),
    ("dark brand", declared(DARK, ".brand", "color"), DARK_PAGE),
    ("dark rank", declared(DARK, ".rank", "color"), DARK_PAGE),
    ("dark footer", declared(DARK, ".footer", "color"), DARK_FOOTER),
    ("dark footer link", declared(DARK, ".footer a", "color"), DARK_FOOTER),
    ("dark image alt", declared(DARK, ".thumb", "color"), declared(DARK, ".thumb", "background-color")),
]


@pytest.mark.parametrize(("what", "fg", "bg"), PAIRS, ids=[p[0] for p in PAIRS])
def test_text_meets_aa_contrast(what, fg, bg):
    assert contrast(fg, bg) >= 4.5, f"{what}: {fg} on {bg} is {contrast(fg, bg):.2f}:1"
