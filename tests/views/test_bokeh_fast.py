"""``views.bokeh_fast``: every page serialises the same with Bokeh's answers cached as without,
no instance shares a mutable default with another, and each page passes Bokeh's own checks
(the server skips them per session: ``serve.py`` turns document validation off)."""
from __future__ import annotations

import json
import re
from types import SimpleNamespace

import pytest
from bokeh.core.validation.check import check_integrity
from bokeh.document import Document
from bokeh.models import ColumnDataSource, Div, Line
from panel.io.state import set_curdoc

from views import bokeh_fast

#: (route, URL arguments) of the pages compared: the wall as a wall, every other page as an
#: officer opens it.
PAGES = [("board", {"kiosk": [b"1"]}), ("board", {}), ("risk", {}), ("alarms", {}),
         ("warnings", {}), ("command", {}), ("inventory", {}), ("drills", {}), ("admin", {}),
         ("console", {}), ("", {})]


@pytest.fixture
def stock_bokeh():
    """Bokeh's own methods for the test; the process's state as it was afterwards."""
    was = bokeh_fast.installed()
    bokeh_fast.uninstall()
    yield
    (bokeh_fast.install if was else bokeh_fast.uninstall)()


def page_doc(app, args: dict) -> Document:
    """The document a session of ``app`` gets for a URL with ``args``."""
    doc = Document()
    context = SimpleNamespace(id="test", server_context=None,
                              request=SimpleNamespace(arguments=args, cookies={}, headers={}))
    doc._session_context = lambda: context
    with set_curdoc(doc):
        app().server_doc(doc)
    return doc


_ID = re.compile(r'(?<=[":])(p\d+)(?=")')  # "p1266", and "__ref:p1266" in a tag


def canonical(doc: Document) -> str:
    """The document as the browser receives it, model ids numbered by first appearance; clock
    readings, Panel's object counters (``ClockPane00304``) and random ids masked: two builds
    are a moment and some objects apart."""
    text = json.dumps(doc.to_json(deferred=False), sort_keys=True, ensure_ascii=False)
    ids: dict[str, str] = {}
    text = _ID.sub(lambda m: f"m{ids.setdefault(m.group(1), len(ids))}", text)
    text = re.sub(r'("name": "[A-Za-z_]+)\d{5,}"', r'\1N"', text)
    text = re.sub(r'"[0-9a-f]{32}"', '"U"', text)  # uuid4().hex of Panel's tables
    text = re.sub(r"\b1[78]\d{8}(\d{3})?(\.\d+)?\b", "T", text)  # epoch s or ms, now
    text = re.sub(r"\d{4}-\d\d-\d\d", "D", text)  # a page built just after midnight
    return re.sub(r"\d\d:\d\d(:\d\d)?|\d+(\.\d+)? ?(s|ms|秒)\b", "T", text)  # a minute on


def apps(console) -> dict:
    import dashboards

    return {cls.route: cls.app(console) for cls in dashboards.discover()}


def test_every_page_serialises_the_same_with_the_caches(console, stock_bokeh):
    found = apps(console)
    assert {route for route, _ in PAGES} <= set(found), sorted(found)
    before = {(route, i): canonical(page_doc(found[route], args))
              for i, (route, args) in enumerate(PAGES)}
    assert bokeh_fast.install()
    after = {(route, i): canonical(page_doc(found[route], args))
             for i, (route, args) in enumerate(PAGES)}
    for key, text in before.items():
        assert len(text) > 2_000, key  # a page, not an empty document
        if after[key] != text:  # name the first difference, not two 100 kB strings
            at = next(i for i, (a, b) in enumerate(zip(text, after[key], strict=False)) if a != b)
            pytest.fail(f"{key}: differs at {at}: {text[at - 100:at + 400]!r} vs "
                        f"{after[key][at - 100:at + 400]!r}")


def test_no_instance_shares_a_mutable_default_with_another(stock_bokeh):
    assert bokeh_fast.install()
    a, b = Line(), Line()
    assert a.line_dash == b.line_dash == [] and a.line_dash is not b.line_dash
    a.line_dash.append(4)  # Bokeh's own list: it belongs to a alone
    assert b.line_dash == [] and Line().line_dash == []
    assert a.x is not b.x  # a Field is made for each read, as Bokeh does
    s, t = ColumnDataSource(), ColumnDataSource()
    s.data["x"] = [1]
    assert t.data == {} and ColumnDataSource().data == {}
    assert Div().text == "" and Div(text="<b>x</b>").text == "<b>x</b>"


def test_a_theme_still_decides_what_it_overrides(stock_bokeh):
    from bokeh.themes import Theme

    assert bokeh_fast.install()
    doc = Document()
    stock = Div.margin.class_default(Div)
    plain = Div()
    assert plain.margin == stock == Div().margin  # the class's default, now cached
    themed = Div()
    doc.add_root(themed)
    doc.theme = Theme(json={"attrs": {"Div": {"margin": 7, "text": "themed"}}})
    assert themed.margin == 7 and themed.text == "themed"
    assert Div().margin == stock and Div().text == ""  # the cache is not the theme's
    themed.text = "set"
    assert themed.text == "set"


def test_uninstall_puts_bokehs_own_methods_back(stock_bokeh):
    from bokeh.core.has_props import HasProps
    from bokeh.core.property.descriptors import PropertyDescriptor

    own = (PropertyDescriptor.__dict__["instance_default"], HasProps.__dict__["themed_values"])
    assert bokeh_fast.install() and bokeh_fast.install()  # once; a second call is a no-op
    assert PropertyDescriptor.__dict__["instance_default"] is not own[0]
    from bokeh.settings import settings

    assert settings.simple_ids.get_value_with_provenance()[1].name == "USER_SET"
    bokeh_fast.uninstall()
    assert (PropertyDescriptor.__dict__["instance_default"],
            HasProps.__dict__["themed_values"]) == own
    assert settings.simple_ids.get_value_with_provenance()[1].name != "USER_SET"


def test_every_page_passes_bokehs_checks(console):
    """The server skips Bokeh's validation per session; every page is checked here once."""
    found = apps(console)
    for route, args in PAGES:
        doc = page_doc(found[route], args)
        issues = check_integrity(list(doc.models))
        assert not issues.error, (route, args, issues.error)
        assert not issues.warning, (route, args, issues.warning)
