"""The risk map's controls: filters (city, county, industry, size) kept within the user's
jurisdiction, enterprise search and exports. A mixin of :class:`views.risk_map.RiskPointMap`
(it uses the map's ``source``, ``guard``, ``filter``, ``bounds`` and :meth:`jump_to`)."""
from __future__ import annotations

import dataclasses
import html
import io

import panel as pn

from sources.risk.risk import RiskFilter, to_csv_bytes, to_excel_bytes

from .panes import HTML


class RiskControls:
    """Mixin: the side panel of the risk map and the exports."""

    def export(self, what: str = "enterprises", fmt: str = "csv") -> bytes:
        """The filtered enterprises (or the points in view) as CSV or Excel bytes, within
        the user's jurisdiction (a county exports its county), recorded in the audit log."""
        flt = self._scoped_filter()
        self.guard.check("export", county=None if self.guard.scope() is None
                         else self.guard.jurisdiction, target=f"risk:{what}")
        if what == "enterprises":
            df = self.source.export_enterprises(flt)
        else:
            df = self.source.export_points(self.bounds, flt)
        self.guard.record("export", target=f"risk:{what}.{fmt}",
                          details={"rows": len(df), "counties": list(flt.counties),
                                   "cities": list(flt.cities)})
        return to_csv_bytes(df) if fmt == "csv" else to_excel_bytes(df, sheet=what)

    def _scoped_filter(self, flt: RiskFilter | None = None) -> RiskFilter:
        """The filter (or ``flt``), narrowed to the user's jurisdiction (the province: as
        it is): what every frame, glyph, search and export of this map uses."""
        return (self.filter if flt is None else flt).within(self.guard.scope())

    # ------------------------------------------------------------------ controls
    def controls(self) -> pn.viewable.Viewable:
        """Filters (city, county, industry, size), enterprise search and export buttons."""
        if getattr(self, "_controls", None) is not None:
            return self._controls
        src = self.source
        cities = src.cities()
        scope = self.guard.scope()
        if scope is not None:  # the user's own city only
            cities = cities.loc[[scope.startswith(c[:4]) for c in cities["city_code"]]]
        self._w_city = pn.widgets.MultiChoice(
            label=self.t("risk.filter.city"), options=dict(zip(cities["name"], cities["city_code"],
                                                          strict=True)), sizing_mode="stretch_width")
        self._w_county = pn.widgets.MultiChoice(label=self.t("risk.filter.county"),
                                                sizing_mode="stretch_width")
        self._set_county_options()
        inds = src.industries(self.lang)
        self._w_industry = pn.widgets.MultiChoice(
            label=self.t("risk.filter.industry"), sizing_mode="stretch_width",
            options=dict(zip(inds["name"], inds["industry"], strict=True)))
        self._w_size = pn.widgets.MultiChoice(
            label=self.t("risk.filter.size"), sizing_mode="stretch_width",
            options={self.t(f"risk.size.{s}"): s for s in src.sizes()})
        for w in (self._w_city, self._w_county, self._w_industry, self._w_size):
            w.param.watch(self._on_filter, "value")
        self._w_query = pn.widgets.TextInput(placeholder=self.t("risk.search"),
                                             sizing_mode="stretch_width")
        self._w_search = pn.widgets.Button(label=self.t("risk.search.button"),
                                           color="primary", width=70)
        self._w_results = pn.widgets.Select(options={}, visible=False, size=6,
                                            sizing_mode="stretch_width")
        self._search_msg = HTML("", margin=(0, 4), css_classes=["risk-search-msg"])
        self._filter_msg = HTML("", margin=(0, 4), css_classes=["risk-filter-msg"],
                                stylesheets=[".refused{color:#b00020;font-weight:600;}"])
        self._w_search.on_click(lambda e: self.search(self._w_query.value_input
                                                      or self._w_query.value))
        self._w_query.param.watch(lambda e: self.search(e.new), "value")  # Enter or blur
        self._w_results.param.watch(self._on_result, "value")
        downloads = [
            pn.widgets.FileDownload(callback=lambda w=w, f=f: _io(self.export(w, f)),
                                    filename=f"risk_{w}.{'csv' if f == 'csv' else 'xlsx'}",
                                    label=self.t(key), color="light",
                                    sizing_mode="stretch_width", margin=(2, 4))
            for w, f, key in (("enterprises", "csv", "risk.export.ent_csv"),
                              ("enterprises", "xlsx", "risk.export.ent_xlsx"),
                              ("points", "csv", "risk.export.pts_csv"),
                              ("points", "xlsx", "risk.export.pts_xlsx"))]
        self._controls = pn.Column(
            self.legend(),
            HTML(f"<b>{self.t('risk.search')}</b>", margin=(8, 4, 0, 4)),
            pn.Row(self._w_query, self._w_search, sizing_mode="stretch_width"),
            self._search_msg, self._w_results,
            HTML(f"<b>{self.t('risk.filters')}</b>", margin=(8, 4, 0, 4)),
            self._w_city, self._w_county, self._w_industry, self._w_size, self._filter_msg,
            HTML(f"<b>{self.t('risk.export')}</b>", margin=(8, 4, 0, 4)),
            *downloads, width=280, margin=(0, 4), css_classes=["risk-controls"])
        return self._controls

    def _set_county_options(self) -> None:
        counties = self.source.counties(tuple(self._w_city.value))
        scope = self.guard.scope()
        if scope is not None:
            counties = counties[counties["county_code"].str.startswith(scope)]
        opts = dict(zip(counties["name"] + "（" + counties["city"] + "）",
                        counties["county_code"], strict=True))
        self._w_county.options = opts
        self._w_county.value = [v for v in self._w_county.value if v in opts.values()]

    def _on_filter(self, event) -> None:
        if getattr(self, "_muted", False):
            return
        if event.obj in (self._w_city, self._w_county):
            scope = self.guard.scope() or ""
            # a city is allowed when it holds the jurisdiction, a county when inside it
            outside = [] if not scope else [c for c in event.new if not (
                scope.startswith(str(c)[:4]) if event.obj is self._w_city
                else self.guard.sees(c))]
            if outside:  # not offered: a forged value; the user cannot widen the map
                self._refuse_filter(event.obj, outside)  # the rest of the choice stands
            else:
                self._filter_msg.object = ""
        if event.obj is self._w_city:
            self._set_county_options()
        self.filter = dataclasses.replace(
            self.filter, cities=tuple(self._w_city.value), counties=tuple(self._w_county.value),
            industries=tuple(self._w_industry.value), sizes=tuple(self._w_size.value))

    def _refuse_filter(self, widget, outside: list[str]) -> None:
        exc = self.guard.refuse_view("risk", county=str(outside[0]),
                                     target=f"risk.filter:{outside[0]}")
        self._filter_msg.object = f'<span class="refused">{html.escape(self.refusal(exc))}</span>'
        self._muted = True
        try:
            widget.value = [v for v in widget.value if v not in outside]
        finally:
            self._muted = False

    def _area_filter(self) -> RiskFilter:
        """The user's jurisdiction alone (no industry, size or grade filter)."""
        return self._scoped_filter(RiskFilter())

    def search(self, text: str) -> int:
        """Search enterprises by name; one match jumps to it, several fill the result list."""
        self.controls()
        df = self.source.search(text, self._area_filter())
        if not (text or "").strip():
            self._w_results.visible = False
            self._search_msg.object = ""
            return 0
        if df.empty:
            self._w_results.visible = False
            self._search_msg.object = html.escape(self.t("risk.search.none", q=text))
            return 0
        self._search_msg.object = html.escape(self.t("risk.search.results", n=len(df)))
        # Select options are rendered as text by Bokeh: names with markup stay text
        opts = {f"{r.name}（{r.county}）": int(r.enterprise_id) for r in df.itertuples()}
        first = int(df["enterprise_id"].iloc[0])
        self._muted = True
        try:
            self._w_results.param.update(options=opts, value=first, visible=True)
        finally:
            self._muted = False
        self.jump_to(first)  # the best match at once; the list offers the others
        return len(df)

    def _on_result(self, event) -> None:
        if event.new is not None and not getattr(self, "_muted", False):
            self.jump_to(event.new)


def _io(data: bytes) -> io.BytesIO:
    return io.BytesIO(data)
