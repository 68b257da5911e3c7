"""The enterprise card: identity, risk points, open hazards, installations and live sensors,
open alarms. Every value from the store is escaped: names with markup are shown as text."""
from __future__ import annotations

import datetime as dt
from html import escape

import numpy as np
import pandas as pd
import panel as pn
import param

from sources.risk.pointlayer import GRADE_COLORS, GRADES
from sources.risk.risk import RiskSource

from .base import View
from .panes import HTML
from .styles import level_badges

CARD_CSS = """
.card { font-size: 13px; color: #1f2937; }
.card h3 { margin: 4px 0 6px; font-size: 17px; color: #0f2747; word-break: break-all; }
.card h4 { margin: 12px 0 4px; font-size: 14px; color: #0f2747; }
.card table { border-collapse: collapse; width: 100%; }
.card td, .card th { border-bottom: 1px solid #e5e7eb; padding: 3px 4px; text-align: left;
  vertical-align: top; }
.card th { color: #6b7280; font-weight: 500; }
.card .grade { display: inline-block; padding: 1px 6px; border-radius: 3px; margin-right: 4px;
  color: #fff; }
.card tr.overdue td { background: #fde8e8; color: #9b1c1c; }
.card .overdue-tag { color: #fff; background: #e60012; border-radius: 3px; padding: 0 4px; }
.card .over { color: #e60012; font-weight: 600; }
.card .muted { color: #6b7280; }
.card .message { color: #b45309; font-weight: 600; }
""" + level_badges(".card .grade.grade")


def sparkline(values, *, width: int = 120, height: int = 28, lo=None, hi=None) -> str:
    """An inline SVG polyline of ``values`` (no JavaScript, no external resource)."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if len(v) < 2:
        return ""
    vmin, vmax = float(v.min()), float(v.max())
    for t in (lo, hi):  # keep thresholds in frame when they are close
        if t is not None and np.isfinite(t) and vmin - (vmax - vmin) <= t <= vmax + (vmax - vmin):
            vmin, vmax = min(vmin, t), max(vmax, t)
    span = (vmax - vmin) or 1.0
    xs = np.linspace(1, width - 1, len(v))
    ys = height - 2 - (v - vmin) / span * (height - 4)
    pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys, strict=True))
    lines = ""
    for t, colour in ((hi, "#ff8c00"), (lo, "#1e6fff")):
        if t is not None and np.isfinite(t) and vmin <= t <= vmax:
            y = height - 2 - (t - vmin) / span * (height - 4)
            lines += (f'<line x1="0" x2="{width}" y1="{y:.1f}" y2="{y:.1f}" stroke="{colour}" '
                      'stroke-dasharray="2,2" stroke-width="1"/>')
    return (f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}">'
            f'{lines}<polyline fill="none" stroke="#0f2747" stroke-width="1.2" points="{pts}"/>'
            "</svg>")


def _fmt(v, digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)) or v is pd.NaT:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    if isinstance(v, pd.Timestamp | dt.datetime):
        return v.strftime("%Y-%m-%d %H:%M")
    if isinstance(v, dt.date):
        return v.isoformat()
    return escape(str(v))


class EnterpriseCard(View):
    """One enterprise's card. Set ``enterprise_id`` (None: a hint; unknown: a clear message)."""

    view_type = "enterprise_card"

    source = param.ClassSelector(class_=RiskSource, doc="The risk queries (sources.risk.risk).")

    enterprise_id = param.Integer(default=None, allow_None=True,
                                  doc="The enterprise shown (None: nothing selected).")
    hours = param.Number(default=6.0, bounds=(0.5, 72),
                         doc="Hours of sensor history drawn in the sparklines.")
    unknown = param.String(default=None, allow_None=True,
                           doc="An enterprise id that was asked for but does not exist.")
    refused = param.String(default=None, allow_None=True,
                           doc="Why the enterprise asked for is not shown (outside the "
                               "user's jurisdiction).")

    def __init__(self, **params):
        super().__init__(**params)
        self._pane = HTML("", sizing_mode="stretch_width", stylesheets=[CARD_CSS],
                          css_classes=["enterprise-card"])
        self._update()

    def show(self, enterprise_id) -> bool:
        """Show ``enterprise_id`` (any text from a URL); False and a message when unknown."""
        ent = self.source.enterprise(enterprise_id)
        if ent is None:
            self.param.update(enterprise_id=None, unknown=str(enterprise_id), refused=None)
            return False
        if not self.guard.sees(ent.get("county_code")):
            exc = self.guard.refuse_view("enterprise", county=ent.get("county_code"),
                                         target=f"enterprise:{ent['enterprise_id']}")
            self.param.update(enterprise_id=None, unknown=None, refused=self.refusal(exc))
            return False
        self.param.update(unknown=None, refused=None, enterprise_id=int(ent["enterprise_id"]))
        return True

    @param.depends("enterprise_id", "unknown", "refused", "lang", watch=True)
    def _update(self) -> None:
        self._pane.object = self.html()

    def html(self) -> str:
        """The card as HTML text (every stored value escaped)."""
        if self.unknown is not None:
            return (f'<div class="card"><p class="message">'
                    f'{escape(self.t("risk.unknown_enterprise", id=self.unknown))}</p></div>')
        if self.refused is not None:
            return f'<div class="card"><p class="message refused">{escape(self.refused)}</p></div>'
        if self.enterprise_id is None:
            return f'<div class="card"><p class="muted">{self.t("risk.card.empty")}</p></div>'
        src, eid = self.source, self.enterprise_id
        e = src.enterprise(eid, self.lang)
        if e is None:
            return (f'<div class="card"><p class="message">'
                    f'{escape(self.t("risk.unknown_enterprise", id=str(eid)))}</p></div>')
        if not self.guard.sees(e.get("county_code")):  # set directly, not through show()
            text = self.t("access.denied.jurisdiction", target=str(e.get("county_code")),
                          jurisdiction=self.guard.jurisdiction)
            return f'<div class="card"><p class="message refused">{escape(text)}</p></div>'

        parts = [f'<div class="card" data-enterprise="{eid}"><h3>{escape(str(e["name"]))}</h3>',
                 self._identity(e), self._points(src.enterprise_points(eid)),
                 self._hazards(src.hazards(eid)), self._installations(eid),
                 self._alarms(src.alarms(eid)), "</div>"]
        return "".join(parts)

    # ------------------------------------------------------------------ sections
    def _label(self, prefix: str, key) -> str:
        """The label of a stored key (e.g. a status), or the key itself, escaped."""
        text = self.t(f"{prefix}.{key}")
        return escape(str(key) if text == f"{prefix}.{key}" else text)

    def _grade(self, g) -> str:
        g = str(g)
        colour = GRADE_COLORS.get(g, "#6b7280")
        # official fill and readable text from the stylesheet (level_badges); the word says it
        return (f'<span class="grade grade-{escape(g)}" style="background:{colour}">'
                f'{escape(self.t("risk." + g)) if g in GRADES else escape(g)}</span>')

    def _identity(self, e: dict) -> str:
        rows = [
            ("risk.card.industry", escape(str(e.get("industry_name") or e.get("industry")))),
            ("risk.card.size", escape(self.t(f"risk.size.{e.get('size')}"))),
            ("risk.card.county", escape(f"{e.get('city') or ''} {e.get('county') or ''}")),
            ("risk.card.address", _fmt(e.get("address"))),
            ("risk.card.contact", f"{_fmt(e.get('contact_name'))} {_fmt(e.get('contact_phone'))}"),
            ("risk.card.grade", self._grade(e.get("risk_level"))),
        ]
        if e.get("is_major_hazard"):
            rows.append(("risk.card.major_hazard", "✓"))
        body = "".join(f"<tr><th>{self.t(k)}</th><td>{v}</td></tr>" for k, v in rows)
        return f"<table class='identity'>{body}</table>"

    def _points(self, counts: dict) -> str:
        chips = "".join(f"{self._grade(g)}<b class='n-{g}'>{counts[g]:,}</b>&nbsp;&nbsp;"
                        for g in GRADES)
        return f"<h4>{self.t('risk.card.points')}</h4><div class='points'>{chips}</div>"

    def _hazards(self, df: pd.DataFrame) -> str:
        head = f"<h4>{self.t('risk.card.hazards')} ({len(df)})</h4>"
        if df.empty:
            return head + f"<p class='muted'>{self.t('risk.card.no_hazards')}</p>"
        cols = ("risk.card.description", "risk.card.severity", "risk.card.found_on",
                "risk.card.deadline", "risk.card.status")
        rows = []
        for r in df.itertuples():
            tag = (f" <span class='overdue-tag'>{self.t('risk.card.overdue')}</span>"
                   if r.overdue else "")
            rows.append(
                f"<tr class='{'overdue' if r.overdue else 'hazard'}'><td>{_fmt(r.description)}"
                f"</td><td>{self._label('risk.severity', r.severity)}</td><td>{_fmt(r.found_on)}</td>"
                f"<td>{_fmt(r.deadline)}{tag}</td><td>{self._label('risk.status', r.status)}"
                "</td></tr>")
        th = "".join(f"<th>{self.t(c)}</th>" for c in cols)
        return head + f"<table class='hazards'><tr>{th}</tr>{''.join(rows)}</table>"

    def _installations(self, eid: int) -> str:
        inst = self.source.installations(eid)
        head = f"<h4>{self.t('risk.card.installations')}</h4>"
        sensors = self.source.sensors(eid)
        if inst.empty and sensors.empty:
            return head + f"<p class='muted'>{self.t('risk.card.no_installations')}</p>"
        hist = self.source.history(sensors["sensor_id"].tolist(), hours=self.hours)
        series = {k: g["value"].to_numpy() for k, g in hist.groupby("sensor_id", sort=False)}
        th = "".join(f"<th>{self.t(c)}</th>" for c in (
            "risk.card.sensor", "risk.card.latest", "risk.card.thresholds", "risk.card.trend"))
        out = [head]
        groups = [(r.installation_id, f"{_fmt(r.name)} · {_fmt(r.kind)} · {r.hazard_grade}")
                  for r in inst.itertuples()]
        known = set(inst["installation_id"])
        if not sensors["installation_id"].isin(known).all():
            groups.append((None, "–"))
        for iid, title in groups:
            mine = sensors[sensors["installation_id"] == iid] if iid is not None else \
                sensors[~sensors["installation_id"].isin(known)]
            rows = []
            for s in mine.itertuples():
                value = s.value
                over = value is not None and np.isfinite(value) and (
                    (s.hi is not None and np.isfinite(s.hi) and value >= s.hi)
                    or (s.lo is not None and np.isfinite(s.lo) and value <= s.lo))
                latest = (f"<span class='{'over' if over else 'ok'}'>{_fmt(value)} "
                          f"{_fmt(s.unit)}</span> <span class='muted'>{_fmt(s.ts)}</span>"
                          if value is not None and np.isfinite(value)
                          else f"<span class='muted'>{self.t('risk.card.no_reading')}</span>")
                limits = " / ".join(f"{name} {_fmt(v)}" for name, v in (
                    ("LL", s.lo_lo), ("L", s.lo), ("H", s.hi), ("HH", s.hi_hi))
                    if v is not None and np.isfinite(v))
                rows.append(f"<tr class='sensor'><td>{_fmt(s.sensor_id)}<br>"
                            f"<span class='muted'>{_fmt(s.kind)}</span></td><td>{latest}</td>"
                            f"<td>{limits or '–'}</td><td>"
                            f"{sparkline(series.get(s.sensor_id, []), lo=s.lo, hi=s.hi)}</td></tr>")
            out.append(f"<div class='installation'><b>{title}</b>"
                       f"<table><tr>{th}</tr>{''.join(rows)}</table></div>")
        return "".join(out)

    def _alarms(self, df: pd.DataFrame) -> str:
        head = f"<h4>{self.t('risk.card.alarms')} ({len(df)})</h4>"
        if df.empty:
            return head + f"<p class='muted'>{self.t('risk.card.no_alarms')}</p>"
        th = "".join(f"<th>{self.t(c)}</th>" for c in (
            "risk.card.raised_at", "risk.card.sensor", "risk.card.alarm_kind",
            "risk.card.value", "risk.card.state"))
        rows = "".join(
            f"<tr class='alarm'><td>{_fmt(r.raised_at)}</td><td>{_fmt(r.sensor_id)}</td>"
            f"<td>{self._grade(r.level)} {self._label('risk.alarm', r.kind)}</td>"
            f"<td>{_fmt(r.trigger_value)}</td><td>{self._label('risk.alarm', r.state)}</td></tr>"
            for r in df.itertuples())
        return head + f"<table class='alarms'><tr>{th}</tr>{rows}</table>"

    def __panel__(self):
        return pn.Column(self._pane, sizing_mode="stretch_width", scroll=True)
