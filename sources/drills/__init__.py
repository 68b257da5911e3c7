"""Exercises (应急演练): the drill desk (:mod:`.desk`) and the mark every exercise item bears."""
from __future__ import annotations

#: What the title of an exercise's warning, incident or event starts with, wherever it shows,
#: so that nobody takes it for real.
DRILL_MARK = "【演练】"


def marked(title: str | None) -> str:
    """``title`` with the exercise mark in front (once)."""
    text = "" if title is None else str(title)
    return text if text.startswith(DRILL_MARK) else DRILL_MARK + text
