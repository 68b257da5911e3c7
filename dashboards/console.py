"""``/console``: the analysts' query console; ``/pinned``: the consoles they pinned.

``start_services`` starts the snapshot writer once per process: notebooks in other processes
read its snapshots (DuckDB lets no other process open the file the console holds). It also
builds the pool of sandbox processes that run every console query (stopped with the
console); the pages share it.
"""
from __future__ import annotations

import functools
import os
import threading
from typing import ClassVar

import panel as pn

from sources.analysis.sandbox import Sandbox
from sources.base import Source
from sources.runtime import Runtime
from sources.store.snapshot import SnapshotWriter
from views.query_console import PinnedConsole, QueryConsole
from views.result_chart import warm as warm_maps

from .base import Dashboard
from .theme import page

#: Seconds between snapshots for notebooks (``CONSOLE_SNAPSHOT_S`` overrides; 0 disables).
SNAPSHOT_INTERVAL_S = 300.0

EXAMPLE_CELLS = [
    {"title": "县区风险点（按城市）",
     "sql": "SELECT c.city, count(*) AS risk_points\nFROM risk_points r "
            "JOIN counties c USING (county_code)\nGROUP BY 1 ORDER BY 2 DESC"},
    {"title": "重大风险点分布",
     "sql": "SELECT lon, lat, risk_level FROM risk_points WHERE risk_level IN ('red', 'orange')"},
]


def start_services(runtime: Runtime) -> None:
    """Build the query sandbox and start the periodic snapshot writer (once, at serve start).

    ``CONSOLE_SANDBOX_WORKERS`` (default 2) sandbox processes at most, each query with
    ``CONSOLE_SANDBOX_MEMORY`` (default 512MB) of DuckDB memory.
    """
    sandbox = runtime.shared("query_sandbox", lambda: Sandbox(
        workers=int(os.environ.get("CONSOLE_SANDBOX_WORKERS", 2)),
        memory_limit=os.environ.get("CONSOLE_SANDBOX_MEMORY", "512MB")))
    runtime.on_stop(sandbox.stop)
    interval = float(os.environ.get("CONSOLE_SNAPSHOT_S", SNAPSHOT_INTERVAL_S))
    if interval <= 0 or runtime.store.path == ":memory:" or runtime.store.read_only:
        return
    writer = runtime.shared("snapshot_writer", lambda: SnapshotWriter(
        store=runtime.store, interval_s=interval).start())
    runtime.on_stop(writer.stop)


@functools.cache
def _warm_maps_once() -> None:
    """Compile the map kernels once per process, when a console page is first served.

    Not at start: numba holds the GIL for seconds, which pages that never draw a result map
    (and the other apps' latency) should not pay for. The JIT cache is process-wide, hence
    a once-per-process guard rather than a runtime cache.
    """
    threading.Thread(target=warm_maps, name="warm-console-maps", daemon=True).start()


def _source(runtime: Runtime) -> Source:
    return Source(store=runtime.store, hub=runtime.hub)


def _writer(runtime: Runtime):
    return runtime._cache.get("snapshot_writer")


def _sandbox(runtime: Runtime) -> Sandbox | None:
    return runtime._cache.get("query_sandbox")


def _rights() -> dict:
    """What the signed-in user may do with saved consoles.

    Roles are not wired into the pages yet, so every user keeps the pin right all had before
    saved consoles had owners, and nobody is an administrator; ownership is enforced by user
    name (``pn.state.user``). With roles: ``can_pin`` from the ``pin`` right, ``is_admin``
    from the administrator role.
    """
    return {"user": pn.state.user, "can_pin": True, "is_admin": False}


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
        args = getattr(pn.state, "session_args", None) or {}
        name = (args.get("open", [b""])[0] or b"").decode(errors="replace")
        console = QueryConsole(source=_source(self.runtime), lang=self.lang,
                               cells=EXAMPLE_CELLS[:1], snapshots=_writer(self.runtime),
                               sandbox=_sandbox(self.runtime), **_rights())
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
        view = PinnedConsole(source=_source(self.runtime), lang=self.lang,
                             sandbox=_sandbox(self.runtime), snapshots=_writer(self.runtime))
        body = pn.Column(view, sizing_mode="stretch_both", scroll=True, margin=(8, 16))
        return page(self.t("app.pinned"), body, lang=self.lang, route=self.route)
