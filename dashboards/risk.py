"""``/risk``: the enterprise safety risk four-colour map, enterprise cards, county risk index.

``?enterprise=ID`` opens an enterprise's card and centres the map on it.
"""
from __future__ import annotations

from typing import ClassVar

import panel as pn

from sources.alarms.desk import AlarmSource
from sources.risk.risk import RiskLayer, RiskSource
from sources.runtime import Runtime
from views.alarm_queue import AlarmQueue
from views.county_index import CountyRiskIndex
from views.enterprise_card import EnterpriseCard
from views.panes import HTML
from views.risk_map import RiskPointMap

from .base import Dashboard
from .theme import page

LAYER_KEY = "risk.point_layer"


def shared_layer(runtime: Runtime) -> RiskLayer:
    """The process-wide point layer (loaded once, then shared by every page)."""

    def load() -> RiskLayer:
        layer = RiskSource(store=runtime.store).load_layer()
        # compile and warm the kernels once, before the first page asks for a frame
        layer.points.frame(layer.points.extent, 64, 64, palette_index=True)
        layer.points.frame(layer.points.extent, 64, 64)  # RGBA: the situation board's
        layer.points.counts_in(layer.points.extent)
        return layer

    return runtime.shared(LAYER_KEY, load)


def start_services(runtime: Runtime) -> None:
    """Load the shared point layer once at start (serve.py calls this)."""
    shared_layer(runtime)


class RiskDashboard(Dashboard):
    """The four-colour risk map with its legend, filters, search, card and county index."""

    route: ClassVar[str] = "risk"
    title_key: ClassVar[str] = "app.risk"
    description_key: ClassVar[str] = "app.risk.desc"
    order: ClassVar[int] = 30

    def layout(self):
        rt = self.runtime
        source = RiskSource(store=rt.store, hub=rt.hub)
        risk_map = RiskPointMap(source=source, layer=shared_layer(rt), lang=self.lang)
        card = EnterpriseCard(source=source, lang=self.lang)
        index = CountyRiskIndex(source=source, lang=self.lang)
        risk_map.param.watch(lambda e: card.show(e.new) if e.new is not None else None,
                             "selected_enterprise")

        args = getattr(pn.state, "session_args", None) or {}
        wanted = args.get("enterprise", [None])[0]
        if isinstance(wanted, bytes):
            wanted = wanted.decode(errors="replace")
        if wanted is not None and not (card.show(wanted) and risk_map.jump_to(wanted)):
            card.show(wanted)  # keeps the 'no such enterprise' message

        card_box = pn.Column(
            HTML(f"<b>{self.t('risk.card.title')}</b>", margin=(6, 4, 0, 4)),
            card, width=380, scroll=True, sizing_mode="stretch_height",
            css_classes=["risk-card"])
        map_tab = pn.Row(risk_map.map_pane(), card_box, sizing_mode="stretch_both")
        # the installations' live alarms, worked here as on the alarm desk
        alarms = AlarmQueue(source=AlarmSource(store=rt.store, hub=rt.hub), lang=self.lang,
                            height=640)
        tabs = pn.Tabs((self.t("risk.tab.map"), map_tab),
                       (self.t("risk.tab.index"), index),
                       (self.t("app.alarms"), alarms),
                       sizing_mode="stretch_both", dynamic=False)
        return page(self.t("app.risk"), tabs, lang=self.lang, route=self.route,
                    sidebar=risk_map.controls())
