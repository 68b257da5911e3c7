"""接报: open an incident by hand (map point, enterprise or county), from an alarm, or from a
feed incident; the grade the rule gives is shown as the figures are typed."""
from __future__ import annotations

import html
from datetime import datetime

import pandas as pd
import panel as pn
import param

from sources.command.catalog import CATEGORIES, GRADES, subtypes_of
from sources.command.common import CHINA_TZ
from sources.command.grading import compute_grade
from sources.command.source import CommandSource

from .base import View
from .command_common import COMMAND_CSS, CommandNotice, ProvinceMap, set_options, subtype_label
from .inventory_common import options
from .panes import HTML, Markdown


class IncidentIntake(View):
    """The intake form. ``opened`` holds the id of the last incident it opened."""

    view_type = "command_intake"

    source = param.ClassSelector(class_=CommandSource, doc="The command source.")
    alarm_id = param.Integer(default=None, allow_None=True,
                             doc="An alarm to open the incident from (fills the form).")
    opened = param.String(default="", doc="Id of the incident this form opened last.")
    drills = param.Parameter(default=None, doc="The console's drills (sources.drills.desk."
                             "DrillSource): an exercise's incident belongs to the running drill.")

    def __init__(self, **params):
        super().__init__(**params)
        t, src = self.t, self.source
        self.category = pn.widgets.Select(
            label=t("command.category"), options={t("command.category." + c): c
                                                  for c in CATEGORIES},
            value="accident", width=150, css_classes=["cmd-intake-category"])
        self.subtype = pn.widgets.Select(label=t("command.subtype"), width=180,
                                         css_classes=["cmd-intake-subtype"])
        self.title = pn.widgets.TextInput(label=t("command.title"), width=300,
                                          css_classes=["cmd-intake-title"])
        self.lon = pn.widgets.FloatInput(label=t("command.lon"), value=None, width=110,
                                         css_classes=["cmd-intake-lon"])
        self.lat = pn.widgets.FloatInput(label=t("command.lat"), value=None, width=110,
                                         css_classes=["cmd-intake-lat"])
        self.enterprise_text = pn.widgets.TextInput(label=t("command.enterprise.search"),
                                                    width=200,
                                                    css_classes=["cmd-intake-enterprise-text"])
        self.enterprise = pn.widgets.Select(label=t("command.enterprise"), options={"": ""},
                                            width=240, css_classes=["cmd-intake-enterprise"])
        counties = src.counties().assign(label=lambda d: d.city + " " + d.name)
        self.county = pn.widgets.Select(label=t("command.county"),
                                        options=options(counties, "county_code", "label",
                                                        blank=""),
                                        width=200, css_classes=["cmd-intake-county"])
        self.place = pn.widgets.TextInput(label=t("command.place"), width=260)
        self.occurred = pn.widgets.DatetimePicker(label=t("command.occurred"), width=190,
                                                  value=None)
        self.learned = pn.widgets.DatetimePicker(label=t("command.learned"), width=190,
                                                 value=None)
        self.deaths = pn.widgets.IntInput(label=t("command.deaths"), value=0, start=0, width=90,
                                          css_classes=["cmd-intake-deaths"])
        self.missing = pn.widgets.IntInput(label=t("command.missing"), value=0, start=0,
                                           width=90)
        self.injured = pn.widgets.IntInput(label=t("command.injured"), value=0, start=0,
                                           width=90, css_classes=["cmd-intake-injured"])
        self.loss = pn.widgets.FloatInput(label=t("command.loss"), value=0.0, start=0, width=130,
                                          css_classes=["cmd-intake-loss"])
        self.reporter = pn.widgets.TextInput(label=t("command.reporter"), width=160)
        self.phone = pn.widgets.TextInput(label=t("command.phone"), width=150)
        self.description = pn.widgets.TextAreaInput(label=t("command.description"), height=90,
                                                    sizing_mode="stretch_width",
                                                    css_classes=["cmd-intake-description"])
        self.grade = pn.widgets.Select(
            label=t("command.grade"), options={t("command.grade.by_rule"): "",
                                               **{t("command.grade." + g): g for g in GRADES}},
            width=160, css_classes=["cmd-intake-grade"])
        self.reason = pn.widgets.TextInput(label=t("command.grade.reason"), width=260)
        self.preview = HTML("", css_classes=["cmd-intake-preview"], stylesheets=[COMMAND_CSS],
                            sizing_mode="stretch_width")
        active = self.drills.active() if self.drills is not None else None
        # during a drill the form starts as an exercise: a drill's incident is never real
        self.exercise = pn.widgets.Checkbox(name=t("drill.incident"), value=active is not None,
                                            css_classes=["cmd-intake-exercise"])
        self.open_button = pn.widgets.Button(label=t("command.intake.open"), color="primary",
                                             css_classes=["cmd-intake-open"])
        self.notice = CommandNotice(t, "cmd-intake-notice")
        feed = src.feed_incidents()
        self.feed_pick = pn.widgets.Select(
            label=t("command.intake.feed"),
            options=options(feed, "incident_id", "title", blank=""), width=300,
            css_classes=["cmd-intake-feed"])
        self.take_button = pn.widgets.Button(label=t("command.intake.take"), align="end",
                                             css_classes=["cmd-intake-take"])
        self.map = ProvinceMap(src, height=300, tap=self._tapped, name="cmd-intake-map")
        self.category.param.watch(lambda _e: self._subtypes(), "value")
        self.enterprise_text.param.watch(lambda _e: self._find_enterprises(), "value")
        for w in (self.subtype, self.deaths, self.injured, self.loss, self.grade):
            w.param.watch(lambda _e: self._preview(), "value")
        for w in (self.lon, self.lat):
            w.param.watch(lambda _e: self._show_point(), "value")
        self.open_button.on_click(lambda _e: self.open())
        self.take_button.on_click(lambda _e: self.take_over())
        self._alarm: dict | None = None
        self._subtypes()
        self._preview()
        if self.alarm_id is not None:
            self.from_alarm(self.alarm_id)

    # ------------------------------------------------------------------ form
    def _subtypes(self) -> None:
        keys = subtypes_of(self.category.value)
        set_options(self.subtype, {subtype_label(k, self.t): k for k in keys})
        self.subtype.value = keys[0]

    def _find_enterprises(self) -> None:
        found = self.source.experts.find_enterprises(self.enterprise_text.value)
        self.enterprise.options = options(found, "enterprise_id", "name", blank="")
        if len(found) == 1:
            self.enterprise.value = int(found.enterprise_id.iloc[0])

    def _tapped(self, lon: float, lat: float) -> None:
        self.lon.value, self.lat.value = round(lon, 5), round(lat, 5)

    def _show_point(self) -> None:
        self.map.show_scene(self.lon.value, self.lat.value, self.grade.value or None)

    def _preview(self) -> None:
        t = self.t
        r = compute_grade(self.subtype.value, self.deaths.value, self.injured.value,
                          self.loss.value)
        if r.computed:
            text = t("command.intake.by_rule", grade=t("command.grade." + r.grade),
                     rule=t(r.rule_key, **{k: (t("command.grade." + v) if k == "grade" else v)
                                           for k, v in r.fmt.items()}))
        else:
            text = t("command.rule.none")
        self.preview.object = f'<div class="cmd-card">{html.escape(text)}</div>'

    def from_alarm(self, alarm_id: int) -> dict | None:
        """Fill the form from an alarm (place, enterprise, installation, readings)."""
        pre = self.notice.run(lambda: self.source.alarm_intake(alarm_id),
                              lambda _r: self.t("command.intake.from_alarm", id=alarm_id))
        if pre is None:
            return None
        st = pre["subtype"]
        cat = next(c for c in CATEGORIES if st in subtypes_of(c))
        self.category.value = cat
        self.subtype.value = st
        self.title.value = pre["title"]
        self.lon.value, self.lat.value = float(pre["lon"]), float(pre["lat"])
        if pre["enterprise_id"] is not None:
            set_options(self.enterprise, {str(pre["title"]): int(pre["enterprise_id"]), "": ""})
            self.enterprise.value = int(pre["enterprise_id"])
        self.place.value = pre["place"]
        self.occurred.value = pd.Timestamp(pre["occurred_at"]).tz_convert(CHINA_TZ) \
            .tz_localize(None).to_pydatetime()
        self.description.value = pre["description"]
        if pre.get("drill_id"):
            self.exercise.value = True
        self._alarm = pre
        return pre

    def as_user(self, action: str, run):
        """``run(who)`` as the page's user when the guard allows ``action`` where the
        incident is (the form's county, else the county of its place)."""
        def act():
            county = self.county.value or None
            if county is None and self.lon.value is not None and self.lat.value is not None:
                county = self.source.county_of(self.lon.value, self.lat.value)
            return self.guard.act(action, run, county=county, target="incident:new")
        return act

    def open(self) -> dict | None:
        """Open the incident in the form; the logged-in user is the officer taking it."""
        def when(w) -> datetime | None:
            return w.value  # naive: China time (the source's convention)

        pre = getattr(self, "_alarm", None) or {}
        result = self.notice.run(self.as_user(
            "incident.create", lambda who: self.source.open_incident(
            subtype=self.subtype.value, user=who, title=self.title.value,
            lon=self.lon.value, lat=self.lat.value,
            enterprise_id=self.enterprise.value or None,
            county_code=self.county.value or None, place=self.place.value,
            occurred_at=when(self.occurred), learned_at=when(self.learned),
            deaths=self.deaths.value, missing=self.missing.value, injured=self.injured.value,
            loss_wan=self.loss.value, reporter=self.reporter.value,
            reporter_phone=self.phone.value, description=self.description.value,
            grade=self.grade.value or None, grade_reason=self.reason.value,
            installation_id=pre.get("installation_id"), alarm_id=pre.get("alarm_id"),
            origin=pre.get("origin", "officer"), origin_ref=pre.get("origin_ref"),
            drill_id=self.exercise_drill(pre))),
            lambda r: self.t("command.intake.opened", id=r["incident_id"],
                             grade=self.t("command.grade." + r["grade"])))
        if result is not None:
            self._alarm = None
            self.opened = result["incident_id"]
        return result

    def exercise_drill(self, pre: dict) -> str | None:
        """The drill the incident belongs to: its alarm's, else the running drill's when the
        officer marks it an exercise (``exercise`` when no drill runs)."""
        if pre.get("drill_id"):
            return pre["drill_id"]
        if not self.exercise.value:
            return None
        active = self.drills.active() if self.drills is not None else None
        return active["drill_id"] if active else "exercise"

    def take_over(self) -> dict | None:
        """Take the chosen feed incident under command."""
        if not self.feed_pick.value:
            self.notice.refuse(self.t("command.intake.pick_feed"))
            return None
        result = self.notice.run(
            self.as_user("incident.create",
                         lambda who: self.source.take_over(self.feed_pick.value, user=who)),
            lambda r: self.t("command.intake.opened", id=r["incident_id"],
                             grade=self.t("command.grade." + r["grade"])))
        if result is not None:
            self.opened = result["incident_id"]
        return result

    def __panel__(self):
        t = self.t
        form = pn.Column(
            pn.Row(self.category, self.subtype, self.title),
            pn.Row(self.lon, self.lat, self.county, self.place),
            pn.Row(self.enterprise_text, self.enterprise),
            pn.Row(self.occurred, self.learned, self.reporter, self.phone),
            pn.Row(self.deaths, self.missing, self.injured, self.loss),
            self.description, self.preview, pn.Row(self.grade, self.reason),
            self.exercise, self.open_button, self.notice.pane,
            Markdown(f"#### {t('command.intake.feed_title')}"),
            pn.Row(self.feed_pick, self.take_button), sizing_mode="stretch_width")
        return pn.Row(form, pn.Column(Markdown(t("command.intake.map_hint")), self.map.pane,
                                      width=420), sizing_mode="stretch_width")
