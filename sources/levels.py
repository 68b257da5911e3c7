"""Levels and their colours, once: warnings, risk grades, alarms, CAP severities.

China's four-colour convention is shared by warning signals (预警信号, blue → red, IV → I)
and the enterprise safety risk grades (安全风险四色, 低 blue → 重大 red). Alarms of the
installations use three of the colours. Every module that orders, counts or colours levels
imports them from here.
"""
from __future__ import annotations

#: The four levels, least severe first (蓝 黄 橙 红: IV, III, II, I).
LEVELS: tuple[str, ...] = ("blue", "yellow", "orange", "red")
#: Most severe first: the order of legends, risk grades and the KPI strip.
BY_SEVERITY: tuple[str, ...] = tuple(reversed(LEVELS))
#: Risk grades (重大 较大 一般 低) in the point layer's category order (0 = red).
RISK_GRADES: tuple[str, ...] = BY_SEVERITY
#: Alarm levels: hi-hi / lo-lo red, hi / lo orange, stale yellow.
ALARM_LEVELS: tuple[str, ...] = ("red", "orange", "yellow")

#: Rank of a level (0 = least severe); unknown levels rank below all.
RANK: dict[str, int] = {lvl: i for i, lvl in enumerate(LEVELS)}
#: Sort key of alarm severity (3 = red) used by the queues.
ALARM_SEVERITY: dict[str, int] = {"red": 3, "orange": 2, "yellow": 1}

#: The official colours of the four grades (fills of the risk map, warning areas, badges).
COLORS: dict[str, str] = {"red": "#e60012", "orange": "#ff8c00", "yellow": "#ffd700",
                          "blue": "#1e6fff"}
#: Text that reads on each official colour at WCAG AA (≥ 4.5:1, ``tests/views/test_contrast``):
#: white on red (4.8:1); near-black on orange (7.5:1) and yellow (12.4:1); black on the blue
#: (4.8:1: white on #1e6fff is only 4.4:1).
TEXT_ON: dict[str, str] = {"red": "#ffffff", "orange": "#1a1a1a", "yellow": "#1a1a1a",
                           "blue": "#000000"}
#: "No level" on light pages.
NONE_COLOR = "#d9dee6"
#: The same four colours, a step lighter, for the dark video wall (read from ten metres);
#: each reads on the wall's background (#0b1220) at ≥ 5.3:1, as text or as a fill.
WALL_COLORS: dict[str, str] = {"red": "#ff3b3b", "orange": "#ff9f1c", "yellow": "#ffd60a",
                               "blue": "#3a86ff"}
#: Text on the wall's colours: the wall's background colour (≥ 5.3:1 on each).
WALL_TEXT_ON: dict[str, str] = dict.fromkeys(WALL_COLORS, "#0b1220")

#: CAP 1.2 ``<severity>`` of each warning level.
CAP_SEVERITY: dict[str, str] = {"blue": "Minor", "yellow": "Moderate", "orange": "Severe",
                                "red": "Extreme"}


def worst(levels) -> str:
    """The most severe of some levels ('none' when none)."""
    ranks = [RANK[lv] for lv in levels if lv in RANK]
    return LEVELS[max(ranks)] if ranks else "none"

