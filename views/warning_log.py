"""The active-warnings list (live) and the warning log (filterable, CSV export)."""
from __future__ import annotations

import html
import io
import time

import pandas as pd
import panel as pn
import param

from sources.access.guard import Guard
from sources.access.jurisdiction import overlaps
from sources.levels import COLORS
from sources.warnings.cap import CHINA_TZ
from sources.warnings.cap_feed import alert_path, counties_path
from sources.warnings.warnings import EVENTS, LEVELS, WarningSource

from .base import View
from .i18n import t
from .panes import HTML, Markdown

LEVEL_CSS = COLORS

LIST_CSS = """
.wl { display: flex; flex-direction: column; gap: 6px; font-size: 14px; height: 100%;
  overflow-y: auto; }
.wl-title { font-weight: 700; color: #0f2747; }
.wl-item { border-left: 6px solid #999; background: #fff; padding: 6px 8px; border-radius: 4px;
  box-shadow: 0 1px 2px rgba(0,0,0,.08); }
.wl-item .hl { font-weight: 600; }
.wl-item .meta { color: #4b5563; font-size: 12px; }
.wl-item a { font-size: 12px; margin-right: 8px; }
.wl-none { color: #6b7280; }
"""


def event_label(event: str, lang: str) -> str:
    """The label of an event key, or the raw text (a feed may send any event)."""
    key = f"warnings.event.{event}"
    return t(key, lang) if event in EVENTS else str(event)


def concerning(df: pd.DataFrame, guard: Guard) -> pd.DataFrame:
    """The warnings (rows with ``area_codes``) whose area meets the user's jurisdiction:
    a county officer sees the warnings of the county, of its city and of the province."""
    if guard.scope() is None or not len(df):
        return df
    keep = [overlaps(guard.jurisdiction, list(a) if a is not None else [])
            for a in df["area_codes"]]
    return df.loc[keep]


def fmt_time(value) -> str:
    if value is None or pd.isna(value):
        return ""
    return pd.Timestamp(value).tz_convert(CHINA_TZ).strftime("%m-%d %H:%M")


class ActiveWarnings(View):
    """The warnings in force now, most severe first; redrawn on the tick after a change."""

    view_type = "active_warnings"

    source = param.ClassSelector(class_=WarningSource, doc="Warnings source.")
    refreshes = param.Integer(default=0, doc="Times the list was rebuilt (for tests).")
    height = param.Integer(default=820, doc="Height of the list in pixels (it scrolls).")

    def __init__(self, **params):
        super().__init__(**params)
        # a fixed height: a new item must not make the browser lay out the whole page again
        self._pane = HTML("", sizing_mode="stretch_width", height=self.height,
                          stylesheets=[LIST_CSS], css_classes=["active-warnings"])
        self.frame = pd.DataFrame()
        self.refresh()
        self.subscribe(["warning"], lambda msgs, missed: self.refresh(), period_ms=1000,
                       immediate=True)

    def refresh(self) -> None:
        """Reload the active warnings from the store and redraw the list."""
        self.frame = concerning(self.source.active(geometry=False), self.guard)
        names = self.source.geo.names
        items = []
        for w in self.frame.itertuples():
            codes = list(w.area_codes) if w.area_codes is not None else []
            area = "、".join(names.get(c, c) for c in codes[:6]) + ("…" if len(codes) > 6 else "")
            wid = html.escape(str(w.warning_id))
            items.append(
                f'<div class="wl-item" data-warning-id="{wid}" data-level="{w.level}" '
                f'style="border-left-color:{LEVEL_CSS.get(w.level, "#999")}">'
                f'<div class="hl">{html.escape(event_label(w.event, self.lang))} · '
                f'{html.escape(t("warnings.level." + w.level, self.lang))} · '
                f'{html.escape(str(w.headline))}</div>'
                f'<div class="meta">{wid} · {html.escape(area)} · '
                f'{self.t("warnings.status." + w.status)} · '
                f'{html.escape(self.t("warnings.until", t=fmt_time(w.expires)))} · '
                f'{self.t("warnings.source." + w.source) if w.source in ("feed", "officer") else ""}'
                f'</div><a href=".{html.escape(alert_path(w.warning_id))}" target="_blank">CAP</a>'
                f'<a href=".{html.escape(counties_path(w.warning_id))}" target="_blank">'
                f'{self.t("warnings.sms")}</a></div>')
        title = self.t("warnings.active", n=len(items))
        body = "".join(items) or f'<div class="wl-none">{self.t("warnings.active.none")}</div>'
        self._pane.object = (f'<div class="wl" data-refreshed="{time.time():.3f}">'
                             f'<div class="wl-title">{title}</div>{body}</div>')
        self.refreshes += 1

    def __panel__(self):
        return self._pane


class WarningLog(View):
    """Everything issued and received, newest first; filter and export as CSV."""

    view_type = "warning_log"

    source = param.ClassSelector(class_=WarningSource, doc="Warnings source.")
    origin = param.Selector(default="", objects=["", "officer", "feed"], doc="Source filter.")
    event = param.String(default="", doc="Event filter ('' = all).")
    level = param.Selector(default="", objects=["", *LEVELS], doc="Level filter.")
    text = param.String(default="", doc="Search in headline, id and text.")

    def __init__(self, **params):
        super().__init__(**params)
        all_ = self.t("warnings.log.all")
        self._origin = pn.widgets.Select(
            name=self.t("warnings.log.source"), value="",
            options={all_: "", self.t("warnings.source.officer"): "officer",
                     self.t("warnings.source.feed"): "feed"}, width=160)
        self._event = pn.widgets.Select(
            name=self.t("warnings.event"), value="",
            options={all_: "", **{event_label(e, self.lang): e for e in EVENTS}}, width=140)
        self._level = pn.widgets.Select(
            name=self.t("warnings.level"), value="",
            options={all_: "", **{self.t(f"warnings.level.{lv}"): lv for lv in LEVELS}},
            width=140)
        self._text = pn.widgets.TextInput(name=self.t("warnings.log.search"), width=220)
        for w, p in ((self._origin, "origin"), (self._event, "event"), (self._level, "level"),
                     (self._text, "text")):
            w.link(self, value=p)
        self._count = Markdown("", css_classes=["warning-log-count"])
        self._table = pn.widgets.Tabulator(pd.DataFrame(), disabled=True, show_index=False,
                                           pagination="local", page_size=20,
                                           sizing_mode="stretch_both", min_height=300)
        self._download = pn.widgets.FileDownload(
            callback=self._csv, filename="warnings.csv", label=self.t("warnings.log.export"),
            button_type="primary", width=160)
        self.refresh()
        self.subscribe(["warning"], lambda msgs, missed: self.refresh(), period_ms=1000)

    def _filters(self) -> dict:
        return dict(source=self.origin or None, event=self.event or None,
                    level=self.level or None, text=self.text or None)

    @param.depends("origin", "event", "level", "text", watch=True)
    def refresh(self) -> None:
        """Re-run the log query with the filters and update the table in place."""
        df = concerning(self.source.log(**self._filters()), self.guard)
        view = pd.DataFrame({
            self.t("warnings.col.created"): [fmt_time(v) for v in df["created_at"]],
            self.t("warnings.col.id"): df["warning_id"],
            self.t("warnings.col.version"): df["version"],
            self.t("warnings.col.msg_type"): [self.t(f"warnings.msg.{m}") if m in
                                               ("Alert", "Update", "Cancel") else m
                                               for m in df["msg_type"]],
            self.t("warnings.event"): [event_label(e, self.lang) for e in df["event"]],
            self.t("warnings.level"): [self.t(f"warnings.level.{lv}") if lv in LEVELS else lv
                                       for lv in df["level"]],
            self.t("warnings.headline"): df["headline"],
            self.t("warnings.col.area"): [";".join(list(a)) if a is not None else ""
                                          for a in df["area_codes"]],
            self.t("warnings.log.source"): df["source"],
            self.t("warnings.col.sender"): df["sender"],
        })
        self._table.value = view
        self._count.object = self.t("warnings.log.count", n=len(df))

    def _csv(self):
        # the jurisdiction's warnings only, as the table shows them; recorded as an export
        scope = self.guard.scope()
        text = self.source.log_csv(**self._filters(),
                                   scope=None if scope is None else self.guard.jurisdiction)
        self.guard.record("export", target="warnings:log.csv",
                          details={"rows": max(0, len(text.splitlines()) - 1)})
        return io.BytesIO(text.encode("utf-8-sig"))

    def __panel__(self):
        return pn.Column(
            pn.Row(self._origin, self._event, self._level, self._text,
                   pn.Column(pn.Spacer(height=18), self._download)),
            self._count, self._table, sizing_mode="stretch_both")
