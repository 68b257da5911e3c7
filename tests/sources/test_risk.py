"""RiskSource: legend counts equal SQL counts, the county index, cards, search, exports."""
from __future__ import annotations

import datetime as dt
import io

import openpyxl
import pandas as pd
import pytest

from sources.risk.pointlayer import GRADES
from sources.risk.risk import RiskFilter, RiskSource, risk_index, to_csv_bytes, to_excel_bytes
from sources.store.store import Store

AS_OF = dt.date(2026, 11, 20)


# ---------------------------------------------------------------------- a hand-built case
@pytest.fixture
def hand_store():
    """Three counties: A, B (city X) and C (city Y), a few points, hazards and alarms."""
    s = Store(":memory:")
    s.insert("cities", pd.DataFrame({"city_code": ["370100", "370200"], "name": ["X市", "Y市"]}))
    s.insert("counties", pd.DataFrame({
        "county_code": ["370101", "370102", "370201"], "name": ["A区", "B区", "C县"],
        "city": ["X市", "X市", "Y市"], "city_code": ["370100", "370100", "370200"],
        "area_km2": [100.0, 50.0, 200.0]}))
    s.insert("enterprises", pd.DataFrame({
        "enterprise_id": [1, 2, 3, 4], "name": ["甲<script>alert(1)</script>", "乙", "丙", "丁"],
        "industry": ["hazchem", "mining", "hazchem", "trade"],
        "size": ["large", "small", "small", "micro"],
        "county_code": ["370101", "370101", "370102", "370201"],
        "lon": [117.0, 117.1, 117.2, 118.0], "lat": [36.0, 36.1, 36.2, 37.0],
        "risk_level": ["red", "orange", "yellow", "blue"]}))
    grades = ["red", "red", "orange", "orange", "orange", "orange", "orange", "orange", "blue"]
    ents = [1, 1, 2, 3, 3, 3, 3, 3, 4]
    s.insert("risk_points", pd.DataFrame({
        "point_id": range(len(grades)), "enterprise_id": ents,
        "county_code": ["370101"] * 3 + ["370102"] * 5 + ["370201"],
        "kind": "equipment", "risk_level": grades,
        "lon": [117.0 + i * 0.001 for i in range(len(grades))],
        "lat": [36.0 + i * 0.001 for i in range(len(grades))]}))
    d = AS_OF
    s.insert("hazards", pd.DataFrame({
        "hazard_id": range(6), "enterprise_id": [1, 1, 3, 3, 4, 4],
        "description": "隐患", "severity": "general", "found_on": d - dt.timedelta(days=40),
        "deadline": [d - dt.timedelta(days=1), d + dt.timedelta(days=5),  # A: 1 overdue
                     d + dt.timedelta(days=3), d - dt.timedelta(days=9),  # B: closed one
                     d - dt.timedelta(days=2), d - dt.timedelta(days=30)],  # C: 2 overdue
        "status": ["open", "open", "open", "closed", "rectifying", "open"]}))
    t0 = pd.Timestamp(d, tz="UTC")
    raised = ([t0 - pd.Timedelta(days=k, hours=-3) for k in range(7)]  # A: 7 in the window
              + [t0 - pd.Timedelta(days=8)]  # B: out of the window
              + [t0 - pd.Timedelta(hours=k * 5 - 20) for k in range(14)])  # C: 14
    counties = ["370101"] * 7 + ["370102"] + ["370201"] * 14
    s.insert("alarms", pd.DataFrame({
        "alarm_id": range(len(raised)), "sensor_id": "S", "county_code": counties,
        "enterprise_id": [1] * 7 + [3] + [4] * 14,
        "kind": "hi", "level": "orange", "raised_at": raised, "state": "raised"}))
    yield s
    s.close()


def test_index_components_from_sql(hand_store):
    src = RiskSource(store=hand_store, as_of=AS_OF)
    comp = src.index_components("county").set_index("code")
    assert comp.loc["370101", ["red", "orange", "overdue_hazards", "alarms_7d"]].tolist() == [2, 1, 1, 7]
    assert comp.loc["370102", ["red", "orange", "overdue_hazards", "alarms_7d"]].tolist() == [0, 5, 0, 0]
    assert comp.loc["370201", ["red", "orange", "overdue_hazards", "alarms_7d"]].tolist() == [0, 0, 2, 14]
    assert comp["enterprises"].tolist() == [2, 1, 1]


def test_county_index_definition(hand_store):
    """A: density (3·2+1)/100 = .07, overdue 1/2 ents = 50, alarms 1/day;
    B: 5/50 = .1, 0, 0; C: 0, 200, 2/day. Each divided by its 95th percentile, capped at 1."""
    idx = RiskSource(store=hand_store, as_of=AS_OF).county_index().set_index("code")
    assert idx.loc["370101", "density"] == pytest.approx(0.07)
    assert idx.loc["370101", "overdue"] == pytest.approx(50.0)
    assert idx.loc["370201", "alarms"] == pytest.approx(2.0)
    p_density = 0.07 + 0.9 * (0.1 - 0.07)  # 95th percentile of (0, .07, .1)
    p_overdue = 50 + 0.9 * 150  # of (0, 50, 200)
    p_alarms = 1 + 0.9 * 1  # of (0, 1, 2)
    assert idx.loc["370101", "index"] == pytest.approx(
        100 * (0.5 * 0.07 / p_density + 0.3 * 50 / p_overdue + 0.2 * 1 / p_alarms))
    assert idx.loc["370102", "density_norm"] == 1.0  # capped
    assert idx.loc["370102", "index"] == pytest.approx(50.0)
    assert idx.loc["370201", "index"] == pytest.approx(50.0)
    assert idx.index[0] == "370101"  # highest first


def test_city_index(hand_store):
    idx = RiskSource(store=hand_store, as_of=AS_OF).county_index("city").set_index("code")
    # X: (3·2 + 6)/150 = .08, overdue 1/3 ents = 33.3, 1 alarm/day; Y: 0, 200, 2
    overdue_x = 100 / 3
    p_overdue = overdue_x + 0.95 * (200 - overdue_x)
    assert idx.loc["370100", "index"] == pytest.approx(
        100 * (0.5 * 1.0 + 0.3 * overdue_x / p_overdue + 0.2 * 1 / 1.95))
    assert idx.loc["370200", "index"] == pytest.approx(50.0)


def test_risk_index_with_no_signal_is_zero():
    comp = pd.DataFrame({"code": ["a", "b"], "name": ["a", "b"], "area_km2": [0.0, 10.0],
                         "enterprises": [0, 0], "red": [0, 0], "orange": [0, 0],
                         "yellow": [1, 0], "blue": [5, 0], "overdue_hazards": [0, 0],
                         "alarms_7d": [0, 0]})
    assert risk_index(comp)["index"].tolist() == [0.0, 0.0]


def test_ranked_enterprises(hand_store):
    src = RiskSource(store=hand_store, as_of=AS_OF)
    df = src.ranked_enterprises("370101")
    assert df["enterprise_id"].tolist() == [1, 2]  # 3·2 + 2·1 overdue = 8 before 1
    assert df["score"].tolist() == [8, 1]
    assert src.ranked_enterprises("370100", level="city")["enterprise_id"].tolist() == [1, 3, 2]


def test_card_queries(hand_store):
    src = RiskSource(store=hand_store, as_of=AS_OF)
    assert src.enterprise(1)["name"] == "甲<script>alert(1)</script>"
    assert src.enterprise(999) is None and src.enterprise("abc") is None
    assert src.enterprise_points(3) == {"red": 0, "orange": 5, "yellow": 0, "blue": 0}
    hz = src.hazards(4)
    assert hz["overdue"].tolist() == [True, True]  # open and rectifying, both past deadline
    assert src.hazards(3)["hazard_id"].tolist() == [2]  # the closed one is not listed
    assert len(src.alarms(4)) == 14


def test_search_escapes_nothing_and_ranks_prefix_first(hand_store):
    src = RiskSource(store=hand_store)
    assert src.search("<script>")["enterprise_id"].tolist() == [1]
    assert src.search("  ").empty
    assert src.search("不存在").empty


# ---------------------------------------------------------------------- the tiny store
@pytest.fixture(scope="module")
def tiny_source(tiny_db_template):
    src = RiskSource(store=Store(tiny_db_template, read_only=True))
    yield src, src.load_layer()
    src.store.close()


FILTERS = [
    RiskFilter(),
    RiskFilter(grades=("red", "orange")),
    RiskFilter(industries=("hazchem",)),
    RiskFilter(sizes=("small", "micro"), grades=("yellow",)),
    RiskFilter(cities=("370100",)),
    RiskFilter(counties=("370102", "370211"), industries=("hazchem", "mining")),
    RiskFilter(industries=("no-such-industry",)),
]


@pytest.mark.parametrize("flt", FILTERS, ids=range(len(FILTERS)))
def test_legend_counts_equal_sql_counts(tiny_source, flt):
    src, layer = tiny_source
    for bounds in (src.extent(), (116.9, 117.3, 36.5, 36.8), (119.0, 121.0, 36.0, 37.5)):
        fr = layer.points.frame(bounds, 400, 300, grades=flt.grades, ent_mask=layer.mask(flt))
        assert fr.counts == src.counts(bounds, flt)


def test_all_points_are_in_the_layer(tiny_source):
    src, layer = tiny_source
    assert len(layer.points) == src.store.scalar("SELECT count(*) FROM risk_points")
    assert sum(src.counts(src.extent()).values()) == len(layer.points)


def test_export_enterprises_csv_and_excel(tiny_source):
    src, _ = tiny_source
    flt = RiskFilter(industries=("hazchem",), grades=("red", "orange"))
    df = src.export_enterprises(flt)
    expected = src.store.scalar(
        "SELECT count(DISTINCT e.enterprise_id) FROM enterprises e JOIN risk_points p "
        "USING (enterprise_id) WHERE e.industry = 'hazchem' AND p.risk_level IN ('red', 'orange')")
    assert len(df) == expected > 0
    assert (df["industry"] == "hazchem").all()
    assert (df["points_red"] + df["points_orange"] > 0).all()
    assert (df[["points_yellow", "points_blue"]] == 0).all().all()
    back = pd.read_csv(io.BytesIO(to_csv_bytes(df)), encoding="utf-8-sig")
    assert back["enterprise_id"].tolist() == df["enterprise_id"].tolist()
    assert back["name"].tolist() == df["name"].tolist()
    wb = openpyxl.load_workbook(io.BytesIO(to_excel_bytes(df, sheet="enterprises")))
    rows = list(wb["enterprises"].values)
    assert list(rows[0]) == list(df.columns) and len(rows) == len(df) + 1
    assert rows[1][1] == df["name"].iloc[0]


def test_export_points_in_view(tiny_source):
    src, _ = tiny_source
    bounds = (116.9, 117.3, 36.5, 36.8)
    flt = RiskFilter(grades=("blue",))
    df = src.export_points(bounds, flt)
    assert len(df) == src.counts(bounds, flt)["blue"]
    assert set(df["risk_level"]) <= {"blue"}
    assert df["lon"].between(116.9, 117.3).all()


def test_grades_all_known(tiny_source):
    src, _ = tiny_source
    levels = src.store.arrow("SELECT DISTINCT risk_level FROM risk_points").column(0).to_pylist()
    assert set(levels) <= set(GRADES)
