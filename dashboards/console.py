"""``/console``: the analysts' query console; ``/pinned``: the consoles they pinned.

Every query runs in the console's sandbox processes (:mod:`sources.analysis.sandbox`) on a
snapshot; *Write snapshot* uses the console's snapshot writer: notebooks in other processes
read its snapshots (DuckDB lets no other process open the file the console holds). Saving and
pinning follow the user's rights; every query is in the audit log.
"""
from __future__ import annotations

import functools
import threading
from typing import ClassVar

import panel as pn

from views.query_console import PinnedConsole, QueryConsole
from views.result_chart import warm as warm_maps
from views.urlargs import Args

from .base import Dashboard
from .theme import page

EXAMPLE_CELLS = [
    {"title": "县区风险点（按城市）",
     "sql": "SELECT c.city, count(*) AS risk_points\nFROM risk_points r "
            "JOIN counties c USING (county_code)\nGROUP BY 1 ORDER BY 2 DESC"},
    {"title": "重大风险点分布",
     "sql": "SELECT lon, lat, risk_level FROM risk_points WHERE risk_level IN ('red', 'orange')"},
]


@functools.cache
def _warm_maps_once() -> None:
    """Compile the map kernels once per process, when a console page is first served.

    Not at start: numba holds the GIL for seconds, which pages that never draw a result map
    (and the other apps' latency) should not pay for. The JIT cache is process-wide, hence
    a once-per-process guard.
    """
    threading.Thread(target=warm_maps, name="warm-console-maps", daemon=True).start()


def rights(guard) -> dict:
    """What the page's user may do with saved consoles: owner name, pin right, admin."""
    return {"user": guard.name, "can_pin": bool(guard.may("console.pin")),
            "is_admin": bool(guard.may("console.overwrite_any"))}


class QueryConsolePage(Dashboard):
    """The query console: notebook-like read-only SQL cells over the live store."""

    route: ClassVar[str] = "console"
    title_key: ClassVar[str] = "app.console"
    description_key: ClassVar[str] = "app.console.desc"
    order: ClassVar[int] = 60

    def layout(self):
        doc = pn.state.curdoc
        if doc is not None and doc.session_context is not None:
            _warm_maps_once()
        name = Args().text("open")
        console = QueryConsole(source=self.console.analysis, lang=self.lang, guard=self.guard,
                               cells=EXAMPLE_CELLS[:1], snapshots=self.console.snapshots,
                               sandbox=self.console.sandbox, **rights(self.guard))
        if name:
            console.open(name)
        body = pn.Column(console, sizing_mode="stretch_both", scroll=True,
                         css_classes=["console-main"], margin=(8, 16))
        return page(self.t("app.console"), body, lang=self.lang, route=self.route)


class PinnedPage(Dashboard):
    """The pinned analyses: every pinned console, run when the page opens."""

    route: ClassVar[str] = "pinned"
    title_key: ClassVar[str] = "app.pinned"
    description_key: ClassVar[str] = "app.pinned.desc"
    order: ClassVar[int] = 61

    def layout(self):
        view = PinnedConsole(source=self.console.analysis, lang=self.lang, guard=self.guard,
                             sandbox=self.console.sandbox, snapshots=self.console.snapshots)
        body = pn.Column(view, sizing_mode="stretch_both", scroll=True, margin=(8, 16))
        return page(self.t("app.pinned"), body, lang=self.lang, route=self.route)
