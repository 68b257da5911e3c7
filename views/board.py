"""The situation board of the command-hall video wall (综合态势大屏), as one view.

:class:`SituationBoard` lays out the board's views (map, KPI strip, ticker, incident panels,
clock) and keeps them live. Served, a page registers with the console's one
:class:`~views.board_live.BoardLive`, which reads the shared situation at most every
``refresh_s`` after events (a burst, warnings and incidents included, is one read) and
renders what pages share once; the page applies the newest frame on its next tick and sends
its browser only what changed. Freshness and the clock tick in the browser, with a watchdog
that reloads the page only when its connection to the server is lost and the server answers
again. The page ``/board`` (``dashboards.board``) only reads its URL arguments and shows
this view; a notebook shows it on a snapshot (``refresh()`` reads on demand).
"""
from __future__ import annotations

import html
import time
from contextlib import nullcontext
from pathlib import Path
from urllib.parse import urlencode

import panel as pn
import param
from bokeh.document import Document
from panel.io import hold
from panel.io.state import set_curdoc

from sources.situation.kpis import freshness
from sources.situation.source import SituationSource

from .base import View
from .board_live import EVENTS, live_for, statuses_of
from .board_map import LAYERS, BoardMap, layer_columns
from .clock import ClockPane, WallRotation
from .incident_panel import IncidentPanel, incident_html
from .kpi_strip import KpiStrip, kpi_html
from .panes import HTML
from .ticker import Ticker, ticker_rows

CSS = (Path(__file__).with_name("board.css")).read_text(encoding="utf-8")
LAYOUTS = ("full", "map", "kpi", "incidents")
PLAYLIST = ("board", "warnings", "risk", "inventory")
__all__ = ["EVENTS", "LAYOUTS", "PLAYLIST", "SituationBoard"]

TITLE_CSS = """
:host { display: block; height: 100%; }
.title { display: flex; align-items: center; height: 100%; gap: 1.2vw; white-space: nowrap;
  overflow: hidden; }
.title h1, .title h2 { margin: 0; font-size: 3.4vh; font-weight: 700; color: #e6edf7;
  letter-spacing: .08em; }
.title span { font-size: 2vh; color: #9ec5ff; }
"""


class SituationBoard(View):
    """The board of one page: the views, their live updates and the wall-mode layout."""

    view_type = "situation_board"

    source = param.ClassSelector(class_=SituationSource,
                                 doc="The shared situation (one per console).")
    kiosk = param.Boolean(default=False, doc="Wall mode: hide every control.")
    layout = param.Selector(default="full", objects=list(LAYOUTS), doc="Split of the wall.")
    rotate_s = param.Number(default=0, bounds=(0, None), doc="Seconds per page of the playlist.")
    layers = param.List(default=list(LAYERS), doc="Map layers shown at start.")
    ingests = param.List(default=[], doc="The console's feed ingests (freshness, readings/s).")
    refresh_s = param.Number(
        default=0.5, doc="Fastest refresh (seconds): an event after a quiet spell shows at "
                         "once, a burst of events (warnings and incidents too) becomes one "
                         "refresh per period, the held-back one at the period's end.")
    stale_after_s = param.Number(
        default=20.0, bounds=(1, None),
        doc="Seconds without new data before the board says, in red, that it is stale.")
    idle_refresh_s = param.Number(
        default=15.0, doc="Refresh without events (time windows move on: 24 h, expiry).")

    def __init__(self, **params):
        super().__init__(**params)
        lang, kiosk = self.lang, self.kiosk
        src: SituationSource = self.source
        self.map = BoardMap(source=src, lang=lang, kiosk=kiosk, layers=self.layers)
        self.kpis = KpiStrip(source=src, lang=lang)
        self.ticker = Ticker(source=src, lang=lang)
        self.incidents = [
            IncidentPanel(source=src, lang=lang, kiosk=kiosk, index=i, ky=self.map.ky,
                          outline_source=self.map.outline_source, collapse_empty=True)
            for i in range(src.max_incidents)]
        self.clock = ClockPane(labels=ClockPane.labels_for(lang), css_classes=["board-clock"],
                               stale_after_s=self.stale_after_s,
                               sizing_mode="stretch_both", margin=0)
        self._ticks = 0
        self._version = -1  # the frame of the console's producer this page shows
        self._pending = False  # an apply is scheduled on the page's next tick
        self._live = None
        self._layout = self._compose()
        self._doc = pn.state.curdoc
        if self._doc is not None and self._doc.session_context is not None:
            # served: the console's one producer reads and renders for every wall page;
            # this page applies its newest frame (and only what changed)
            self._live = live = live_for(self.source, self.ingests, refresh_s=self.refresh_s,
                                         idle_s=self.idle_refresh_s)
            warm_key = (self.lang, self.map.ky, self.map.unit, self.ticker.max_rows)
            live.add(self._on_frame, warm=(warm_key, self._warm_fn()))
            self.on_close(lambda: live.remove(self._on_frame, warm_key))
            cb = self.every(self._tick, period=1000)
            self.on_close(cb.stop)
            frame = live.current()
            self._version = frame.version
            self.show(frame.situation)
        else:  # in a notebook: no console server to wait for, so no /health polling (404s)
            self.clock.health_url = ""
            self.refresh()
        self.heartbeat(self._statuses())

    def __panel__(self):
        return self._layout

    # ------------------------------------------------------------------ layout
    def _compose(self):
        # on the wall the board's title is the page's heading; at the desk the shell has it
        h = "h1" if self.kiosk else "h2"
        title = HTML(
            f'<div class="title"><{h}>{html.escape(self.t("board.title"))}</{h}>'
            f'<span>{html.escape(self.t("console.title"))}</span></div>',
            sizing_mode="stretch_both", margin=0, stylesheets=[TITLE_CSS],
            css_classes=["board-title"])
        # Rows of stretch_both children stretch both ways (Panel would make them so anyway,
        # with a warning per page); board.css gives each band its height.
        top = pn.Row(title, self.clock, margin=0, sizing_mode="stretch_both",
                     css_classes=["board-top"], stylesheets=[CSS])
        parts = [top]
        middle = [self.map]
        if self.layout in ("full", "kpi"):
            parts.append(pn.Row(self.kpis, margin=0, sizing_mode="stretch_both",
                                css_classes=["board-kpi-row"], stylesheets=[CSS]))
            middle.append(pn.Column(self.ticker, margin=0, sizing_mode="stretch_both",
                                    css_classes=["board-side"], stylesheets=[CSS]))
        parts.append(pn.Row(*middle, margin=0, sizing_mode="stretch_both",
                            css_classes=["board-middle"], stylesheets=[CSS]))
        if self.layout in ("full", "incidents"):
            # one panel per open incident; with none the row collapses and the map grows
            row = pn.Row(*self.incidents, margin=0, sizing_mode="stretch_both",
                         css_classes=["board-incidents", f"layout-{self.layout}"],
                         stylesheets=[CSS], visible=False)

            def show_row(_event=None):
                row.visible = any(p.shown for p in self.incidents)

            for panel in self.incidents:
                panel.param.watch(show_row, "shown")
            parts.append(row)
        if self.rotate_s > 0:
            parts.append(WallRotation(period_s=self.rotate_s, pages=self._playlist(),
                                      titles=[self.t(f"app.{r}") for r in PLAYLIST],
                                      width=0, height=0, margin=0))
        return pn.Column(*parts, sizing_mode="stretch_both", margin=0, stylesheets=[CSS],
                         css_classes=["board", f"layout-{self.layout}",
                                      "kiosk" if self.kiosk else "desk"])

    def _playlist(self) -> list[str]:
        keep = {"lang": self.lang}
        if self.kiosk:
            keep["kiosk"] = "1"
        return [f"./{route}?{urlencode(keep)}" for route in PLAYLIST]

    # ------------------------------------------------------------------ live updates
    def _warm_fn(self):
        """What pages like this one share, rendered in the producer's thread once a frame."""
        lang, ky, unit, rows = self.lang, self.map.ky, self.map.unit, self.ticker.max_rows

        def warm(sit: dict) -> None:
            kpi_html(sit["kpis"], lang)
            ticker_rows(sit["ticker"], lang, rows)
            layer_columns(sit, ky, unit)
            for detail in sit["details"]:
                incident_html(detail, sit["now_ms"], lang)
        return warm

    def _on_frame(self) -> None:
        """The producer has a new frame (on the server's loop): apply it on the next tick,
        once, whatever the number of frames made meanwhile."""
        doc = self._doc
        if self._pending or doc is None or doc.session_context is None:
            return
        self._pending = True
        doc.add_next_tick_callback(self._apply_now)

    def _apply_now(self) -> None:
        with set_curdoc(self._doc):
            self._apply()

    def _apply(self) -> None:
        self._pending = False
        frame = self._live.frame if self._live is not None else None
        if frame is not None and frame.version != self._version:
            self._version = frame.version
            self.show(frame.situation)

    def _held(self):
        """Hold a served page's changes and send them as one message when done."""
        if self._live is None or not isinstance(self._doc, Document):
            return nullcontext()
        return hold(self._doc)

    def _statuses(self) -> list[dict]:
        return statuses_of(self.ingests)

    def heartbeat(self, statuses: list[dict]) -> None:
        """Send the browser the server's time and the feeds' liveness (it counts from there)."""
        fresh = freshness(statuses)
        reading = self._live.last_reading_s() if self._live is not None else None
        last = max(filter(None, [fresh["last_message_at"], reading]), default=None)
        self.clock.param.update(
            server_ms=time.time() * 1000, last_ms=(last or 0) * 1000,
            feeds_connected=fresh["connected"], feeds_total=fresh["total"])

    def _tick(self) -> None:
        self._ticks += 1
        with self._held():  # one message to the browser for all of it
            self.map.pulse_tick()
            if self._ticks % 2 == 0:
                self.heartbeat(self._statuses())
            if not self._pending:  # a frame this page was not told of (safety net)
                self._apply()

    def refresh(self, statuses: list[dict] | None = None) -> None:
        """Read the shared situation now and show it (a notebook; served pages are kept
        live by the console's producer)."""
        statuses = self._statuses() if statuses is None else statuses
        self.show(self.source.situation(statuses))

    def show(self, sit: dict) -> None:
        """Show a situation snapshot: every view takes the shared pieces, and sends its
        browser only what changed — in one message (a served page's changes are held and
        sent together: one write to its socket instead of one per pane and layer)."""
        with self._held():
            self.kpis.kpis = sit["kpis"]
            self.ticker.events = sit["ticker"]
            self.map.update(sit)
            details = sit["details"]
            for i, panel in enumerate(self.incidents):
                panel.update(details[i] if i < len(details) else None, sit["now_ms"])
