"""One map (一张图) of the province: outlines, risk density and live layers, each switchable.

No tiles: county outlines from the store are the base. The figure is built once per page;
live layers are updated in place (``ColumnDataSource.data``) and only when they changed.
Open red alarms nobody acknowledged pulse (a ring whose alpha toggles every second).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.models import (
    AllIndices,
    CDSView,
    Circle,
    ColumnDataSource,
    DataRange1d,
    GlyphRenderer,
    Image,
    IndexFilter,
    LinearColorMapper,
    MultiLine,
    Patches,
    Scatter,
    UnionRenderers,
)
from bokeh.plotting import figure

from sources.geo import rings_xy
from sources.levels import BY_SEVERITY, LEVELS, WALL_COLORS
from sources.risk.pointlayer import palette_rgba
from sources.situation.layers import DENSITY_ALPHA_MIN, DENSITY_SIZE
from sources.situation.source import SituationSource

from .base import View
from .mapfit import fit_ranges
from .panes import HTML
from .shared import Shared, compact, same_columns

LAYERS = ("risk", "warnings", "alarms", "hotspots", "quakes", "incidents", "resources")
BACKGROUND = "#0b1220"

LEGEND_CSS = """
:host { display: block; height: 100%; }
.legend { display: flex; flex-direction: column; gap: 1vh; font-size: 1.7vh; color: #c9d6e3;
  padding: 1vh .5vw; white-space: nowrap; overflow: hidden; }
.legend i { display: inline-block; width: 1.3vh; height: 1.3vh; border-radius: 50%;
  margin-right: .3vw; vertical-align: middle; }
.legend .off { color: #8aa0b8; text-decoration: line-through; }
.legend .off i { opacity: .4; }
.legend .grades { display: flex; flex-direction: column; gap: .5vh; margin: -.4vh 0 0 1.6vh;
  font-size: 1.5vh; }
.legend .grades i { border-radius: .2vh; }
"""

#: Marker, colour and icon of each kind of resource, on the map and in the incident panels:
#: none green (green reads "safe" on a wall) and none a risk level's colour.
RESOURCES = {"teams": ("square", "#e2e8f0", "■"), "warehouses": ("diamond", "#22d3ee", "◆"),
             "shelters": ("hex", "#a5b4fc", "⬢")}

SWATCH = {
    "risk": "conic-gradient({})".format(",".join(WALL_COLORS[g] for g in BY_SEVERITY)),
    "warnings": "#ff9f1c88", "alarms": "#ff3b3b", "hotspots": "#ff5a1f",
    "quakes": "#c77dff", "incidents": "#ffffff", "resources": RESOURCES["teams"][1],
}


def lat_scale(lat0: float) -> float:
    """Vertical stretch so a degree of latitude looks right beside a degree of longitude."""
    return 1.0 / max(math.cos(math.radians(lat0)), 0.2)


def base_figure(*, kiosk: bool, name: str) -> figure:
    """A dark map figure with aspect-matched auto ranges, and no axes or grids at all (not
    hidden ones: every model a page holds is built, walked and sent when it opens)."""
    tools = "" if kiosk else "pan,wheel_zoom,reset"
    fig = figure(
        name=name, title=None, tools=tools, toolbar_location=None if kiosk else "right",
        x_range=DataRange1d(range_padding=0.02), y_range=DataRange1d(range_padding=0.02),
        x_axis_type=None, y_axis_type=None,
        match_aspect=True, sizing_mode="stretch_both", min_width=50, min_height=50,
        background_fill_color=BACKGROUND, border_fill_color=BACKGROUND, outline_line_color=None,
    )
    if not kiosk:
        fig.toolbar.autohide = True
        fig.toolbar.logo = None
    return fig


def add_glyph(fig: figure, glyph, source: ColumnDataSource, *, view: CDSView | None = None,
              name: str | None = None) -> GlyphRenderer:
    """Draw ``glyph`` from ``source`` on ``fig`` with one glyph model: the browser derives
    the selected, unselected and muted looks (``fig.scatter()`` and the like build three
    glyph models per layer, on every page).

    The layers of one figure share one "all rows" filter and one selection policy, which
    hold no state (Bokeh would make one of each per layer and per source: 38 of a wall
    page's 237 models, each built, walked and sent when the page opens)."""
    every, union = _stateless(fig)
    r = GlyphRenderer(data_source=source, glyph=glyph, name=name,
                      view=view if view is not None else CDSView(filter=every))
    if "selection_policy" not in source._property_values:  # Bokeh's default, not a choice
        source.selection_policy = union
    fig.renderers.append(r)
    return r


def _stateless(fig: figure) -> tuple[AllIndices, UnionRenderers]:
    """The figure's one "all rows" filter and one selection policy."""
    shared = fig.__dict__.get("_console_stateless")
    if shared is None:
        shared = fig.__dict__["_console_stateless"] = (AllIndices(), UnionRenderers())
    return shared


class BoardMap(View):
    """The board's map with its switchable layers."""

    view_type = "board_map"

    source = param.ClassSelector(class_=SituationSource,
                                 doc="The shared situation of the board.")

    layers = param.ListSelector(default=list(LAYERS), objects=list(LAYERS),
                                doc="Layers shown.")
    kiosk = param.Boolean(default=False, doc="Wall mode: no toolbar, no layer switches.")
    marker_unit = param.Number(
        default=0.006, bounds=(0.001, 0.05),
        doc="Radius of an alarm marker as a fraction of the province's extent.")
    density_size = param.Tuple(default=DENSITY_SIZE, length=2,
                               doc="Pixels of the risk-density image (shaded once for every "
                                   "page; the console warms this size up at start).")

    def __init__(self, **params):
        super().__init__(**params)
        src = self.source
        x0, y0, x1, y1 = src.bounds()
        self.ky = lat_scale((y0 + y1) / 2)
        ky = self.ky
        fig = base_figure(kiosk=self.kiosk, name="board-map")
        fig.css_classes = ["board-map-figure"]
        self.figure = fig
        # every county once per page (the outlines, and the areas warnings fill); a warning
        # then only changes which counties each level's patches show
        counties = county_columns(src.county_rings(), ky)
        self._county_index = counties["index"]
        self.outline_source = ColumnDataSource(counties["columns"])
        self.warning_source = ColumnDataSource(dict(xs=[], ys=[], color=[], level=[]))
        self.alarm_source = ColumnDataSource(dict(x=[], y=[], color=[]))
        self.pulse_source = ColumnDataSource(dict(x=[], y=[]))
        self.hotspot_source = ColumnDataSource(dict(x=[], y=[]))
        self.quake_source = ColumnDataSource(dict(x=[], y=[], radius=[]))
        self.incident_source = ColumnDataSource(dict(x=[], y=[], color=[]))
        self._shown: dict[str, dict] = {}  # layer -> the shared columns it shows
        r: dict[str, list] = {name: [] for name in LAYERS}

        # one byte a pixel, coloured in the browser (a quarter of an RGBA image's bytes)
        dens = density_image(src, *self.density_size)
        r["risk"].append(add_glyph(fig, Image(
            image="image", x="x", y="y", dw="dw", dh="dh", global_alpha=0.9,
            color_mapper=LinearColorMapper(palette=dens["palette"], low=0, high=255)),
            ColumnDataSource(dict(image=[dens["image"]], x=[dens["x"]], y=[dens["y"] * ky],
                                  dw=[dens["dw"]], dh=[dens["dh"] * ky]))))
        self.warning_filters: dict[str, IndexFilter] = {}
        for level in LEVELS:  # red drawn last, on top
            self.warning_filters[level] = f = IndexFilter(indices=[])
            color = WALL_COLORS[level]
            r["warnings"].append(add_glyph(fig, Patches(
                xs="xs", ys="ys", fill_color=color, fill_alpha=0.33, line_color=color,
                line_width=1.5), self.outline_source, view=CDSView(filter=f),
                name=f"board-warnings-{level}"))
        # a warning with a polygon of its own (not a list of counties)
        r["warnings"].append(add_glyph(fig, Patches(
            xs="xs", ys="ys", fill_color="color", fill_alpha=0.33, line_color="color",
            line_width=1.5), self.warning_source))
        self.outlines = add_glyph(fig, MultiLine(
            xs="xs", ys="ys", line_color="#4a6a94", line_width=0.8, line_alpha=0.9),
            self.outline_source)
        # thousands of teams, warehouses and shelters: small and hollow, so the risk beneath
        # still shows; one layer, each kind its marker and colour
        r["resources"].append(add_glyph(fig, Scatter(
            x="x", y="y", marker="marker", size=6, fill_alpha=0, line_color="color",
            line_width=1.2, line_alpha=0.8),
            ColumnDataSource(resource_columns(src.resources(), ky))))
        r["hotspots"].append(add_glyph(fig, Scatter(
            x="x", y="y", marker="triangle", size=10, fill_color="#ff5a1f",
            line_color="#ffd0b0", line_width=0.5), self.hotspot_source))
        # Live markers are sized in map units (degrees), not pixels: on a 4K wall they grow
        # with the screen and stay readable from across the room.
        unit = self.marker_unit * max(x1 - x0, (y1 - y0) * ky)
        self.unit = unit
        r["quakes"].append(add_glyph(fig, Circle(
            x="x", y="y", radius="radius", fill_color="#c77dff", fill_alpha=0.25,
            line_color="#e0b3ff", line_width=2), self.quake_source))
        self.pulse = add_glyph(fig, Circle(
            x="x", y="y", radius=2.2 * unit, fill_color="#ff1744", fill_alpha=0.45,
            line_color="#ff1744", line_width=3), self.pulse_source, name="board-pulse")
        r["alarms"] += [self.pulse, add_glyph(fig, Circle(
            x="x", y="y", radius=unit, fill_color="color", line_color="#0b1220",
            line_width=1), self.alarm_source)]
        r["incidents"] += [
            add_glyph(fig, Circle(x="x", y="y", radius=2.4 * unit, fill_color="color",
                                  fill_alpha=0.3, line_color="color", line_width=2),
                      self.incident_source),
            add_glyph(fig, Scatter(x="x", y="y", marker="star", size=30, fill_color="color",
                                   line_color="#ffffff", line_width=2), self.incident_source)]
        # the province itself (not the layers' margin) fills the map's area at any size
        px0, py0, px1, py1 = src.geography.province.bounds
        fit_ranges(fig, (px0, py0 * ky, px1, py1 * ky), pad=0.015)
        self._renderers = r
        self._pulse_on = True
        self._apply_layers()

        self._pane = pn.pane.Bokeh(fig, sizing_mode="stretch_both", margin=0,
                                   css_classes=["board-map-figure"])
        self._legend = HTML(self._legend_html(), sizing_mode="stretch_height", margin=0,
                            stylesheets=[LEGEND_CSS], css_classes=["board-legend"],
                            styles={"flex": "0 0 auto"})
        self._switch = None
        if not self.kiosk:
            self._switch = pn.widgets.CheckButtonGroup(
                value=list(self.layers), options={self.t(f"board.layer.{k}"): k for k in LAYERS},
                button_type="primary", button_style="outline", margin=(2, 4),
                css_classes=["board-layer-switch"])
            self._switch.param.watch(lambda e: setattr(self, "layers", list(e.new)), "value")
        body = pn.Row(self._legend, self._pane, sizing_mode="stretch_both", margin=0,
                      styles={"min-height": "0", "flex": "1 1 0"})
        self._layout = pn.Column(
            *([self._switch] if self._switch is not None else []), body,
            sizing_mode="stretch_both", margin=0, css_classes=["board-map"])

    def __panel__(self):
        return self._layout

    # ------------------------------------------------------------------ layers
    @param.depends("layers", watch=True)
    def _apply_layers(self):
        for name, renderers in self._renderers.items():
            for rend in renderers:
                rend.visible = name in self.layers
        if hasattr(self, "_legend"):
            self._legend.object = self._legend_html()

    def _legend_html(self) -> str:
        items = []
        for key in LAYERS:
            cls = "" if key in self.layers else "off"
            items.append(f'<span class="{cls}"><i style="background:{SWATCH[key]}"></i>'
                         f'{self.t("board.layer." + key)}</span>')
            if key == "risk":  # each grade's colour beside its word: colour never alone
                items.append(f'<span class="grades {cls}">' + "".join(
                    f'<span><i style="background:{WALL_COLORS[g]}"></i>{self.t("risk." + g)}'
                    "</span>" for g in BY_SEVERITY) + "</span>")
        return f'<div class="legend">{"".join(items)}</div>'

    # ------------------------------------------------------------------ live data
    def _set(self, name: str, source: ColumnDataSource, data: dict) -> None:
        """Show a layer's shared columns; nothing is sent when they did not change."""
        if self._shown.get(name) is data:
            return
        self._shown[name] = data
        source.data = data

    def update(self, situation: dict) -> None:
        """Show a situation (``SituationSource.situation()``) in the live layers.

        The columns are made once per snapshot part for every page (:func:`layer_columns`);
        a page only hands its browser the layers whose part changed.
        """
        cols = layer_columns(situation, self.ky, self.unit)
        counties, index = cols["warning_counties"], self._county_index
        for level, f in self.warning_filters.items():
            indices = [index[c] for c in counties.get(level, ()) if c in index]
            if list(f.indices) != indices:  # a few ints: only what changed is sent
                f.indices = indices
        self._set("warnings", self.warning_source, cols["warnings"])
        self._set("alarms", self.alarm_source, cols["alarms"])
        self._set("pulse", self.pulse_source, cols["pulse"])
        self._set("hotspots", self.hotspot_source, cols["hotspots"])
        self._set("quakes", self.quake_source, cols["quakes"])
        self._set("incidents", self.incident_source, cols["incidents"])

    def pulse_tick(self) -> None:
        """Toggle the ring of unacknowledged red alarms (called about once a second)."""
        if not len(self.pulse_source.data["x"]):
            return
        self._pulse_on = not self._pulse_on
        self.pulse.glyph.fill_alpha = 0.45 if self._pulse_on else 0.0
        self.pulse.glyph.line_alpha = 1.0 if self._pulse_on else 0.15


# ---------------------------------------------------------------------- shared columns
# What every page's map shows, made once per snapshot part (or per console for the static
# layers) and handed to each page as the same objects: a page compares by identity, and
# numpy columns travel to the browser as binary buffers instead of JSON lists.
SHARED_LAYERS = Shared("board_layers", size=64)
SHARED_STATIC = Shared("board_static", size=8)


def county_columns(county_rings: dict, ky: float) -> dict:
    """Every county as one patch (its rings NaN-separated: one buffer per county), in code
    order, and each code's position; made once per console."""
    return SHARED_STATIC.get(county_rings, ("counties", ky), lambda: _counties(county_rings, ky))


def _counties(county_rings: dict, ky: float) -> dict:
    codes = sorted(county_rings)
    xs, ys = [], []
    for code in codes:
        x, y = rings_xy(np.asarray(ring, dtype=float) for ring in county_rings[code])
        xs.append(x)
        ys.append(y * ky)
    return {"columns": {"xs": xs, "ys": ys, "code": codes},
            "index": {code: i for i, code in enumerate(codes)}}


def resource_columns(res: dict, ky: float) -> dict:
    """Teams, warehouses and shelters as one layer (``x, y, marker, color``), static: made
    once per console."""
    def make():
        kinds = [k for k in RESOURCES if k in res]
        n = [len(res[k]) for k in kinds]
        return {"x": np.concatenate([res[k].lon.to_numpy(float) for k in kinds]),
                "y": np.concatenate([res[k].lat.to_numpy(float) for k in kinds]) * ky,
                "marker": [RESOURCES[k][0] for k, m in zip(kinds, n, strict=True)
                           for _ in range(m)],
                "color": [RESOURCES[k][1] for k, m in zip(kinds, n, strict=True)
                          for _ in range(m)]}
    return SHARED_STATIC.get(res, ("resources", ky), make)


def density_image(src: SituationSource, width: int, height: int) -> dict:
    """The risk density as palette indices (uint8) and its 256 colours (``#rrggbbaa``)."""
    dens = src.risk_density(width, height)
    return SHARED_STATIC.get(dens, "index", lambda: _density_index(dens))


def _density_index(dens: dict) -> dict:
    # the palette the source shaded with (packed r | g << 8 | b << 16 | a << 24) as hex
    rgba = (int(v) for v in palette_rgba(WALL_COLORS, alpha_min=DENSITY_ALPHA_MIN))
    palette = [f"#{c & 255:02x}{c >> 8 & 255:02x}{c >> 16 & 255:02x}{c >> 24 & 255:02x}"
               for c in rgba]
    return {**dens, "image": dens["index"], "palette": palette}


def layer_columns(sit: dict, ky: float, unit: float) -> dict:
    """Every live layer's columns for a snapshot; each made once per part it comes from,
    and the previous object kept when a re-read part holds the same rows."""
    return {
        "warnings": _layer("warnings", sit["warnings"], (ky,), lambda: _warnings(sit, ky)),
        "warning_counties": SHARED_LAYERS.get(sit["warnings"], ("warning_counties",),
                                              lambda: _warning_counties(sit)),
        "alarms": _layer("alarms", sit["alarms"], (ky,), lambda: _alarms(sit, ky)),
        "pulse": _layer("pulse", sit["alarms"], (ky,), lambda: _pulse(sit, ky)),
        "hotspots": _layer("hotspots", sit["hotspots"], (ky,), lambda: {
            "x": sit["hotspots"].lon.to_numpy(float),
            "y": sit["hotspots"].lat.to_numpy(float) * ky}),
        "quakes": _layer("quakes", sit["quakes"], (ky, unit), lambda: _quakes(sit, ky, unit)),
        "incidents": _layer("incidents", sit["incidents"], (ky,), lambda: {
            "x": sit["incidents"].lon.to_numpy(float),
            "y": sit["incidents"].lat.to_numpy(float) * ky,
            "color": [WALL_COLORS.get(lv, "#888888") for lv in sit["incidents"].level]}),
    }


_LAST: dict[tuple, dict] = {}  # (layer, key) -> the columns shown last (kept when equal)


def _layer(name: str, part, key: tuple, make) -> dict:
    def build():
        data = compact(make())
        last = _LAST.get((name, key))
        if last is not None and same_columns(last, data):
            return last  # same rows read again: the pages keep what they show
        _LAST[(name, key)] = data
        return data
    return SHARED_LAYERS.get(part, (name, *key), build)


def _warning_counties(sit: dict) -> dict[str, tuple[str, ...]]:
    """Level -> the counties under a warning of that level (codes, sorted)."""
    w = sit["warnings"]
    out: dict[str, set] = {}
    for level, code in zip(w["level"], w.get("county") or [None] * len(w["level"]), strict=True):
        if code is not None:
            out.setdefault(level, set()).add(code)
    return {level: tuple(sorted(codes)) for level, codes in out.items()}


def _warnings(sit: dict, ky: float) -> dict:
    """Warnings with a polygon of their own: one patch each (rings NaN-separated), red last.
    (Warnings over counties fill the counties' patches: :func:`_warning_counties`.)"""
    w = sit["warnings"]
    codes = w.get("county") or [None] * len(w["level"])
    out = {"xs": [], "ys": [], "color": [], "level": []}
    groups: dict[tuple, list] = {}
    for xs, ys, level, headline, code in zip(w["xs"], w["ys"], w["level"], w["headline"],
                                             codes, strict=True):
        if code is None:
            groups.setdefault((level, headline), []).append(np.column_stack([xs, ys]))
    for (level, _), parts in sorted(groups.items(), key=lambda kv: _rank(kv[0][0])):
        x, y = rings_xy(parts)
        out["xs"].append(x)
        out["ys"].append(y * ky)
        out["color"].append(WALL_COLORS.get(level, "#888888"))
        out["level"].append(level)
    return out


def _rank(level: str) -> int:
    return LEVELS.index(level) if level in LEVELS else -1


def _alarms(sit: dict, ky: float) -> dict:
    a: pd.DataFrame = sit["alarms"].dropna(subset=["lon", "lat"])
    return {"x": a.lon.to_numpy(float), "y": a.lat.to_numpy(float) * ky,
            "color": [WALL_COLORS.get(lv, "#888888") for lv in a.level]}


def _pulse(sit: dict, ky: float) -> dict:
    a: pd.DataFrame = sit["alarms"].dropna(subset=["lon", "lat"])
    red = a[(a.level == "red") & a.unacked.astype(bool)]
    return {"x": red.lon.to_numpy(float), "y": red.lat.to_numpy(float) * ky}


def _quakes(sit: dict, ky: float, unit: float) -> dict:
    q = sit["quakes"]
    mag = np.maximum(q.magnitude.to_numpy(float), 0.0)
    return {"x": q.lon.to_numpy(float), "y": q.lat.to_numpy(float) * ky,
            "radius": unit * (0.4 + 0.35 * mag)}
