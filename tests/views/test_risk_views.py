"""The risk views on the tiny demo store: render, legend, filters, search, card, index."""
from __future__ import annotations

import html

import numpy as np
import pyarrow as pa
import pytest

from sources.hub import Message
from sources.risk.risk import RiskFilter, RiskSource
from tests.conftest import rendered
from views.county_index import CountyRiskIndex
from views.enterprise_card import EnterpriseCard, sparkline
from views.risk_map import RiskPointMap

EVIL = '<img src=x onerror="alert(1)">恶意企业'


@pytest.fixture
def source(store):
    with store.transaction() as cur:
        cur.execute("UPDATE enterprises SET name = ? WHERE enterprise_id = 1", [EVIL])
    return RiskSource(store=store)


@pytest.fixture
def risk_map(source):
    return RiskPointMap(source=source, frame_size=(400, 300))


def test_sweep_every_risk_view_renders(source):
    name = source.enterprise(1)["name"]
    counties = source.store.scalar("SELECT count(*) FROM counties")
    assert rendered(RiskPointMap(source=source))["figures"] == 1
    assert html.escape(name) in rendered(EnterpriseCard(source=source, enterprise_id=1))["text"]
    assert rendered(CountyRiskIndex(source=source))["rows"] >= counties


def test_outlines_are_drawn_above_the_points(risk_map):
    names = [r.name for r in risk_map.figure.renderers]
    image = next(i for i, r in enumerate(risk_map.figure.renderers)
                 if type(r.glyph).__name__ == "Image")
    assert names.index("outline-county") > image and names.index("outline-city") > image
    xs = risk_map.figure.select_one({"name": "outline-county"}).data_source.data["xs"]
    # every county of Shandong (some have several rings), NaN between rings: one binary
    # array for every page instead of a JSON list per ring
    assert len(xs) == 1 and int(np.isnan(xs[0]).sum()) + 1 >= 136


def test_legend_counts_follow_the_view_and_filters(risk_map, source):
    assert risk_map.counts == source.counts(risk_map.bounds)
    b = (116.8, 117.4, 36.4, 36.9)
    risk_map._render(b)
    assert risk_map.counts == source.counts(b)
    risk_map.filter = RiskFilter(industries=("hazchem",), grades=("red", "orange"))
    assert risk_map.counts == source.counts(b, risk_map.filter)
    label = risk_map._toggles["red"].label
    assert label.endswith(f"{risk_map.counts['red']:,}")


def test_legend_click_hides_a_grade(risk_map):
    before = risk_map._image.data["image"][0].copy()
    risk_map._toggles["blue"].value = False
    assert "blue" not in risk_map.filter.grades
    assert (risk_map._image.data["image"][0] != before).any()
    risk_map._toggles["blue"].value = True
    assert "blue" in risk_map.filter.grades


def test_filters_matching_nothing_show_no_points(risk_map):
    risk_map.controls()
    risk_map._w_size.options = {**risk_map._w_size.options, "none": "no-such-size"}
    risk_map._w_size.value = ["no-such-size"]
    assert risk_map.filter.sizes == ("no-such-size",)
    assert sum(risk_map.counts.values()) == 0
    assert risk_map.message == risk_map.t("no_points")
    assert not risk_map._image.data["image"][0].any()
    risk_map._w_size.value = []
    assert risk_map.message == ""


def test_street_level_draws_glyphs_with_enterprises(risk_map, source):
    e = source.enterprise(1)
    assert risk_map.jump_to(1)
    data = risk_map._points.data
    assert 0 < len(data["lon"]) <= risk_map.glyph_limit
    assert EVIL in data["enterprise"]  # Bokeh tooltips escape field values
    assert risk_map.selected_enterprise == 1
    assert risk_map.bounds[0] < e["lon"] < risk_map.bounds[1]


def test_unknown_enterprise_is_a_clear_message(risk_map):
    assert not risk_map.jump_to("99999999")
    assert "99999999" in risk_map.message
    assert not risk_map.jump_to("<b>x</b>")
    assert "&lt;b&gt;" in risk_map._status.object


def test_search_jumps_to_the_best_match(risk_map, source):
    name = source.store.scalar("SELECT name FROM enterprises WHERE enterprise_id = 7")
    assert risk_map.search(name) >= 1
    assert risk_map.selected_enterprise == 7
    assert risk_map.search("没有这个企业名称") == 0
    assert "没有这个企业名称" in risk_map._search_msg.object


def test_tap_selects_the_nearest_enterprise(risk_map, source):
    e = source.enterprise(5)
    pts = source.points((e["lon"] - 0.05, e["lon"] + 0.05, e["lat"] - 0.05, e["lat"] + 0.05))
    p = pts[pts["enterprise_id"] == 5].iloc[0]
    risk_map._render((p["lon"] - 0.002, p["lon"] + 0.002, p["lat"] - 0.002, p["lat"] + 0.002))

    class Event:
        x, y = float(p["lon"]), float(p["lat"])

    risk_map._on_tap(Event())
    assert risk_map.selected_enterprise == 5
    risk_map._on_move(Event())
    assert "risk.hover" not in risk_map._hover.object


def test_live_readings_count(risk_map, source):
    risk_map.readings = 5
    batch = pa.table({"feed": ["f"] * 3, "seq": [1, 2, 3], "value": [1.0, 2.0, 3.0]})
    risk_map.on_readings([Message("reading", batch), Message("reading", batch.slice(0, 1))],
                         False)
    assert risk_map.readings == 9
    assert "9" in risk_map._live.object
    risk_map.on_readings([], True)  # messages were dropped: reload from the store
    assert risk_map.readings == source.readings_count()


def test_export_bytes(risk_map):
    risk_map.filter = RiskFilter(grades=("red",))
    csv = risk_map.export("enterprises", "csv").decode("utf-8-sig")
    assert csv.splitlines()[0].startswith("enterprise_id,name")
    assert risk_map.export("points", "xlsx")[:2] == b"PK"


def test_card_escapes_names_and_highlights_overdue(source):
    card = EnterpriseCard(source=source, enterprise_id=1)
    html = card.html()
    assert EVIL not in html and "&lt;img src=x" in html
    eid = source.store.scalar(
        "SELECT enterprise_id FROM hazards WHERE status <> 'closed' AND deadline < current_date "
        "ORDER BY 1 LIMIT 1")
    card.show(eid)
    assert "class='overdue'" in card.html()
    assert not card.show("nope")
    assert "nope" in card.html() and card.enterprise_id is None


def test_card_shows_sensors_with_latest_value(source):
    eid = source.store.scalar("SELECT enterprise_id FROM sensors WHERE enterprise_id IS NOT NULL "
                              "ORDER BY 1 LIMIT 1")
    sid = source.store.scalar("SELECT sensor_id FROM sensors WHERE enterprise_id = ? "
                              "ORDER BY 1 LIMIT 1", [eid])
    import pandas as pd

    now = pd.Timestamp.now(tz="UTC")
    source.store.insert("readings", pd.DataFrame({
        "feed": "test", "seq": range(10), "ts": [now - pd.Timedelta(minutes=10 - i)
                                                 for i in range(10)],
        "sensor_id": sid, "value": [float(i) for i in range(10)]}))
    html = EnterpriseCard(source=source, enterprise_id=eid).html()
    assert sid in html and "9.00" in html and "<svg" in html


def test_sparkline():
    assert sparkline([1.0]) == ""
    svg = sparkline([1.0, 3.0, 2.0], hi=2.5)
    assert svg.startswith("<svg") and "polyline" in svg and "<line" in svg


def test_county_index_view(source):
    view = CountyRiskIndex(source=source)
    codes = view._patches.data["code"]
    assert len(set(codes)) == 136
    view._on_select("indices", [], [codes.index("370102")])
    assert view.selected == "370102"
    assert "<table class='ranked'>" in view._ranked.object
    view.level = "city"
    assert len(set(view._patches.data["code"])) == 16 and view.selected is None
