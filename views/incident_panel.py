"""One incident on the board: a map zoomed on it, its timeline so far, the nearest resources."""
from __future__ import annotations

import html
import time

import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.models import ColumnDataSource, MultiLine, Scatter

from sources.levels import WALL_COLORS
from sources.situation.source import SituationSource

from .base import View
from .board_map import RESOURCES, add_glyph, base_figure
from .i18n import t
from .panes import HTML
from .shared import Shared, compact
from .ticker import local_time

PANEL_CSS = """
.inc .cmd { font-size: 1.6vh; color: #e6edf7; margin: .2vh 0 .4vh; }
.inc .cmd .overdue { color: #fff; background: #c81e1e; padding: 0 .4vw; border-radius: .3vh; }
.inc .cmd .due { color: #ffd27a; }
:host { display: block; height: 100%; width: 100%; }
.inc { height: 100%; box-sizing: border-box; overflow: hidden; color: #dbe6f3;
  font-size: 1.45vh; display: flex; flex-direction: column; gap: .4vh; }
.inc .head { border-left: .6vh solid var(--lvl); padding-left: .5vw; flex: 0 0 auto; }
.inc .head b, .inc .head span { display: block; white-space: nowrap; overflow: hidden;
  text-overflow: ellipsis; }
.inc .head b { font-size: 2.2vh; }
.inc .head span { color: #9fb3c8; font-size: 1.45vh; }
.inc h4 { margin: .2vh 0; font-size: 1.5vh; color: #9ec5ff; font-weight: 600; }
.inc ol, .inc table { margin: 0; padding: 0; list-style: none; width: 100%;
  border-collapse: collapse; table-layout: fixed; }
.inc li, .inc td { white-space: nowrap; overflow: hidden; text-overflow: ellipsis;
  padding: .12vh 0; }
.inc li .t, .inc td.km { color: #8aa0b8; font-variant-numeric: tabular-nums; }
.inc td.km { text-align: right; width: 4.5em; }
.inc td.ic { width: 1.6em; }
.inc .cols { display: flex; gap: .6vw; min-height: 0; flex: 1 1 auto; overflow: hidden; }
.inc .cols > div { flex: 1 1 0; min-width: 0; overflow: hidden; }
.inc .cols > div + div { flex-grow: 1.6; }
.inc.empty { align-items: center; justify-content: center; color: #8aa0b8; font-size: 2vh; }
.inc .sr { position: absolute; width: 1px; height: 1px; overflow: hidden;
  clip: rect(0 0 0 0); white-space: nowrap; }
"""

RES_MARKERS = {**RESOURCES, "experts": ("circle", "#f472b6", "●")}


def _duration(ms: float, lang: str) -> str:
    minutes = int(max(ms, 0) // 60000)
    h, m = divmod(minutes, 60)
    if lang == "zh":
        return f"{h}小时{m}分" if h else f"{m}分钟"
    return f"{h} h {m} min" if h else f"{m} min"


class IncidentText:
    """An incident card's text in one language (plain: shared by every page, no Panel)."""

    def __init__(self, lang: str):
        self.lang = lang

    def t(self, key: str, **fmt) -> str:
        return t(key, self.lang, **fmt)

    def empty(self) -> str:
        return f'<div class="inc empty">{self.t("board.incident.none")}</div>'

    def _label(self, key: str, fallback) -> str:
        text = self.t(key)
        return str(fallback) if text == key else text

    def note(self, kind: str, r) -> str:
        """The short description of a nearby resource in the page's language."""
        if kind == "teams":
            return (f"{self._label('board.team.' + str(r.kind), r.kind)} · "
                    f"{self.t('board.res.people', n=r.members)}")
        if kind == "shelters":
            return self.t("board.res.people", n=r.capacity)
        if kind == "experts":
            title = "" if r.title is None or r.title != r.title else f" · {r.title}"
            return f"{self._label('board.expert.' + str(r.type), r.type)}{title}"
        return str(r.note)

    def _command_line(self, cmd: dict, now_ms: float) -> str:
        e = html.escape
        parts = [self.t("command.grade." + str(cmd["grade"]))]
        if cmd.get("response_level"):
            parts.append(self.t("command.level." + str(cmd["response_level"])))
        tasks = " ".join(f'{self.t("command.state." + s)} {cmd[f"tasks_{s}"]}'
                         for s in ("assigned", "en_route", "on_scene", "done")
                         if cmd.get(f"tasks_{s}"))
        if tasks:
            parts.append(tasks)
        due = cmd.get("next_report_due")
        if due is not None and not pd.isna(due):
            left = pd.Timestamp(due).value // 1_000_000 - now_ms
            mins = int(abs(left) // 60_000)
            label = self.t("command.report." + str(cmd.get("next_report")))
            text = (self.t("board.report.overdue", report=label, m=mins) if left < 0
                    or cmd.get("next_report_overdue")
                    else self.t("board.report.due", report=label, m=mins))
            parts.append(f'<b class="{"overdue" if left < 0 else "due"}">{e(text)}</b>')
        return ('<div class="cmd" data-command="1">'
                + " · ".join(p if p.startswith("<b") else e(p) for p in parts) + "</div>")

    def html(self, inc: dict, timeline: pd.DataFrame, near: dict, now_ms: float) -> str:
        e = html.escape
        color = WALL_COLORS.get(inc["level"], "#888")
        kind_key = f"board.incident.kind.{inc['kind']}"
        kind = self.t(kind_key)
        kind = inc["kind"] if kind == kind_key else kind
        head = (f'<div class="head" style="--lvl:{color}"><b>{e(str(inc["title"]))}</b>'
                f'<span>{e(str(kind))} · {self.t("level." + inc["level"])} · '
                f'{self.t("board.incident.since", t=local_time(inc["started_ms"], True))} '
                f'({_duration(now_ms - inc["started_ms"], self.lang)})</span></div>')
        cmd = inc.get("command")
        if cmd:  # under command: grade, response, tasks by state, the next report's countdown
            head += self._command_line(cmd, now_ms)
        items = []
        for r in timeline.tail(7).iloc[::-1].itertuples():
            label = self.t("board.kind." + r.kind)
            detail = str(r.detail) if r.detail is not None else ""
            dkey = f"board.detail.{r.kind}.{detail}"
            dlabel = self.t(dkey)
            detail = detail if dlabel == dkey else dlabel
            # the incident's own rows say what changed (status, level); the head has its title
            what = (f"{self.t('level.' + r.level)} {detail}" if r.kind == "incident"
                    else f"{r.title} {detail}")
            items.append(f'<li><span class="t">{local_time(r.ts_ms)}</span> {e(label)} '
                         f'{e(what)}</li>')
        rows = []
        for key_, (_, color_, icon) in RES_MARKERS.items():
            df = near.get(key_)
            if df is None:
                continue
            for r in df.head(2 if key_ != "teams" else 3).itertuples():
                rows.append(
                    f'<tr><td class="ic" style="color:{color_}" title="{self.t("board.res." + key_)}">'
                    f'{icon}</td><td>{e(str(r.name))} <span style="color:#8aa0b8">'
                    f'{e(self.note(key_, r))}</span></td><td class="km">{r.km:.1f} km</td></tr>')
        # column headers for assistive technology only: the wall shows no header row
        heads = "".join(f'<th scope="col">{self.t("board.incident.col." + c)}</th>'
                        for c in ("kind", "name", "km"))
        return (f'<div class="inc">{head}<div class="cols">'
                f'<div><h4>{self.t("board.incident.timeline")}</h4><ol>{"".join(items)}</ol></div>'
                f'<div><h4>{self.t("board.incident.nearest")}</h4>'
                f'<table><thead class="sr"><tr>{heads}</tr></thead><tbody>{"".join(rows)}'
                f'</tbody></table></div></div></div>')


#: A card's text per (incident detail, language, now) and its map's columns per (detail,
#: map scale): every page showing the same snapshot shares them.
SHARED_TEXT = Shared("incident_text")
SHARED_MAP = Shared("incident_map")


def incident_html(detail: dict, now_ms: float, lang: str) -> str:
    """The card's text for ``detail`` (a ``situation['details']`` item), made once."""
    return SHARED_TEXT.get(detail, (lang, now_ms), lambda: IncidentText(lang).html(
        detail["incident"], detail["timeline"], detail["nearest"], now_ms))


#: The incident map's markers with nothing to show.
EMPTY_MARKS = dict(x=[], y=[], marker=[], size=[], color=[], line_color=[], line_width=[])


def incident_map(detail: dict, ky: float) -> dict:
    """Columns of an incident's zoomed map (marks: resources and the incident's star; links;
    window), made once."""
    return SHARED_MAP.get(detail["nearest"], (_map_key(detail["incident"]), ky),
                          lambda: _map_columns(detail, ky))


def _map_key(inc: dict) -> tuple:
    return (inc["incident_id"], inc["lon"], inc["lat"], inc["level"])


def _map_columns(detail: dict, ky: float) -> dict:
    inc, near = detail["incident"], detail["nearest"]
    lon, lat = float(inc["lon"]), float(inc["lat"])
    out = {}
    xs, ys, lx, ly = [lon], [lat], [], []
    res = {"x": [], "y": [], "marker": [], "color": []}
    for key_, df in near.items():
        marker, color, _ = RES_MARKERS.get(key_, ("circle", "#ffffff", ""))
        res["x"] += df.lon.astype(float).tolist()
        res["y"] += (df.lat.astype(float) * ky).tolist()
        res["marker"] += [marker] * len(df)
        res["color"] += [color] * len(df)
        for r in df.head(3).itertuples():
            if r.km < 60:  # frame the near ones; a far expert must not zoom the map out
                xs.append(r.lon)
                ys.append(r.lat)
            lx.append(np.array([lon, r.lon]))
            ly.append(np.array([lat * ky, r.lat * ky]))
    # one layer: the nearby resources, then the incident's star on top of them
    n = len(res["x"])
    out["marks"] = {"x": np.array([*res["x"], lon], float),
                    "y": np.array([*res["y"], lat * ky], float),
                    "marker": [*res["marker"], "star"], "size": [11] * n + [28],
                    "color": [*res["color"], WALL_COLORS.get(inc["level"], "#fff")],
                    "line_color": ["#0b1220"] * n + ["#ffffff"],
                    "line_width": [1] * n + [2]}
    out["links"] = dict(xs=lx, ys=ly)
    half = max(0.08, (max(xs) - min(xs)) / 2 * 1.15, (max(ys) - min(ys)) / 2 * 1.15)
    cx, cy = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2
    out["window"] = dict(x=np.array([cx - half, cx + half]),
                         y=np.array([(cy - half) * ky, (cy + half) * ky]))
    return {k: compact(v) for k, v in out.items()}  # a few values each: no buffers


class IncidentPanel(View):
    """An incident's card for the wall (build once, ``update(detail)`` in place)."""

    view_type = "incident_panel"

    source = param.ClassSelector(class_=SituationSource,
                                 doc="The shared situation of the board.")

    kiosk = param.Boolean(default=False, doc="Wall mode: no toolbar.")
    outline_source = param.ClassSelector(class_=ColumnDataSource, default=None, allow_None=True,
                                         doc="County outlines shared with the main map.")
    ky = param.Number(default=1.0, doc="Vertical stretch of latitudes (as the main map).")
    index = param.Integer(default=0, doc="Position of the panel (0..2), for tests and CSS.")
    collapse_empty = param.Boolean(
        default=False, doc="Hide the panel while it has no incident to show (the wall gives "
                           "its space to the map) instead of saying so.")
    shown = param.Boolean(default=False, doc="True while the panel shows an incident "
                                             "(set by ``update``).")

    def __init__(self, **params):
        super().__init__(**params)
        fig = base_figure(kiosk=True, name=f"board-incident-map-{self.index}")
        self.figure = fig
        if self.outline_source is not None:
            add_glyph(fig, MultiLine(xs="xs", ys="ys", line_color="#4a6a94", line_width=0.8),
                      self.outline_source)
        x0, y0, x1, y1 = self.source.bounds() if self.source is not None else (0, 0, 1, 1)
        self._home = dict(x=[x0, x1], y=[y0 * self.ky, y1 * self.ky])
        self.window = ColumnDataSource(dict(self._home))
        extent = add_glyph(fig, Scatter(x="x", y="y", size=0, fill_alpha=0, line_alpha=0),
                           self.window)
        fig.x_range.renderers = [extent]
        fig.y_range.renderers = [extent]
        self.links = ColumnDataSource(dict(xs=[], ys=[]))
        add_glyph(fig, MultiLine(xs="xs", ys="ys", line_color="#7f93ad", line_dash="dashed",
                                 line_width=1), self.links)
        # the nearest teams, warehouses, shelters and experts, each kind its marker, and the
        # incident's star drawn last: one layer (each layer is five models on every wall)
        self.marks = ColumnDataSource(dict(EMPTY_MARKS))
        add_glyph(fig, Scatter(x="x", y="y", marker="marker", size="size", fill_color="color",
                               line_color="line_color", line_width="line_width"), self.marks)
        self._map = pn.pane.Bokeh(fig, sizing_mode="stretch_both", margin=0,
                                  styles={"flex": "0 0 28%"})
        self._info = HTML(self._empty(), sizing_mode="stretch_both", margin=0,
                          stylesheets=[PANEL_CSS])
        self._key = None
        self._layout = pn.Row(
            self._map, self._info, sizing_mode="stretch_both", margin=0,
            css_classes=["board-incident", f"board-incident-{self.index}"],
            styles={"background": "#0e1728", "border": "1px solid #22324a",
                    "border-radius": ".8vh", "padding": ".5vh .4vw", "box-sizing": "border-box",
                    "overflow": "hidden", "gap": ".5vw"},
            visible=not self.collapse_empty)

    def __panel__(self):
        return self._layout

    def _empty(self) -> str:
        return IncidentText(self.lang).empty()

    def update(self, detail: dict | None, now_ms: float | None = None) -> None:
        """Show ``detail`` (one of ``situation['details']``), or an empty card for None."""
        if self.shown != (detail is not None):
            self.shown = detail is not None
            if self.collapse_empty:
                self._layout.visible = self.shown
        if detail is None:
            if self._key is not None:
                self._key = None
                self._info.object = self._empty()
                self.marks.data = dict(EMPTY_MARKS)
                self.links.data = dict(xs=[], ys=[])
                self.window.data = dict(self._home)
            return
        now_ms = now_ms or time.time() * 1000
        text = incident_html(detail, now_ms, self.lang)
        if text != self._info.object:
            self._info.object = text
        key = _map_key(detail["incident"])
        if key == self._key:
            return
        self._key = key
        cols = incident_map(detail, self.ky)
        self.marks.data = cols["marks"]
        self.links.data = cols["links"]
        self.window.data = cols["window"]

    def note(self, kind: str, r) -> str:
        """The short description of a nearby resource in the page's language."""
        return IncidentText(self.lang).note(kind, r)
