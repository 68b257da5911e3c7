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
from bokeh.models import ColumnDataSource, DataRange1d
from bokeh.plotting import figure

from sources.levels import BY_SEVERITY, WALL_COLORS
from sources.situation.source import SituationSource

from .base import View
from .mapfit import fit_ranges
from .panes import HTML

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
    """A dark, axis-less map figure with aspect-matched auto ranges."""
    tools = "" if kiosk else "pan,wheel_zoom,reset"
    fig = figure(
        name=name, tools=tools, toolbar_location=None if kiosk else "right",
        x_range=DataRange1d(range_padding=0.02), y_range=DataRange1d(range_padding=0.02),
        match_aspect=True, sizing_mode="stretch_both", min_width=50, min_height=50,
        background_fill_color=BACKGROUND, border_fill_color=BACKGROUND, outline_line_color=None,
    )
    fig.axis.visible = False
    fig.grid.visible = False
    if not kiosk:
        fig.toolbar.autohide = True
        fig.toolbar.logo = None
    return fig


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
    density_size = param.Tuple(default=(400, 300), length=2,
                               doc="Pixels of the risk-density image (shaded once).")

    def __init__(self, **params):
        super().__init__(**params)
        src = self.source
        x0, y0, x1, y1 = src.bounds()
        self.ky = lat_scale((y0 + y1) / 2)
        ky = self.ky
        fig = base_figure(kiosk=self.kiosk, name="board-map")
        fig.css_classes = ["board-map-figure"]
        self.figure = fig
        self.outline_source = ColumnDataSource(self._scaled_lines(src.outlines("county")))
        self.warning_source = ColumnDataSource(dict(xs=[], ys=[], color=[], headline=[]))
        self.alarm_source = ColumnDataSource(dict(x=[], y=[], color=[]))
        self.pulse_source = ColumnDataSource(dict(x=[], y=[]))
        self.hotspot_source = ColumnDataSource(dict(x=[], y=[]))
        self.quake_source = ColumnDataSource(dict(x=[], y=[], radius=[]))
        self.incident_source = ColumnDataSource(dict(x=[], y=[], color=[]))
        r: dict[str, list] = {name: [] for name in LAYERS}

        dens = src.risk_density(*self.density_size)
        r["risk"].append(fig.image_rgba(
            image=[dens["image"]], x=dens["x"], y=dens["y"] * ky, dw=dens["dw"],
            dh=dens["dh"] * ky, global_alpha=0.9))
        r["warnings"].append(fig.patches(
            "xs", "ys", source=self.warning_source, fill_color="color", fill_alpha=0.33,
            line_color="color", line_width=1.5))
        self.outlines = fig.multi_line("xs", "ys", source=self.outline_source,
                                       line_color="#4a6a94", line_width=0.8, line_alpha=0.9)
        res = src.resources()
        for key, (marker, color, _icon) in RESOURCES.items():
            df = res[key]
            # thousands of them: small and hollow, so the risk beneath still shows
            r["resources"].append(fig.scatter(
                x=df.lon.to_numpy(float), y=df.lat.to_numpy(float) * ky, marker=marker, size=6,
                fill_alpha=0, line_color=color, line_width=1.2, line_alpha=0.8))
        r["hotspots"].append(fig.scatter(
            "x", "y", source=self.hotspot_source, marker="triangle", size=10,
            fill_color="#ff5a1f", line_color="#ffd0b0", line_width=0.5))
        # Live markers are sized in map units (degrees), not pixels: on a 4K wall they grow
        # with the screen and stay readable from across the room.
        unit = self.marker_unit * max(x1 - x0, (y1 - y0) * ky)
        self.unit = unit
        r["quakes"].append(fig.circle(
            "x", "y", source=self.quake_source, radius="radius", fill_color="#c77dff",
            fill_alpha=0.25, line_color="#e0b3ff", line_width=2))
        self.pulse = fig.circle("x", "y", source=self.pulse_source, radius=2.2 * unit,
                                fill_color="#ff1744", fill_alpha=0.45, line_color="#ff1744",
                                line_width=3, name="board-pulse")
        r["alarms"] += [self.pulse, fig.circle(
            "x", "y", source=self.alarm_source, radius=unit, fill_color="color",
            line_color="#0b1220", line_width=1)]
        r["incidents"] += [
            fig.circle("x", "y", source=self.incident_source, radius=2.4 * unit,
                       fill_color="color", fill_alpha=0.3, line_color="color", line_width=2),
            fig.scatter("x", "y", source=self.incident_source, marker="star", size=30,
                        fill_color="color", line_color="#ffffff", line_width=2)]
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
    def _scaled_lines(self, d: dict) -> dict:
        return {"xs": d["xs"], "ys": [[y * self.ky for y in ys] for ys in d["ys"]]}

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
    @staticmethod
    def _set(source: ColumnDataSource, data: dict) -> None:
        """Replace a source's data only when it changed (nothing sent otherwise)."""
        old = source.data
        if old.keys() == data.keys() and all(
                len(old[k]) == len(data[k]) and np.array_equal(
                    np.asarray(old[k], dtype=object), np.asarray(data[k], dtype=object))
                for k in data):
            return
        source.data = data

    def update(self, situation: dict) -> None:
        """Show a situation (``SituationSource.situation()``) in the live layers."""
        ky = self.ky
        w = situation["warnings"]
        self._set(self.warning_source, dict(
            xs=w["xs"], ys=[[y * ky for y in ys] for ys in w["ys"]],
            color=[WALL_COLORS.get(lv, "#888888") for lv in w["level"]],
            headline=w["headline"]))
        a: pd.DataFrame = situation["alarms"].dropna(subset=["lon", "lat"])
        self._set(self.alarm_source, dict(
            x=a.lon.tolist(), y=(a.lat * ky).tolist(),
            color=[WALL_COLORS.get(lv, "#888888") for lv in a.level]))
        red = a[(a.level == "red") & a.unacked.astype(bool)]
        self._set(self.pulse_source, dict(x=red.lon.tolist(), y=(red.lat * ky).tolist()))
        h = situation["hotspots"]
        self._set(self.hotspot_source, dict(x=h.lon.tolist(), y=(h.lat * ky).tolist()))
        q = situation["quakes"]
        self._set(self.quake_source, dict(
            x=q.lon.tolist(), y=(q.lat * ky).tolist(),
            radius=[self.unit * (0.4 + 0.35 * max(float(m), 0.0)) for m in q.magnitude]))
        i = situation["incidents"]
        self._set(self.incident_source, dict(
            x=i.lon.tolist(), y=(i.lat * ky).tolist(),
            color=[WALL_COLORS.get(lv, "#888888") for lv in i.level]))

    def pulse_tick(self) -> None:
        """Toggle the ring of unacknowledged red alarms (called about once a second)."""
        if not len(self.pulse_source.data["x"]):
            return
        self._pulse_on = not self._pulse_on
        self.pulse.glyph.fill_alpha = 0.45 if self._pulse_on else 0.0
        self.pulse.glyph.line_alpha = 1.0 if self._pulse_on else 0.15
