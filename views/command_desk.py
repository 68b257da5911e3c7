"""The command desk (指挥调度): the active incidents beside one incident's workspace, decision
support and dispatch, tasks, reports, and timeline with replay, all on one selected incident.

This is what ``/command`` shows; in a notebook, ``CommandDesk(source=CommandSource.from_path(
'var/console.duckdb'))`` shows the same desk on a snapshot (reading only).
"""
from __future__ import annotations

import panel as pn
import param

from sources.command.source import CommandSource

from .base import View
from .command_intake import IncidentIntake
from .command_reports import ReportEditor
from .command_support import DecisionSupportPanel
from .command_tasks import TaskBoard
from .command_timeline import IncidentTimeline, ReplayPlayer
from .command_workspace import IncidentList, IncidentWorkspace

#: tab order (the intake is the first tab: an officer taking a call starts there)
TABS = ("intake", "workspace", "support", "tasks", "reports", "timeline", "replay")


class CommandDesk(View):
    """Every command view, linked by the selected incident."""

    view_type = "command_desk"

    source = param.ClassSelector(class_=CommandSource, doc="The command source.")
    incident_id = param.String(default="", doc="The incident shown ('' for none).")
    alarm_id = param.Integer(default=None, allow_None=True,
                             doc="Open the intake filled from this alarm.")
    drills = param.Parameter(default=None, doc="The console's drills (the intake marks an "
                             "exercise's incident as the running drill's).")

    def __init__(self, **params):
        super().__init__(**params)
        src, lang = self.source, self.lang
        self.intake = IncidentIntake(source=src, lang=lang, guard=self.guard,
                                     alarm_id=self.alarm_id, drills=self.drills)
        self.list = IncidentList(source=src, lang=lang, guard=self.guard, incident_id=self.incident_id)
        linked = {
            "workspace": IncidentWorkspace(source=src, lang=lang, guard=self.guard),
            "support": DecisionSupportPanel(source=src, lang=lang, guard=self.guard),
            "tasks": TaskBoard(source=src, lang=lang, guard=self.guard),
            "reports": ReportEditor(source=src, lang=lang, guard=self.guard),
            "timeline": IncidentTimeline(source=src, lang=lang, guard=self.guard),
            "replay": ReplayPlayer(source=src, lang=lang, guard=self.guard),
        }
        self.views = linked
        self.tabs = pn.Tabs(
            (self.t("command.tab.intake"), self.intake),
            *[(self.t(f"command.tab.{k}"), v) for k, v in linked.items()],
            dynamic=False, sizing_mode="stretch_width", css_classes=["cmd-tabs"])
        self.list.param.watch(lambda e: setattr(self, "incident_id", e.new), "incident_id")
        self.intake.param.watch(self._opened, "opened")
        self.tabs.param.watch(lambda _e: self._shown_tab(), "active")
        self._select(self.incident_id)
        if self.alarm_id is None and self.incident_id:
            self.tabs.active = 1
        self._shown_tab()

    def _shown_tab(self) -> None:
        """Only the view in the open tab refreshes on the hub; the others catch up when shown."""
        for i, view in enumerate(self.views.values(), start=1):
            view.live = self.tabs.active == i

    def _opened(self, event) -> None:
        self.incident_id = event.new
        self.tabs.active = 1  # the workspace of the new incident

    @param.depends("incident_id", watch=True)
    def _select(self, incident_id: str | None = None) -> None:
        incident_id = self.incident_id if incident_id is None else incident_id
        self.list.incident_id = incident_id
        for view in self.views.values():
            view.incident_id = incident_id

    def __panel__(self):
        return pn.Row(pn.Column(self.list, width=520), self.tabs, sizing_mode="stretch_width")
