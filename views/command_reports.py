"""信息报送: the report timers counting down (overdue in red), the editor filled from the
incident's template, submitted reports with their versions, and HTML / DOCX exports."""
from __future__ import annotations

import html
import io

import pandas as pd
import panel as pn
import param

from sources.command.deadlines import REPORT_KINDS

from .command_common import COMMAND_CSS, CommandNotice, CommandView, countdown, local
from .inventory_common import table
from .panes import HTML, Markdown


class ReportEditor(CommandView):
    """Report timers, the editor and the reports of one incident."""

    view_type = "command_reports"

    def __init__(self, **params):
        super().__init__(**params)
        t = self.t
        self.timers_pane = HTML("", sizing_mode="stretch_width", css_classes=["cmd-timers"],
                                stylesheets=[COMMAND_CSS])
        self.kind = pn.widgets.Select(label=t("command.report.kind"),
                                      options={t("command.report." + k): k for k in REPORT_KINDS},
                                      value="first", width=150, css_classes=["cmd-report-kind"])
        self.draft_button = pn.widgets.Button(label=t("command.report.draft"), align="end",
                                              css_classes=["cmd-report-draft"])
        self.title = pn.widgets.TextInput(label=t("command.report.title"), width=420,
                                          css_classes=["cmd-report-title"])
        self.recipient = pn.widgets.TextInput(label=t("command.report.recipient"), width=220,
                                              value=t("command.report.recipient.default"))
        self.body = pn.widgets.TextAreaInput(label=t("command.report.body"), height=280,
                                             sizing_mode="stretch_width",
                                             css_classes=["cmd-report-body"])
        self.submit_button = pn.widgets.Button(label=t("command.report.submit"),
                                               color="primary", css_classes=["cmd-report-submit"])
        self.revise_button = pn.widgets.Button(label=t("command.report.revise"),
                                               css_classes=["cmd-report-revise"])
        self.notice = CommandNotice(t, "cmd-report-notice")
        self.list = table(page_size=10, selectable=1, css_class="cmd-report-list",
                          titles={c: t(f"command.col.{c}") for c in (
                              "report_id", "kind", "title", "version", "submitted_at",
                              "first_by", "version_by")})
        self.list.param.watch(lambda _e: self._load_selected(), "selection")
        self.exports = pn.Row(
            pn.widgets.FileDownload(callback=lambda: self._export("html"), filename="report.html",
                                    label=t("command.export.html"),
                                    css_classes=["cmd-export-html"]),
            pn.widgets.FileDownload(callback=lambda: self._export("docx"), filename="report.docx",
                                    label=t("command.export.docx"),
                                    css_classes=["cmd-export-docx"]))
        self.draft_button.on_click(lambda _e: self.draft())
        self.submit_button.on_click(lambda _e: self.submit())
        self.revise_button.on_click(lambda _e: self.revise())
        self.reports = pd.DataFrame()
        self.timers: list = []
        self.watch_hub()
        cb = self.every(self._tick, period=1000)  # the countdowns
        self.on_close(cb.stop)
        self.refresh()

    # ------------------------------------------------------------------ actions
    def draft(self) -> dict | None:
        """Fill the editor from the incident's template for the chosen kind."""
        if not self.incident_id:
            self.notice.refuse(self.t("command.pick_incident"))
            return None
        d = self.notice.run(self.as_user("incident.update", lambda who: self.source.draft_report(
            self.incident_id, self.kind.value, lang=self.lang, user=who)),
            lambda _d: self.t("command.report.drafted"))
        if d is not None:
            self.title.value, self.body.value = d["title"], d["body"]
            self.list.selection = []
        return d

    def submit(self) -> dict | None:
        if not self.incident_id:
            self.notice.refuse(self.t("command.pick_incident"))
            return None
        r = self.notice.run(self.as_user("incident.update", lambda who: self.source.submit_report(
            self.incident_id, self.kind.value, self.body.value, user=who,
            title=self.title.value, recipient=self.recipient.value)),
            lambda r: self.t("command.report.submitted", kind=self.t(
                "command.report." + r["kind"]), id=r["report_id"]))
        self.refresh_soon()
        return r

    def revise(self) -> dict | None:
        rid = self._selected()
        if rid is None:
            self.notice.refuse(self.t("command.report.pick"))
            return None
        r = self.notice.run(self.as_user("incident.update", lambda who: self.source.revise_report(
            rid, self.body.value, user=who, title=self.title.value)),
            lambda r: self.t("command.report.revised", id=rid, version=r["version"]))
        self.refresh_soon()
        return r

    def _selected(self) -> int | None:
        sel = self.list.selection
        if not sel or len(self.reports) <= sel[0]:
            return None
        return int(self.reports.report_id.iloc[sel[0]])

    def _load_selected(self) -> None:
        rid = self._selected()
        if rid is not None:
            row = self.reports[self.reports.report_id == rid].iloc[0]
            self.title.value, self.body.value = row.title, row.body
            self.kind.value = row.kind

    def _export(self, fmt: str) -> io.BytesIO:
        rid = self._selected()
        if rid is None and len(self.reports):
            rid = int(self.reports.report_id.iloc[-1])
        if rid is None:
            return io.BytesIO(b"")
        return io.BytesIO(self.source.export_report(rid, fmt))

    # ------------------------------------------------------------------ display
    @param.depends("incident_id", watch=True)
    def refresh(self) -> None:
        self.mark_read()
        t = self.t
        if not self.incident_id or self.source.version(self.incident_id) is None:
            self.timers, self.reports = [], pd.DataFrame()
            self.list.value = pd.DataFrame()
            self._tick()
            return
        self.timers = self.source.timers(self.incident_id)
        df = self.source.reports(self.incident_id)
        self.reports = df
        self.list.value = pd.DataFrame({
            "report_id": df.report_id, "kind": [t("command.report." + k) for k in df.kind],
            "title": df.title, "version": df.version,
            "submitted_at": [local(x) for x in df.submitted_at], "first_by": df.first_by,
            "version_by": df.version_by})
        self._tick()

    def _tick(self) -> None:
        """Redraw the countdowns from the timers held (no query)."""
        t, e = self.t, html.escape
        if not self.timers:
            text = t("command.timer.none") if self.incident_id else t("command.pick_incident")
            self.timers_pane.object = f'<div class="cmd-card cmd-muted">{e(text)}</div>'
            return
        now = self.source.now()
        rows = []
        for x in self.timers:
            done = x.state in ("done", "late")
            label = t("command.report." + x.kind) + (f" #{x.n}" if x.kind == "followup" else "")
            state = t("command.timer." + x.state)
            css = "cmd-overdue" if x.state in ("overdue", "late") else ""
            rows.append(f'<tr class="cmd-timer-{x.state}"><td>{e(label)}</td>'
                        f'<td>{e(local(x.due_at))}</td><td class="{css}">{e(state)}</td>'
                        f'<td>{countdown(x.due_at, now, t, done=done)}</td>'
                        f'<td>{e(local(x.done_at))}</td></tr>')
        head = "".join(f"<th>{e(t('command.timer.col.' + c))}</th>"
                       for c in ("kind", "due", "state", "countdown", "filed"))
        self.timers_pane.object = (f'<table class="cmd-card" style="width:100%"><tr>{head}</tr>'
                                   f'{"".join(rows)}</table>')

    def __panel__(self):
        t = self.t
        return pn.Column(
            Markdown(f"#### {t('command.report.timers')}"), self.timers_pane,
            pn.Row(self.kind, self.draft_button, self.title, self.recipient),
            self.body, pn.Row(self.submit_button, self.revise_button), self.notice.pane,
            Markdown(f"#### {t('command.report.list')}"), self.list, self.exports,
            sizing_mode="stretch_width")
