"""The sweep: every concrete view builds on the tiny store and renders, in the console (live
store and hub) and as in a notebook (a read-only store, no hub, no runtime)."""
from __future__ import annotations

import panel as pn
import pytest

from sources.store.snapshot import open_read_only
from views.catalog import build_view, concrete_views

VIEWS = concrete_views()


def test_the_sweep_finds_the_views():
    names = {cls.__name__ for cls in VIEWS}
    assert {"QueryConsole", "PinnedConsole"} <= names, names


@pytest.mark.parametrize("cls", VIEWS, ids=lambda c: c.__name__)
def test_view_renders_in_the_console(runtime, cls):
    view = build_view(cls, runtime.store, hub=runtime.hub, lang="zh")
    model = pn.panel(view).get_root()
    assert model is not None


@pytest.mark.parametrize("cls", VIEWS, ids=lambda c: c.__name__)
def test_view_renders_as_in_a_notebook(tiny_db, cls):
    store = open_read_only(tiny_db)
    try:
        assert store.read_only
        view = build_view(cls, store, hub=None, lang="en")  # English here, Chinese above
        assert pn.panel(view).get_root() is not None
    finally:
        store.close()
