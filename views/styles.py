"""Stylesheets shared by several views, chosen to read at WCAG 2.1 AA (≥ 4.5:1 for text).

Bokeh's buttons put white text on its Bootstrap 3 colours: on ``warning`` (#f0ad4e) that
is 1.9:1, on ``success`` (#5cb85c) 2.5:1, on ``danger`` (#d9534f) 4.0:1. ``ACTION_CSS``,
given to a button's ``stylesheets``, keeps each meaning (orange: handle, green: done or
approve, red: irreversible) in colours that pass: dark text on the orange, and darker green
and red under white text (``tests/views/test_contrast.py`` measures every pair).
"""
from __future__ import annotations

from sources.levels import COLORS, TEXT_ON

#: Text and fill of the action buttons: (text, fill, hover fill, active fill, border).
ACTION_COLORS: dict[str, tuple[str, str, str, str, str]] = {
    "warning": ("#1a1a1a", "#f0ad4e", "#eea43b", "#ed9c28", "#d58512"),
    "success": ("#ffffff", "#287a33", "#236b2d", "#1e5d27", "#1e5d27"),
    "danger": ("#ffffff", "#c9302c", "#b52b27", "#a72a25", "#a72a25"),
}

ACTION_CSS = "\n".join(
    f":host {{ --{kind}: {fill}; --{kind}-border: {border}; --{kind}-hover: {hover}; "
    f"--{kind}-hover-border: {border}; --{kind}-active: {active}; "
    f"--{kind}-active-border: {border}; }}\n"
    f".bk-btn-{kind}, .bk-btn-{kind}:hover, .bk-btn-{kind}.bk-active {{ color: {text}; }}"
    for kind, (text, fill, hover, active, border) in ACTION_COLORS.items())


def level_badges(selector: str) -> str:
    """CSS giving ``{selector}-{level}`` badges the official fill and text that reads on it.

    ``selector`` is a class prefix (``.lvl`` gives ``.lvl-red``, ``.lvl-orange``, ...). The
    badge shows the level's word too: the colour is never the only carrier of the level.
    """
    return "\n".join(f"{selector}-{lv} {{ background: {COLORS[lv]}; color: {TEXT_ON[lv]}; }}"
                     for lv in COLORS)
