"""The incident workspace (研判 · 启动响应): the active incidents, an incident's card with its
grade and the rule that fired, corrections, the grade override, the response launch and the
plan checklist ticked with who and when, notes and closure."""
from __future__ import annotations

import html

import pandas as pd
import panel as pn
import param

from sources.command.catalog import GRADES, RESPONSE_LEVELS

from .command_common import (
    COMMAND_CSS,
    CommandNotice,
    CommandView,
    countdown,
    grade_badge,
    local,
    rule_text,
    subtype_label,
)
from .inventory_common import table
from .panes import HTML, Markdown
from .styles import ACTION_CSS


class IncidentList(CommandView):
    """Active incidents (feed and command) with grade, response, tasks and the next report."""

    view_type = "command_incident_list"

    def __init__(self, **params):
        super().__init__(**params)
        t = self.t
        self.table = table(page_size=12, selectable=1, css_class="cmd-list",
                           titles={c: t(f"command.col.{c}") for c in (
                               "grade", "title", "response_level", "tasks", "next_report",
                               "countdown", "origin")},
                           formatters={"grade": {"type": "html"},
                                       "countdown": {"type": "html"}})
        self.table.param.watch(self._picked, "selection")
        self.frame = pd.DataFrame()
        self.watch_hub(("command", "incident"))
        cb = self.every(self.refresh, period=30_000)  # countdowns move on
        self.on_close(cb.stop)
        self.refresh()

    def concerns(self, message) -> bool:
        return True  # any incident's change moves the list

    def refresh(self) -> None:
        self.mark_read()
        t, now = self.t, self.source.now()
        df = self.source.wall_incidents(now)
        scope = self.guard.scope()
        if scope is not None:  # a county officer commands the county's incidents
            df = df[df.county_code.fillna("").astype(str).str.startswith(scope)
                    ].reset_index(drop=True)
        self.frame = df
        shown = pd.DataFrame({
            "grade": [grade_badge(g, t) for g in df.grade],
            "title": df.title,
            "response_level": [t("command.level." + r) if r else "—" for r in df.response_level],
            "tasks": [t("command.tasks_count", a=r.tasks_assigned + r.tasks_en_route,
                        s=r.tasks_on_scene, d=r.tasks_done) for r in df.itertuples()],
            "next_report": [t("command.report." + k) if k else "—" for k in df.next_report],
            "countdown": [countdown(r.next_report_due, now, t) if r.next_report else ""
                          for r in df.itertuples()],
            "origin": [t("command.origin." + o) for o in df.origin]})
        self.table.value = shown
        rows = df.index[df.incident_id == self.incident_id].tolist()
        self.table.selection = rows[:1]

    def _picked(self, event) -> None:
        if event.new and len(self.frame) > event.new[0]:
            self.incident_id = str(self.frame.incident_id.iloc[event.new[0]])

    def __panel__(self):
        return pn.Column(Markdown(f"#### {self.t('command.list.title')}"), self.table,
                         sizing_mode="stretch_width")


class IncidentWorkspace(CommandView):
    """One incident: card, grade (rule and override), response launch and plan checklist."""

    view_type = "command_workspace"

    def __init__(self, **params):
        super().__init__(**params)
        t = self.t
        self.card = HTML("", sizing_mode="stretch_width", css_classes=["cmd-incident-card"],
                         stylesheets=[COMMAND_CSS])
        self.notice = CommandNotice(t, "cmd-workspace-notice")
        grades = {t("command.grade." + g): g for g in GRADES}
        self.grade = pn.widgets.Select(label=t("command.grade"), options=grades, width=150,
                                       css_classes=["cmd-grade-select"])
        self.reason = pn.widgets.TextInput(label=t("command.grade.reason"), width=320,
                                           css_classes=["cmd-grade-reason"])
        self.grade_button = pn.widgets.Button(label=t("command.grade.set"), align="end",
                                              css_classes=["cmd-grade-set"])
        levels = {t("command.level." + lv): lv for lv in RESPONSE_LEVELS}
        self.level = pn.widgets.Select(label=t("command.response.level"), options=levels,
                                       value="III", width=150, css_classes=["cmd-level"])
        self.launch_button = pn.widgets.Button(label=t("command.response.launch"),
                                               color="danger", align="end",
                                               css_classes=["cmd-launch"],
                                               stylesheets=[ACTION_CSS])
        self.deaths = pn.widgets.IntInput(label=t("command.deaths"), start=0, width=90)
        self.missing = pn.widgets.IntInput(label=t("command.missing"), start=0, width=90)
        self.injured = pn.widgets.IntInput(label=t("command.injured"), start=0, width=90)
        self.loss = pn.widgets.FloatInput(label=t("command.loss"), start=0, width=120)
        self.wind = pn.widgets.FloatInput(label=t("command.wind_from"), value=None, start=0,
                                          end=360, width=130, css_classes=["cmd-wind"])
        self.correct_note = pn.widgets.TextInput(label=t("command.note"), width=240)
        self.correct_button = pn.widgets.Button(label=t("command.correct"), align="end",
                                                css_classes=["cmd-correct"])
        self.checklist = table(page_size=15, css_class="cmd-checklist",
                               titles={c: t(f"command.col.{c}") for c in (
                                   "item_no", "measure", "unit", "within", "done", "done_by",
                                   "done_at")},
                               buttons={"tick": "✔"})
        self.checklist.on_click(self._tick_clicked)
        self.note_text = pn.widgets.TextInput(label=t("command.note"), width=420,
                                              css_classes=["cmd-note-text"])
        self.note_button = pn.widgets.Button(label=t("command.note.add"), align="end",
                                             css_classes=["cmd-note-add"])
        self.close_note = pn.widgets.TextInput(label=t("command.close.note"), width=300,
                                               css_classes=["cmd-close-note"])
        self.close_button = pn.widgets.Button(label=t("command.close"), align="end",
                                              color="warning", css_classes=["cmd-close"],
                                              stylesheets=[ACTION_CSS])
        self.grade_button.on_click(lambda _e: self.set_grade())
        self.launch_button.on_click(lambda _e: self.launch())
        self.correct_button.on_click(lambda _e: self.correct())
        self.note_button.on_click(lambda _e: self.add_note())
        self.close_button.on_click(lambda _e: self.close())
        self._items = pd.DataFrame()
        self._shown: tuple | None = None
        self.watch_hub()
        self.refresh()

    # ------------------------------------------------------------------ actions
    def _act(self, action, message_key: str, **fmt):
        if not self.incident_id:
            self.notice.refuse(self.t("command.pick_incident"))
            return None
        result = self.notice.run(action, lambda _r: self.t(message_key, **fmt))
        self.refresh_soon()
        return result

    def set_grade(self):
        return self._act(self.as_user("incident.update", lambda who: self.source.set_grade(
            self.incident_id, self.grade.value, user=who, reason=self.reason.value)),
            "command.grade.done", grade=self.t("command.grade." + str(self.grade.value)))

    def launch(self):
        return self._act(self.as_user("incident.update", lambda who: self.source.launch_response(
            self.incident_id, self.level.value, user=who)),
            "command.response.done", level=self.t("command.level." + str(self.level.value)))

    def correct(self):
        wind = {} if self.wind.value is None else {"wind_from_deg": self.wind.value}
        return self._act(self.as_user("incident.update", lambda who: self.source.correct(
            self.incident_id, user=who, note=self.correct_note.value,
            deaths=self.deaths.value, missing=self.missing.value, injured=self.injured.value,
            loss_wan=self.loss.value, **wind)), "command.correct.done")

    def tick(self, item_no: int):
        done = bool(self._items.set_index("item_no").done.get(item_no, False))
        return self._act(self.as_user("incident.update", lambda who: self.source.tick_item(
            self.incident_id, item_no, user=who, done=not done)),
            "command.tick.done" if not done else "command.untick.done", no=item_no)

    def add_note(self):
        result = self._act(self.as_user("incident.update", lambda who: self.source.add_note(self.incident_id, self.note_text.value,
                                                        user=who)),
                           "command.note.done")
        if result is not None:
            self.note_text.value = ""
        return result

    def close(self):
        return self._act(self.as_user("incident.close", lambda who: self.source.close_incident(
            self.incident_id, user=who, note=self.close_note.value)),
            "command.close.done")

    def _tick_clicked(self, event) -> None:
        if event.column == "tick" and event.row is not None and len(self._items) > event.row:
            self.tick(int(self._items.item_no.iloc[event.row]))

    # ------------------------------------------------------------------ display
    @param.depends("incident_id", watch=True)
    def refresh(self) -> None:
        self.mark_read()
        t = self.t
        inc = self.source.version(self.incident_id) if self.incident_id else None
        if inc is None:
            self.card.object = f'<div class="cmd-card cmd-muted">{t("command.pick_incident")}</div>'
            self.checklist.value = pd.DataFrame()
            self._items = pd.DataFrame()
            return
        now = self.source.now()
        timers = self.source.timers(self.incident_id, now)
        due = [x for x in timers if x.state in ("pending", "overdue")]
        county = self.source.counties().set_index("county_code")["name"].get(
            inc["county_code"], inc["county_code"])
        e = html.escape
        reports = "".join(
            f'<div>{e(t("command.report." + x.kind))} {e(local(x.due_at))} '
            f'{countdown(x.due_at, now, t)}</div>' for x in due)
        status = t("command.status." + inc["status"])
        response = t("command.level." + inc["response_level"]) if inc["response_level"] \
            else t("command.response.none")
        self.card.object = (
            f'<div class="cmd-card"><b>{e(inc["title"])}</b> {grade_badge(inc["grade"], t)} '
            f'<span class="cmd-muted">{e(inc["incident_id"])} · {e(status)}</span><br>'
            f'{e(subtype_label(inc["subtype"], t))} · {e(str(county))} · '
            f'{e(t("command.occurred"))} {e(local(inc["occurred_at"]))} · '
            f'{e(t("command.learned"))} {e(local(inc["learned_at"]))}<br>'
            f'{e(t("command.casualties", d=inc["deaths"], m=inc["missing"], i=inc["injured"], x=inc["loss_wan"]))}<br>'
            f'<span class="cmd-rule">{e(t("command.rule"))}: {e(rule_text(inc, t))}</span><br>'
            f'{e(t("command.response"))}: {e(response)}'
            f'{reports and "<br>" + reports}</div>')
        if self._shown != (inc["incident_id"], inc["version"]):  # keep what is being typed
            self._shown = (inc["incident_id"], inc["version"])
            self.grade.value = inc["grade"]
            self.deaths.value, self.missing.value = inc["deaths"], inc["missing"]
            self.injured.value, self.loss.value = inc["injured"], inc["loss_wan"]
            self.wind.value = inc["wind_from_deg"]
        items = self.source.plan_items(self.incident_id)
        self._items = items
        measure = items.measure if self.lang == "zh" else items.measure_en.fillna(items.measure)
        self.checklist.value = pd.DataFrame({
            "item_no": items.item_no, "measure": measure, "unit": items.unit,
            "within": [t("command.m", m=int(w)) if w == w and w is not None else ""
                       for w in items.within_min],
            "done": ["✔" if d else "" for d in items.done], "done_by": items.done_by,
            "done_at": [local(x) for x in items.done_at]})

    def __panel__(self):
        t = self.t
        return pn.Column(
            self.card, self.notice.pane,
            pn.Row(self.grade, self.reason, self.grade_button),
            pn.Row(self.deaths, self.missing, self.injured, self.loss, self.wind,
                   self.correct_note, self.correct_button),
            pn.Row(self.level, self.launch_button),
            Markdown(f"#### {t('command.plan.title')}"), self.checklist,
            pn.Row(self.note_text, self.note_button),
            pn.Row(self.close_note, self.close_button),
            sizing_mode="stretch_width")
