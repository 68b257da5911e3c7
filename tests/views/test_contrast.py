"""Colour pairs of the console at WCAG 2.1 AA, computed with the WCAG formula itself.

Relative luminance and contrast ratio as WCAG 2.1 defines them (success criteria 1.4.3 and
1.4.11): text needs 4.5:1 against what is behind it, graphics that carry meaning 3:1. The
official four colours stay the fills; the text on them is chosen to pass.
"""
from __future__ import annotations

import re

import pytest

from sources.levels import COLORS, TEXT_ON, WALL_COLORS, WALL_TEXT_ON
from views.styles import ACTION_COLORS, level_badges

TEXT = 4.5
GRAPHIC = 3.0
#: Backgrounds of the wall: the page, the KPI cards, the ticker and incident panels.
WALL_BACKGROUNDS = ("#0b1220", "#111c2e", "#0e1728")


def luminance(colour: str) -> float:
    """WCAG 2.1 relative luminance of an sRGB ``#rrggbb``."""
    h = colour.lstrip("#")
    channels = [int(h[i:i + 2], 16) / 255 for i in (0, 2, 4)]
    r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    """WCAG 2.1 contrast ratio (1 to 21) of two colours."""
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_the_formula_against_wcag_reference_values():
    assert contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)  # the classic miss
    # what the audit found: white on the official orange and blue, on Bokeh's buttons
    assert contrast("#ffffff", "#ff8c00") == pytest.approx(2.33, abs=0.01)
    assert contrast("#ffffff", "#1e6fff") == pytest.approx(4.40, abs=0.01)
    assert contrast("#ffffff", "#f0ad4e") == pytest.approx(1.94, abs=0.01)
    assert contrast("#ffffff", "#5cb85c") == pytest.approx(2.48, abs=0.01)
    assert contrast("#5d7390", "#0e1728") == pytest.approx(3.69, abs=0.01)


@pytest.mark.parametrize("level", list(COLORS))
def test_text_on_the_official_colours(level):
    assert contrast(TEXT_ON[level], COLORS[level]) >= TEXT, (level, TEXT_ON[level])


@pytest.mark.parametrize("level", list(WALL_COLORS))
def test_the_wall_colours_as_text_and_fills(level):
    for bg in WALL_BACKGROUNDS:  # the KPI numbers are written in them
        assert contrast(WALL_COLORS[level], bg) >= TEXT, (level, bg)
    assert contrast(WALL_TEXT_ON[level], WALL_COLORS[level]) >= TEXT, level


@pytest.mark.parametrize("kind", list(ACTION_COLORS))
def test_action_buttons(kind):
    text, *fills = ACTION_COLORS[kind][:4]
    for fill in fills:  # at rest, hovered, pressed
        assert contrast(text, fill) >= TEXT, (kind, fill)


def pairs(css: str) -> list[tuple[str, str]]:
    """(background, color) of each rule of a stylesheet that sets both."""
    out = []
    for body in re.findall(r"\{([^}]*)\}", css):
        bg = re.search(r"background(?:-color)?:\s*(#[0-9a-fA-F]{6})", body)
        fg = re.search(r"(?<![-\w])color:\s*(#[0-9a-fA-F]{6})", body)
        if bg and fg:
            out.append((bg.group(1), fg.group(1)))
    return out


def test_level_badges_and_risk_toggles():
    from views.risk_map import _grade_css

    css = level_badges(".lvl") + "".join(_grade_css(g) for g in COLORS)
    found = pairs(css)
    assert len(found) == 2 * len(COLORS), found
    for bg, fg in found:
        assert contrast(fg, bg) >= TEXT, (fg, bg)


@pytest.mark.parametrize("fg,bg,where", [
    ("#ffffff", "#0f2747", "console header: brand"),
    ("#9ec5ff", "#0f2747", "console header: page title (h1)"),
    ("#d5e4ff", "#0f2747", "console header: navigation"),
    ("#4b5563", "#ffffff", "risk grade toggle switched off"),
    ("#c9d6e3", "#0b1220", "wall legend"),
    ("#8aa0b8", "#0b1220", "wall legend: layer switched off"),
    ("#8aa0b8", "#0e1728", "wall: no incident / empty ticker"),
    ("#0b1220", "#8aa0b8", "wall ticker: event with no level"),
    ("#9fb3c8", "#111c2e", "wall KPI labels"),
])
def test_interface_text(fg, bg, where):
    assert contrast(fg, bg) >= TEXT, where


@pytest.mark.parametrize("level", list(WALL_COLORS))
def test_risk_density_reads_on_the_wall(level):
    # the density layer is drawn in the wall colours: graphics need 3:1 on the background
    assert contrast(WALL_COLORS[level], "#0b1220") >= GRAPHIC
