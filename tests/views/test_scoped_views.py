"""Each user sees their jurisdiction: the risk map, the warnings page and the command desk of
a county (or city) officer show that county's rows only — compared with the store's own
rows of the county, and with another county's rows that exist in the store but not in the
view — and asking for another county's data (a URL, a forged widget value) is refused with
a message and recorded in the audit log."""
from __future__ import annotations

import datetime as dt
import io

import pandas as pd
import pytest

from sources.access.audit import AuditLog
from sources.access.guard import Guard
from sources.access.sessions import Principal
from sources.command import CommandSource
from sources.hub import Hub
from sources.inventory.experts import ExpertSource
from sources.inventory.materials import MaterialSource
from sources.risk.risk import RiskSource
from sources.warnings.monitoring import MonitoringSource
from sources.warnings.warnings import WarningSource
from views.command_desk import CommandDesk
from views.command_workspace import IncidentList
from views.county_index import CountyRiskIndex
from views.county_risk import CountyRisk
from views.dispatch import DispatchDesk
from views.enterprise_card import EnterpriseCard
from views.expert_directory import ExpertDirectory
from views.expert_draw import ExpertDraw
from views.material_stock import MaterialStock
from views.monitoring_map import MonitoringMap
from views.risk_map import RiskPointMap
from views.warning_form import WarningForm
from views.warning_log import ActiveWarnings, WarningLog


@pytest.fixture
def area(store):
    """County A (the most enterprises), its city, and county B of another city."""
    top = store.df("SELECT e.county_code, c.city_code, count(*) AS n FROM enterprises e "
                   "JOIN counties c USING (county_code) GROUP BY ALL ORDER BY n DESC, 1")
    a = top.iloc[0]
    b = top[top.city_code != a.city_code].iloc[0]
    return {"a": str(a.county_code), "city": str(a.city_code), "b": str(b.county_code)}


@pytest.fixture
def audit(store):
    return AuditLog(store)


def guard_of(code: str, audit, role: str = "officer") -> Guard:
    return Guard.of(Principal(name=f"{role}.{code}", role=role, jurisdiction=code), audit=audit)


def denied(audit, action: str) -> pd.DataFrame:
    rows = audit.export(action=action)
    return rows[rows.outcome == "denied"]


# ---------------------------------------------------------------------- risk
@pytest.fixture
def risk(store):
    src = RiskSource(store=store)
    return src, src.load_layer()


def points_of(store, prefix: str) -> dict[str, int]:
    df = store.df("SELECT p.risk_level, count(*) AS n FROM risk_points p JOIN enterprises e "
                  "USING (enterprise_id) WHERE starts_with(e.county_code, ?) GROUP BY 1",
                  [prefix])
    return dict(zip(df.risk_level, df.n.astype(int), strict=True))


def test_risk_map_of_a_county_shows_its_points_only_and_opens_on_it(risk, store, area, audit):
    src, layer = risk
    a, b = area["a"], area["b"]
    mine, theirs = points_of(store, a), points_of(store, b)
    assert sum(theirs.values()) > 0  # B's points exist in the store
    county = RiskPointMap(source=src, layer=layer, guard=guard_of(a, audit),
                          frame_size=(400, 300))
    province = RiskPointMap(source=src, layer=layer, frame_size=(400, 300))
    # the map opens on the county: every point of A is in view, and nothing else is counted
    assert {g: n for g, n in county.counts.items() if n} == mine
    assert sum(province.counts.values()) == store.scalar("SELECT count(*) FROM risk_points")
    x0, x1, y0, y1 = county.bounds
    px0, px1, py0, py1 = province.bounds
    assert (x1 - x0) * (y1 - y0) < 0.2 * (px1 - px0) * (py1 - py0)
    assert county.figure.x_range.renderers[0].name == "outline-jurisdiction"
    # at street level over one of B's enterprises: nothing of B for A, B's points for all
    ent = store.df("SELECT enterprise_id, name, lon, lat FROM enterprises WHERE county_code = ? "
                   "AND enterprise_id IN (SELECT enterprise_id FROM risk_points) "
                   "ORDER BY enterprise_id LIMIT 1", [b]).iloc[0]
    street = (ent.lon - 0.01, ent.lon + 0.01, ent.lat - 0.01, ent.lat + 0.01)
    county._render(street)
    province._render(street)
    assert sum(county.counts.values()) == 0 and len(county._points.data["lon"]) == 0
    assert sum(province.counts.values()) > 0 and ent["name"] in province._points.data["enterprise"]
    # the filters offer the county alone; a forged choice of B is refused and recorded
    county.controls()
    assert list(county._w_county.options.values()) == [a]
    assert list(county._w_city.options.values()) == [area["city"]]
    county._w_county.value = [b]
    assert "outside your jurisdiction" in county._filter_msg.object or \
        "不在您的辖区" in county._filter_msg.object
    assert county._w_county.value == [] and county._scoped_filter().counties == (a,)
    assert denied(audit, "risk.view").target_jurisdiction.tolist() == [b]
    # search finds A's enterprises, not B's; jumping to B's is refused and recorded
    assert county.search(ent["name"]) == 0 and province.search(ent["name"]) >= 1
    assert county.jump_to(int(ent.enterprise_id)) is False
    assert denied(audit, "enterprise.view").target.tolist() == [f"enterprise:{ent.enterprise_id}"]
    a_name = store.scalar("SELECT name FROM enterprises WHERE county_code = ? ORDER BY "
                          "enterprise_id LIMIT 1", [a])
    assert county.search(a_name) >= 1
    # the export holds A's enterprises only (the store's own list of them)
    csv = county.export("enterprises").decode("utf-8-sig")
    exported = pd.read_csv(io.StringIO(csv))
    expected = store.df("SELECT DISTINCT e.enterprise_id FROM risk_points p JOIN enterprises e "
                        "USING (enterprise_id) WHERE e.county_code = ?", [a])
    assert sorted(exported.enterprise_id) == sorted(expected.enterprise_id)


def test_a_city_sees_its_counties_and_cannot_widen_to_another_city(risk, store, area, audit):
    src, layer = risk
    city = RiskPointMap(source=src, layer=layer, guard=guard_of(area["city"], audit),
                        frame_size=(400, 300))
    assert {g: n for g, n in city.counts.items() if n} == points_of(store, area["city"][:4])
    city.controls()
    assert all(c.startswith(area["city"][:4]) for c in city._w_county.options.values())
    city._w_city.value = [store.scalar("SELECT city_code FROM counties WHERE county_code = ?",
                                       [area["b"]])]
    assert city._w_city.value == [] and "risk-filter-msg" in city._filter_msg.css_classes
    assert len(denied(audit, "risk.view")) == 1
    assert {g: n for g, n in city.counts.items() if n} == points_of(store, area["city"][:4])


def test_enterprise_card_and_county_index_of_a_county(risk, store, area, audit):
    src, _ = risk
    a, b = area["a"], area["b"]
    g = guard_of(a, audit)
    theirs = int(store.scalar("SELECT min(enterprise_id) FROM enterprises WHERE county_code = ?",
                              [b]))
    ours = int(store.scalar("SELECT min(enterprise_id) FROM enterprises WHERE county_code = ?",
                            [a]))
    card = EnterpriseCard(source=src, guard=g, lang="en")
    assert card.show(theirs) is False and card.enterprise_id is None
    name_b = src.enterprise(theirs)["name"]
    assert "outside your jurisdiction" in card._pane.object and name_b not in card._pane.object
    assert denied(audit, "enterprise.view").target.tolist() == [f"enterprise:{theirs}"]
    assert card.show(ours) and src.enterprise(ours)["name"].split("<")[0] in card._pane.object

    index = CountyRiskIndex(source=src, guard=g, lang="en")
    assert set(index._patches.data["code"]) == {a}
    assert len(index._context.data["xs"]) >= 135  # the rest: grey outlines, no values
    assert list(index._level.options.values()) == ["county"]  # no whole city of its own
    index.selected = b  # a forged tap
    assert "outside your jurisdiction" in index._ranked.object
    assert denied(audit, "risk.view").target.tolist() == [f"risk.index:{b}"]
    index.selected = a
    ranked = src.ranked_enterprises(a, limit=index.top)
    assert index._ranked.object.count("data-enterprise=") == len(ranked) > 0
    city = CountyRiskIndex(source=src, guard=guard_of(area["city"], audit), lang="en")
    counties_of_city = store.df("SELECT county_code FROM counties WHERE city_code = ?",
                                [area["city"]]).county_code
    assert set(city._patches.data["code"]) == set(counties_of_city)


# ---------------------------------------------------------------------- warnings
@pytest.fixture
def warned(store, area):
    """Warnings issued now: one for A, one for B, one for every county (province-wide)."""
    src = WarningSource(store=store, hub=Hub())
    now = dt.datetime.now(dt.UTC)
    every = store.df("SELECT county_code FROM counties").county_code.tolist()
    ids = {}
    for key, counties in (("a", [area["a"]]), ("b", [area["b"]]), ("province", every)):
        ids[key] = src.issue(event="rainstorm", level="blue", headline=f"暴雨蓝色预警 {key}",
                             counties=counties, effective=now,
                             expires=now + dt.timedelta(hours=6))["warning_id"]
    return src, ids


def test_warnings_of_a_county_include_its_own_and_the_provinces(warned, area, audit):
    src, ids = warned
    g = guard_of(area["a"], audit)
    active = ActiveWarnings(source=src, guard=g, lang="en")
    assert set(active.frame.warning_id) == {ids["a"], ids["province"]}
    assert set(ActiveWarnings(source=src, lang="en").frame.warning_id) == set(ids.values())
    assert ids["b"] not in active._pane.object and ids["a"] in active._pane.object
    log = WarningLog(source=src, guard=g, lang="en")
    shown = set(log._table.value.iloc[:, 1])
    assert shown == {ids["a"], ids["province"]}
    csv = log._csv().read().decode("utf-8-sig")
    assert ids["a"] in csv and ids["province"] in csv and ids["b"] not in csv
    assert audit.export(action="export").target.tolist() == ["warnings:log.csv"]
    b_view = ActiveWarnings(source=src, guard=guard_of(area["b"], audit), lang="en")
    assert set(b_view.frame.warning_id) == {ids["b"], ids["province"]}


def test_the_warning_form_offers_and_accepts_the_officers_counties_only(warned, area, audit):
    src, ids = warned
    a, b = area["a"], area["b"]
    form = WarningForm(source=src, guard=guard_of(a, audit), lang="en")
    assert list(form._options.values()) == [a]
    # what the officer may update: the warning of A, not the province's nor B's
    assert set(form._update_of.options.values()) == {"", ids["a"]}
    form._on_tap([src.geo.codes.index(b)])  # a tap on B on the map
    assert form.counties == [] and "outside your jurisdiction" in form._message.object
    assert denied(audit, "warning.view").target_jurisdiction.tolist() == [b]
    form._counties.value = [b]  # a forged value
    form._headline.value = "越权预警"
    before = len(src.log())
    assert form.publish() is None and "outside your jurisdiction" in form._message.object
    assert len(src.log()) == before
    assert denied(audit, "warning.issue").target_jurisdiction.isna().all()
    form._counties.value = [a]
    assert form.publish()["area_codes"] == [a]


def test_monitoring_and_county_risk_of_a_county(warned, store, area, audit):
    src, ids = warned
    mon = MonitoringSource(store=store)
    g = guard_of(area["city"], audit)
    view = MonitoringMap(source=mon, warnings=src, guard=g, lang="en")
    full = mon.layers(view.window, view.hours_back)
    prefix = area["city"][:4]
    for key in ("rain", "water", "landslide"):
        got = view.data[key]
        assert all(str(c).startswith(prefix) for c in got.county_code), key
        inside = full[key][full[key].county_code.fillna("").str.startswith(prefix)]
        assert len(got) == len(inside) < len(full[key]), key
    assert len(full["rain"]) > len(view.data["rain"]) > 0
    assert sorted(view.sources["warnings"].data["warning_id"]) == sorted(
        [ids["a"], ids["province"]])
    values = view.data["surface"][2]
    assert 0 < (~pd.isna(values)).sum() < (~pd.isna(full["surface"][2])).sum()
    risk = CountyRisk(source=mon, guard=guard_of(area["a"], audit), lang="en")
    assert risk._table.value.iloc[:, 0].tolist() == [area["a"]]
    assert len(CountyRisk(source=mon, lang="en")._table.value) == store.scalar(
        "SELECT count(*) FROM counties")


# ---------------------------------------------------------------------- command
@pytest.fixture
def incidents(store, area):
    cmd = CommandSource(store=store, hub=Hub())
    out = {}
    for key in ("a", "b"):
        ent = store.df("SELECT enterprise_id FROM enterprises WHERE county_code = ? "
                       "ORDER BY enterprise_id LIMIT 1", [area[key]]).iloc[0]
        out[key] = cmd.open_incident(subtype="fire", user="wang", title=f"火灾 {key}",
                                     enterprise_id=int(ent.enterprise_id))
        assert out[key]["county_code"] == area[key]
    return cmd, out


def test_a_county_commands_its_incidents_and_is_refused_anothers(incidents, area, audit):
    cmd, inc = incidents
    g = guard_of(area["a"], audit)
    listed = IncidentList(source=cmd, guard=g, lang="en")
    assert set(listed.frame.incident_id) == {inc["a"]["incident_id"]}
    every = set(IncidentList(source=cmd, lang="en").frame.incident_id)
    assert {inc["a"]["incident_id"], inc["b"]["incident_id"]} <= every
    theirs = inc["b"]["incident_id"]
    desk = CommandDesk(source=cmd, guard=g, lang="en", incident_id=theirs)
    assert desk.incident_id == "" and desk.views["workspace"].incident_id == ""
    assert "outside your jurisdiction" in desk.refusal_pane.object
    assert inc["b"]["title"] not in desk.views["workspace"].card.object
    rows = denied(audit, "incident.view")
    assert rows.target.tolist() == [f"incident:{theirs}"]
    assert rows.target_jurisdiction.tolist() == [area["b"]]
    desk.incident_id = inc["a"]["incident_id"]  # its own: shown, the message gone
    assert "火灾 a" in desk.views["workspace"].card.object and desk.refusal_pane.object == ""
    desk.incident_id = theirs  # picked by a forged message: refused again
    assert desk.incident_id == "" and len(denied(audit, "incident.view")) == 2
    province = CommandDesk(source=cmd, lang="en", incident_id=theirs)
    assert "火灾 b" in province.views["workspace"].card.object


def test_intake_offers_the_counties_and_refuses_another_countys_alarm(store, area, audit):
    cmd = CommandSource(store=store, hub=Hub())
    s = store.df("SELECT sensor_id, installation_id, enterprise_id, county_code FROM sensors "
                 "WHERE installation_id IS NOT NULL AND county_code <> ? ORDER BY sensor_id "
                 "LIMIT 1", [area["a"]]).iloc[0]
    store.execute("INSERT INTO alarms (alarm_id, sensor_id, installation_id, enterprise_id, "
                  "county_code, kind, level, raised_at, trigger_value, peak_value, state) "
                  "VALUES (777, ?, ?, ?, ?, 'hi_hi', 'red', now(), 5.0, 6.0, 'raised')",
                  [s.sensor_id, int(s.installation_id), int(s.enterprise_id), s.county_code])
    from views.command_intake import IncidentIntake

    intake = IncidentIntake(source=cmd, guard=guard_of(area["a"], audit), lang="en",
                            alarm_id=777)
    assert [v for v in intake.county.options.values() if v] == [area["a"]]
    assert intake.title.value == "" and "outside your jurisdiction" in intake.notice.pane.object
    assert denied(audit, "alarm.view").target.tolist() == ["alarm:777"]


# ---------------------------------------------------------------------- inventory
def test_inventory_filters_start_on_the_county_and_requests_reach_any_warehouse(
        store, area, audit):
    a = area["a"]
    g = guard_of(a, audit)
    experts = ExpertSource(store=store, hub=Hub())
    directory = ExpertDirectory(source=experts, guard=g, lang="en")
    assert directory.county.value == a and directory.need_county.value == a
    assert len(directory.results.value) == store.scalar(
        "SELECT count(*) FROM experts WHERE county_code = ?", [a])
    # the officer may widen the search: experts are provincial (mutual aid)
    directory.county.value = ""
    assert len(directory.results.value) == store.scalar("SELECT count(*) FROM experts")
    assert ExpertDraw(source=experts, guard=g, lang="en").county.value == a
    assert ExpertDirectory(source=experts, lang="en").county.value == ""
    materials = MaterialSource(store=store, hub=Hub())
    assert MaterialStock(source=materials, guard=g, lang="en").need_county.value == a
    # a request from a warehouse of another county, to a place in A: allowed (mutual aid)
    desk = DispatchDesk(source=materials, guard=g, lang="en")
    reg = materials.warehouse_registry()
    far = reg[~reg.county_code.str.startswith(a)].iloc[0]
    kind = store.df("SELECT kind_id FROM stock WHERE warehouse_id = ? AND quantity >= 10 "
                    "ORDER BY kind_id LIMIT 1", [int(far.warehouse_id)]).kind_id.iloc[0]
    desk.kind.value, desk.quantity.value = int(kind), 1
    desk.from_wh.value, desk.to_wh.value = int(far.warehouse_id), ""
    desk.destination.value = "县应急局"
    d = desk.request()
    assert d is not None, desk.notice.pane.object
    assert d in set(desk.list.value.dispatch_id)  # requested by the officer: listed
    # approving it is the warehouse's own jurisdiction's step: refused and recorded
    other = DispatchDesk(source=materials, guard=guard_of(a, audit, "officer"), lang="en")
    assert other.act("approve", d) is False
    assert denied(audit, "dispatch.approve").target.tolist() == [f"dispatch:{d}"]
