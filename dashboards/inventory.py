"""``/inventory``: experts (search, recommend, one-click draw) and materials (stock, dispatch)."""
from __future__ import annotations

from typing import ClassVar

import panel as pn

from views.dispatch import DispatchDesk
from views.expert_directory import ExpertDirectory
from views.expert_draw import ExpertDraw
from views.material_stock import MaterialStock

from .base import Dashboard
from .theme import page


class InventoryPage(Dashboard):
    """Four tabs: expert search, expert draw, material stock, material dispatch."""

    route: ClassVar[str] = "inventory"
    title_key: ClassVar[str] = "app.inventory"
    description_key: ClassVar[str] = "app.inventory.desc"
    order: ClassVar[int] = 40

    def layout(self):
        experts, materials = self.console.experts, self.console.materials
        lang = self.lang
        tabs = pn.Tabs(
            (self.t("inventory.tab.experts"), ExpertDirectory(source=experts, lang=lang, guard=self.guard)),
            (self.t("inventory.tab.draw"), ExpertDraw(source=experts, lang=lang, guard=self.guard)),
            (self.t("inventory.tab.stock"), MaterialStock(source=materials, lang=lang, guard=self.guard)),
            (self.t("inventory.tab.dispatch"), DispatchDesk(source=materials, lang=lang, guard=self.guard)),
            dynamic=True, sizing_mode="stretch_width", css_classes=["inv-tabs"],
        )
        main = pn.Column(tabs, sizing_mode="stretch_both", scroll=True, margin=(0, 12))
        return page(self.t("app.inventory"), main, lang=lang, route=self.route)

