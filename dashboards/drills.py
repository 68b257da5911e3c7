"""``/drills``: the exercise desk (应急演练): start, pause, resume and stop a scripted drill
played through the demo feed; review the officers' response; purge a drill's data."""
from __future__ import annotations

from typing import ClassVar

import panel as pn

from views.drill_desk import DrillDesk

from .base import Dashboard
from .theme import page


class DrillsPage(Dashboard):
    """The drill desk of the duty officers and administrators."""

    route: ClassVar[str] = "drills"
    title_key: ClassVar[str] = "app.drills"
    description_key: ClassVar[str] = "app.drills.desc"
    order: ClassVar[int] = 55

    def layout(self):
        desk = DrillDesk(source=self.console.drills, lang=self.lang, guard=self.guard)
        main = pn.Column(desk, sizing_mode="stretch_both", scroll=True, margin=(8, 16))
        return page(self.t("app.drills"), main, lang=self.lang, route=self.route)
