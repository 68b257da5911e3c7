"""The one translation table of the interface: every user-facing label, Chinese and English.

Chinese is the default (the users are Chinese duty officers); English is complete too. A
test checks that every key used in the code is here, in both languages. The labels live in
:mod:`views.labels`, one module per app; add yours to your app's module. A key defined twice
stops the import (two apps must not give one key two meanings).
"""
from __future__ import annotations

from .labels import (
    access,
    alarms,
    analysis,
    board,
    command,
    common,
    drills,
    inventory,
    risk,
    warnings,
)

LANGS = ("zh", "en")


def _merged(*tables: dict[str, tuple[str, str]]) -> dict[str, tuple[str, str]]:
    out: dict[str, tuple[str, str]] = {}
    for table in tables:
        twice = sorted(set(out) & set(table))
        if twice:
            raise ValueError(f"labels defined twice: {twice}")
        out.update(table)
    return out


LABELS: dict[str, tuple[str, str]] = _merged(
    common.LABELS, risk.LABELS, alarms.LABELS, board.LABELS, warnings.LABELS, inventory.LABELS, command.LABELS, analysis.LABELS, access.LABELS, drills.LABELS)


def t(key: str, lang: str = "zh", **fmt) -> str:
    """The label ``key`` in ``lang`` ('zh' or 'en'), formatted with ``fmt``.

    An unknown key returns the key itself (visible in the page, caught by the tests).
    """
    pair = LABELS.get(key)
    if pair is None:
        return key
    text = pair[0] if lang == "zh" else pair[1]
    return text.format(**fmt) if fmt else text


def session_lang(default: str = "zh") -> str:
    """The language of the current page: ``?lang=en|zh`` in its URL, else ``default``."""
    from .urlargs import Args

    value = Args().text("lang")
    return value if value in LANGS else default
