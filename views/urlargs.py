"""The page's URL arguments (``?kiosk=1&rotate=60``), decoded and checked in one place.

A wall is configured by its URL, typed by hand or pasted into a kiosk: every value is
validated here, clamped to what the page can honour, and a value that cannot be used is
reported (:class:`Args.problems`) instead of raising — a bad URL never shows a traceback.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import panel as pn

TRUE = ("1", "true", "yes", "on")


class Args:
    """The URL arguments of one page (``pn.state.session_args`` unless given)."""

    def __init__(self, raw: Mapping[str, list] | None = None):
        if raw is None:
            raw = getattr(pn.state, "session_args", None) or {}
        self._raw = raw
        self.problems: list[tuple[str, str, str]] = []  # (name, value given, what was used)

    def text(self, name: str, default: str = "") -> str:
        """The first value of ``name`` as text ('' when absent)."""
        values = self._raw.get(name) or [b""]
        value = values[0]
        if isinstance(value, bytes):
            value = value.decode("utf-8", errors="replace")
        return str(value) if value else default

    def flag(self, name: str) -> bool:
        """True for ``1``, ``true``, ``yes`` or ``on``."""
        return self.text(name).strip().lower() in TRUE

    def number(self, name: str, default: float, *, lo: float, hi: float,
               zero: bool = False) -> float:
        """A finite number clamped to ``[lo, hi]`` (``0`` allowed too with ``zero``).

        Not a number, NaN or infinite → ``default``; out of range → the nearest bound; both
        are recorded in :attr:`problems`.
        """
        given = self.text(name).strip()
        if not given:
            return default
        try:
            value = float(given)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            self.problems.append((name, given, _fmt(default)))
            return default
        if zero and value == 0:
            return 0.0
        clamped = min(max(value, lo), hi)
        if clamped != value:
            self.problems.append((name, given, _fmt(clamped)))
        return clamped

    def choice(self, name: str, choices: Iterable[str], default: str) -> str:
        """One of ``choices`` (``default`` otherwise, recorded when something else was given)."""
        given = self.text(name).strip()
        if not given:
            return default
        if given in choices:
            return given
        self.problems.append((name, given, default))
        return default

    def items(self, name: str, choices: Iterable[str], default: Iterable[str]) -> list[str]:
        """Comma-separated items kept when in ``choices`` (all unknown: ``default``)."""
        given = self.text(name).strip()
        choices = list(choices)
        if not given:
            return list(default)
        parts = [p.strip() for p in given.split(",") if p.strip()]
        kept = [p for p in parts if p in choices]
        if len(kept) != len(parts):
            self.problems.append((name, given, ",".join(kept or default)))
        return kept or list(default)


def _fmt(value: float) -> str:
    return f"{value:g}"
