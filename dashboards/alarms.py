"""``/alarms``: the duty officer's alarm desk: queue, report, feed status and quarantine."""
from __future__ import annotations

from typing import ClassVar

import panel as pn

from views.alarm_queue import AlarmQueue
from views.alarm_report import AlarmReport
from views.feed_status import FeedStatus

from .base import Dashboard
from .theme import page


class AlarmDesk(Dashboard):
    """The duty officer's alarm desk."""

    route: ClassVar[str] = "alarms"
    title_key: ClassVar[str] = "app.alarms"
    description_key: ClassVar[str] = "app.alarms.desc"
    order: ClassVar[int] = 50

    def layout(self):
        console = self.console
        queue = AlarmQueue(source=console.alarms, lang=self.lang, guard=self.guard, height=360)
        report = AlarmReport(source=console.alarms, lang=self.lang, guard=self.guard)
        feeds = FeedStatus(source=console.alarms, ingests=list(console.ingests), lang=self.lang,
                           guard=self.guard)
        tabs = pn.Tabs(
            (self.t("alarm.tab.queue"), queue),
            (self.t("alarm.tab.report"), report),
            (self.t("alarm.tab.feeds"), feeds),
            dynamic=False, sizing_mode="stretch_both",
        )
        main = pn.Column(tabs, sizing_mode="stretch_both", margin=(8, 16))
        return page(self.t("app.alarms"), main, lang=self.lang, route=self.route)
