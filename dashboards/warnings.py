"""``/warnings``: natural-disaster monitoring, county risk, warning issuance and log.

The warnings are also published as CAP 1.2 for other channels (``dashboards.endpoints``).
"""
from __future__ import annotations

from typing import ClassVar

import panel as pn

from views.county_risk import CountyRisk
from views.monitoring_map import MonitoringMap
from views.warning_form import WarningForm
from views.warning_log import ActiveWarnings, WarningLog

from .base import Dashboard
from .theme import page


class WarningsDashboard(Dashboard):
    """Monitoring map, county risk, warning form and log, with the live active-warning list."""

    route: ClassVar[str] = "warnings"
    title_key: ClassVar[str] = "app.warnings"
    description_key: ClassVar[str] = "app.warnings.desc"
    order: ClassVar[int] = 20

    def layout(self) -> pn.viewable.Viewable:
        monitoring, warnings, lang = self.console.monitoring, self.console.warnings, self.lang
        active = ActiveWarnings(source=warnings, lang=lang, guard=self.guard)
        tabs = pn.Tabs(
            (self.t("warnings.tab.map"),
             MonitoringMap(source=monitoring, warnings=warnings, lang=lang, guard=self.guard)),
            (self.t("warnings.tab.risk"), CountyRisk(source=monitoring, lang=lang, guard=self.guard)),
            (self.t("warnings.tab.issue"), WarningForm(source=warnings, lang=lang, guard=self.guard,
                                                        drills=self.console.drills)),
            (self.t("warnings.tab.log"), WarningLog(source=warnings, lang=lang, guard=self.guard)),
            sizing_mode="stretch_both", css_classes=["warnings-tabs"],
        )
        sidebar = pn.Column(active, width=290, scroll=True, css_classes=["warnings-sidebar"])
        return page(self.t("app.warnings"), tabs, lang=lang, route=self.route,
                    sidebar=sidebar)
