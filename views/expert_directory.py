"""专家检索与推荐: search the expert registry with facets and a card; recommend for a need."""
from __future__ import annotations

import html

import pandas as pd
import panel as pn
import param

from sources.inventory.common import county_table
from sources.inventory.experts import EXPERT_TYPES, ExpertSource

from .base import View
from .inventory_common import Notice, listify, options, rule, table
from .panes import HTML, Markdown

CARD_CSS = """
.expert-card { padding: 8px 12px; border: 1px solid #d7dee8; border-radius: 6px;
  background: #fff; font-size: 14px; }
.expert-card h3 { margin: 0 0 6px; color: #0f2747; }
.expert-card .tag { display: inline-block; background: #e8f0fe; color: #1d4ed8;
  border-radius: 3px; padding: 0 6px; margin: 2px; }
.facets { font-size: 13px; }
.facets b { color: #0f2747; }
.facets span { display: inline-block; margin: 0 8px 2px 0; }
"""


class EnterprisePicker(param.Parameterized):
    """Type part of an enterprise's name (or its id), press Enter, pick from the matches."""

    value = param.Integer(default=None, allow_None=True, doc="The chosen enterprise id.")

    def __init__(self, source: ExpertSource, t, css_prefix: str, **params):
        super().__init__(**params)
        self._source, self._t = source, t
        self.text = pn.widgets.TextInput(
            label=t("inventory.enterprise"), placeholder=t("inventory.enterprise.hint"),
            css_classes=[f"{css_prefix}-enterprise-text"], width=220)
        self.choice = pn.widgets.Select(label=t("inventory.enterprise.match"),
                                        options={t("inventory.none"): ""},
                                        css_classes=[f"{css_prefix}-enterprise"], width=220)
        self.text.param.watch(self._lookup, "value")
        self.choice.param.watch(self._chosen, "value")

    def _lookup(self, event) -> None:
        found = self._source.find_enterprises(event.new)
        self.choice.options = options(found, "enterprise_id", "name",
                                      blank=self._t("inventory.none"))
        self.choice.value = found.enterprise_id.iloc[0] if len(found) == 1 else ""

    def _chosen(self, event) -> None:
        self.value = None if event.new in ("", None) else int(event.new)

    def panel(self) -> pn.Row:
        return pn.Row(self.text, self.choice, margin=0)


def type_options(t, blank: bool = True) -> dict:
    out = {t("inventory.all"): ""} if blank else {}
    out.update({t(f"inventory.type.{k}"): k for k in EXPERT_TYPES})
    return out


def home_county(guard) -> str:
    """The county a county officer's inventory filters start on ('' for a city or the
    province: all). Experts and materials are provincial — mutual aid — so the filters
    start there and the officer may widen them."""
    scope = guard.scope()
    return guard.jurisdiction if scope is not None and len(scope) == 6 else ""


def county_options(store, t) -> dict:
    return options(county_table(store).assign(label=lambda d: d.city + " " + d.name),
                   "county_code", "label", blank=t("inventory.all"))


class ExpertDirectory(View):
    """Search experts by name, tag, type, county and availability; recommend for a need."""

    view_type = "expert_directory"

    source = param.ClassSelector(class_=ExpertSource, doc="The expert inventory source.")
    limit = param.Integer(default=15, bounds=(1, 200), doc="Rows per page of the tables.")

    def __init__(self, **params):
        super().__init__(**params)
        t, src = self.t, self.source
        tags = src.tags()
        tag_opts = list(tags.tag)
        self.name_input = pn.widgets.TextInput(
            label=t("inventory.search.name"), placeholder=t("inventory.search.name.hint"),
            css_classes=["inv-search-name"], width=200)
        self.tags = pn.widgets.MultiChoice(label=t("inventory.tags"), options=tag_opts,
                                           css_classes=["inv-search-tags"], width=260)
        self.type = pn.widgets.Select(label=t("inventory.type"), options=type_options(t),
                                      css_classes=["inv-search-type"], width=140)
        home = home_county(self.guard)
        self.county = pn.widgets.Select(label=t("inventory.county"),
                                        options=county_options(src.store, t), value=home,
                                        css_classes=["inv-search-county"], width=180)
        self.available = pn.widgets.Select(
            label=t("inventory.available"),
            options={t("inventory.all"): "", t("inventory.available.yes"): "yes",
                     t("inventory.available.no"): "no"},
            css_classes=["inv-search-available"], width=120)
        self.search_button = pn.widgets.Button(label=t("inventory.search"), color="primary",
                                               css_classes=["inv-search-go"], align="end")
        self.count = HTML("", css_classes=["inv-search-count"])
        self.facets = HTML("", stylesheets=[CARD_CSS], sizing_mode="stretch_width")
        self.results = table(page_size=self.limit, selectable=1, css_class="inv-search-results",
                             titles=self._titles())
        self.card = HTML("", stylesheets=[CARD_CSS], css_classes=["inv-expert-card"],
                         sizing_mode="stretch_width")
        for w in (self.name_input, self.tags, self.type, self.county, self.available):
            w.param.watch(lambda _e: self.refresh(), "value")
        self.search_button.on_click(lambda _e: self.refresh())
        self.results.param.watch(self._show_card, "selection")
        # recommendation
        self.need_tags = pn.widgets.MultiChoice(label=t("inventory.need.tags"), options=tag_opts,
                                                css_classes=["inv-rec-tags"], width=260)
        self.need_county = pn.widgets.Select(label=t("inventory.need.county"),
                                             options=county_options(src.store, t), value=home,
                                             width=180)
        self.need_enterprise = EnterprisePicker(src, t, "inv-rec")
        self.rec_button = pn.widgets.Button(label=t("inventory.recommend"), color="primary",
                                            css_classes=["inv-rec-go"], align="end")
        self.rec_notice = Notice(t, "inv-rec-notice")
        self.rec_table = table(page_size=10, css_class="inv-rec-results",
                               titles=self._titles())
        self.rec_button.on_click(lambda _e: self.recommend())
        self.refresh()

    def _titles(self) -> dict:
        cols = ("expert_id", "name", "type", "title", "employer", "county", "available",
                "rating", "phone", "tags", "matched", "workload", "tag_score", "distance_km",
                "distance_score", "rating_score", "workload_score", "score")
        return {c: self.t(f"inventory.col.{c}") for c in cols}

    # ------------------------------------------------------------------ search
    def refresh(self) -> pd.DataFrame:
        """Run the search with the current filters and update the table, facets and count."""
        avail = {"": None, "yes": True, "no": False}[self.available.value or ""]
        found = self.source.search(name=self.name_input.value, tags=self.tags.value,
                                   type=self.type.value or None,
                                   county=self.county.value or None, available=avail)
        self.count.object = html.escape(self.t("inventory.search.count", n=len(found)))
        self.facets.object = self._facets_html(found)
        shown = found.assign(
            type=found["type"].map(lambda k: self.t(f"inventory.type.{k}")),
            available=found["available"].map(
                lambda v: self.t("inventory.yes") if v else self.t("inventory.no")))
        self.results.value = listify(shown, "tags")[
            ["expert_id", "name", "type", "title", "employer", "county", "available", "rating",
             "tags"]]
        return found

    def _facets_html(self, found: pd.DataFrame) -> str:
        parts = []
        for key, df in self.source.facets(found).items():
            items = []
            for label, n in df.head(12).itertuples(index=False):
                if key == "type":
                    label = self.t(f"inventory.type.{label}")
                elif key == "available":
                    label = self.t("inventory.available.yes" if label else "inventory.available.no")
                items.append(f"<span>{html.escape(str(label))} ({int(n)})</span>")
            parts.append(f"<div><b>{html.escape(self.t('inventory.facet.' + key))}</b>: "
                         f"{''.join(items)}</div>")
        return f'<div class="facets">{"".join(parts)}</div>'

    def _show_card(self, event) -> None:
        if not event.new:
            return
        row = self.results.value.iloc[event.new[0]]
        self.card.object = self.card_html(int(row.expert_id))

    def card_html(self, expert_id: int) -> str:
        """The expert card: record, tags and recent tasks (every value escaped)."""
        c = self.source.expert_card(expert_id)
        e = html.escape
        tags = "".join(f'<span class="tag">{e(tag)}</span>' for tag in c["tags"])
        tasks = "".join(f"<li>{e(str(r.title))} · {e(self.t('inventory.status.' + r.status))}"
                        f"</li>" for r in c["tasks"].head(5).itertuples())
        rating = "—" if pd.isna(c["rating"]) else f"{c['rating']:.2f}"
        rows = [("inventory.col.type", self.t(f"inventory.type.{c['type']}")),
                ("inventory.col.title", c["title"]), ("inventory.col.employer", c["employer"]),
                ("inventory.col.county", c["county"]), ("inventory.col.phone", c["phone"]),
                ("inventory.col.rating", rating),
                ("inventory.col.available", self.t("inventory.available.yes" if c["available"]
                                                   else "inventory.available.no"))]
        body = "".join(f"<div>{e(self.t(k))}: {e('' if pd.isna(v) else str(v))}</div>"
                       for k, v in rows)
        return (f'<div class="expert-card"><h3>{e(c["name"])}</h3>{body}<div>{tags}</div>'
                + (f"<ul>{tasks}</ul>" if tasks else "") + "</div>")

    # ------------------------------------------------------------------ recommendation
    def recommend(self) -> pd.DataFrame | None:
        """Rank experts for the need in the form; show every score component."""
        rec = self.rec_notice.run(
            lambda: self.source.recommend(self.need_tags.value,
                                          county=self.need_county.value or None,
                                          enterprise_id=self.need_enterprise.value),
            lambda r: self.t("inventory.recommend.done", n=len(r)))
        if rec is not None:
            shown = rec.assign(type=rec["type"].map(lambda k: self.t(f"inventory.type.{k}")))
            self.rec_table.value = listify(shown, "tags")[
                ["expert_id", "name", "type", "employer", "tags", "score", "tag_score",
                 "distance_km", "distance_score", "rating", "rating_score", "workload",
                 "workload_score"]].round(3)
        return rec

    def __panel__(self):
        t = self.t
        search = pn.Column(
            pn.Row(self.name_input, self.tags, self.type, self.county, self.available,
                   self.search_button),
            self.count, self.facets,
            pn.Row(self.results, pn.Column(self.card, width=320)),
            sizing_mode="stretch_width")
        rec = pn.Column(
            Markdown(f"#### {t('inventory.recommend.title')}"),
            Markdown(t("inventory.recommend.help"), styles={"font-size": "12px"}),
            pn.Row(self.need_tags, self.need_county, self.need_enterprise.panel(),
                   self.rec_button),
            self.rec_notice.pane, self.rec_table, sizing_mode="stretch_width")
        return pn.Column(search, rule(), rec, sizing_mode="stretch_width")
