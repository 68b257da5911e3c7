"""Every dashboard builds its page on the tiny store, in every language, and shows its title,
its content and no untranslated label."""
from __future__ import annotations

import re

import pytest

import dashboards
from tests.conftest import rendered
from views.i18n import LABELS, t

#: What each page shows besides its header (labels of views/i18n.py).
SHOWS = {
    "": (), "board": ("board.title",),
    "warnings": ("warnings.tab.map", "warnings.tab.risk", "warnings.tab.issue", "warnings.tab.log"),
    "risk": ("risk.tab.map", "risk.tab.index", "app.alarms"),
    "alarms": ("alarm.tab.queue", "alarm.tab.report", "alarm.tab.feeds"),
    "inventory": ("inventory.tab.experts", "inventory.tab.draw", "inventory.tab.stock"),
    "console": ("console.run", "console.add", "console.save"),
    "pinned": ("console.no_pinned",),
    "drills": ("drill.start", "drill.past", "drill.review", "drill.err.no_desk"),
    "admin": ("admin.users", "admin.users.none", "audit.title", "audit.verify"),
    "command": ("app.command",),
}


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_every_dashboard_builds(console, lang):
    found = dashboards.discover()
    assert {cls.route for cls in found} >= {"", "board", "warnings", "risk", "inventory",
                                            "alarms", "console", "pinned"}
    for cls in found:
        page = rendered(cls(console=console, lang=lang).layout())
        assert t(cls.title_key, lang) in page["text"], cls
        if cls.route == "":  # the index: a card for every app
            assert all(t(other.title_key, lang) in page["text"] for other in found)
        for key in SHOWS.get(cls.route, ()):
            assert t(key, lang) in page["text"], (cls.route, key)
        if cls.route not in SHOWS:  # a page added later: at least a table or a figure
            assert page["rows"] or page["figures"], cls
        # a label key left in the page means a missing translation
        keys = {k for k in LABELS if re.search(rf"(?<![\w.]){re.escape(k)}(?![\w.])", page["text"])}
        assert not keys, (cls, keys)
        if lang == "en":
            assert re.search(r"[A-Za-z]{4,}", page["text"]), cls
        else:
            assert re.search(r"[\u4e00-\u9fff]", page["text"]), cls
