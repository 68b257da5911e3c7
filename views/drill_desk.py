"""The drill desk (应急演练): start, pause, resume and stop a scripted exercise; review how the
officers responded; purge a drill's data, leaving real records untouched."""
from __future__ import annotations

import html
import io

import pandas as pd
import panel as pn
import param

from sources.drills.desk import DrillError, DrillSource

from .base import Refused, View
from .inventory_common import table
from .panes import HTML
from .styles import ACTION_CSS

DESK_CSS = """
.drill-status { font-size: 15px; padding: 6px 0; }
.drill-note.ok { color: #135e2b; } .drill-note.err { color: #a3001c; font-weight: 600; }
.drill-summary { font-size: 14px; line-height: 1.6; }
"""
PAST_COLUMNS = ("drill_id", "scenario", "started_at", "started_by", "last_seen_at", "purged_at")


def _seconds(value) -> str:
    if value is None or value != value:
        return "—"
    s = int(round(float(value)))
    return f"{s // 60} min {s % 60:02d} s" if s >= 60 else f"{s} s"


class DrillDesk(View):
    """The officers' exercise desk: the scenarios the feed can play, the running drill, the
    past ones with their review and purge."""

    view_type = "drill_desk"

    source = param.ClassSelector(class_=DrillSource, doc="The console's drills.")

    def __init__(self, **params):
        super().__init__(**params)
        t = self.t
        try:
            scenarios = self.source.scenarios()
        except Exception:  # noqa: BLE001 - no desk reachable: the page says so below
            scenarios = []
        self.scenario = pn.widgets.Select(
            name=t("drill.scenario"), width=320,
            options={f"{s.get('title') or s['name']} ({s['name']})": s["name"]
                     for s in scenarios if s.get("ok", True)})
        self.speed = pn.widgets.Select(name=t("drill.speed"), options=[1, 2, 5, 10, 20],
                                       value=1, width=90)
        self.start_btn = pn.widgets.Button(name=t("drill.start"), button_type="danger",
                                           disabled=not scenarios, stylesheets=[ACTION_CSS])
        self.pause_btn = pn.widgets.Button(name=t("drill.pause"))
        self.resume_btn = pn.widgets.Button(name=t("drill.resume"))
        self.stop_btn = pn.widgets.Button(name=t("drill.stop"), button_type="warning",
                                          stylesheets=[ACTION_CSS])
        self.start_btn.on_click(lambda _e: self.start())
        self.pause_btn.on_click(lambda _e: self.control("pause"))
        self.resume_btn.on_click(lambda _e: self.control("resume"))
        self.stop_btn.on_click(lambda _e: self.control("stop"))
        self.status = HTML("", css_classes=["drill-status"], stylesheets=[DESK_CSS],
                           sizing_mode="stretch_width")
        self.note = HTML("", css_classes=["drill-note-pane"], stylesheets=[DESK_CSS],
                         sizing_mode="stretch_width")
        self.past = table(page_size=8, selectable=1)
        self.past.param.watch(lambda _e: self.show_review(), "selection")
        self.summary = HTML("", css_classes=["drill-summary"], stylesheets=[DESK_CSS],
                            sizing_mode="stretch_width")
        self.review_table = table(page_size=10)
        self.export_btn = pn.widgets.FileDownload(
            callback=self._review_csv, filename="drill-review.csv", label=t("drill.export"),
            button_type="primary")
        self.purge_btn = pn.widgets.Button(name=t("drill.purge"), button_type="danger",
                                           stylesheets=[ACTION_CSS])
        self.purge_btn.on_click(lambda _e: self.purge())
        if not scenarios:
            self._say(t("drill.err.no_desk"), ok=False)
        self.refresh()
        self.subscribe(["drill"], lambda _m, _missed: self.refresh(), period_ms=2000,
                       immediate=True)

    # ------------------------------------------------------------------ actions
    def start(self) -> dict | None:
        """Start the chosen scenario as the page's user."""
        name = self.scenario.value
        if not name:
            return self._say(self.t("drill.err.no_desk"), ok=False)
        try:
            status = self.guard.act(
                "drill.start", lambda who: self.source.start(name, actor=who,
                                                            speed=float(self.speed.value)),
                target=f"scenario:{name}", details={"speed": self.speed.value})
        except (Refused, DrillError) as exc:
            return self._refused(exc)
        self._say(self.t("drill.started", drill=status.get("drill_id")), ok=True)
        self.refresh()
        return status

    def control(self, step: str) -> dict | None:
        """Pause, resume or stop the running drill."""
        try:
            status = self.guard.act("drill.control", lambda _who: getattr(self.source, step)(),
                                    target=f"drill:{step}")
        except (Refused, DrillError) as exc:
            return self._refused(exc)
        self.refresh()
        return status

    def selected_drill(self) -> str | None:
        sel = self.past.selection
        ids = getattr(self, "_past_ids", [])
        if not sel or sel[0] >= len(ids):
            return None
        return str(ids[sel[0]])

    def purge(self) -> dict | None:
        """Delete every row of the selected drill (an administrator's action)."""
        drill = self.selected_drill()
        if drill is None:
            return self._say(self.t("drill.pick"), ok=False)
        try:
            deleted = self.guard.act("drill.purge",
                                     lambda who: self.source.purge(drill, actor=who),
                                     target=f"drill:{drill}")
        except (Refused, DrillError) as exc:
            return self._refused(exc)
        self._say(self.t("drill.purged", drill=drill, n=sum(deleted.values())), ok=True)
        self.refresh()
        return deleted

    # ------------------------------------------------------------------ display
    def refresh(self) -> None:
        active = self.source.active()
        if active is None:
            self.status.object = html.escape(self.t("drill.none"))
        else:
            self.status.object = html.escape(
                f"{active.get('title') or active['drill_id']} · "
                f"{self.t('drill.state.' + str(active.get('state', 'running')))} · "
                f"{_seconds(active.get('position_s'))}")
        drills = self.source.drills()
        keep = self.selected_drill()  # a drill's messages refresh the list: keep the choice
        self._past_ids = list(drills.drill_id)  # the rows shown, in order (labels translated)
        shown = drills[[c for c in PAST_COLUMNS if c in drills]].copy()
        for col in ("started_at", "last_seen_at", "purged_at"):
            if col in shown:
                shown[col] = pd.to_datetime(shown[col], utc=True).dt.tz_convert(
                    "Asia/Shanghai").dt.strftime("%m-%d %H:%M:%S").fillna("")
        shown = shown.rename(columns={c: self.t(f"drill.col.{c}") for c in shown})
        if not shown.equals(self.past.value):
            self.past.value = shown
            if keep in self._past_ids:
                self.past.selection = [self._past_ids.index(keep)]
        self.show_review()

    def show_review(self) -> None:
        drill = self.selected_drill()
        if drill is None:
            self.summary.object, self.review_table.value = "", pd.DataFrame()
            return
        s = self.source.summary(drill)
        text = self.t(
            "drill.review.summary", alarms=s["alarms"], acknowledged=s["acknowledged"],
            ack_median=_seconds(s["ack_median_s"]), ack_max=_seconds(s["ack_max_s"]),
            officer_warnings=s["officer_warnings"], incidents=s["incidents"],
            commanded=s["commanded"], first_command=_seconds(s["first_command_s"]),
            dispatches=s["dispatches"], first_dispatch=_seconds(s["first_dispatch_s"]))
        self.summary.object = f'<div class="drill-summary-text">{html.escape(text)}</div>'
        self.review_table.value = self.source.review(drill)

    def _review_csv(self) -> io.BytesIO:
        drill = self.selected_drill()
        if drill is None:
            return io.BytesIO(b"")
        self.guard.record("export", target=f"drill_review:{drill}")
        return io.BytesIO(self.source.review_csv(drill))

    def _refused(self, exc) -> None:
        text = self.refusal(exc) if isinstance(exc, Refused) else \
            self.t(exc.key, **exc.fmt)
        return self._say(text, ok=False)

    def _say(self, text: str, *, ok: bool) -> None:
        self.note.object = (f'<span class="drill-note {"ok" if ok else "err"}">'
                            f"{html.escape(text)}</span>")

    def __panel__(self):
        controls = pn.Row(self.scenario, self.speed, self.start_btn, self.pause_btn,
                          self.resume_btn, self.stop_btn, sizing_mode="stretch_width")
        return pn.Column(
            controls, self.status, self.note,
            HTML(f"<h2>{html.escape(self.t('drill.past'))}</h2>", margin=(8, 0, 0, 0)),
            self.past,
            HTML(f"<h2>{html.escape(self.t('drill.review'))}</h2>", margin=(8, 0, 0, 0)),
            self.summary, pn.Row(self.export_btn, self.purge_btn), self.review_table,
            sizing_mode="stretch_width")
