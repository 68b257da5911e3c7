"""The sweep: every concrete view builds on the tiny store and renders something, in the
console (live store and hub) and as in a notebook (a read-only store, no hub, no console)."""
from __future__ import annotations

import pytest

from sources.store.snapshot import open_read_only
from tests.conftest import rendered
from views.catalog import build_view, concrete_views

VIEWS = concrete_views()


def test_the_sweep_finds_the_views():
    names = {cls.__name__ for cls in VIEWS}
    assert {"QueryConsole", "PinnedConsole", "SituationBoard", "RiskPointMap",
            "AlarmQueue"} <= names, names


def _shows_something(page: dict, cls) -> None:
    # a view shows data (rows of a table or a glyph) or at least a sentence of text; a
    # banner that only speaks during a drill shows nothing on a store with none
    if getattr(cls, "empty_when_idle", False):
        assert page["text"].strip() == "", (cls.__name__, page)
        return
    assert page["rows"] > 0 or len(page["text"]) >= 20, (cls.__name__, page)


@pytest.mark.parametrize("cls", VIEWS, ids=lambda c: c.__name__)
def test_view_renders_in_the_console(store, cls):
    from sources.hub import Hub

    view = build_view(cls, store, hub=Hub(), lang="zh")
    _shows_something(rendered(view), cls)


@pytest.mark.parametrize("cls", VIEWS, ids=lambda c: c.__name__)
def test_view_renders_as_in_a_notebook(tiny_db, cls):
    store = open_read_only(tiny_db)
    try:
        assert store.read_only
        view = build_view(cls, store, hub=None, lang="en")  # English here, Chinese above
        _shows_something(rendered(view), cls)
    finally:
        store.close()
