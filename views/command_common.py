"""Pieces shared by the command views: labels, times and countdowns, the province map."""
from __future__ import annotations

import html
import time
from datetime import datetime
from typing import ClassVar

import pandas as pd
import panel as pn
import param
from bokeh.models import ColumnDataSource
from bokeh.plotting import figure
from panel.io.state import set_curdoc

from sources.command.catalog import GRADE_COLOR
from sources.command.common import CHINA_TZ
from sources.command.source import CommandSource
from sources.inventory.common import InventoryError
from sources.levels import COLORS

from .base import View
from .board_map import lat_scale
from .i18n import LABELS
from .inventory_common import Notice

GRADE_COLORS = {grade: COLORS[level] for grade, level in GRADE_COLOR.items()}
STATE_COLORS = {"assigned": "#64748b", "en_route": "#2563eb", "on_scene": "#f59e0b",
                "done": "#16a34a", "cancelled": "#9ca3af"}
RES_STYLE = {"teams": ("square", "#16a34a"), "warehouses": ("diamond", "#0891b2"),
             "shelters": ("hex", "#65a30d"), "experts": ("circle", "#db2777"),
             "installations": ("triangle", "#7c3aed")}

COMMAND_CSS = """
.cmd-card { border: 1px solid #d7dee8; border-radius: 6px; padding: 6px 10px; margin: 4px 0;
  background: #fff; font-size: 13px; }
.cmd-card b { font-size: 14px; }
.cmd-grade { display: inline-block; padding: 0 8px; border-radius: 3px; color: #fff;
  font-weight: 700; }
.cmd-muted { color: #64748b; }
.cmd-overdue { color: #b91c1c; font-weight: 700; }
.cmd-due { color: #0f766e; font-weight: 600; }
.cmd-cols { display: flex; gap: 8px; align-items: flex-start; }
.cmd-col { flex: 1 1 0; min-width: 0; background: #f1f5f9; border-radius: 6px; padding: 6px; }
.cmd-col h4 { margin: 2px 0 6px; font-size: 14px; }
.cmd-tl { list-style: none; margin: 0; padding: 0; font-size: 13px; }
.cmd-tl li { padding: 3px 0; border-bottom: 1px solid #eef2f7; }
.cmd-tl .t { color: #64748b; font-variant-numeric: tabular-nums; margin-right: 6px; }
.cmd-tl .k { display: inline-block; min-width: 4.5em; font-weight: 600; }
.cmd-tl .near { color: #7c3aed; }
"""


def local(t, fmt: str = "%m-%d %H:%M") -> str:
    """A time (datetime, Timestamp, None) as China local time text."""
    if t is None or (isinstance(t, float) and t != t) or t is pd.NaT:
        return ""
    return pd.Timestamp(t).tz_convert(CHINA_TZ).strftime(fmt)


def countdown(due: datetime, now: datetime, t, *, done: bool = False) -> str:
    """'剩余 12 分钟' / '超时 5 分钟' (HTML, overdue in red)."""
    if done:
        return f'<span class="cmd-muted">{html.escape(t("command.timer.filed"))}</span>'
    minutes = int((due - now).total_seconds() // 60)
    if minutes >= 0:
        return (f'<span class="cmd-due">'
                f'{html.escape(t("command.timer.left", m=_span(minutes, t)))}</span>')
    return (f'<span class="cmd-overdue">'
            f'{html.escape(t("command.timer.overdue", m=_span(-minutes, t)))}</span>')


def _span(minutes: int, t) -> str:
    h, m = divmod(minutes, 60)
    return t("command.hm", h=h, m=m) if h else t("command.m", m=m)


def grade_badge(grade: str | None, t) -> str:
    """The grade as a coloured badge: 较大 (Ⅲ) (HTML)."""
    if not grade:
        return ""
    return (f'<span class="cmd-grade" style="background:{GRADE_COLORS[grade]}">'
            f'{html.escape(t("command.grade." + grade))}</span>')


def rule_text(inc: dict, t) -> str:
    """Why the incident has its grade, in the page's language."""
    from sources.command.grading import compute_grade

    if inc.get("grade_reason"):
        computed = inc.get("grade_computed")
        base = t("command.rule.override", reason=inc["grade_reason"])
        return base + (" " + t("command.rule.computed_was", grade=t("command.grade." + computed))
                       if computed and computed != inc["grade"] else "")
    r = compute_grade(inc["subtype"], inc["deaths"], inc["injured"], inc["loss_wan"])
    return t(r.rule_key, **{k: (t("command.grade." + v) if k == "grade" else v)
                            for k, v in r.fmt.items()})


def subtype_label(key: str, t) -> str:
    text = t("command.subtype." + str(key))
    return str(key) if text.startswith("command.subtype.") else text


class ProvinceMap:
    """A light map of county outlines (no tiles), built once, with named point layers."""

    def __init__(self, source: CommandSource, *, height: int = 420, tap=None, name: str = ""):
        rings = source.materials.county_outlines()
        lat0 = float(pd.concat([pd.Series(r["y"]) for r in rings]).mean()) if rings else 36.0
        self.ky = lat_scale(lat0)
        ky = self.ky
        fig = figure(height=height, sizing_mode="stretch_width", match_aspect=True,
                     tools="pan,wheel_zoom,reset,tap" if tap else "pan,wheel_zoom,reset",
                     toolbar_location="right", name=name)
        fig.axis.visible = False
        fig.grid.visible = False
        fig.patches([r["x"].tolist() for r in rings],
                               [(r["y"] * ky).tolist() for r in rings],
                               fill_color="#eef2f7", line_color="#94a3b8", line_width=0.6)
        # the ranges follow an invisible window (the province, or the incident's surroundings),
        # not every glyph: a far resource's line must not zoom the map out
        xs = [float(min(r["x"].min() for r in rings)), float(max(r["x"].max() for r in rings))] \
            if rings else [114.8, 122.7]
        ys = [float(min(r["y"].min() for r in rings)) * ky,
              float(max(r["y"].max() for r in rings)) * ky] if rings else [34.4 * ky, 38.4 * ky]
        self._home = dict(x=xs, y=ys)
        self.window = ColumnDataSource(dict(self._home))
        extent = fig.scatter("x", "y", source=self.window, size=0, alpha=0)
        fig.x_range.renderers = [extent]
        fig.y_range.renderers = [extent]
        self.area = ColumnDataSource(dict(xs=[], ys=[]))
        fig.patches("xs", "ys", source=self.area, fill_color="#f97316", fill_alpha=0.18,
                    line_color="#f97316", line_dash="dashed")
        self.links = ColumnDataSource(dict(xs=[], ys=[], color=[]))
        fig.multi_line("xs", "ys", source=self.links, line_color="color", line_width=2,
                       line_alpha=0.8)
        self.layers: dict[str, ColumnDataSource] = {}
        for key, (marker, color) in RES_STYLE.items():
            self.layers[key] = ColumnDataSource(dict(x=[], y=[], name=[]))
            fig.scatter("x", "y", source=self.layers[key], marker=marker, size=10,
                        fill_color=color, line_color="#0f172a", line_width=0.5)
        self.scene = ColumnDataSource(dict(x=[], y=[], color=[]))
        fig.scatter("x", "y", source=self.scene, marker="star", size=24, fill_color="color",
                    line_color="#0f172a", line_width=1.5)
        if tap is not None:
            from bokeh.events import Tap

            fig.on_event(Tap, lambda e: tap(float(e.x), float(e.y) / ky))
        self.figure = fig
        self.pane = pn.pane.Bokeh(fig, sizing_mode="stretch_width", height=height)

    def points(self, key: str, df: pd.DataFrame | None) -> None:
        """Show the rows of ``df`` (lon, lat, name) on layer ``key`` (None: clear)."""
        if df is None or df.empty:
            self.layers[key].data = dict(x=[], y=[], name=[])
            return
        self.layers[key].data = dict(x=df["lon"].astype(float).tolist(),
                                     y=(df["lat"].astype(float) * self.ky).tolist(),
                                     name=df["name"].astype(str).tolist())

    def show_scene(self, lon: float | None, lat: float | None, grade: str | None) -> None:
        if lon is None or lat is None:
            self.scene.data = dict(x=[], y=[], color=[])
            return
        self.scene.data = dict(x=[lon], y=[lat * self.ky],
                               color=[GRADE_COLORS.get(grade or "IV", "#888")])

    def show_area(self, xs: list[float] | None, ys: list[float] | None) -> None:
        self.area.data = dict(xs=[xs] if xs else [], ys=[[y * self.ky for y in ys]] if ys else [])

    def show_links(self, lines: list[tuple[float, float, float, float, str]]) -> None:
        """Lines from each resource to the scene: (lon0, lat0, lon1, lat1, colour)."""
        ky = self.ky
        self.links.data = dict(xs=[[a, c] for a, _, c, _, _ in lines],
                               ys=[[b * ky, d * ky] for _, b, _, d, _ in lines],
                               color=[e for *_, e in lines])

    def zoom(self, lon: float | None = None, lat: float | None = None,
             half_deg: float = 0.35) -> None:
        """Frame the map on a point (None: the whole province)."""
        if lon is None or lat is None:
            self.window.data = dict(self._home)
            return
        ky = self.ky
        self.window.data = dict(x=[lon - half_deg, lon + half_deg],
                                y=[(lat - half_deg) * ky, (lat + half_deg) * ky])



class CommandNotice(Notice):
    """The inventory's notice, whose refusals also name fields, states, grades and levels in
    the page's language (the command's errors carry them as codes)."""

    PREFIX: ClassVar[dict[str, str]] = {
        "field": "command.field.", "current": "command.state.", "state": "command.state.",
        "grade": "command.grade.", "computed": "command.grade.", "level": "command.level.",
        "kind": "command.report."}

    def error(self, exc: Exception) -> None:
        if isinstance(exc, InventoryError) and exc.key.startswith("command."):
            fmt = {}
            for k, v in exc.fmt.items():
                key = f"{self.PREFIX.get(k, '')}{v}"
                fmt[k] = self._t(key) if k in self.PREFIX and key in LABELS else v
            self.pane.param.update(object=html.escape(self._t(exc.key, **fmt)),
                                   alert_type="danger", visible=True)
            return
        super().error(exc)


class CommandView(View):
    """Base of the command views: the source, the incident shown, and live refreshes.

    A view refreshes on hub messages about its incident (``command`` topic) that its last
    refresh did not already read (a page's own action is not read twice). While ``live`` is
    False (its tab is hidden) it only notes that it is stale and refreshes when shown again,
    so an action costs each open page the views it shows, not all of them.
    """

    __abstract = True

    source = param.ClassSelector(class_=CommandSource, doc="The command source.")
    incident_id = param.String(default="", doc="The incident shown ('' for none).")
    live = param.Boolean(default=True, doc=(
        "Refresh on hub messages now (False: note them and refresh when set True again)."))

    def watch_hub(self, topics=("command",)) -> None:
        """Subscribe to ``topics`` (call at the end of ``__init__``)."""
        self._read_at = 0.0
        self._stale = False
        self.subscribe(list(topics), self._on_hub, period_ms=1000, immediate=True)

    def refresh(self) -> None:  # pragma: no cover - every subclass has its own
        raise NotImplementedError

    def mark_read(self) -> None:
        """Call at the start of a refresh: what was published before is read."""
        self._read_at = time.monotonic()

    def refresh_soon(self) -> None:
        """After this page's own action: refresh on the page's next tick, so the pages the
        action was published to are served first (the server has one thread for every page).
        What was published before now counts as read (the refresh will show it)."""
        self.mark_read()
        doc = pn.state.curdoc
        if doc is None or doc.session_context is None:
            self.refresh()
            return

        def run():
            with set_curdoc(doc):
                self.refresh()

        doc.add_next_tick_callback(run)

    def as_user(self, action: str, run, *, county: str | None = None):
        """An action to hand a notice: ``run(who)`` as the page's user, when the guard
        allows ``action`` on the incident's county (refusals are recorded and shown)."""
        def act():
            where = county
            if where is None and self.incident_id:
                current = self.source.version(self.incident_id)
                where = None if current is None else current.get("county_code")
            return self.guard.act(action, run, county=where,
                                  target=f"incident:{self.incident_id or 'new'}")
        return act

    def concerns(self, message) -> bool:
        """Whether a hub message changes what this view shows."""
        if message.topic != "command":
            return True
        return any(d.get("incident_id") == self.incident_id for d in message.payload)

    def _on_hub(self, messages, missed: bool) -> None:
        fresh = [m for m in messages if m.at > getattr(self, "_read_at", 0.0)]
        if not (missed or any(self.concerns(m) for m in fresh)):
            return
        if not self.live:
            self._stale = True
            return
        self.on_news()

    def on_news(self) -> None:
        """What a relevant message does (default: refresh)."""
        self._stale = False
        self.refresh()

    @param.depends("live", watch=True)
    def _shown(self) -> None:
        if self.live and getattr(self, "_stale", False):
            self.on_news()


def set_options(select, opts: dict) -> None:
    """Give a Select new options, keeping its value if still offered, else the first one."""
    values = list(opts.values())
    keep = select.value if select.value in values else (values[0] if values else None)
    select.param.update(options=opts, value=keep)
