"""辅助决策 · 一键调度: resources around the incident ranked by estimated travel time, on a map
of county outlines, and the one-key dispatch of a team, materials, experts or a shelter."""
from __future__ import annotations

import html

import pandas as pd
import panel as pn
import param

from sources.command.support import sector_ring

from .command_common import (
    COMMAND_CSS,
    STATE_COLORS,
    CommandNotice,
    CommandView,
    ProvinceMap,
    set_options,
)
from .inventory_common import options, table
from .panes import HTML, Markdown

TABLES = ("teams", "warehouses", "shelters", "experts", "installations", "enterprises")
COLUMNS = {
    "teams": ["name", "kind", "members", "km", "minutes", "committed_to"],
    "warehouses": ["name", "level", "categories", "covers", "pending", "km", "minutes"],
    "shelters": ["name", "kind", "capacity", "free", "km", "minutes"],
    "experts": ["name", "type", "title", "employer", "score", "km", "minutes"],
    "installations": ["name", "enterprise", "kind", "hazard_grade", "km"],
    "enterprises": ["name", "industry", "risk_level", "is_major_hazard", "km"],
}


class DecisionSupportPanel(CommandView):
    """Decision support for one incident and the dispatch form."""

    view_type = "command_support"

    k = param.Integer(default=10, bounds=(1, 100), doc="Rows per kind of resource.")
    map_height = param.Integer(default=420, bounds=(200, 2000), doc="Height of the map (px).")

    def __init__(self, **params):
        super().__init__(**params)
        t = self.t
        self.map = ProvinceMap(self.source, height=self.map_height, name="cmd-support-map")
        self.summary = HTML("", sizing_mode="stretch_width", css_classes=["cmd-support-summary"],
                            stylesheets=[COMMAND_CSS])
        self.tables = {key: table(page_size=self.k, selectable=1,
                                  css_class=f"cmd-support-{key}",
                                  titles={c: t(f"command.col.{c}") for c in COLUMNS[key]})
                       for key in TABLES}
        self.notice = CommandNotice(t, "cmd-dispatch-notice")
        self.team = pn.widgets.Select(label=t("command.dispatch.team"), width=220,
                                      css_classes=["cmd-dispatch-team"])
        self.team_button = pn.widgets.Button(label=t("command.dispatch.assign"), align="end",
                                             color="primary", css_classes=["cmd-assign-team"])
        self.warehouse = pn.widgets.Select(label=t("command.dispatch.warehouse"), width=220,
                                           css_classes=["cmd-dispatch-warehouse"])
        self.kind = pn.widgets.Select(label=t("command.dispatch.kind"), width=220,
                                      css_classes=["cmd-dispatch-kind"])
        self.quantity = pn.widgets.FloatInput(label=t("command.dispatch.quantity"), value=None,
                                              width=100, css_classes=["cmd-dispatch-qty"])
        self.materials_button = pn.widgets.Button(label=t("command.dispatch.request"),
                                                  align="end", color="primary",
                                                  css_classes=["cmd-request-materials"])
        self.n_experts = pn.widgets.IntInput(label=t("command.dispatch.n_experts"), value=3,
                                             start=1, width=90, css_classes=["cmd-draw-n"])
        self.experts_button = pn.widgets.Button(label=t("command.dispatch.draw"), align="end",
                                                color="primary", css_classes=["cmd-draw"])
        self.shelter = pn.widgets.Select(label=t("command.dispatch.shelter"), width=220,
                                         css_classes=["cmd-dispatch-shelter"])
        self.people = pn.widgets.IntInput(label=t("command.dispatch.people"), value=None,
                                          start=1, width=100, css_classes=["cmd-shelter-people"])
        self.shelter_button = pn.widgets.Button(label=t("command.dispatch.open_shelter"),
                                                align="end", color="primary",
                                                css_classes=["cmd-open-shelter"])
        self.team_button.on_click(lambda _e: self.assign_team())
        self.materials_button.on_click(lambda _e: self.request_materials())
        self.experts_button.on_click(lambda _e: self.draw_experts())
        self.shelter_button.on_click(lambda _e: self.open_shelter())
        self.warehouse.param.watch(lambda _e: self._kinds(), "value")
        self.answer: dict | None = None
        self.watch_hub(("command", "stock", "dispatch"))
        self.refresh()

    # ------------------------------------------------------------------ dispatch
    def _dispatch(self, action, key: str, **fmt):
        if not self.incident_id:
            self.notice.refuse(self.t("command.pick_incident"))
            return None
        result = self.notice.run(action, lambda r: self.t(key, name=r["resource_name"], **fmt))
        self.refresh_soon()
        return result

    def assign_team(self):
        return self._dispatch(self.as_user("incident.update", lambda who: self.source.assign_team(
            self.incident_id, self.team.value, user=who)), "command.dispatch.done")

    def request_materials(self):
        return self._dispatch(self.as_user("dispatch.request", lambda who: self.source.request_materials(
            self.incident_id, kind_id=self.kind.value, quantity=self.quantity.value,
            warehouse_id=self.warehouse.value, user=who)), "command.dispatch.done")

    def draw_experts(self):
        return self._dispatch(self.as_user("expert.draw", lambda who: self.source.draw_experts(
            self.incident_id, n=self.n_experts.value, user=who, type=None)),
            "command.dispatch.done")

    def open_shelter(self):
        return self._dispatch(self.as_user("incident.update", lambda who: self.source.open_shelter(
            self.incident_id, self.shelter.value, people=self.people.value,
            user=who)), "command.dispatch.done")

    def _kinds(self) -> None:
        if not self.warehouse.value or not self.answer:
            set_options(self.kind, {})
            return
        cats = list(dict.fromkeys(c for cs in self.answer["warehouses"].categories for c in cs))
        stock = self.source.warehouse_stock(self.warehouse.value, cats or None)
        stock["label"] = [f"{r.name} · {self.t('command.available', n=r.available, unit=r.unit)}"
                          for r in stock.itertuples()]
        set_options(self.kind, options(stock, "kind_id", "label"))

    # ------------------------------------------------------------------ display
    def concerns(self, message) -> bool:
        return bool(self.incident_id) and super().concerns(message)

    @param.depends("incident_id", watch=True)
    def refresh(self) -> None:
        self.mark_read()
        t = self.t
        inc = self.source.version(self.incident_id) if self.incident_id else None
        if inc is None:
            self.answer = None
            self.summary.object = f'<div class="cmd-card cmd-muted">{t("command.pick_incident")}</div>'
            for tab in self.tables.values():
                tab.value = pd.DataFrame()
            for key in ("teams", "warehouses", "shelters", "experts", "installations"):
                self.map.points(key, None)
            self.map.show_scene(None, None, None)
            self.map.show_area(None, None)
            self.map.show_links([])
            self.map.zoom()
            return
        a = self.source.support(self.incident_id, k=self.k)
        self.answer = a
        for key in TABLES:
            df = a[key].copy()
            for c in ("km", "minutes", "score"):
                if c in df:
                    df[c] = df[c].astype(float).round(1 if c != "score" else 3)
            if key == "warehouses":
                df["categories"] = [", ".join(t("inventory.category." + c) for c in cs)
                                    for cs in df.categories]
            if key == "teams":
                df["kind"] = [t("board.team." + k) for k in df.kind]
            shown = df[[c for c in COLUMNS[key] if c in df]].reset_index(drop=True)
            if not shown.equals(self.tables[key].value):  # unchanged tables cost nothing
                self.tables[key].value = shown
            if key != "enterprises":
                self.map.points(key, a[key].head(self.k))
        self.map.show_scene(inc["lon"], inc["lat"], inc["grade"])
        self.map.show_area(*sector_ring(a["area"]))
        tasks = self.source.tasks(self.incident_id)
        self.map.show_links([(r.base_lon, r.base_lat, inc["lon"], inc["lat"],
                              STATE_COLORS[r.state]) for r in tasks.itertuples()
                             if r.state in ("assigned", "en_route", "on_scene")
                             and r.base_lon == r.base_lon])
        self.map.zoom(inc["lon"], inc["lat"])
        free = a["teams"][a["teams"].committed_to.isna()]
        set_options(self.team, options(free.assign(label=free.name + " · " + free.minutes.round(0)
                                                .astype(int).astype(str) + "′"),
                                    "team_id", "label"))
        set_options(self.warehouse, options(a["warehouses"], "warehouse_id", "name"))
        self._kinds()
        set_options(self.shelter, options(a["shelters"].assign(
            label=a["shelters"].name + " · " + a["shelters"].free.astype(int).astype(str)),
            "shelter_id", "label"))
        self.summary.object = self._summary(a)

    def _summary(self, a: dict) -> str:
        t, area = self.t, a["area"]
        c = a["constants"]
        wind = area.get("wind_source")
        sector = t("command.area.sector", lo=area["sector"][0] % 360, hi=area["sector"][1] % 360,
                   source=t("command.wind." + wind)) if area["sector"] else (
            t("command.area.calm") if wind == "calm" else t("command.area.circle"))
        return ('<div class="cmd-card">' + html.escape(t(
            "command.area.summary", r=area["radius_km"], area=area["area_km2"],
            people=area["population"], density=area["density_per_km2"],
            ent=area["enterprises"], major=area["major_hazard_enterprises"],
            inst=area["installations"])) + "<br>" + html.escape(sector) + "<br>"
            + '<span class="cmd-muted">' + html.escape(t(
                "command.travel.rule", detour=c["detour_factor"], speed=c["speed_kmh"]))
            + "</span></div>")

    def __panel__(self):
        t = self.t
        tabs = pn.Tabs(*[(t(f"command.support.{key}"), self.tables[key]) for key in TABLES],
                       sizing_mode="stretch_width", dynamic=False)
        dispatch = pn.Column(
            Markdown(f"#### {t('command.dispatch.title')}"),
            pn.Row(self.team, self.team_button),
            pn.Row(self.warehouse, self.kind, self.quantity, self.materials_button),
            pn.Row(self.n_experts, self.experts_button, self.shelter, self.people,
                   self.shelter_button),
            self.notice.pane, sizing_mode="stretch_width")
        return pn.Column(self.summary, pn.Row(self.map.pane, tabs, sizing_mode="stretch_width"),
                         dispatch, sizing_mode="stretch_width")
