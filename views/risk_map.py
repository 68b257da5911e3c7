"""The four-colour risk point map: every risk point, rasterised from the shared point layer.

A raw Bokeh figure with one ``Image`` glyph (a byte per pixel, palette in the browser): a ``RangesUpdate`` event from the browser
(sent ≈ 20 ms after a wheel zoom or at the end of a pan, not HoloViews' ≈ 0.5 s debounce)
renders a new frame from :class:`sources.risk.pointlayer.PointLayer` and replaces the image. County
and city outlines are drawn above the points; at street level single points become glyphs
with tooltips. No tiles: a plain background, offline.
"""
from __future__ import annotations

import dataclasses
import html

import numpy as np
import panel as pn
import param
from bokeh.events import MouseMove, RangesUpdate, Tap
from bokeh.models import ColumnDataSource, DataRange1d, HoverTool, LinearColorMapper
from bokeh.plotting import figure

from sources.geo import rings, rings_xy
from sources.levels import TEXT_ON
from sources.risk.pointlayer import GRADE_COLORS, GRADES, palette
from sources.risk.risk import RiskFilter, RiskLayer, RiskSource

from .base import View
from .panes import HTML
from .risk_controls import RiskControls
from .shared import Shared

#: 1° of longitude is cos(36.3°) ≈ 0.805 of 1° of latitude over Shandong.
ASPECT = 1 / 0.805

LEGEND_CSS = """
.bk-btn { font-weight: 600; border-width: 2px; }
.bk-btn.bk-active { color: #fff; }
"""


#: The outlines of every page's map, parsed once per console (they do not change).
SHARED_OUTLINES = Shared("risk_outlines", size=8)


def outline_xy(source: RiskSource, level: str) -> tuple[np.ndarray, np.ndarray]:
    """The ``level`` outlines (holes too) as one NaN-separated x and y: parsed once for every
    page, sent as two binary arrays instead of a JSON list per ring."""
    return SHARED_OUTLINES.get(source, level, lambda: rings_xy(
        ring for gj in source.boundaries(level)["geojson"] for ring in rings(gj, holes=True)))


class RiskPointMap(RiskControls, View):
    """All risk points coloured by grade, county outlines on top, legend, hover and click.

    Build it on a :class:`sources.risk.risk.RiskSource`; pass ``layer`` to share an already
    loaded point layer (the console shares one per process).
    """

    view_type = "risk_map"

    source = param.ClassSelector(class_=RiskSource, doc="The risk queries (sources.risk.risk).")

    layer = param.ClassSelector(class_=RiskLayer, allow_None=True, default=None,
                                doc="The in-memory point layer; loaded from the source if None.")
    filter = param.ClassSelector(class_=RiskFilter, default=RiskFilter(),
                                 doc="Cities, counties, industries, sizes and grades shown.")
    bounds = param.NumericTuple(default=None, length=4, allow_None=True,
                                doc="The view shown: (lon0, lon1, lat0, lat1).")
    counts = param.Dict(default={}, doc="Risk points per grade in the current view.")
    selected_enterprise = param.Integer(default=None, allow_None=True,
                                        doc="Enterprise id of the last clicked point.")
    glyph_limit = param.Integer(default=3000, bounds=(0, 20000),
                                doc="At most this many points in view: draw each as a glyph.")
    frame_size = param.NumericTuple(default=(960, 640), length=2,
                                    doc="Image size (pixels) until the browser reports its own.")
    readings = param.Integer(default=0, doc="Live readings received (stored + streamed).")
    message = param.String(default="", doc="Status line (no points, unknown enterprise...).")

    def __init__(self, **params):
        super().__init__(**params)
        if self.layer is None:
            self.layer = self.source.load_layer()
        # a county or city user sees their jurisdiction only: the filter starts there, and
        # every frame, glyph, hover, tap, search and export is narrowed to it again
        self.filter = self._scoped_filter()
        self._build_figure()
        self._build_panes()
        if self.bounds is None:
            self.bounds = self._home
        self._render()
        # widgets change the filter outside the document lock: Bokeh models are changed on
        # the next tick (with the lock), see _coalesce
        self.param.watch(lambda e: self._coalesce("filter", None, lambda _: self._render()),
                         ["filter"])

    # ------------------------------------------------------------------ figure
    def _build_figure(self) -> None:
        fig = figure(
            x_range=DataRange1d(range_padding=0.02), y_range=DataRange1d(range_padding=0.02),
            match_aspect=True, aspect_scale=ASPECT, sizing_mode="stretch_both",
            min_height=420, tools="pan,wheel_zoom,box_zoom,reset,tap",
            active_scroll="wheel_zoom", toolbar_location="right", name="risk-map",
            output_backend="canvas", background_fill_color="#eef1f4",
            border_fill_color="#ffffff", lod_interval=15, lod_timeout=15, lod_threshold=None,
        )
        fig.xgrid.visible = fig.ygrid.visible = False
        fig.axis.major_label_text_font_size = "10px"
        self._image = ColumnDataSource(
            data=dict(image=[np.zeros((1, 1), np.uint8)], x=[0.0], y=[0.0], dw=[1.0], dh=[1.0],
                      x1=[1.0], y1=[1.0]),
            name="risk-image")
        # one byte per pixel, coloured in the browser: a quarter of an RGBA frame's bytes
        fig.image(image="image", x="x", y="y", dw="dw", dh="dh", source=self._image,
                  color_mapper=LinearColorMapper(palette=palette(), low=0, high=255),
                  name="risk-points")
        outlines = []
        for level, width, colour in (("county", 0.7, "#3d4b5c"), ("city", 1.8, "#111827")):
            x, y = outline_xy(self.source, level)
            outlines.append(fig.multi_line(xs=[x], ys=[y], line_color=colour, line_width=width,
                                           line_alpha=0.9, name=f"outline-{level}"))
        self._home = self.source.extent()
        scope = self.guard.scope()
        if scope is not None:
            # the rest of the province stays as grey outlines (context, no data); the map
            # opens on the jurisdiction, and "reset" comes back to it
            xs, ys = [], []
            for gj in self.source.boundaries("county", scope)["geojson"]:
                for ring in rings(gj, holes=False):
                    xs.append([p[0] for p in ring])
                    ys.append([p[1] for p in ring])
            if xs:
                mine = fig.multi_line(xs=xs, ys=ys, line_color="#0f2747", line_width=2.4,
                                      name="outline-jurisdiction")
                outlines = [mine]
                x0, x1 = min(min(x) for x in xs), max(max(x) for x in xs)
                y0, y1 = min(min(y) for y in ys), max(max(y) for y in ys)
                px, py = 0.03 * (x1 - x0), 0.03 * (y1 - y0)
                self._home = (x0 - px, x1 + px, y0 - py, y1 + py)
        fig.x_range.renderers = fig.y_range.renderers = outlines
        self._points = ColumnDataSource(data=dict(
            lon=[], lat=[], color=[], grade=[], kind=[], enterprise=[], enterprise_id=[]))
        dots = fig.scatter("lon", "lat", source=self._points, size=9, color="color",
                           line_color="#1f2937", line_width=0.8, name="risk-glyphs")
        fig.add_tools(HoverTool(renderers=[dots], tooltips=[
            (self.t("risk.point.enterprise"), "@enterprise"),
            (self.t("risk.point.grade"), "@grade"),
            (self.t("risk.point.kind"), "@kind"),
        ]))
        fig.on_event(RangesUpdate, self._on_ranges)
        # the first layout (and every resize) tells the real canvas size: render at it
        fig.on_change("inner_width", self._on_resize)
        fig.on_change("inner_height", self._on_resize)
        fig.on_event(Tap, self._on_tap)
        fig.on_event(MouseMove, self._on_move)
        self.figure = fig

    def _build_panes(self) -> None:
        self._toggles = {}
        for g in GRADES:
            btn = pn.widgets.Toggle(label=self.t(f"risk.{g}"), value=g in self.filter.grades,
                                    color="light", width=140, margin=(2, 4),
                                    css_classes=[f"grade-{g}"],
                                    stylesheets=[LEGEND_CSS + _grade_css(g)])
            btn.param.watch(self._on_toggle, "value")
            self._toggles[g] = btn
        self._legend_title = HTML(self.t("risk.legend"), margin=(4, 4, 0, 4),
                                  css_classes=["risk-legend-title"])
        self._total = HTML("", margin=(0, 4), css_classes=["risk-in-view"])
        self._status = HTML("", margin=(0, 4), css_classes=["risk-status"],
                            stylesheets=[".no-points{color:#b45309;font-weight:600;}"])
        self._hover = HTML(self.t("risk.hover.hint"), margin=(0, 4),
                           css_classes=["risk-hover"], height=40)
        self._live = HTML("", margin=(0, 4), css_classes=["risk-live"])
        self._set_live()

    # ------------------------------------------------------------------ rendering
    def _pixel_size(self) -> tuple[int, int]:
        try:  # Bokeh raises until the browser has laid the figure out
            w, h = self.figure.inner_width, self.figure.inner_height
        except Exception:
            w = h = None
        if not w or not h or w < 10 or h < 10:
            return int(self.frame_size[0]), int(self.frame_size[1])
        return int(w), int(h)

    def _render(self, bounds=None) -> None:
        """Render the current view (or ``bounds``) and update image, glyphs and legend."""
        if bounds is not None:
            self.bounds = tuple(float(b) for b in bounds)
        b = self.bounds
        w, h = self._frame_px = self._pixel_size()
        flt = self._scoped_filter()
        mask = self.layer.mask(flt)
        fr = self.layer.points.frame(b, w, h, grades=flt.grades, ent_mask=mask,
                                     mask_key=repr(flt) if mask is not None else None,
                                     palette_index=True)
        # x1/y1 carry the exact bounds (x + dw may differ in the last bit): tests compare
        # the legend with SQL counts over them
        self._image.data = dict(image=[fr.image], x=[b[0]], y=[b[2]], dw=[b[1] - b[0]],
                                dh=[b[3] - b[2]], x1=[b[1]], y1=[b[3]])
        visible = sum(fr.counts[g] for g in flt.grades)
        self._set_glyphs(b, flt, visible)
        # the image goes out first; the legend follows on the next tick
        self._coalesce("legend", (fr, flt), self._set_legend)

    def _set_legend(self, frame_filter) -> None:
        fr, flt = frame_filter
        visible = sum(fr.counts[g] for g in flt.grades)
        self.counts = dict(fr.counts)
        for g, btn in self._toggles.items():
            btn.label = f"{self.t('risk.' + g)} {fr.counts[g]:,}"
        self._total.object = self.t("risk.in_view", n=f"{visible:,}")
        if visible == 0:
            self.message = self.t("no_points")
            self._status.object = f'<span class="no-points">{html.escape(self.message)}</span>'
        elif self.message == self.t("no_points"):
            self.message = ""
            self._status.object = ""

    def _set_glyphs(self, b, flt, visible: int) -> None:
        if 0 < visible <= self.glyph_limit:
            df = self.source.points(b, flt, limit=self.glyph_limit)
            self._points.data = dict(
                lon=df["lon"].to_numpy(), lat=df["lat"].to_numpy(),
                color=[GRADE_COLORS[g] for g in df["risk_level"]],
                grade=[self.t(f"risk.{g}") for g in df["risk_level"]],
                kind=df["kind"].tolist(), enterprise=df["enterprise"].tolist(),
                enterprise_id=df["enterprise_id"].to_numpy())
        elif len(self._points.data["lon"]):
            self._points.data = {k: [] for k in self._points.data}

    # ------------------------------------------------------------------ events
    def _on_ranges(self, event) -> None:
        if None in (event.x0, event.x1, event.y0, event.y1):
            return
        x0, x1 = sorted((event.x0, event.x1))
        y0, y1 = sorted((event.y0, event.y1))
        if x1 > x0 and y1 > y0:
            self._coalesce("ranges", (x0, x1, y0, y1), self._render)

    def _coalesce(self, kind: str, value, fn) -> None:
        """Run ``fn(value)`` on the next tick with the latest value only.

        Range and mouse events can arrive faster than frames are made: a burst of them
        renders once, for the last one, instead of queueing stale frames. Panel widgets call
        back outside the document lock; a next-tick callback holds it, as Bokeh requires for
        changes to raw Bokeh models. Without a served page (tests, scripts) it runs at once.
        """
        doc = pn.state.curdoc
        if doc is None or doc.session_context is None:
            fn(value)
            return
        pending = self.__dict__.setdefault("_pending", {})
        scheduled = kind in pending
        pending[kind] = value
        if not scheduled:
            def run():
                fn(pending.pop(kind))

            doc.add_next_tick_callback(run)

    def _on_resize(self, attr, old, new) -> None:
        # a scrollbar coming or going changes the size by a few pixels: the image is
        # scaled by the browser then; render again only for a real resize
        w, h = self._pixel_size()
        lw, lh = getattr(self, "_frame_px", (0, 0))
        if abs(w - lw) < 24 and abs(h - lh) < 24:
            return
        xr, yr = self.figure.x_range, self.figure.y_range
        if None not in (xr.start, xr.end, yr.start, yr.end) and xr.end > xr.start \
                and yr.end > yr.start:
            self._render((xr.start, xr.end, yr.start, yr.end))
        else:
            self._render()

    def _radius(self, px: float = 6.0) -> tuple[float, float]:
        w, h = self._pixel_size()
        b = self.bounds
        return px * (b[1] - b[0]) / w, px * (b[3] - b[2]) / h

    def _on_tap(self, event) -> None:
        rx, ry = self._radius(7)
        flt = self._scoped_filter()
        eid = self.layer.points.nearest(event.x, event.y, rx, ry, grades=flt.grades,
                                        ent_mask=self.layer.mask(flt))
        if eid is not None:
            self.selected_enterprise = eid

    def _on_move(self, event) -> None:
        if event.x is not None and event.y is not None:
            self._coalesce("move", (event.x, event.y), self._hover_at)

    def _hover_at(self, xy) -> None:
        x, y = xy
        rx, ry = self._radius(5)
        flt = self._scoped_filter()
        c = self.layer.points.counts_in((x - rx, x + rx, y - ry, y + ry), grades=flt.grades,
                                        ent_mask=self.layer.mask(flt))
        if sum(c.values()) == 0:
            self._hover.object = self.t("risk.hover.none")
            return
        # the grade's word carries the level; the swatch beside it repeats it in colour
        parts = " · ".join(
            f'<i style="display:inline-block;width:.8em;height:.8em;margin-right:.2em;'
            f'vertical-align:-.05em;border:1px solid #374151;background:{GRADE_COLORS[g]}">'
            f'</i><b>{self.t("risk." + g)}</b> {c[g]:,}' for g in GRADES if g in self.filter.grades)
        self._hover.object = f"{self.t('risk.hover')}：{parts}"

    def _on_toggle(self, event) -> None:
        grades = tuple(g for g in GRADES if self._toggles[g].value)
        self.filter = dataclasses.replace(self.filter, grades=grades)

    # ------------------------------------------------------------------ actions
    def jump_to(self, enterprise_id) -> bool:
        """Centre the map on an enterprise at street level and select it; False if unknown."""
        ent = self.source.enterprise(enterprise_id)
        if ent is None:
            self.message = self.t("risk.unknown_enterprise", id=str(enterprise_id))
            self._status.object = f'<span class="no-points">{html.escape(self.message)}</span>'
            return False
        if not self.guard.sees(ent.get("county_code")):
            self.message = self.refusal(self.guard.refuse_view(
                "enterprise", county=ent.get("county_code"),
                target=f"enterprise:{ent['enterprise_id']}"))
            self._status.object = f'<span class="no-points">{html.escape(self.message)}</span>'
            return False
        dx, dy = 0.012, 0.008
        b = (ent["lon"] - dx, ent["lon"] + dx, ent["lat"] - dy, ent["lat"] + dy)
        self._coalesce("jump", b, self._show)
        self.selected_enterprise = int(ent["enterprise_id"])
        return True

    def _show(self, b) -> None:
        self.figure.x_range.update(start=b[0], end=b[1])
        self.figure.y_range.update(start=b[2], end=b[3])
        self._render(b)

    # ------------------------------------------------------------------ live readings
    def _set_live(self) -> None:
        self._live.object = (f'<span class="live-dot">●</span> '
                             f'{self.t("live.readings_count", n=f"{self.readings:,}")}')

    def start_live(self) -> None:
        """Count live readings: the stored ones, then every batch the ingest publishes."""
        self.readings = self.source.readings_count()
        self._set_live()

        self.subscribe(["reading"], self.on_readings, period_ms=500)

    def on_readings(self, messages, missed: bool) -> None:
        """Add the rows of published ``reading`` batches (reload the count if some were lost)."""
        if missed:
            self.readings = self.source.readings_count()
        else:
            self.readings += sum(_rows(m.payload) for m in messages if m.topic == "reading")
        self._set_live()

    # ------------------------------------------------------------------ panel
    def legend(self) -> pn.viewable.Viewable:
        """The legend: one toggle per grade with its count in view, totals, hover, live."""
        return pn.Column(self._legend_title, *self._toggles.values(), self._total,
                         self._status, self._hover, self._live, margin=0)

    def map_pane(self) -> pn.viewable.Viewable:
        """The map alone (the console puts :meth:`controls` in its sidebar)."""
        if not getattr(self, "_live_started", False):
            self._live_started = True
            if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
                self.start_live()
        return pn.pane.Bokeh(self.figure, sizing_mode="stretch_both", min_height=420)

    def __panel__(self):
        return pn.Row(self.controls(), self.map_pane(), sizing_mode="stretch_both")


def _rows(payload) -> int:
    """Rows in a hub payload: an Arrow table, a DataFrame or a list of dicts."""
    n = getattr(payload, "num_rows", None)
    if n is not None:
        return int(n)
    try:
        return len(payload)
    except TypeError:
        return 0


def _grade_css(grade: str) -> str:
    c = GRADE_COLORS[grade]
    return (f".bk-btn {{ border-color: {c}; }} .bk-btn.bk-active {{ background: {c}; "
            f"color: {TEXT_ON[grade]}; }}"
            f" .bk-btn:not(.bk-active) {{ color: #4b5563; text-decoration: line-through; }}")
