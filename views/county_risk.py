"""County risk assessment: a level per county and hazard, a choropleth per hazard, a table and
the worst level per county (rules in ``sources.warnings.monitoring``)."""
from __future__ import annotations

import pandas as pd
import panel as pn
import param
from bokeh.models import ColumnDataSource, HoverTool

from sources.warnings.monitoring import HAZARDS, LEVEL_COLORS, MonitoringSource

from .base import View
from .monitoring_map import county_data, jurisdiction_area, map_figure
from .panes import Markdown

CHOICES = (*HAZARDS, "fire", "worst")


class CountyRisk(View):
    """Choropleth of one hazard's level per county, and the table of every hazard."""

    view_type = "county_risk"

    source = param.ClassSelector(class_=MonitoringSource, doc="Monitoring source.")
    hazard = param.Selector(default="worst", objects=list(CHOICES), doc="Hazard on the map.")
    data_version = param.Integer(default=0, doc="Bumped after each reassessment.")
    frame_width = param.Integer(default=None, allow_None=True,
                                doc="Map width in pixels (None: the map fills its space).")

    def __init__(self, **params):
        super().__init__(**params)
        self.frame = pd.DataFrame()
        self._hazard = pn.widgets.RadioButtonGroup(
            value=self.hazard, button_type="primary", css_classes=["cr-hazard"],
            options={self.t(f"warnings.hazard.{h}"): h for h in CHOICES})
        self._hazard.link(self, value="hazard")
        self._table = pn.widgets.Tabulator(pd.DataFrame(), disabled=True, show_index=False,
                                           sizing_mode="stretch_both", min_height=300,
                                           min_width=420, max_width=760,
                                           css_classes=["cr-table"])
        geo = self.source.geo
        self._counties = ColumnDataSource(county_data(geo, extra={"level": {}}))
        fig = map_figure(geo, self.frame_width, name="county-risk-map",
                         area=jurisdiction_area(geo, self.guard))
        fig.patches("xs", "ys", source=self._counties, fill_color="color",
                    line_color="#ffffff", line_width=0.8)
        fig.add_tools(HoverTool(tooltips=[(self.t("warnings.county"), "@name"),
                                          (self.t("warnings.level"), "@level")]))
        self.figure = fig
        self._map = pn.pane.Bokeh(fig, css_classes=["cr-map"],
                                  sizing_mode=None if self.frame_width else "stretch_both")
        self.reassess()
        self.subscribe(["reading"], lambda m, missed: self.reassess(), period_ms=30_000,
                       maxsize=10)

    def reassess(self) -> None:
        """Recompute the levels from the latest observations and update the table."""
        df = self.source.county_risk()
        df = df.rename(columns={"fire_level": "fire"})
        scope = self.guard.scope()
        if scope is not None:  # the jurisdiction's counties; the others stay grey outlines
            df = df[df["county_code"].astype(str).str.startswith(scope)].reset_index(drop=True)
        self.frame = df
        level = lambda v: self.t(f"warnings.level.{v}")  # noqa: E731
        table = pd.DataFrame({
            self.t("warnings.county_code"): df["county_code"],
            self.t("warnings.county"): df["name"],
            **{self.t(f"warnings.hazard.{h}"): df[h].map(level) for h in CHOICES},
        })
        self._table.value = table
        self.data_version += 1

    @param.depends("hazard", "data_version", watch=True)
    def _choropleth(self) -> None:
        """Colour the counties by the chosen hazard's level (in place)."""
        levels = self.frame.set_index("county_code")[self.hazard]
        codes = self.source.geo.codes
        self._counties.data = {
            **self._counties.data,
            "color": [LEVEL_COLORS[levels.get(c, "none")] for c in codes],
            "level": [self.t(f"warnings.level.{levels.get(c, 'none')}") for c in codes]}
        self.figure.title.text = self.t(f"warnings.hazard.{self.hazard}")

    def __panel__(self):
        return pn.Column(
            self._hazard,
            pn.Row(self._map, self._table, sizing_mode="stretch_both"),
            Markdown(f"**{self.t('warnings.rules')}**：{self.t('warnings.rules.text')}",
                     sizing_mode="stretch_width"),
            sizing_mode="stretch_both")
