"""``/risk``: the enterprise safety risk four-colour map, enterprise cards, county risk index.

``?enterprise=ID`` opens an enterprise's card and centres the map on it.
"""
from __future__ import annotations

from typing import ClassVar

import panel as pn

from views.alarm_queue import AlarmQueue
from views.county_index import CountyRiskIndex
from views.enterprise_card import EnterpriseCard
from views.panes import HTML
from views.risk_map import RiskPointMap
from views.urlargs import Args

from .base import Dashboard
from .theme import page


class RiskDashboard(Dashboard):
    """The four-colour risk map with its legend, filters, search, card and county index."""

    route: ClassVar[str] = "risk"
    title_key: ClassVar[str] = "app.risk"
    description_key: ClassVar[str] = "app.risk.desc"
    order: ClassVar[int] = 30

    def layout(self):
        console = self.console
        source = console.risk
        risk_map = RiskPointMap(source=source, layer=console.risk_layer(), lang=self.lang, guard=self.guard)
        card = EnterpriseCard(source=source, lang=self.lang, guard=self.guard)
        index = CountyRiskIndex(source=source, lang=self.lang, guard=self.guard)
        risk_map.param.watch(lambda e: card.show(e.new) if e.new is not None else None,
                             "selected_enterprise")

        wanted = Args().text("enterprise") or None
        if wanted is not None and card.show(wanted):  # else: unknown or outside, said
            risk_map.jump_to(wanted)

        card_box = pn.Column(
            HTML(f"<b>{self.t('risk.card.title')}</b>", margin=(6, 4, 0, 4)),
            card, width=380, scroll=True, sizing_mode="stretch_height",
            css_classes=["risk-card"])
        map_tab = pn.Row(risk_map.map_pane(), card_box, sizing_mode="stretch_both")
        # the installations' live alarms, worked here as on the alarm desk
        alarms = AlarmQueue(source=console.alarms, lang=self.lang, guard=self.guard, height=360)
        tabs = pn.Tabs((self.t("risk.tab.map"), map_tab),
                       (self.t("risk.tab.index"), index),
                       (self.t("app.alarms"), alarms),
                       sizing_mode="stretch_both", dynamic=False)
        return page(self.t("app.risk"), tabs, lang=self.lang, route=self.route,
                    sidebar=risk_map.controls())
