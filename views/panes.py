"""HTML and Markdown panes for live views: an update sends the text, not the stylesheets.

Panel's markup panes re-send every property on each change of ``object``; the first time
after a page is rendered, that includes freshly made ``ImportedStyleSheet`` models. Bokeh
then walks every model of the document to find new references (90–300 ms on a wall page of
a few thousand models, all of it on the one server thread every page shares) and the
browser re-attaches the stylesheets before it shows the new text. These subclasses drop the
stylesheets from an update when they say the same thing as the ones already shown, so a new
warning or KPI costs a text patch (``tests/views/test_panes.py`` checks that no stylesheet is
re-sent and no document walk happens; ``bench/warning_push.py`` measures the effect).
"""
from __future__ import annotations

from typing import Any

import panel as pn
from bokeh.models import ImportedStyleSheet


def _sheet_key(sheet: Any) -> Any:
    if isinstance(sheet, str):
        return sheet
    if isinstance(sheet, ImportedStyleSheet):
        return ("url", sheet.url)
    return ("model", getattr(sheet, "id", id(sheet)))


def same_stylesheets(new: list | None, old: list | None) -> bool:
    """True when two stylesheet lists load the same CSS (same texts, same URLs, same order)."""
    return [_sheet_key(s) for s in new or []] == [_sheet_key(s) for s in old or []]


class _TextOnlyUpdate:
    """Mixin for ``HTMLBasePane`` subclasses: keep the shown stylesheets when unchanged."""

    def _update(self, ref: str, model) -> None:
        if getattr(self, "enable_streaming", False):
            return super()._update(ref, model)
        props = self._get_properties(model.document)
        if "stylesheets" in props and same_stylesheets(props["stylesheets"], model.stylesheets):
            del props["stylesheets"]
        model.update(**props)


class HTML(_TextOnlyUpdate, pn.pane.HTML):
    """``pn.pane.HTML`` for content that changes while the page is open."""


class Markdown(_TextOnlyUpdate, pn.pane.Markdown):
    """``pn.pane.Markdown`` for content that changes while the page is open."""


class Alert(_TextOnlyUpdate, pn.pane.Alert):
    """``pn.pane.Alert`` for messages that change while the page is open."""
