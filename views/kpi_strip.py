"""The board's KPI strip: big numbers, each with its change against 24 h ago."""
from __future__ import annotations

import html

import param

from sources.levels import WALL_COLORS
from sources.situation.source import SituationSource

from .base import View
from .i18n import t
from .panes import HTML
from .shared import Shared

KPI_CSS = """
:host { display: block; height: 100%; width: 100%; }
.kpis { display: flex; gap: .6vw; height: 100%; box-sizing: border-box; padding: .4vh .4vw;
  overflow: hidden; }
.kpi { flex: 1 1 0; min-width: 0; background: #111c2e; border: 1px solid #22324a;
  border-radius: .8vh; padding: .5vh .7vw; display: flex; flex-direction: column;
  justify-content: space-between; overflow: hidden; }
.kpi.wide { flex-grow: 1.7; }
.kpi.mid { flex-grow: 1.35; }
.kpi .label { font-size: 1.7vh; color: #9fb3c8; white-space: nowrap; overflow: hidden;
  text-overflow: ellipsis; }
.kpi .nums { display: flex; align-items: baseline; gap: .8vw; white-space: nowrap; }
.kpi .num { font-size: 6vh; line-height: 1; font-weight: 800; color: #f1f5f9;
  font-variant-numeric: tabular-nums; }
.kpi .num small { font-size: 1.6vh; font-weight: 400; color: #9fb3c8; margin-left: .2vw; }
.kpi .num.hot { color: #ff5d5d; }
.kpi .escalated { font-size: 1.8vh; font-weight: 700; color: #fff; background: #c81e1e;
  border-radius: .4vh; padding: .2vh .5vw; animation: esc-blink 1s steps(2, start) infinite; }
@keyframes esc-blink { to { visibility: hidden; } }
.kpi .delta { font-size: 1.6vh; color: #9fb3c8; white-space: nowrap; overflow: hidden; }
.kpi .delta .up { color: #ff7b7b; } .kpi .delta .down { color: #5ee398; }
.kpi.bad { border-color: #d90429; }
.kpi.drill { flex-grow: 1.2; border: .3vh dashed #ffb020; background: #2a1f05; }
.kpi.drill .label, .kpi.drill .delta { color: #ffd27a; }
.kpi.drill .num { color: #ffd27a; }
.kpi .sr { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0);
  white-space: nowrap; }
"""


def _fmt(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, float) and not v.is_integer() and abs(v) < 100:
        return f"{v:,.1f}"
    return f"{int(v):,}"


class KpiText:
    """The strip's markup in one language (plain: shared by every page, no Panel)."""

    def __init__(self, lang: str, kpis: dict):
        self.lang, self.kpis = lang, kpis or {}

    def t(self, key: str, **fmt) -> str:
        return t(key, self.lang, **fmt)

    def _delta(self, key: str, worse_up: bool = True, prefix: str = "") -> str:
        k = self.kpis.get(key) or {}
        now, before = k.get("value"), k.get("before")
        prefix = prefix or self.t("board.kpi.vs24h")
        if now is None or before is None:
            return f'<div class="delta">{prefix} —</div>'
        d = now - before
        if isinstance(d, float):
            d = round(d, 1)
        cls = "" if d == 0 else ("up" if (d > 0) == worse_up else "down")
        arrow = "▲" if d > 0 else ("▼" if d < 0 else "＝")
        return (f'<div class="delta">{prefix} '
                f'<span class="{cls}">{arrow} {_fmt(abs(d)) if d else ""}</span></div>')

    def _val(self, key: str):
        return (self.kpis.get(key) or {}).get("value")

    def _card(self, key: str, label: str, nums: str, delta_key: str | None = None,
              extra_cls: str = "", worse_up: bool = True, prefix: str = "") -> str:
        return (f'<div class="kpi {extra_cls}" data-kpi="{key}"><div class="label">'
                f'{html.escape(label)}</div><div class="nums">{nums}</div>'
                f'{self._delta(delta_key or key, worse_up, prefix)}</div>')

    def _num(self, value, color: str | None = None, unit: str = "", hot: bool = False,
             level: str | None = None) -> str:
        style = f' style="color:{color}"' if color else ""
        small = f"<small>{html.escape(unit)}</small>" if unit else ""
        # a level's number is in its colour, in the order the label names; a screen reader
        # hears the level's word
        word = f'<span class="sr">{html.escape(self.t("level." + level))} </span>' if level else ""
        return (f'<span class="num{" hot" if hot else ""}"{style}>{word}{_fmt(value)}{small}'
                "</span>")

    def html(self) -> str:
        if not self.kpis:
            return f'<div class="kpis"><div class="kpi">{self.t("board.loading")}</div></div>'
        warn_nums = "".join(
            self._num(self._val(f"warnings.{lvl}"), WALL_COLORS[lvl], level=lvl)
            for lvl in ("red", "orange", "yellow", "blue"))
        alarm_nums = "".join(
            self._num(self._val(f"alarms.{lvl}"), WALL_COLORS[lvl], level=lvl)
            for lvl in ("red", "orange", "yellow"))
        unacked = self._val("alarms.unacked") or 0
        escalated = self._val("alarms.escalated") or 0
        escalated_badge = (
            f'<span class="escalated">⚠ {html.escape(self.t("board.kpi.escalated", n=escalated))}'
            "</span>" if escalated else "")
        feeds = self.kpis.get("feeds") or {}
        connected, total = feeds.get("value", 0), feeds.get("total", 0)
        feeds_ok = total > 0 and connected == total
        cards = [
            self._card("warnings", self.t("board.kpi.warnings"), warn_nums, extra_cls="wide"),
            self._card("alarms", self.t("board.kpi.alarms"), alarm_nums, extra_cls="wide"),
            self._card("alarms.unacked", self.t("board.kpi.unacked"),
                       self._num(unacked, hot=unacked > 0) + escalated_badge),
            self._card("incidents", self.t("board.kpi.incidents"),
                       self._num(self._val("incidents"), hot=bool(self._val("incidents")))),
            self._card("hotspots", self.t("board.kpi.hotspots"), self._num(self._val("hotspots"))),
            self._card("quakes", self.t("board.kpi.quakes"), self._num(self._val("quakes"))),
            self._card("rate", self.t("board.kpi.rate"),
                       self._num(self._val("rate"), unit=self.t("board.kpi.per_s")),
                       worse_up=False, extra_cls="mid"),
            self._card("feeds", self.t("board.kpi.feeds"),
                       self._num(connected, unit=f"/ {total}", hot=not feeds_ok),
                       delta_key="rejected", extra_cls="" if feeds_ok else "bad",
                       prefix=self.t("board.kpi.rejected",
                                     n=_fmt(self._val("rejected")))),
        ]
        drill = {k: self._val(f"drill.{k}") or 0 for k in ("alarms", "warnings", "incidents")}
        if any(drill.values()):  # an exercise's items: counted apart, never in the figures
            cards.append(
                f'<div class="kpi drill" data-kpi="drill"><div class="label">'
                f'{html.escape(self.t("drill.kpi"))}</div><div class="nums">'
                f'{self._num(sum(drill.values()))}</div><div class="delta">'
                f'{html.escape(self.t("drill.kpi.detail", **drill))}</div></div>')
        return f'<div class="kpis">{"".join(cards)}</div>'


#: The strip's markup per (KPIs, language): every page showing the same KPIs shares it.
SHARED_HTML = Shared("kpi_strip")
_NONE: dict = {}  # "loading": one key for every page's empty KPIs


def kpi_html(kpis: dict, lang: str) -> str:
    """The strip's markup for ``kpis`` in ``lang``, computed once for every page."""
    kpis = kpis or _NONE
    return SHARED_HTML.get(kpis, lang, lambda: KpiText(lang, kpis).html())


class KpiStrip(View):
    """Active warnings, open alarms, incidents, hotspots, quakes, reading rate, feed health."""

    view_type = "kpi_strip"

    source = param.ClassSelector(class_=SituationSource,
                                 doc="The shared situation of the board.")

    kpis = param.Dict(default={}, doc="KPIs as SituationSource.kpis returns them.")

    def __init__(self, **params):
        super().__init__(**params)
        self._pane = HTML(
            self._html(), sizing_mode="stretch_both", margin=0, stylesheets=[KPI_CSS],
            css_classes=["board-kpis"])

    def __panel__(self):
        return self._pane

    @param.depends("kpis", watch=True)
    def _refresh(self):
        text = self._html()
        if text != self._pane.object:  # unchanged numbers send nothing to the browser
            self._pane.object = text

    def _html(self) -> str:
        return kpi_html(self.kpis, self.lang)
