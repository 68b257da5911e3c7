"""一键抽取: draw experts for a task, replace one who declines, rate them, settle fees."""
from __future__ import annotations

import io
from datetime import date, timedelta

import pandas as pd
import panel as pn
import param

from sources.inventory.common import to_csv_bytes
from sources.inventory.experts import ExpertSource

from .base import View
from .expert_directory import EnterprisePicker, county_options, home_county, type_options
from .inventory_common import Notice, listify, rule, table, translate
from .panes import Markdown
from .styles import ACTION_CSS

MARKS = [5, 4, 3, 2, 1]


class ExpertDraw(View):
    """The one-click draw desk: criteria → draw → members, redraw, rating, fees, audit log."""

    view_type = "expert_draw"

    source = param.ClassSelector(class_=ExpertSource, doc="The expert inventory source.")
    task_id = param.Integer(default=None, allow_None=True, doc="The task shown below the form.")

    def __init__(self, **params):
        super().__init__(**params)
        t, src = self.t, self.source
        tag_opts = list(src.tags().tag)
        self.title = pn.widgets.TextInput(label=t("inventory.draw.task"),
                                          placeholder=t("inventory.draw.task.hint"),
                                          css_classes=["inv-draw-title"], width=220)
        self.n = pn.widgets.IntInput(label=t("inventory.draw.n"), value=3, start=1, end=100,
                                     css_classes=["inv-draw-n"], width=90)
        self.tags = pn.widgets.MultiChoice(label=t("inventory.tags"), options=tag_opts,
                                           css_classes=["inv-draw-tags"], width=240)
        self.match_all = pn.widgets.Checkbox(label=t("inventory.draw.match_all"), align="end")
        self.type = pn.widgets.Select(label=t("inventory.type"), options=type_options(t),
                                      css_classes=["inv-draw-type"], width=130)
        self.county = pn.widgets.Select(label=t("inventory.county"),
                                        options=county_options(src.store, t),
                                        value=home_county(self.guard), width=170)
        self.enterprise = EnterprisePicker(src, t, "inv-draw")
        self.days = pn.widgets.IntInput(label=t("inventory.draw.days"), value=30, start=0,
                                        css_classes=["inv-draw-days"], width=110)
        self.draw_button = pn.widgets.Button(label=t("inventory.draw.go"), color="danger",
                                             css_classes=["inv-draw-go"], align="end",
                                             stylesheets=[ACTION_CSS])
        self.notice = Notice(t, "inv-draw-notice")
        self.task = pn.widgets.Select(label=t("inventory.draw.current"), options={},
                                      css_classes=["inv-draw-task"], width=320)
        self.members_table = table(page_size=10, selectable=1, css_class="inv-draw-members",
                                   titles={c: t(f"inventory.col.{c}") for c in (
                                       "expert_id", "name", "type", "title", "employer",
                                       "phone", "status", "note")})
        self.reason = pn.widgets.TextInput(label=t("inventory.draw.reason"), width=180)
        self.redraw_button = pn.widgets.Button(label=t("inventory.draw.redraw"),
                                               css_classes=["inv-draw-redraw"], align="end")
        self.marks = {k: pn.widgets.Select(label=t(f"inventory.rate.{k}"), options=MARKS,
                                           value=5, width=90)
                      for k in ("professionalism", "conduct", "timeliness")}
        self.rate_button = pn.widgets.Button(label=t("inventory.rate.go"), align="end")
        self.days_worked = pn.widgets.FloatInput(label=t("inventory.fee.days"), value=1.0,
                                                 start=0, width=90)
        self.daily_rate = pn.widgets.FloatInput(label=t("inventory.fee.rate"), value=800.0,
                                                start=0, width=110)
        self.travel = pn.widgets.FloatInput(label=t("inventory.fee.travel"), value=0.0, start=0,
                                            width=100)
        self.fee_button = pn.widgets.Button(label=t("inventory.fee.go"), align="end")
        self.action_notice = Notice(t, "inv-draw-action-notice")
        self.log_table = table(page_size=6, css_class="inv-draw-log", titles={
            c: t(f"inventory.col.{c}") for c in ("draw_id", "drawn_by", "drawn_at", "criteria",
                                                  "seed", "pool_size", "n", "result",
                                                  "replaces_expert_id", "pool")})
        self.log_csv = pn.widgets.FileDownload(
            callback=lambda: io.BytesIO(to_csv_bytes(self.source.draws())),
            filename="expert_draws.csv", label=t("inventory.export.draws"))
        today = date.today()
        self.start = pn.widgets.DatePicker(label=t("inventory.fee.start"),
                                           value=today.replace(day=1), width=140)
        self.end = pn.widgets.DatePicker(label=t("inventory.fee.end"), value=today, width=140)
        reg = src.registry().sort_values("expert_id")
        self.fee_expert = pn.widgets.Select(
            label=t("inventory.fee.expert"),
            options={t("inventory.all"): "", **{f"{n} ({i})": int(i) for i, n in zip(
                reg["expert_id"], reg["name"], strict=True)}},
            css_classes=["inv-fee-expert"], width=180)
        self.fee_csv = pn.widgets.FileDownload(callback=lambda: self._fees("csv"),
                                               filename="expert_fees.csv",
                                               label=t("inventory.export.csv"), align="end")
        self.fee_xlsx = pn.widgets.FileDownload(callback=lambda: self._fees("xlsx"),
                                                filename="expert_fees.xlsx",
                                                label=t("inventory.export.xlsx"), align="end")
        self.draw_button.on_click(lambda _e: self.draw())
        self.redraw_button.on_click(lambda _e: self.redraw())
        self.rate_button.on_click(lambda _e: self.rate())
        self.fee_button.on_click(lambda _e: self.record_fee())
        self.task.param.watch(lambda e: setattr(self, "task_id", e.new), "value")
        self.param.watch(lambda _e: self.show_task(), "task_id")
        self._load_tasks()

    # ------------------------------------------------------------------ actions
    def draw(self) -> dict | None:
        """Draw with the form's criteria; the new task becomes the current one."""
        result = self.notice.run(
            lambda: self.guard.act(
                "expert.draw", lambda who: self.source.draw(
                    n=self.n.value, title=self.title.value, tags=self.tags.value,
                    match_all=self.match_all.value, type=self.type.value or None,
                    county=self.county.value or None, enterprise_id=self.enterprise.value,
                    exclude_days=self.days.value, actor=who),
                county=self.county.value or None, target="expert_task:new",
                details={"n": self.n.value, "title": self.title.value,
                         "tags": list(self.tags.value)}),
            lambda r: self.t("inventory.draw.done", n=len(r["result"]), pool=r["pool_size"],
                             seed=r["seed"]))
        if result is not None:
            self._load_tasks(select=result["task_id"])
        return result

    def _task_county(self) -> str | None:
        """The county of the current task (what a county officer's rights are checked on)."""
        if self.task_id is None:
            return None
        tasks = self.source.tasks()
        row = tasks[tasks.task_id == self.task_id]
        if not len(row) or "county_code" not in row or pd.isna(row.county_code.iloc[0]):
            return None
        return str(row.county_code.iloc[0])

    def _selected_expert(self) -> int | None:
        sel = self.members_table.selection
        if self.task_id is None or not sel:
            self.action_notice.refuse(self.t("inventory.draw.pick_member"))
            return None
        return int(self.members_table.value.iloc[sel[0]].expert_id)

    def redraw(self) -> dict | None:
        """Mark the selected member as declined and draw a replacement (recorded)."""
        eid = self._selected_expert()
        if eid is None:
            return None
        result = self.action_notice.run(
            lambda: self.guard.act(
                "expert.redraw", lambda who: self.source.redraw(
                    self.task_id, eid, actor=who, reason=self.reason.value),
                target=f"expert_task:{self.task_id}", county=self._task_county(),
                details={"declined": eid, "reason": self.reason.value}),
            lambda r: self.t("inventory.draw.redone", old=eid, new=r["result"][0],
                             pool=r["pool_size"]))
        self.show_task()
        return result

    def rate(self) -> float | None:
        eid = self._selected_expert()
        if eid is None:
            return None
        marks = {k: float(w.value) for k, w in self.marks.items()}
        return self.action_notice.run(
            lambda: self.guard.act(
                "expert.rate", lambda who: self.source.rate(self.task_id, eid, actor=who,
                                                            **marks),
                target=f"expert:{eid}", county=self._task_county(), details=marks),
            lambda r: self.t("inventory.rate.done", rating=r))

    def record_fee(self) -> int | None:
        eid = self._selected_expert()
        if eid is None:
            return None
        return self.action_notice.run(
            lambda: self.guard.act(
                "expert.fee", lambda who: self.source.record_fee(
                    self.task_id, eid, days=self.days_worked.value,
                    daily_rate=self.daily_rate.value, travel=self.travel.value or 0.0,
                    actor=who),
                target=f"expert:{eid}", county=self._task_county(),
                details={"days": self.days_worked.value, "daily_rate": self.daily_rate.value}),
            lambda _r: self.t("inventory.fee.done"))

    def _fees(self, fmt: str) -> io.BytesIO:
        start = self.start.value or date.today() - timedelta(days=365)
        end = self.end.value or date.today()
        expert = self.fee_expert.value or None
        return io.BytesIO(self.source.fee_export(start, end, expert_id=expert, fmt=fmt))

    # ------------------------------------------------------------------ display
    def _load_tasks(self, select: int | None = None) -> None:
        tasks = self.source.tasks()
        self.task.options = {f"#{r.task_id} {r.title} ({r.experts})": int(r.task_id)
                             for r in tasks.itertuples()}
        if select is not None:
            self.task.value = int(select)
            self.task_id = int(select)
        elif len(tasks) and self.task_id is None:
            self.task_id = int(tasks.task_id.iloc[0])

    def show_task(self) -> None:
        """Show the current task's members and its draws (the audit log)."""
        if self.task_id is None:
            return
        members = self.source.members(self.task_id)
        members["type"] = translate(members["type"], self.t, "inventory.type.")
        members["status"] = translate(members["status"], self.t, "inventory.status.")
        self.members_table.value = members[["expert_id", "name", "type", "title", "employer",
                                            "phone", "status", "note"]]
        log = self.source.draws(self.task_id)
        log["drawn_at"] = log["drawn_at"].dt.strftime("%Y-%m-%d %H:%M:%S")
        log["seed"] = log["seed"].astype(str)
        self.log_table.value = listify(log, "result", "pool")[
            ["draw_id", "drawn_by", "drawn_at", "replaces_expert_id", "criteria", "seed",
             "pool_size", "n", "result", "pool"]]

    def __panel__(self):
        t = self.t
        form = pn.Column(
            Markdown(f"#### {t('inventory.draw.title')}"),
            Markdown(t("inventory.draw.help"), styles={"font-size": "12px"}),
            pn.Row(self.title, self.n, self.tags, self.match_all),
            pn.Row(self.type, self.county, self.enterprise.panel(), self.days, self.draw_button),
            self.notice.pane, sizing_mode="stretch_width")
        task = pn.Column(
            self.task, self.members_table,
            pn.Row(self.reason, self.redraw_button),
            pn.Row(*self.marks.values(), self.rate_button),
            pn.Row(self.days_worked, self.daily_rate, self.travel, self.fee_button),
            self.action_notice.pane,
            Markdown(f"#### {t('inventory.draw.log')}"), self.log_table, self.log_csv,
            Markdown(f"#### {t('inventory.fee.statement')}"),
            pn.Row(self.fee_expert, self.start, self.end, self.fee_csv, self.fee_xlsx),
            sizing_mode="stretch_width")
        return pn.Column(form, rule(), task, sizing_mode="stretch_width")

