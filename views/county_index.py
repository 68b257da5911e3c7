"""The county risk index: a choropleth of counties (or cities) and, for the clicked one, its
enterprises ranked. The index is defined in :func:`sources.risk.risk.risk_index`."""
from __future__ import annotations

from html import escape

import numpy as np
import panel as pn
import param
from bokeh.models import ColumnDataSource, DataRange1d, HoverTool, TapTool
from bokeh.plotting import figure

from sources.geo import rings
from sources.risk.risk import RiskSource

from .base import View
from .panes import HTML
from .risk_map import ASPECT

#: Light yellow to dark red: the five quintiles of the index.
PALETTE = ("#fff5cc", "#fed976", "#fd8d3c", "#e31a1c", "#800026")

TABLE_CSS = """
table.ranked { border-collapse: collapse; width: 100%; font-size: 13px; }
table.ranked td, table.ranked th { border-bottom: 1px solid #e5e7eb; padding: 3px 4px;
  text-align: left; }
table.ranked th { color: #6b7280; font-weight: 500; }
.help { color: #4b5563; font-size: 12px; }
"""


class CountyRiskIndex(View):
    """Choropleth of the composite risk index; a click on an area ranks its enterprises."""

    view_type = "county_index"

    source = param.ClassSelector(class_=RiskSource, doc="The risk queries (sources.risk.risk).")

    level = param.Selector(default="county", objects=["county", "city"],
                           doc="Areas coloured: counties or cities.")
    selected = param.String(default=None, allow_None=True,
                            doc="Code of the clicked county (or city).")
    top = param.Integer(default=50, bounds=(1, 500), doc="Enterprises listed for an area.")

    def __init__(self, **params):
        super().__init__(**params)
        if self.level not in self._levels():
            with param.discard_events(self):
                self.level = "county"
        self._patches = ColumnDataSource(data=self._patch_data(), name="index-patches")
        self._context = ColumnDataSource(data=self._context_data(), name="index-context")
        fig = figure(x_range=DataRange1d(range_padding=0.02),
                     y_range=DataRange1d(range_padding=0.02), match_aspect=True,
                     aspect_scale=ASPECT, sizing_mode="stretch_both", min_height=420,
                     tools="pan,wheel_zoom,reset", active_scroll="wheel_zoom",
                     toolbar_location="right", background_fill_color="#eef1f4",
                     name="county-index")
        fig.xgrid.visible = fig.ygrid.visible = False
        fig.axis.major_label_text_font_size = "10px"
        # the areas outside the user's jurisdiction: grey outlines, no values
        fig.patches("xs", "ys", source=self._context, fill_color="#e5e7eb", fill_alpha=0.6,
                    line_color="#9ca3af", line_width=0.5, name="index-context")
        r = fig.patches("xs", "ys", source=self._patches, fill_color="color", fill_alpha=0.9,
                        line_color="#374151", line_width=0.6,
                        selection_line_color="#0f2747", selection_line_width=2.5,
                        nonselection_fill_alpha=0.75)
        fig.add_tools(HoverTool(renderers=[r], tooltips=[
            (self.t("risk.index.area"), "@name"),
            (self.t("risk.index.value"), "@index{0.0}"),
            (self.t("risk.index.density"), "@density{0.000}"),
            (self.t("risk.index.overdue"), "@overdue{0.0}"),
            (self.t("risk.index.alarms"), "@alarms{0.0}"),
        ]), TapTool(renderers=[r]))
        self._patches.selected.on_change("indices", self._on_select)
        fig.x_range.renderers = fig.y_range.renderers = [r]  # the jurisdiction fills the map
        self.figure = fig
        self._level = pn.widgets.RadioButtonGroup(
            options={self.t(f"risk.index.{lv}"): lv for lv in self._levels()},
            value=self.level, color="light")
        self._level.link(self, value="level")
        self._ranked = HTML(f"<p class='help'>{self.t('risk.index.pick')}</p>",
                            sizing_mode="stretch_width", stylesheets=[TABLE_CSS],
                            css_classes=["ranked-enterprises"])

    # ------------------------------------------------------------------ data
    def _levels(self) -> list[str]:
        """Levels the user may colour: a county user has no whole city to compare."""
        scope = self.guard.scope()
        return ["county"] if scope is not None and len(scope) > 4 else ["county", "city"]

    def _mine(self, code) -> bool:
        """Whether an area (county or city) lies inside the user's jurisdiction."""
        scope = self.guard.scope()
        return scope is None or str(code).startswith(scope)

    def _context_data(self) -> dict:
        xs, ys = [], []
        if self.guard.scope() is not None:
            for row in self.source.boundaries(self.level).itertuples():
                if not self._mine(row.code):
                    for ring in rings(row.geojson):
                        xs.append([p[0] for p in ring])
                        ys.append([p[1] for p in ring])
        return {"xs": xs, "ys": ys}

    def _patch_data(self) -> dict:
        idx = self.source.county_index(self.level).set_index("code")
        # colour by quintile of the index over the province (the index is relative to it):
        # five equal groups, from first to inspect to last
        pct = idx["index"].rank(method="min", pct=True)
        idx["klass"] = np.minimum((pct * len(PALETTE) - 1e-9).astype(int), len(PALETTE) - 1)
        shapes = self.source.boundaries(self.level)
        data = {k: [] for k in ("xs", "ys", "code", "name", "index", "density", "overdue",
                                "alarms", "color")}
        for row in shapes.itertuples():
            if row.code not in idx.index or not self._mine(row.code):
                continue
            comp = idx.loc[row.code]
            for ring in rings(row.geojson):  # outer rings: patches do not fill holes
                data["xs"].append([p[0] for p in ring])
                data["ys"].append([p[1] for p in ring])
                data["code"].append(row.code)
                data["name"].append(str(row.name))
                for k in ("index", "density", "overdue", "alarms"):
                    data[k].append(float(comp[k]))
                data["color"].append(PALETTE[int(comp["klass"])])
        return data

    @param.depends("level", watch=True)
    def _reload(self) -> None:
        self.selected = None
        data, context = self._patch_data(), self._context_data()

        def apply():
            self._patches.selected.indices = []
            self._patches.data = data
            self._context.data = context

        # the level widget calls back outside the document lock; Bokeh models change with it
        doc = pn.state.curdoc
        if doc is not None and doc.session_context is not None:
            doc.add_next_tick_callback(apply)
        else:
            apply()

    def _on_select(self, attr, old, new) -> None:
        if new:
            self.selected = self._patches.data["code"][new[0]]

    @param.depends("selected", watch=True)
    def _show_ranked(self) -> None:
        self._ranked.object = self.ranked_html()

    def ranked_html(self) -> str:
        """The clicked area's enterprises, ranked (names escaped)."""
        if self.selected is None:
            return f"<p class='help'>{self.t('risk.index.pick')}</p>"
        if not self._mine(self.selected):  # not offered on the map: a forged selection
            exc = self.guard.refuse_view("risk", county=str(self.selected),
                                         target=f"risk.index:{self.selected}")
            return f"<p class='help refused'>{escape(self.refusal(exc))}</p>"
        df = self.source.ranked_enterprises(self.selected, level=self.level, limit=self.top)
        codes = self._patches.data["code"]
        name = (self._patches.data["name"][codes.index(self.selected)]
                if self.selected in codes else self.selected)
        th = "".join(f"<th>{self.t(k)}</th>" for k in (
            "risk.index.rank", "risk.index.name", "risk.index.red", "risk.index.orange",
            "risk.index.overdue_hz", "risk.index.score"))
        rows = "".join(
            f"<tr data-enterprise='{int(r.enterprise_id)}'><td>{i}</td><td>{escape(str(r.name))}"
            f"</td><td>{r.red}</td><td>{r.orange}</td><td>{r.overdue_hazards}</td>"
            f"<td>{r.score}</td></tr>" for i, r in enumerate(df.itertuples(), 1))
        return (f"<h4>{escape(self.t('risk.index.ranked', name=name))}</h4>"
                f"<table class='ranked'><tr>{th}</tr>{rows}</table>")

    def __panel__(self):
        return pn.Row(
            pn.Column(self._level, pn.pane.Bokeh(self.figure, sizing_mode="stretch_both"),
                      sizing_mode="stretch_both"),
            pn.Column(HTML(f"<p class='help'>{self.t('risk.index.help')}</p>",
                           stylesheets=[TABLE_CSS], sizing_mode="stretch_width"),
                      self._ranked, width=420, scroll=True),
            sizing_mode="stretch_both")
