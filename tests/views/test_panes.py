"""Live markup panes send only the text on an update, never the stylesheets again."""
from __future__ import annotations

import bokeh.document.models as doc_models
import panel as pn
import pytest
from bokeh.document import Document

from views.panes import HTML, Alert, Markdown, same_stylesheets


@pytest.fixture
def invalidations(monkeypatch):
    """Count Bokeh's whole-document model walks (what made each update cost 90–300 ms)."""
    count = [0]
    original = doc_models.DocumentModelManager.invalidate

    def counted(self):
        count[0] += 1
        return original(self)

    monkeypatch.setattr(doc_models.DocumentModelManager, "invalidate", counted)
    return count


def render(pane):
    doc = Document()
    root = pane.get_root(doc)
    doc.add_root(root)
    changes: list[str] = []
    doc.on_change(lambda event: changes.append(getattr(event, "attr", type(event).__name__)))
    # Panel keeps stylesheet models per document; on a served page the first update after
    # rendering makes new ones (as a page that was rendered in another context does): clear
    # that cache to put the pane in the same state
    pn.state._stylesheets.clear()
    return root, changes


@pytest.mark.parametrize("cls,stock,obj", [
    (HTML, pn.pane.HTML, "<b>{}</b>"),
    (Markdown, pn.pane.Markdown, "**{}**"),
    (Alert, pn.pane.Alert, "{}"),
])
def test_update_sends_the_text_only(cls, stock, obj, invalidations):
    shown = {}
    for kind in (stock, cls):
        pane = kind(obj.format(1), stylesheets=[".x { color: red }"], height=80)
        root, changes = render(pane)
        invalidations[0] = 0
        pane.object = obj.format(2)
        shown[kind] = (changes, invalidations[0], root.text)
    # the stock pane re-sends its stylesheets and walks the document: what we avoid
    assert "stylesheets" in shown[stock][0] and shown[stock][1] >= 1
    changes, walks, text = shown[cls]
    assert changes == ["text"]
    assert walks == 0
    assert text == shown[stock][2]  # the same text reaches the browser


def test_a_real_stylesheet_change_still_reaches_the_page():
    """New stylesheets go out with the next update of the text (as Panel's own pane does)."""
    pane = HTML("<b>1</b>", stylesheets=[".x { color: red }"])
    root, changes = render(pane)
    pane.stylesheets = [".x { color: blue }"]
    pane.object = "<b>2</b>"
    assert "stylesheets" in changes and "text" in changes
    assert ".x { color: blue }" in root.stylesheets
    assert ".x { color: red }" not in root.stylesheets


def test_same_stylesheets_compares_texts_and_urls():
    from bokeh.models import ImportedStyleSheet
    a = ["p { }", ImportedStyleSheet(url="static/a.css")]
    assert same_stylesheets(a, ["p { }", ImportedStyleSheet(url="static/a.css")])
    assert not same_stylesheets(a, ["p { }", ImportedStyleSheet(url="static/b.css")])
    assert not same_stylesheets(a, ["q { }", ImportedStyleSheet(url="static/a.css")])
    assert not same_stylesheets(a, a[:1])
