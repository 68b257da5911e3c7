"""The natural-hazard monitoring map: rainfall, water levels, landslide risk, quakes, fire
hotspots and fire danger, and the active warnings, over the county outlines (no tiles).

A time window (now / 1 h / 24 h / 72 h) and a replay player (hours before the latest
reading) choose what is shown; tapping a river station or reservoir draws its hydrograph.
Bokeh figure built once per page; every layer is a ``ColumnDataSource`` updated in place
and switched with ``renderer.visible``.
"""
from __future__ import annotations

import html

import numpy as np
import pandas as pd
import panel as pn
import param
import shapely
from bokeh.models import ColumnDataSource, HoverTool, Range1d, Span
from bokeh.plotting import figure

from sources.access.guard import Guard
from sources.geo import CountyGeometry, rings_xy
from sources.warnings.cap import CHINA_TZ
from sources.warnings.monitoring import LEVEL_COLORS, RAIN_CLASSES, RAIN_COLORS, MonitoringSource
from sources.warnings.warnings import WarningSource

from .base import View
from .mapfit import fit_ranges
from .panes import HTML, Markdown
from .warning_log import concerning

LAYERS = ("surface", "rain", "water", "landslide", "quake", "hotspot", "fire", "warnings")
WATER_COLORS = {"no_data": "#c3c9d2", "normal": "#4b6a88", "over_flood_limit": "#ff7f0e", "over_warning": "#ff7f0e",
                "over_guarantee": "#d62728"}
LAT_STRETCH = 1.24  # a degree of latitude is ≈ 1.24 degrees of longitude at 36 °N


def jurisdiction_area(geo: CountyGeometry, guard: Guard):
    """The user's jurisdiction as one prepared shape (None: the province, everything)."""
    scope = guard.scope()
    if scope is None:
        return None
    cache = geo.__dict__.setdefault("_jurisdictions", {})
    if scope not in cache:
        area = shapely.union_all([geo.shapes[c] for c in geo.codes
                                  if c.startswith(scope) and c in geo.shapes])
        shapely.prepare(area)
        cache[scope] = area
    return cache[scope]


def map_figure(geo: CountyGeometry, width: int | None = None, *,
               tools: str = "pan,wheel_zoom,reset", name: str = "map",
               area=None) -> figure:
    """An axis-less figure over the province (or ``area``: a jurisdiction) with the right
    aspect.

    With a ``width`` the figure has that width and the province's height; without, it fills
    the space its layout gives it and the province fills the figure (:func:`fit_ranges`).
    """
    x0, y0, x1, y1 = (area if area is not None and not area.is_empty
                      else geo.province).bounds
    pad = 0.02 * max(x1 - x0, y1 - y0)
    if width is None:
        fig = figure(sizing_mode="stretch_both", min_width=320, min_height=240, tools=tools,
                     name=name, toolbar_location="above", background_fill_color="#f7f9fc")
        fit_ranges(fig, (x0, y0, x1, y1), aspect=LAT_STRETCH, pad=0.02)
    else:
        height = int(width * (y1 - y0 + 2 * pad) * LAT_STRETCH / (x1 - x0 + 2 * pad))
        fig = figure(width=width, height=max(240, min(height, 1000)), tools=tools, name=name,
                     x_range=Range1d(x0 - pad, x1 + pad), y_range=Range1d(y0 - pad, y1 + pad),
                     toolbar_location="above", background_fill_color="#f7f9fc")
    fig.axis.visible = False
    fig.grid.visible = False
    fig.toolbar.logo = None
    return fig


def county_data(geo: CountyGeometry, colors: dict | None = None, extra: dict | None = None):
    """Columns of the county patches: xs, ys, county_code, name, color (+ extra columns)."""
    xs, ys = [], []
    for code in geo.codes:
        x, y = rings_xy(geo.rings.get(code, []))
        xs.append(x)
        ys.append(y)
    data = {"xs": xs, "ys": ys, "county_code": list(geo.codes),
            "name": [geo.names[c] for c in geo.codes],
            "color": [(colors or {}).get(c, "#eef2f7") for c in geo.codes]}
    for key, values in (extra or {}).items():
        data[key] = [values.get(c, "") for c in geo.codes]
    return data


def _records(df: pd.DataFrame, columns: list[str]) -> dict:
    return {c: (df[c].tolist() if c in df else []) for c in columns}


class MonitoringMap(View):
    """Every hazard layer on one map, with a time window and a 24 h replay."""

    view_type = "monitoring_map"

    source = param.ClassSelector(class_=MonitoringSource, doc="Monitoring source.")
    warnings = param.ClassSelector(class_=WarningSource, default=None, allow_None=True,
                                   doc="Warnings source (for the active-warning areas).")
    window = param.Selector(default="24h", objects=["now", "1h", "24h", "72h"],
                            doc="Rainfall accumulation window.")
    hours_back = param.Integer(default=0, bounds=(-24, 0),
                               doc="Replay: hours before the latest reading (0 = live).")
    layers = param.ListSelector(default=list(LAYERS), objects=list(LAYERS),
                                doc="Layers shown.")
    station = param.String(default="", doc="Station whose hydrograph is shown.")
    frame_width = param.Integer(default=None, allow_None=True,
                                doc="Map width in pixels (None: the map fills its space).")

    def __init__(self, **params):
        super().__init__(**params)
        self.data: dict = {}
        self._window = pn.widgets.RadioButtonGroup(
            value=self.window, button_type="primary",
            options={self.t(f"warnings.window.{w}"): w for w in ("now", "1h", "24h", "72h")},
            css_classes=["mm-window"])
        self._replay = pn.widgets.Player(name=self.t("warnings.replay"), start=-24, end=0,
                                         value=0, step=1, interval=1500, loop_policy="once",
                                         show_loop_controls=False, show_value=True, width=290, css_classes=["mm-replay"])
        self._layers = pn.widgets.CheckBoxGroup(
            value=list(self.layers), inline=False, css_classes=["mm-layers"],
            options={self.t(f"warnings.layer.{k}"): k for k in LAYERS})
        self._window.link(self, value="window")
        self._replay.link(self, value="hours_back")
        self._layers.link(self, value="layers")
        self._status = HTML("", css_classes=["mm-status"], sizing_mode="stretch_width")
        self._build_figure()
        self._build_hydrograph()
        self.reload()
        self.refresh_warnings()
        self.subscribe(["reading", "quake", "hotspot"], self._on_data, period_ms=15_000,
                       maxsize=10)
        self.subscribe(["warning"], lambda m, missed: self.refresh_warnings(), period_ms=1000,
                       immediate=True)

    # ------------------------------------------------------------------ figure
    def _build_figure(self) -> None:
        geo = self.source.geo
        self.area = jurisdiction_area(geo, self.guard)
        fig = map_figure(geo, self.frame_width, tools="pan,wheel_zoom,reset,tap",
                         name="monitoring-map", area=self.area)
        self.figure = fig
        self.sources = {k: ColumnDataSource(v) for k, v in {
            "counties": county_data(geo, extra={"fire_index": {}, "fire_level": {}}),
            "surface": {"image": [], "x": [], "y": [], "dw": [], "dh": []},
            "warnings": {"xs": [], "ys": [], "color": [], "warning_id": [], "headline": []},
            "landslide": {"lon": [], "lat": [], "color": [], "name": [], "rain24_mm": [],
                          "rain_threshold_mm": [], "level": []},
            "rain": {"lon": [], "lat": [], "color": [], "name": [], "rain_mm": []},
            "water": {"lon": [], "lat": [], "color": [], "size": [], "name": [],
                      "station_id": [], "level_m": [], "limit_m": [], "state": []},
            "quake": {"lon": [], "lat": [], "size": [], "quake_id": [], "magnitude": [],
                      "hours_ago": []},
            "hotspot": {"lon": [], "lat": [], "hotspot_id": [], "confidence": [],
                        "satellite": []},
        }.items()}
        s = self.sources
        r = {}
        r["fire"] = fig.patches("xs", "ys", source=s["counties"], fill_color="color",
                                fill_alpha=0.6, line_color="#8493a8", line_width=0.6)
        r["surface"] = fig.image_rgba(image="image", x="x", y="y", dw="dw", dh="dh",
                                      source=s["surface"])
        r["warnings"] = fig.patches("xs", "ys", source=s["warnings"], fill_color="color",
                                    fill_alpha=0.35, line_color="color", line_width=2.5)
        r["landslide"] = fig.scatter("lon", "lat", source=s["landslide"], marker="diamond",
                                     size=5, fill_color="color", line_alpha=0)
        r["rain"] = fig.scatter("lon", "lat", source=s["rain"], size=8, fill_color="color",
                                line_color="#333333")
        r["water"] = fig.scatter("lon", "lat", source=s["water"], marker="square",
                                 size="size", fill_color="color", line_color="#111111",
                                 nonselection_fill_alpha=0.8)
        r["quake"] = fig.scatter("lon", "lat", source=s["quake"], size="size",
                                 fill_color="#7b2cbf", fill_alpha=0.55, line_color="#3c096c")
        r["hotspot"] = fig.scatter("lon", "lat", source=s["hotspot"], marker="triangle",
                                   size=11, fill_color="#ff3300", line_color="#7a1500")
        self.renderers = r
        tips = {
            "fire": [(self.t("warnings.county"), "@name"),
                     (self.t("warnings.fire_index"), "@fire_index"),
                     (self.t("warnings.hazard.fire"), "@fire_level")],
            "warnings": [("ID", "@warning_id"), (self.t("warnings.headline"), "@headline")],
            "landslide": [("", "@name"), (self.t("warnings.rain_mm"), "@rain24_mm{0.0}"),
                          (self.t("warnings.threshold"), "@rain_threshold_mm"), (self.t("warnings.level"), "@level")],
            "rain": [("", "@name"), (self.t("warnings.rain_mm"), "@rain_mm{0.0}")],
            "water": [("", "@name"), (self.t("warnings.level_m"), "@level_m{0.00}"),
                      (self.t("warnings.limit_m"), "@limit_m{0.00}"), ("", "@state")],
            "quake": [(self.t("warnings.quake.mag"), "@magnitude{0.0}"),
                      (self.t("warnings.quake.ago"), "@hours_ago{0.0}")],
            "hotspot": [("", "@hotspot_id"), (self.t("warnings.hotspot.conf"), "@confidence"),
                        ("", "@satellite")],
        }
        for key, tooltips in tips.items():
            fig.add_tools(HoverTool(renderers=[r[key]], tooltips=tooltips))
        s["water"].selected.on_change("indices", self._on_tap)
        self._pane = pn.pane.Bokeh(fig, css_classes=["mm-map"],
                                   sizing_mode=None if self.frame_width else "stretch_both")

    def _build_hydrograph(self) -> None:
        # Explicit ranges, fitted by show_hydrograph: an empty line has no data bounds, and
        # BokehJS would warn "could not set initial ranges" on every layout of the page.
        end = pd.Timestamp.now(tz=CHINA_TZ).tz_localize(None).floor("h")
        size = {"width": self.frame_width} if self.frame_width else {"sizing_mode": "stretch_width"}
        fig = figure(**size, height=260, x_axis_type="datetime",
                     tools="pan,wheel_zoom,reset,hover", title=self.t("warnings.hydrograph.hint"),
                     name="hydrograph", x_range=Range1d(end - pd.Timedelta(hours=72), end),
                     y_range=Range1d(0, 1))
        fig.toolbar.logo = None
        self._hydro_source = ColumnDataSource({"ts": [], "value": []})
        fig.line("ts", "value", source=self._hydro_source, line_width=2, color="#1f4e79")
        self._spans = {key: Span(dimension="width", line_dash="dashed", line_color=color,
                                 location=None, line_width=2)
                       for key, color in (("warning_level", "#ff7f0e"),
                                          ("guarantee_level", "#d62728"),
                                          ("flood_limit_level", "#ff7f0e"))}
        for span in self._spans.values():
            fig.add_layout(span)
        fig.yaxis.axis_label = self.t("warnings.level_m")
        self.hydrograph_figure = fig
        self._hydro = pn.pane.Bokeh(fig, css_classes=["mm-hydrograph"],
                                    sizing_mode=None if self.frame_width else "stretch_width")

    # ------------------------------------------------------------------ data
    @param.depends("window", "hours_back", watch=True)
    def reload(self) -> None:
        """Recompute every layer for the window and replay time; update the sources."""
        d = self.data = self._scoped(self.source.layers(self.window, self.hours_back))
        at = d["at"]
        s = self.sources
        fire = d["fire"].set_index("county_code")
        s["counties"].data.update(
            color=[LEVEL_COLORS[fire["fire_level"].get(c, "none")] for c in self.source.geo.codes],
            fire_index=[int(fire["fire_index"].get(c, 0)) for c in self.source.geo.codes],
            fire_level=[self.t(f"warnings.level.{fire['fire_level'].get(c, 'none')}")
                        for c in self.source.geo.codes])
        s["surface"].data = self._surface_image(*d["surface"])
        ls = d["landslide"].assign(color=d["landslide"]["level"].map(LEVEL_COLORS),
                                   level=[self.t(f"warnings.level.{v}")
                                          for v in d["landslide"]["level"]])
        s["landslide"].data = _records(ls, list(s["landslide"].data))
        s["rain"].data = _records(d["rain"], list(s["rain"].data))
        w = d["water"].assign(color=d["water"]["state"].map(WATER_COLORS).fillna("#4b6a88"),
                              size=np.where(d["water"]["over"].fillna(False), 16, 10),
                              state=[self.t(f"warnings.state.{v}") for v in d["water"]["state"]])
        s["water"].data = _records(w, list(s["water"].data))
        q = d["quake"].assign(size=(d["quake"]["magnitude"].clip(lower=1) * 5))
        s["quake"].data = _records(q, list(s["quake"].data))
        s["hotspot"].data = _records(d["hotspot"], list(s["hotspot"].data))
        when = pd.Timestamp(at).tz_convert(CHINA_TZ).strftime("%Y-%m-%d %H:%M")
        self._status.object = (
            f'<span class="mm-at">{html.escape(self.t("warnings.at", t=when))}</span> · '
            + html.escape(self.t("warnings.summary", rain=len(d["rain"]),
                                 over=int(d["water"]["over"].sum()),
                                 ls=int((d["landslide"]["level"] != "none").sum()),
                                 q=len(d["quake"]), h=len(d["hotspot"]))))
        self._show_layers()

    def _scoped(self, d: dict) -> dict:
        """The layers inside the user's jurisdiction: stations, gauges, landslide points and
        fire danger by county, quakes and hotspots by place, the rain surface masked. The
        shared frames (cached for every page) are not changed."""
        scope = self.guard.scope()
        if scope is None:
            return d
        out = dict(d)
        for key in ("rain", "water", "landslide", "fire"):
            df = d[key]
            out[key] = df[df["county_code"].fillna("").astype(str).str.startswith(scope)
                          ].reset_index(drop=True)
        for key in ("quake", "hotspot"):
            df = d[key]
            if len(df):
                df = df[shapely.contains_xy(self.area, df["lon"].to_numpy(float),
                                            df["lat"].to_numpy(float))]
            out[key] = df.reset_index(drop=True)
        xs, ys, values = d["surface"]
        gx, gy = np.meshgrid(xs, ys)
        out["surface"] = (xs, ys, np.where(shapely.contains_xy(self.area, gx, gy), values,
                                           np.nan))
        return out

    def _surface_image(self, xs, ys, values) -> dict:
        """Rainfall classes as an RGBA image (transparent where dry or outside)."""
        cls = np.searchsorted(RAIN_CLASSES[self.window], np.nan_to_num(values), side="right")
        palette = np.array([int(c[1:3], 16) | int(c[3:5], 16) << 8 | int(c[5:7], 16) << 16
                            | 150 << 24 for c in RAIN_COLORS], dtype=np.uint32)
        rgba = palette[cls]
        rgba[~np.isfinite(values) | (np.nan_to_num(values) < 0.1)] = 0
        dx, dy = xs[1] - xs[0], ys[1] - ys[0]
        return {"image": [rgba], "x": [xs[0] - dx / 2], "y": [ys[0] - dy / 2],
                "dw": [xs[-1] - xs[0] + dx], "dh": [ys[-1] - ys[0] + dy]}

    @param.depends("layers", watch=True)
    def _show_layers(self) -> None:
        for key, renderer in self.renderers.items():
            renderer.visible = key in self.layers
        if "fire" not in self.layers:  # the outlines stay as the base map
            self.renderers["fire"].visible = True
            self.sources["counties"].data["color"] = ["#eef2f7"] * len(self.source.geo.codes)
            self.sources["counties"].data = dict(self.sources["counties"].data)
        elif self.data:
            fire = self.data["fire"].set_index("county_code")["fire_level"]
            self.sources["counties"].data = {
                **self.sources["counties"].data,
                "color": [LEVEL_COLORS[fire.get(c, "none")] for c in self.source.geo.codes]}

    def _on_data(self, messages, missed):
        if self.hours_back == 0:
            self.reload()

    def refresh_warnings(self) -> None:
        """Redraw the active warning areas (called on each ``warning`` message)."""
        if self.warnings is None:
            return
        rows = concerning(self.warnings.active(geometry=False), self.guard).to_dict("records")
        xy = [rings_xy(self.warnings.rings(w)) for w in rows]
        self.sources["warnings"].data = {
            "xs": [x for x, _ in xy], "ys": [y for _, y in xy], "warning_id": [w["warning_id"] for w in rows],
            "headline": [w["headline"] for w in rows],
            "color": [LEVEL_COLORS.get(w["level"], "#999999") for w in rows]}

    # ------------------------------------------------------------------ hydrograph
    def _on_tap(self, attr, old, new):
        water = self.data.get("water")
        if new and water is not None and new[0] < len(water):
            self.show_hydrograph(str(water.iloc[new[0]]["station_id"]))

    def show_hydrograph(self, station_id: str) -> None:
        """Draw the level history of a river station or reservoir under the map."""
        self.station = station_id
        h = self.source.hydrograph(station_id, self.data.get("at"))
        df, st = h["readings"], h["station"]
        self._hydro_source.data = {"ts": [pd.Timestamp(t).tz_convert(CHINA_TZ).tz_localize(None)
                                          for t in df["ts"]], "value": df["value"].tolist()}
        for key, span in self._spans.items():
            value = st.get(key)
            span.location = None if value is None or pd.isna(value) else float(value)
        self._fit_hydrograph()
        self.hydrograph_figure.title.text = (f"{self.t('warnings.hydrograph')} · "
                                             f"{st.get('name', station_id)}")

    def _fit_hydrograph(self) -> None:
        """Fit the hydrograph's ranges to the readings and the station's limits shown."""
        data = self._hydro_source.data
        levels = [float(v) for v in data["value"] if pd.notna(v)]
        levels += [span.location for span in self._spans.values() if span.location is not None]
        fig = self.hydrograph_figure
        if data["ts"]:
            x0, x1 = min(data["ts"]), max(data["ts"])
            if x1 <= x0:
                x0, x1 = x0 - pd.Timedelta(hours=1), x1 + pd.Timedelta(hours=1)
            fig.x_range.update(start=x0, end=x1, reset_start=x0, reset_end=x1)
        if levels:
            lo, hi = min(levels), max(levels)
            pad = max(0.05 * (hi - lo), 0.1)
            fig.y_range.update(start=lo - pad, end=hi + pad, reset_start=lo - pad,
                               reset_end=hi + pad)

    # ------------------------------------------------------------------ layout
    def legend(self) -> pn.pane.HTML:
        classes = "".join(
            f'<span style="display:inline-block;width:12px;height:12px;background:{c};'
            f'margin:0 4px 0 10px"></span>{self.t(f"warnings.rain.class.{i}")}'
            for i, c in enumerate(RAIN_COLORS))
        return HTML(f'<div style="font-size:12px">{self.t("warnings.legend.rain")}'
                    f'{classes}</div>', sizing_mode="stretch_width")

    def controls(self) -> pn.Column:
        return pn.Column(self._window, self._replay,
                         Markdown(f"**{self.t('warnings.layers')}**"), self._layers,
                         width=310)

    def __panel__(self):
        if self.frame_width:
            return pn.Row(self.controls(),
                          pn.Column(self._status, self.legend(), self._pane, self._hydro),
                          sizing_mode="stretch_width")
        # the map takes the whole height beside the controls; the legend and the station's
        # hydrograph sit under the controls
        side = pn.Column(self.controls(), self.legend(), self._hydro, width=310,
                         sizing_mode="stretch_height")
        return pn.Row(side, pn.Column(self._status, self._pane, sizing_mode="stretch_both"),
                      sizing_mode="stretch_both")
