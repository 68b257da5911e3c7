"""应急物资储备: warehouses on the map, stock by kind and warehouse with shortages highlighted,
totals by category, find supply near a point, and exports."""
from __future__ import annotations

import io

import numpy as np
import panel as pn
import param
from bokeh.models import ColumnDataSource, HoverTool, HTMLTemplateFormatter
from bokeh.plotting import figure

from sources.inventory.materials import MaterialSource

from .base import View
from .expert_directory import county_options, home_county
from .inventory_common import Notice, options, rule, table, translate
from .panes import Markdown

PLAN_COLOR = "#f59e0b"


# Cell templates, not a pandas Styler: styling 100k stock rows with a Styler takes a minute;
# a template is evaluated in the browser for the rows of the page only.
SHORT_CELL = HTMLTemplateFormatter(template=(
    '<% if (value > 0) { %><span style="color:#b91c1c;font-weight:700;background:#fde2e2;'
    'padding:0 4px"><%= value %></span><% } else { %><%= value %><% } %>'))
SHORT_FLAG = HTMLTemplateFormatter(template=(
    '<% if (value) { %><span style="color:#b91c1c;font-weight:700">&#9888; <%- value %>'
    '</span><% } %>'))


class MaterialStock(View):
    """Stock of every warehouse, on a map of county outlines (no tiles) and in tables."""

    view_type = "material_stock"

    source = param.ClassSelector(class_=MaterialSource, doc="The material inventory source.")
    map_height = param.Integer(default=640, bounds=(200, 2000),
                               doc="Height of the map (px): about that of the tables beside it.")

    def __init__(self, **params):
        super().__init__(**params)
        t, src = self.t, self.source
        kinds = src.kinds()
        kinds["label"] = kinds["name"] + " (" + kinds["unit"] + ")"
        self.kind = pn.widgets.Select(label=t("inventory.kind"),
                                      options=options(kinds, "kind_id", "label",
                                                      blank=t("inventory.all")),
                                      css_classes=["inv-stock-kind"], width=200)
        self.warehouse = pn.widgets.Select(
            label=t("inventory.col.warehouse"),
            options=options(src.warehouse_registry(), "warehouse_id", "warehouse",
                            blank=t("inventory.all")),
            css_classes=["inv-stock-warehouse"], width=200)
        cats = sorted(kinds["category"].unique())
        self.category = pn.widgets.Select(
            label=t("inventory.category"),
            options={t("inventory.all"): "", **{t(f"inventory.category.{c}"): c for c in cats}},
            width=140)
        self.shortages = pn.widgets.Checkbox(label=t("inventory.shortages_only"), align="end",
                                             css_classes=["inv-stock-short"])
        self.stock_table = table(page_size=12, css_class="inv-stock-table",
                                 titles=self._titles(),
                                 formatters={"gap": SHORT_CELL, "shortage": SHORT_FLAG})
        self.totals_table = table(page_size=12, css_class="inv-stock-totals",
                                  titles=self._titles())
        self._points = ColumnDataSource(dict(x=[], y=[], name=[], quantity=[], shortages=[],
                                             size=[], color=[]))
        self._plan = ColumnDataSource(dict(x=[], y=[], name=[], allocate=[]))
        self._target = ColumnDataSource(dict(x=[], y=[]))
        self.map = pn.pane.Bokeh(self._figure(), sizing_mode="stretch_width",
                                 height=self.map_height, css_classes=["inv-stock-map"])
        # find supply
        self.need_kind = pn.widgets.Select(label=t("inventory.kind"),
                                           options=options(kinds, "kind_id", "label"),
                                           css_classes=["inv-supply-kind"], width=200)
        self.need_qty = pn.widgets.FloatInput(label=t("inventory.quantity"), value=None,
                                              css_classes=["inv-supply-qty"], width=110)
        self.need_county = pn.widgets.Select(label=t("inventory.need.county"),
                                             options=county_options(src.store, t),
                                             value=home_county(self.guard),
                                             css_classes=["inv-supply-county"], width=180)
        self.need_lon = pn.widgets.FloatInput(label=t("inventory.lon"), value=None, width=100)
        self.need_lat = pn.widgets.FloatInput(label=t("inventory.lat"), value=None, width=100)
        self.find_button = pn.widgets.Button(label=t("inventory.supply.go"),
                                             color="primary", align="end",
                                             css_classes=["inv-supply-go"])
        self.supply_notice = Notice(t, "inv-supply-notice")
        self.supply_table = table(page_size=10, css_class="inv-supply-table",
                                  titles=self._titles())
        self.exports = pn.Row(
            pn.widgets.FileDownload(callback=lambda: self._export("stock", "csv"),
                                    filename="stock.csv", label=t("inventory.export.stock")),
            pn.widgets.FileDownload(callback=lambda: self._export("movements", "csv"),
                                    filename="stock_movements.csv",
                                    label=t("inventory.export.movements")),
            pn.widgets.FileDownload(callback=lambda: self._export("all", "xlsx"),
                                    filename="materials.xlsx", label=t("inventory.export.xlsx")))
        for w in (self.kind, self.warehouse, self.category, self.shortages):
            w.param.watch(lambda _e: self.refresh(), "value")
        self.find_button.on_click(lambda _e: self.find_supply())
        self.subscribe(["stock"], lambda _m, _missed: self.refresh(), period_ms=1000)
        self.refresh()

    def _titles(self) -> dict:
        cols = ("warehouse_id", "warehouse", "level", "county_code", "kind", "category", "unit",
                "quantity", "min_quantity", "shortage", "gap", "kinds", "shortages",
                "distance_km", "allocate", "contact_name", "contact_phone")
        return {c: self.t(f"inventory.col.{c}") for c in cols}

    def _figure(self):
        fig = figure(height=self.map_height, sizing_mode="stretch_width", match_aspect=True,
                     tools="pan,wheel_zoom,box_zoom,reset,save", toolbar_location="right",
                     x_axis_label=self.t("inventory.lon"), y_axis_label=self.t("inventory.lat"))
        rings = self.source.county_outlines()
        fig.patches([r["x"].tolist() for r in rings], [r["y"].tolist() for r in rings],
                    fill_color="#eef2f7", line_color="#94a3b8", line_width=0.6)
        dots = fig.scatter("x", "y", size="size", color="color", alpha=0.8,
                           line_color="#1f2937", source=self._points)
        fig.scatter("x", "y", size=22, marker="circle", fill_alpha=0, line_width=3,
                    line_color=PLAN_COLOR, source=self._plan)
        fig.scatter("x", "y", size=18, marker="star", color="#dc2626", source=self._target)
        fig.add_tools(HoverTool(renderers=[dots], tooltips=[
            (self.t("inventory.col.warehouse"), "@name"),
            (self.t("inventory.col.quantity"), "@quantity{0,0.[00]}"),
            (self.t("inventory.col.shortages"), "@shortages")]))
        return fig

    # ------------------------------------------------------------------ updates
    def refresh(self) -> None:
        """Reload the stock, totals and map points for the current filters."""
        kind = self.kind.value or None
        stock = self.source.stock(kind_id=kind, warehouse_id=self.warehouse.value or None,
                                  category=self.category.value or None,
                                  shortages_only=self.shortages.value)
        stock["category"] = translate(stock["category"], self.t, "inventory.category.")
        stock["shortage"] = np.where(stock["shortage"], self.t("inventory.col.shortage"), "")
        stock["gap"] = stock["gap"].round(2)
        self.stock_table.value = stock[["warehouse", "kind", "category", "unit", "quantity",
                                        "min_quantity", "gap", "shortage"]]
        totals = self.source.totals_by_category()
        totals["category"] = translate(totals["category"], self.t, "inventory.category.")
        self.totals_table.value = totals
        wh = self.source.warehouses(kind_id=kind)
        q = wh["quantity"].astype(float)
        size = 6 + 18 * (q / q.max()) ** 0.5 if len(q) and q.max() > 0 else q * 0 + 6
        self._points.data = dict(
            x=wh["lon"].tolist(), y=wh["lat"].tolist(), name=wh["name"].tolist(),
            quantity=q.tolist(), shortages=wh["shortages"].tolist(), size=size.tolist(),
            color=["#dc2626" if s else "#2563eb" for s in wh["shortages"]])

    def find_supply(self) -> dict | None:
        """Warehouses that can supply the need nearest first, and the combination reaching it."""
        county = self.need_county.value or None
        result = self.supply_notice.run(
            lambda: self.source.find_supply(
                self.need_kind.value, self.need_qty.value, county=county,
                lon=None if county else self.need_lon.value,
                lat=None if county else self.need_lat.value),
            self._supply_message)
        if result is not None:
            c = result["candidates"]
            self.supply_table.value = c[["warehouse", "distance_km", "quantity", "allocate",
                                         "contact_name", "contact_phone"]].round(2)
            plan = result["plan"]
            self._plan.data = dict(x=plan["lon"].tolist(), y=plan["lat"].tolist(),
                                   name=plan["warehouse"].tolist(),
                                   allocate=plan["allocate"].tolist())
        return result

    def _supply_message(self, r: dict) -> str:
        names = "、".join(str(n) for n in r["plan"]["warehouse"])
        key = "inventory.supply.enough" if r["enough"] else "inventory.supply.short"
        return self.t(key, n=len(r["plan"]), planned=r["planned"], qty=r["quantity"],
                      unit=r["kind"]["unit"], names=names)

    def _export(self, what: str, fmt: str) -> io.BytesIO:
        return io.BytesIO(self.source.export(what, fmt))

    def __panel__(self):
        t = self.t
        supply = pn.Column(
            Markdown(f"#### {t('inventory.supply.title')}"),
            pn.Row(self.need_kind, self.need_qty, self.need_county, self.need_lon,
                   self.need_lat, self.find_button),
            self.supply_notice.pane, self.supply_table, sizing_mode="stretch_width")
        tables = pn.Column(
            pn.Row(self.kind, self.warehouse, self.category, self.shortages),
            self.stock_table,
            Markdown(f"#### {t('inventory.totals')}"), self.totals_table,
            self.exports, sizing_mode="stretch_width")
        return pn.Column(pn.Row(self.map, tables, sizing_mode="stretch_width"),
                         rule(), supply, sizing_mode="stretch_width")
