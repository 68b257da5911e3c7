"""How to write a view of your own: a source that keeps the SQL, a view that shows it.

1. **Source** — subclass :class:`sources.base.Source`; each table is a method with ``?``
   parameters that returns a DataFrame, marked ``@query(...)`` so the base caches it (and
   says when it is stale: hub topics, an age, or never); ``source.get("county_counts",
   city=...)`` reads it by name. No Panel here.
2. **View** — subclass :class:`views.base.View`; declare its parameters with ``doc=``; build the
   panes once in ``__init__``; update them in place when a parameter changes
   (``@param.depends(..., watch=True)``); return the layout from ``__panel__``. Labels go
   through ``self.t(key)`` (add the keys to ``views/i18n.py``; here they are plain text).
3. **In a notebook** — ``CountyRiskTable(source=CountyRiskSource.from_path("var/console.duckdb"))``
   displays inline (see ``examples/views_in_jupyter.ipynb``).
4. **On a dashboard** — add a module to ``dashboards/`` (it is found and served by
   ``serve.py``; move the view to ``views/`` and the source to ``sources/`` when it is
   adopted)::

       # dashboards/county_risk.py
       from typing import ClassVar
       from dashboards.base import Dashboard
       from dashboards.theme import page
       from examples.my_view import CountyRiskSource, CountyRiskTable

       class CountyRiskPage(Dashboard):
           route: ClassVar[str] = "county-risk"        # served at /county-risk
           title_key: ClassVar[str] = "app.risk"        # a label of views/i18n.py
           order: ClassVar[int] = 70

           def layout(self):  # a page lays out views over the console's store; starts nothing
               source = CountyRiskSource(store=self.console.store, hub=self.console.hub)
               view = CountyRiskTable(source=source, lang=self.lang)
               return page(self.t("app.risk"), view, lang=self.lang, route=self.route)

   Or, with no code: save a query in ``/console`` and press *Pin to dashboard*, or drop a
   notebook in ``dashboards/notebooks/``.
"""
from __future__ import annotations

import holoviews as hv
import holoviews.plotting.bokeh  # noqa: F401  (registers the bokeh options)
import pandas as pd
import panel as pn
import param

from sources.base import Source, query
from views.base import View


class CountyRiskSource(Source):
    """Risk points per county of a city, by grade."""

    source_type = "county_risk"

    @query()  # a registry: read once
    def cities(self) -> list[str]:
        """The cities of the province."""
        return self.store.arrow("SELECT DISTINCT city FROM counties ORDER BY 1").column(0).to_pylist()

    @query()  # risk points change only with a new registry
    def county_counts(self, city: str) -> pd.DataFrame:
        """Risk points per county of ``city``: all, red and orange, most red first."""
        return self.store.df(
            """
            SELECT c.name AS county,
                   count(r.point_id) AS risk_points,
                   count(r.point_id) FILTER (WHERE r.risk_level = 'red') AS red,
                   count(r.point_id) FILTER (WHERE r.risk_level = 'orange') AS orange
            FROM counties c LEFT JOIN risk_points r USING (county_code)
            WHERE c.city = ?
            GROUP BY c.name ORDER BY red DESC, risk_points DESC
            """,
            [city],
        )


class CountyRiskTable(View):
    """The counties of a city ranked by major risk points: a bar chart and a table."""

    view_type = "county_risk_table"

    source = param.ClassSelector(class_=CountyRiskSource, doc="Where the counts come from.")
    city = param.String(default="济南市", doc="The city whose counties are shown.")
    top = param.Integer(default=10, bounds=(1, 50), doc="How many counties the chart shows.")

    def __init__(self, **params):
        super().__init__(**params)
        self._chart = pn.pane.HoloViews(sizing_mode="stretch_width", height=320)
        self._table = pn.widgets.Tabulator(pd.DataFrame(), disabled=True, show_index=False,
                                           sizing_mode="stretch_width", page_size=10,
                                           pagination="local")
        self._city = pn.widgets.Select.from_param(self.param.city, options=self.source.cities(),
                                                  label="city")
        self._layout = pn.Column(self._city, self._chart, self._table,
                                 sizing_mode="stretch_width")
        self._update()

    def rows(self) -> pd.DataFrame:
        """The rows shown now."""
        return self._table.value.assign(city=self.city)

    @param.depends("city", "top", watch=True)
    def _update(self):
        df = self.source.county_counts(self.city)
        self._table.value = df
        self._chart.object = hv.Bars(df.head(self.top), "county", ["red"]).opts(
            responsive=True, height=300, color="#e60012", xrotation=45, tools=["hover"],
            title=self.city)

    def __panel__(self):
        return self._layout
