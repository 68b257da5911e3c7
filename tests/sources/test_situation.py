"""SituationSource on a small store whose rows the tests write themselves."""
from __future__ import annotations

import json
import time

import pandas as pd
import pytest

from sources.geo import haversine_km
from sources.situation.incidents import needs_for
from sources.situation.kpis import DAY_MS, freshness
from sources.situation.source import PARTS, SituationSource
from sources.store.store import Store

NOW = int(time.time() * 1000)


def ts(offset_ms: int) -> pd.Timestamp:
    return pd.Timestamp(NOW + offset_ms, unit="ms", tz="UTC")


def square(x, y, d=0.1):
    return json.dumps({"type": "Polygon", "coordinates": [[[x, y], [x + d, y], [x + d, y + d],
                                                           [x, y + d], [x, y]]]})


def fill(store: Store) -> None:
    """A province of two counties with one of everything (and some history)."""
    ins = store.insert
    ins("counties", pd.DataFrame({
        "county_code": ["370101", "370102"], "name": ["甲县", "乙县"], "city": ["济南市"] * 2,
        "city_code": ["370100"] * 2, "lon": [117.05, 117.25], "lat": [36.05, 36.05],
        "area_km2": [100.0, 120.0], "population": [1000, 2000]}))
    ins("boundaries", pd.DataFrame({
        "code": ["370101", "370102"], "level": ["county"] * 2, "name": ["甲县", "乙县"],
        "parent_code": ["370100"] * 2, "geojson": [square(117.0, 36.0), square(117.2, 36.0)]}))
    ins("installations", pd.DataFrame({
        "installation_id": [1], "enterprise_id": [1], "name": ["1号罐区"], "kind": ["tank_farm"],
        "hazard_grade": [1], "lon": [117.06], "lat": [36.06]}))
    ins("alarms", pd.DataFrame({
        "alarm_id": [1, 2, 3, 4], "sensor_id": ["s1", "s2", "s3", "s4"],
        "installation_id": [1, 1, 1, 1], "kind": ["hi_hi", "hi", "hi", "hi"],
        "level": ["red", "orange", "yellow", "red"],
        "raised_at": [ts(-60_000), ts(-2 * DAY_MS), ts(-2 * DAY_MS), ts(-3 * DAY_MS)],
        # alarm 2 acknowledged 30 h ago; alarm 3 closed 1 h ago; alarm 4 closed 2 days ago
        "state": ["raised", "acknowledged", "closed", "closed"],
        "acked_at": [None, ts(-30 * 3_600_000), ts(-2 * 3_600_000), ts(-2 * DAY_MS - 1)],
        "closed_at": [None, None, ts(-3_600_000), ts(-2 * DAY_MS)],
        # alarm 1 escalated now; alarm 3 escalated 40 h ago, still unacknowledged 24 h ago
        "escalated_at": [ts(-30_000), None, ts(-40 * 3_600_000), None]}))
    ins("warnings", pd.DataFrame({
        "warning_id": ["w1", "w1", "w2", "w3"], "version": [1, 2, 1, 1],
        "msg_type": ["Alert", "Update", "Alert", "Alert"],
        "event": ["rainstorm", "rainstorm", "gale", "landslide"],
        "level": ["yellow", "orange", "blue", "red"],
        "headline": ["暴雨黄色预警", "暴雨橙色预警", "大风蓝色预警", "<b>滑坡</b>"],
        "area_codes": [["370101"], ["370101"], ["370102"], None],
        "area_geojson": [None, None, None, square(117.3, 36.1, 0.05)],
        "effective": [ts(-3_600_000)] * 3 + [ts(-DAY_MS - 3_600_000)],
        "expires": [ts(DAY_MS)] * 2 + [ts(-1)] + [ts(DAY_MS)],  # w2 has expired
        "source": ["feed"] * 4, "sender": ["f"] * 4,
        "created_at": [ts(-3_600_000), ts(-600_000), ts(-3_600_000), ts(-DAY_MS - 3_600_000)]}))
    ins("incidents", pd.DataFrame({
        "feed": ["f"] * 3, "seq": [1, 2, 3], "ts": [ts(-7_200_000), ts(-60_000), ts(-30_000)],
        "incident_id": ["i1", "i1", "i2"], "kind": ["hazchem_leak", "hazchem_leak", "fire"],
        "lon": [117.07] * 2 + [117.22], "lat": [36.07] * 2 + [36.02],
        "title": ["储罐泄漏", "储罐泄漏扩大", "厂房火灾"], "level": ["orange", "red", "yellow"],
        "status": ["open", "open", "open"], "county_code": ["370101", "370101", "370102"]}))
    ins("quakes", pd.DataFrame({
        "feed": ["f"] * 2, "seq": [10, 11], "ts": [ts(-120_000), ts(-3 * DAY_MS)],
        "quake_id": ["q1", "q2"], "lon": [117.24, 117.0], "lat": [36.06, 36.0],
        "depth_km": [10.0, 5.0], "magnitude": [4.2, 3.0]}))
    ins("hotspots", pd.DataFrame({
        "feed": ["f"] * 3, "seq": [20, 21, 22], "ts": [ts(-1000), ts(-1000), ts(-DAY_MS - 5)],
        "hotspot_id": ["h1", "h2", "h3"], "lon": [117.1, 117.2, 117.1], "lat": [36.05] * 3,
        "confidence": [90.0, 80.0, 70.0], "satellite": ["FY-3D"] * 3}))
    ins("readings", pd.DataFrame({
        "feed": ["f"] * 4, "seq": [30, 31, 32, 33],
        "ts": [ts(-1000), ts(-2000), ts(-DAY_MS - 15_000), ts(-3 * DAY_MS)],
        "sensor_id": ["s1"] * 4, "value": [1.0] * 4}))
    ins("rescue_teams", pd.DataFrame({
        "team_id": [1, 2, 3], "name": ["近队", "远队", "中队"], "kind": ["hazchem", "fire", "flood"],
        "county_code": ["370101"] * 3, "lon": [117.08, 118.0, 117.3], "lat": [36.07, 37.0, 36.1],
        "members": [30, 40, 50]}))
    ins("warehouses", pd.DataFrame({
        "warehouse_id": [1, 2], "name": ["一号库", "二号库"], "level": ["city", "county"],
        "owner_unit": ["应急局"] * 2, "county_code": ["370101"] * 2, "lon": [117.1, 117.5],
        "lat": [36.1, 36.5]}))
    ins("material_kinds", pd.DataFrame({
        "kind_id": [1, 2, 3], "name": ["帐篷", "吸附棉", "防化服"], "category": ["living", "hazchem", "hazchem"],
        "unit": ["顶", "吨", "套"], "countable": [True, False, True]}))
    ins("stock", pd.DataFrame({
        "warehouse_id": [1, 1, 1, 2], "kind_id": [1, 2, 3, 1], "quantity": [500.0, 2.0, 30.0, 10.0],
        "initial_quantity": [500.0, 2.0, 30.0, 10.0], "min_quantity": [0.0] * 4}))
    ins("shelters", pd.DataFrame({
        "shelter_id": [1], "name": ["中学操场"], "kind": ["school"], "county_code": ["370101"],
        "lon": [117.05], "lat": [36.04], "capacity": [3000]}))
    ins("experts", pd.DataFrame({
        "expert_id": [1, 2], "name": ["张工", "李教授"], "type": ["safety", "natural"],
        "title": ["高级工程师", "教授"], "county_code": ["370101"] * 2, "lon": [117.5, 117.07],
        "lat": [36.5, 36.07], "available": [True, True]}))


@pytest.fixture
def source(tmp_path):
    store = Store(tmp_path / "situation.duckdb")
    fill(store)
    yield SituationSource(store=store)
    store.close()


def test_kpis_now_and_24h_ago(source):
    k = source.kpis(NOW, statuses=[{"connected": True, "rate_per_s": 12.5},
                                   {"connected": False, "rate_per_s": 0.5}])
    # w1 (orange now, not yet issued 24 h ago), w3 (red, in force both times); w2 expired
    assert k["warnings.orange"] == {"value": 1, "before": 0}
    assert k["warnings.red"] == {"value": 1, "before": 1}
    assert k["warnings.blue"]["value"] == 0
    assert k["warnings"] == {"value": 2, "before": 1}
    # open now: 1 (red) and 2 (orange); 24 h ago: 2 (orange) and 3 (yellow)
    assert k["alarms"] == {"value": 2, "before": 2}
    assert k["alarms.red"] == {"value": 1, "before": 0}
    assert k["alarms.yellow"] == {"value": 0, "before": 1}
    # unacked now: alarm 1; 24 h ago: alarm 3 (2 was acked 30 h ago)
    assert k["alarms.unacked"] == {"value": 1, "before": 1}
    assert k["alarms.escalated"] == {"value": 1, "before": 1}
    assert k["incidents"] == {"value": 2, "before": 0}
    assert k["hotspots"] == {"value": 2, "before": 1}
    assert k["quakes"] == {"value": 1, "before": 0}
    assert k["rate"]["value"] == 13.0  # from the ingests
    assert k["rate"]["before"] == pytest.approx(1 / 60, abs=0.05)  # shown to 0.1/s
    assert k["feeds"] == {"value": 1, "before": None, "total": 2}


def test_rate_falls_back_to_the_store(source):
    assert source.kpis(NOW)["rate"]["value"] == pytest.approx(2 / 60, abs=0.05)


def test_rate_24h_ago_is_read_once_per_10_s_step(source):
    """The board refreshes twice a second; the past rate is re-read only every 10 s."""
    before = (NOW - DAY_MS) - (NOW - DAY_MS) % 10_000
    first = source._rate_before(before + 1_000, 60_000)
    assert first == pytest.approx(1 / 60)  # the reading 24 h 15 s ago
    source.store.insert("readings", pd.DataFrame({
        "feed": ["f"], "seq": [99], "ts": [ts(before - 20_000 - NOW)], "sensor_id": ["s1"],
        "value": [1.0]}))
    assert source._rate_before(before + 9_000, 60_000) == first  # same step: not re-read
    assert source._rate_before(before + 10_000, 60_000) == pytest.approx(first + 1 / 60)


def test_ticker_newest_first_with_quake_place(source):
    t = source.ticker()
    assert list(t.ts_ms) == sorted(t.ts_ms, reverse=True)
    assert set(t.kind) == {"alarm", "warning", "incident", "quake"}
    quake = t[t.kind == "quake"].iloc[0]
    assert quake.title == "乙县" and quake.detail == "4.2" and quake.level == "yellow"
    alarm = t[t.kind == "alarm"].iloc[0]
    assert alarm.title == "1号罐区"
    assert len(source.ticker(limit=3)) == 3


def test_layers(source):
    shapes = source.warning_shapes(NOW)
    assert sorted(shapes["level"]) == ["orange", "red"]  # the expired warning is gone
    red = shapes["level"].index("red")
    assert min(shapes["xs"][red]) == pytest.approx(117.3)  # drawn polygon
    assert shapes["level"][-1] == "red"  # most severe drawn on top
    alarms = source.open_alarms()
    assert set(alarms.alarm_id) == {1, 2}
    assert alarms.set_index("alarm_id").loc[1, "unacked"]
    assert alarms.lon.notna().all()
    assert set(source.hotspots(NOW).hotspot_id) == {"h1", "h2"}
    assert set(source.quakes(NOW).quake_id) == {"q1", "q2"}
    assert set(source.quakes(NOW, days=1).quake_id) == {"q1"}
    inc = source.active_incidents(NOW)
    assert list(inc.incident_id) == ["i1", "i2"]  # red before yellow
    assert inc.iloc[0].title == "储罐泄漏扩大"
    assert inc.iloc[0].started_ms < inc.iloc[0].ts_ms


def test_closed_incident_is_not_active(source):
    source.store.insert("incidents", pd.DataFrame({
        "feed": ["f"], "seq": [4], "ts": [ts(-1000)], "incident_id": ["i2"], "kind": ["fire"],
        "lon": [117.22], "lat": [36.02], "title": ["厂房火灾"], "level": ["yellow"],
        "status": ["closed"]}))
    assert list(source.active_incidents(NOW).incident_id) == ["i1"]


def test_nearest_resources_and_key_materials(source):
    near = source.nearest_resources(117.07, 36.07, "hazchem_leak")
    teams = near["teams"]
    assert list(teams.name) == ["近队", "中队", "远队"]
    assert list(teams.km) == sorted(teams.km)
    assert teams.km.iloc[0] == pytest.approx(haversine_km(117.07, 36.07, 117.08, 36.07), rel=1e-6)
    house = near["warehouses"].iloc[0]
    assert house["name"] == "一号库"
    # hazchem materials first for a leak, though the tents are more numerous
    assert house.note.startswith("防化服 30套、吸附棉 2吨")
    assert near["shelters"].iloc[0]["name"] == "中学操场"
    assert near["experts"].iloc[0]["name"] == "张工"  # safety expert first for a leak


def test_timeline_of_an_incident(source):
    tl = source.incident_timeline("i1")
    assert list(tl.ts_ms) == sorted(tl.ts_ms)
    assert list(tl[tl.kind == "incident"].detail) == ["open", "open"]
    assert "alarm" in set(tl.kind)  # the tank-farm alarm 1 km away
    assert "warning" in set(tl.kind)  # the rainstorm warning update over its county
    assert source.incident_timeline("nope").empty


def test_situation_is_shared_then_recomputed(source):
    a = source.situation()
    assert source.situation() is a
    source.invalidate()
    b = source.situation()
    assert b is not a
    assert len(b["details"]) == 2 and b["details"][0]["nearest"]["teams"].shape[0] == 3


def test_static_layers(source):
    out = source.outlines("county")
    assert out["name"] == ["甲县", "乙县"] and len(out["xs"][0]) == 5
    x0, y0, x1, y1 = source.bounds()
    assert x0 < 117.0 and x1 > 117.3 and y0 < 36.0 and y1 > 36.1
    dens = source.risk_density(64, 48)
    assert dens["image"].shape == (48, 64) and dens["points"] == 0
    assert set(source.resources()) == {"teams", "warehouses", "shelters"}


def test_risk_density_counts_points(source):
    source.store.insert("risk_points", pd.DataFrame({
        "point_id": range(100), "enterprise_id": [1] * 100, "county_code": ["370101"] * 100,
        "kind": ["process"] * 100, "risk_level": ["red"] * 100,
        "lon": [117.05] * 100, "lat": [36.05] * 100}))
    dens = source.risk_density(64, 48)
    assert dens["points"] == 100 and (dens["image"] >> 24).max() > 0


def test_needs_and_freshness():
    assert needs_for("forest_fire")[0][0] == "fire"
    assert needs_for("unknown") == (("rescue", "living", "medical"), ("rescue", "general"))
    now = 1_800_000_000.0
    f = freshness([{"connected": True, "last_message_at": now - 5},
                   {"connected": False, "last_message_at": (now - 50) * 1000},
                   {"connected": True, "last_message_at": "2020-01-15T08:00:00+00:00"}], now)
    assert f["connected"] == 2 and f["total"] == 3
    assert f["age_s"] == pytest.approx(5)
    assert freshness([])["last_message_at"] is None


def test_board_queries_use_no_window_functions_or_joins(source, monkeypatch):
    """What a board repeats twice a second avoids the operators that grow DuckDB's heap
    when repeated (window functions, hash joins: LATEST_NOTE in sources/situation/source.py)."""
    seen = []
    arrow = source.store.arrow

    def record(sql, params=None):
        seen.append(" ".join(sql.split()).upper())
        return arrow(sql, params)

    monkeypatch.setattr(source.store, "arrow", record)
    sit = source.situation(force=True)
    assert len(sit["incidents"]) and len(sit["details"]) and len(sit["alarms"])
    assert len(seen) > 10
    for sql in seen:
        assert " OVER " not in sql and " OVER(" not in sql, sql
        assert " JOIN " not in sql or "FROM STOCK S JOIN MATERIAL_KINDS" in sql, sql


@pytest.fixture
def live(tmp_path):
    """A situation source listening to a hub, as the console's board is."""
    from sources.hub import Hub

    store = Store(tmp_path / "live.duckdb")
    fill(store)
    yield SituationSource(store=store, hub=Hub())
    store.close()


def _quake(store, seq, qid, mag):
    store.insert("quakes", pd.DataFrame({
        "feed": ["f"], "seq": [seq], "ts": [ts(-5)], "quake_id": [qid], "lon": [117.1],
        "lat": [36.1], "depth_km": [8.0], "magnitude": [mag]}))


def test_feed_status_alone_reads_no_table(live):
    """The feeds report every second: the readings rate follows them, nothing is re-read."""
    live.situation([{"connected": True, "rate_per_s": 10.0, "rejected": 0}])
    reads = dict(live.reads)
    assert set(PARTS) <= set(reads) and all(reads[k] == 1 for k in PARTS)
    for rate in (11.0, 12.5, 13.0):
        sit = live.situation([{"connected": True, "rate_per_s": rate, "rejected": 0}])
        assert sit["kpis"]["rate"]["value"] == rate
    assert dict(live.reads) == reads
    same = live.situation([{"connected": True, "rate_per_s": 13.0, "rejected": 0}])
    assert live.situation([{"connected": True, "rate_per_s": 13.0, "rejected": 0}]) is same


def test_an_event_rereads_only_the_parts_it_changes(live):
    live.situation()
    before = dict(live.reads)
    _quake(live.store, 99, "q9", 5.5)
    live.hub.publish("quake", [{"quake_id": "q9"}])  # after the commit, as the ingest does
    sit = live.situation()  # no page said anything: the source heard the hub itself
    assert sit["kpis"]["quakes"]["value"] == 2 and "q9" in set(sit["quakes"].quake_id)
    assert sit["ticker"].kind.iloc[0] == "quake"
    grew = {k for k in PARTS if live.reads[k] > before[k]}
    assert grew == {"quakes", "ticker", "incidents"}  # incidents: timelines hold quakes nearby


def test_a_page_that_saw_an_event_gets_parts_read_after_it(live):
    """Whatever a page saw on the hub, the parts it reads next were read after it: the
    source hears the hub itself, so no page needs to say what it saw."""
    live.situation()
    sub = live.hub.subscribe(["alarm"])
    live.hub.publish("alarm", [{"alarm_id": 1}])
    saw = sub.drain()[0][0].at  # what a page's queue holds
    live.situation()
    assert live.read_at("alarms") >= saw and live.read_at("quakes") < saw


def test_parts_age_out_and_rejections_reread_the_count(live):
    live.max_age = 0.2
    live.situation()
    first = dict(live.reads)
    time.sleep(0.25)  # time moves on: 24-hour windows, expiry
    live.situation()
    assert all(live.reads[k] == first[k] + 1 for k in PARTS)
    live.max_age = 60
    live.store.insert("quarantine", pd.DataFrame({
        "feed": ["f"], "received_at": [ts(-10)], "reason": ["bad json"], "raw": ["{"]}))
    live.hub.publish("quarantine", None)  # as the feed writer does after storing rejects
    sit = live.situation([{"connected": True, "rate_per_s": 1.0, "rejected": 1}])
    assert sit["kpis"]["rejected"]["value"] == 1
    assert live.reads["rejected"] == first["rejected"] + 2 and live.reads["alarms"] == first["alarms"] + 1


def test_dropped_events_reread_everything(live):
    live.situation()
    before = dict(live.reads)
    sub = live._events
    sub.maxsize = 2
    for i in range(5):  # more than the source's queue holds
        live.hub.publish("hotspot", [{"i": i}])
    live.situation()
    assert all(live.reads[k] == before[k] + 1 for k in PARTS)


def test_an_alarm_does_not_reread_the_past(live, monkeypatch):
    """An alarm re-reads the incident panels; their count of 24 h ago is not read again
    within the same 10 s step (that past does not change)."""
    monkeypatch.setattr(live, "now_ms", lambda: NOW)  # one 10 s step (a test may cross one)
    live.situation()
    calls = []
    real = live.active_incidents
    monkeypatch.setattr(live, "active_incidents",
                        lambda now_ms=None, upto_ms=None: (calls.append(upto_ms),
                                                           real(now_ms, upto_ms))[1])
    live.hub.publish("alarm", [{"alarm_id": 1}])
    sit = live.situation()
    assert calls == [None]  # today's incidents only
    assert sit["kpis"]["incidents"] == {"value": 2, "before": 0}
