"""Building every page logs no warning (the browser test ``tests/ui/test_clean_logs_ui.py``
also checks the browser's console; this one runs without a browser)."""
from __future__ import annotations

import logging

import pytest

import dashboards
from tests.conftest import rendered
from views.board import SituationBoard


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_every_page_builds_without_a_logged_warning(console, lang, caplog):
    caplog.set_level(logging.WARNING)
    pages = [cls(console=console, lang=lang).layout() for cls in dashboards.discover()]
    pages.append(SituationBoard(source=console.situation, lang=lang, kiosk=True))  # the wall
    for page in pages:
        assert rendered(page)["models"] > 1
    warned = [f"{r.name}: {r.getMessage()}" for r in caplog.records
              if r.levelno >= logging.WARNING]
    assert not warned, "\n".join(warned)
