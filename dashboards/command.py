"""``/command``: incident command (指挥调度) — intake, grade and response, decision support and
one-key dispatch, tasks, reports with their deadlines, timeline and case replay.

URL arguments: ``incident=ID`` (open that incident), ``alarm=ID`` (the intake filled from an
alarm: what the "open incident" button of /alarms links to), ``lang=zh|en``.
"""
from __future__ import annotations

from typing import ClassVar

import panel as pn

from views.command_desk import CommandDesk
from views.urlargs import Args

from .base import Dashboard
from .theme import page


class CommandPage(Dashboard):
    """The command desk of the duty officers."""

    route: ClassVar[str] = "command"
    title_key: ClassVar[str] = "app.command"
    description_key: ClassVar[str] = "app.command.desc"
    order: ClassVar[int] = 45

    def layout(self):
        args = Args()
        alarm = args.number("alarm", 0, lo=0, hi=2**62)
        desk = CommandDesk(source=self.console.command, lang=self.lang, guard=self.guard,
                           incident_id=args.text("incident")[:128],
                           alarm_id=int(alarm) if alarm else None, drills=self.console.drills)
        main = pn.Column(desk, sizing_mode="stretch_both", scroll=True, margin=(0, 12))
        return page(self.t("app.command"), main, lang=self.lang, route=self.route)
