"""The situation board of the command-hall video wall (综合态势大屏), as one view.

:class:`SituationBoard` lays out the board's views (map, KPI strip, ticker, incident panels,
clock) and keeps them live: it subscribes to the hub, marks what changed and re-reads the
shared situation (:class:`~sources.situation.source.SituationSource`: computed once for every
page) at most every ``refresh_s``, warnings and incidents at once. Freshness and the clock
tick in the browser, with a watchdog that reloads the page when the server comes back. The
page ``/board`` (``dashboards.board``) only reads its URL arguments and shows this view; a
notebook shows it on a snapshot.
"""
from __future__ import annotations

import html
import time
from pathlib import Path
from urllib.parse import urlencode

import panel as pn
import param
from panel.io.state import set_curdoc

from sources.situation.kpis import freshness
from sources.situation.source import SituationSource

from .base import View
from .board_map import LAYERS, BoardMap
from .clock import ClockPane, WallRotation
from .incident_panel import IncidentPanel
from .kpi_strip import KpiStrip
from .panes import HTML
from .ticker import Ticker

CSS = (Path(__file__).with_name("board.css")).read_text(encoding="utf-8")
LAYOUTS = ("full", "map", "kpi", "incidents")
PLAYLIST = ("board", "warnings", "risk", "inventory")
EVENTS = ("alarm", "warning", "incident", "quake", "hotspot", "feed_status", "command", "drill")
# rare and acted on by the whole room: shown at once, never held back by the burst limit
URGENT = frozenset({"warning", "incident", "command"})

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
        default=0.5, doc="Fastest refresh after a burst of events (seconds): alarms, feed "
                         "status, hotspots and quakes reach the wall within about this; "
                         "warnings and incidents at once.")
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
        # topic -> publication time of the newest event not yet shown ({}: nothing new)
        self._dirty: dict[str, float] = {}
        self._last_refresh = 0.0
        self._last_reading_s: float | None = None
        self._ticks = 0
        self._deferred = False  # a refresh is scheduled at the end of the burst limit
        self._layout = self._compose()
        self._doc = pn.state.curdoc
        if self._doc is not None and self._doc.session_context is not None:
            # events (rare, must show at once) are drained on the tick after they are
            # published; readings (thousands a second) only say the data is alive
            self.subscribe(EVENTS, self._on_messages, period_ms=500, maxsize=200,
                           immediate=True)
            self.subscribe(("reading",), self._on_readings, period_ms=1000, maxsize=1)
            cb = pn.state.add_periodic_callback(self._tick, period=1000)
            self.on_close(cb.stop)
        else:  # in a notebook: no console server to wait for, so no /health polling (404s)
            self.clock.health_url = ""
        statuses = self._statuses()
        self.heartbeat(statuses)
        self.refresh(statuses)

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
    def _on_readings(self, messages, missed: bool) -> None:
        if messages:
            self._last_reading_s = time.time()

    def _on_messages(self, messages, missed: bool) -> None:
        dirty = self._dirty
        for m in messages:  # what the next refresh must read after (per topic)
            dirty[m.topic] = max(dirty.get(m.topic, m.at), m.at)
        if missed:  # some were dropped: whatever they were, read everything afresh
            now = time.monotonic()
            for topic in EVENTS:
                dirty[topic] = now
        if not messages and not missed:
            return
        # a warning or an incident shows at once (the wall must see it within a second);
        # other events are held back to one refresh per refresh_s, made when that ends
        wait = self.refresh_s - (time.monotonic() - self._last_refresh)
        if wait <= 0 or any(m.topic in URGENT for m in messages):
            self.refresh()
        else:
            self._refresh_in(wait)

    def _refresh_in(self, seconds: float) -> None:
        """Refresh once after ``seconds`` on the page's own thread (one pending at most)."""
        doc = self._doc
        if self._deferred or doc is None or doc.session_context is None:
            return  # already scheduled, or no server session: the 1 s tick picks it up
        self._deferred = True

        def run():
            self._deferred = False
            if self._dirty:
                with set_curdoc(doc):
                    self.refresh()

        doc.add_timeout_callback(run, max(1, int(seconds * 1000)))

    def _statuses(self) -> list[dict]:
        out = []
        for ingest in self.ingests:
            try:
                out.append(ingest.status())
            except Exception:  # a broken ingest reads as a disconnected feed
                out.append({"connected": False})
        return out

    def heartbeat(self, statuses: list[dict]) -> None:
        """Send the browser the server's time and the feeds' liveness (it counts from there)."""
        fresh = freshness(statuses)
        last = max(filter(None, [fresh["last_message_at"], self._last_reading_s]), default=None)
        self.clock.param.update(
            server_ms=time.time() * 1000, last_ms=(last or 0) * 1000,
            feeds_connected=fresh["connected"], feeds_total=fresh["total"])

    def _tick(self) -> None:
        self._ticks += 1
        self.map.pulse_tick()
        since = time.monotonic() - self._last_refresh
        statuses = None
        if self._ticks % 2 == 0:
            statuses = self._statuses()
            self.heartbeat(statuses)
        # events held back by the burst limit, or time moving on (24 h windows, expiry)
        if (self._dirty and since >= self.refresh_s) or \
                since >= self.idle_refresh_s:
            self.refresh(statuses)

    def refresh(self, statuses: list[dict] | None = None) -> None:
        """Re-read the shared situation and update every view in place."""
        statuses = self._statuses() if statuses is None else statuses
        self._dirty = {}
        self._last_refresh = time.monotonic()
        # only the parts the hub's events changed are read again (shared by every page)
        sit = self.source.situation(statuses)
        self.kpis.kpis = sit["kpis"]
        self.ticker.events = sit["ticker"]
        self.map.update(sit)
        details = sit["details"]
        for i, panel in enumerate(self.incidents):
            panel.update(details[i] if i < len(details) else None, sit["now_ms"])
