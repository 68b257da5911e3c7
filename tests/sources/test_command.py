"""Incident command on a real tiny store: intake, grade, response, tasks, reports, the wall."""
from __future__ import annotations

import io
import json
import zipfile
from datetime import timedelta
from xml.etree import ElementTree

import pytest

from sources.command import TRANSITIONS, CommandError
from sources.command.common import TASK_STATES
from sources.inventory.common import InventoryError
from sources.situation.source import SituationSource
from tests.sources.command_fixtures import (  # noqa: F401 - fixtures
    T0,
    clock_fixture,
    cmd_fixture,
    fingerprint,
    hazchem_enterprise,
    open_leak,
)


# ---------------------------------------------------------------------- intake and grade
def test_intake_by_enterprise_grades_by_rule_and_reaches_the_wall(cmd, store):
    sub = cmd.hub.subscribe(["incident", "command"])
    ent = hazchem_enterprise(store)
    inc = open_leak(cmd, store, deaths=4)
    assert inc["incident_id"].startswith("CMD-20240601-")
    assert (inc["lon"], inc["lat"], inc["county_code"]) == (ent["lon"], ent["lat"],
                                                            ent["county_code"])
    assert (inc["grade"], inc["grade_computed"], inc["grade_reason"]) == ("III", "III", None)
    assert inc["grade_rule"] == "deaths 4 >= 3" and inc["actor"] == "wang"
    msgs, _ = sub.drain()
    assert [m.topic for m in msgs] == ["incident", "command"]
    assert msgs[1].payload[0]["change"] == "intake"
    # the wall's own query (the feed's table) lists it, coloured by grade
    wall = SituationSource(store=store).active_incidents(now_ms=int(T0.timestamp() * 1000))
    row = wall[wall.incident_id == inc["incident_id"]].iloc[0]
    assert (row.level, row.status, row.kind) == ("yellow", "open", "hazchem_leak")


def test_intake_by_point_or_county(cmd, store):
    c = store.df("SELECT county_code, lon, lat FROM counties ORDER BY county_code LIMIT 1"
                 ).iloc[0]
    by_county = cmd.open_incident(subtype="flood", user="li", county_code=c.county_code,
                                  grade="II")
    assert (by_county["lon"], by_county["lat"]) == (c.lon, c.lat)
    assert (by_county["grade"], by_county["grade_computed"]) == ("II", None)  # no rule: officer
    by_point = cmd.open_incident(subtype="fire", user="li", lon=float(c.lon), lat=float(c.lat),
                                 title="仓库火灾")
    assert by_point["county_code"] == c.county_code and by_point["title"] == "仓库火灾"


def test_corrections_are_versions_and_the_grade_follows_the_rule(cmd, store, clock):
    inc = open_leak(cmd, store, deaths=1)
    iid = inc["incident_id"]
    assert inc["grade"] == "IV"
    clock.step(minutes=10)
    v2 = cmd.correct(iid, user="li", deaths=12, note="续报伤亡")
    assert (v2["version"], v2["grade"], v2["change"]) == (2, "II", "correct")
    clock.step(minutes=1)
    with pytest.raises(CommandError) as e:
        cmd.set_grade(iid, "I", user="li", reason="")
    assert e.value.key == "command.error.need_reason"
    v3 = cmd.set_grade(iid, "I", user="zhao", reason="涉及周边学校，社会影响大")
    assert (v3["grade"], v3["grade_computed"], v3["grade_reason"]) == ("I", "II",
                                                                        "涉及周边学校，社会影响大")
    clock.step(minutes=1)
    v4 = cmd.correct(iid, user="li", deaths=31)  # an override stands, the rule catches up
    assert (v4["grade"], v4["grade_computed"]) == ("I", "I") and v4["grade_reason"] is None
    clock.step(minutes=1)
    v5 = cmd.correct(iid, user="li", deaths=5)
    assert (v5["grade"], v5["grade_rule"]) == ("III", "deaths 5 >= 3")
    assert [v["version"] for v in cmd.versions(iid)] == [1, 2, 3, 4, 5]  # nothing lost
    assert store.scalar("SELECT count(*) FROM incidents WHERE incident_id = ?", [iid]) == 5
    tl = cmd.timeline(iid, nearby=False)
    assert list(tl.kind) == ["intake", "correct", "grade", "correct", "correct"]
    assert "deaths 1→12" in tl.detail.iloc[1]


# ---------------------------------------------------------------------- response and plan
def test_launching_a_response_opens_the_plan_and_items_are_ticked(cmd, store, clock):
    inc = open_leak(cmd, store)
    iid = inc["incident_id"]
    clock.step(minutes=3)
    r = cmd.launch_response(iid, "III", user="wang")
    assert (r["response_level"], r["plan_id"]) == ("III", "hazchem")
    items = cmd.plan_items(iid)
    expected = [it.measure for it in cmd.plans()["hazchem"].items_for("III")]
    assert list(items.measure) == expected and not items.done.any()
    clock.step(minutes=2)
    cmd.tick_item(iid, 1, user="li")
    with pytest.raises(CommandError) as e:
        cmd.tick_item(iid, 1, user="zhao")
    assert e.value.key == "command.error.already_ticked" and e.value.fmt["who"] == "li"
    items = cmd.plan_items(iid)
    assert (items.done.iloc[0], items.done_by.iloc[0]) == (True, "li")
    clock.step(minutes=1)
    cmd.tick_item(iid, 1, user="li", done=False)
    assert not cmd.plan_items(iid).done.iloc[0]
    with pytest.raises(CommandError, match="already launched"):
        cmd.launch_response(iid, "III", user="wang")
    clock.step(minutes=1)
    cmd.launch_response(iid, "I", user="zhao")  # escalation: the level I checklist
    assert len(cmd.plan_items(iid)) == len(cmd.plans()["hazchem"].items_for("I"))


def test_a_broken_plan_file_refuses_the_launch(cmd, store, tmp_path):
    inc = open_leak(cmd, store)
    (tmp_path / "x.toml").write_text('id = "x"\ntitle = "坏"\nsubtypes = ["volcano"]\n',
                                     encoding="utf-8")
    cmd.plans_dir = str(tmp_path)
    before = fingerprint(store)
    with pytest.raises(CommandError) as e:
        cmd.launch_response(inc["incident_id"], "III", user="wang")
    assert e.value.key == "command.error.plan" and "x.toml" in str(e.value)
    assert fingerprint(store) == before


# ---------------------------------------------------------------------- tasks
def nearest_team(cmd, iid):
    return int(cmd.support(iid)["teams"].team_id.iloc[0])


def test_team_task_walks_the_state_machine_and_frees_the_team(cmd, store, clock):
    iid = open_leak(cmd, store)["incident_id"]
    team = nearest_team(cmd, iid)
    task = cmd.assign_team(iid, team, user="wang")
    other = open_leak(cmd, store, title="另一起")["incident_id"]
    with pytest.raises(CommandError) as e:
        cmd.assign_team(other, team, user="li")
    assert e.value.key == "command.error.team_taken"
    assert (e.value.fmt["incident"], e.value.fmt["who"]) == (iid, "wang")
    sup = cmd.support(other)["teams"]
    assert sup.loc[sup.team_id == team, "committed_to"].iloc[0] == iid  # shown as committed
    for state in ("en_route", "on_scene", "done"):
        clock.step(minutes=7)
        assert cmd.advance_task(task["task_id"], state, user="wang")["state"] == state
    row = cmd.tasks(iid).iloc[0]
    assert (row.state, row.en_route_at, row.done_at) == ("done", T0 + timedelta(minutes=7),
                                                         T0 + timedelta(minutes=21))
    assert cmd.assign_team(other, team, user="li")["state"] == "assigned"  # free again


ILLEGAL = [(a, b) for a in TASK_STATES for b in TASK_STATES if b not in TRANSITIONS[a]]


@pytest.mark.parametrize(("current", "target"), ILLEGAL, ids=[f"{a}->{b}" for a, b in ILLEGAL])
def test_every_illegal_transition_is_refused(cmd, store, current, target):
    iid = open_leak(cmd, store)["incident_id"]
    kw = {"people": 10}
    shelter = int(cmd.support(iid)["shelters"].shelter_id.iloc[0])
    task = cmd.open_shelter(iid, shelter, user="wang", **kw)
    path = {"assigned": [], "en_route": ["en_route"], "on_scene": ["en_route", "on_scene"],
            "done": ["en_route", "on_scene", "done"], "cancelled": ["cancelled"]}[current]
    for state in path:
        cmd.advance_task(task["task_id"], state, user="wang")
    before = fingerprint(store)
    with pytest.raises(CommandError) as e:
        cmd.advance_task(task["task_id"], target, user="li")
    assert e.value.key == "command.error.bad_transition"
    assert (e.value.fmt["current"], e.value.fmt["state"]) == (current, target)
    assert fingerprint(store) == before


def test_materials_go_through_the_dispatch_ledger(cmd, store):
    iid = open_leak(cmd, store)["incident_id"]
    wh = int(cmd.support(iid)["warehouses"].warehouse_id.iloc[0])
    kind = cmd.warehouse_stock(wh).query("countable and quantity >= 3").iloc[0]
    held = float(kind.quantity)
    task = cmd.request_materials(iid, kind_id=int(kind.kind_id), quantity=2, warehouse_id=wh,
                                 user="wang")
    d = store.df("SELECT * FROM dispatches WHERE dispatch_id = ?", [task["dispatch_id"]]
                 ).iloc[0]
    assert (d.status, d.requester, d.quantity) == ("requested", "wang", 2)
    stock = cmd.warehouse_stock(wh).set_index("kind_id").loc[int(kind.kind_id)]
    assert (stock.pending, stock.available) == (2, held - 2)  # promised: shown as such
    cmd.advance_task(task["task_id"], "en_route", user="li")
    assert store.scalar("SELECT status FROM dispatches WHERE dispatch_id = ?",
                        [task["dispatch_id"]]) == "shipped"
    assert store.scalar("SELECT quantity FROM stock WHERE warehouse_id = ? AND kind_id = ?",
                        [wh, int(kind.kind_id)]) == held - 2
    cmd.advance_task(task["task_id"], "on_scene", user="li")
    assert store.scalar("SELECT status FROM dispatches WHERE dispatch_id = ?",
                        [task["dispatch_id"]]) == "received"
    assert cmd.materials.ledger_mismatches().empty
    # a request cancelled before shipping is rejected in the ledger
    t2 = cmd.request_materials(iid, kind_id=int(kind.kind_id), quantity=1, warehouse_id=wh,
                               user="wang")
    cmd.advance_task(t2["task_id"], "cancelled", user="wang")
    assert store.scalar("SELECT status FROM dispatches WHERE dispatch_id = ?",
                        [t2["dispatch_id"]]) == "rejected"


def test_shipping_more_than_is_left_changes_nothing(cmd, store):
    iid = open_leak(cmd, store)["incident_id"]
    wh = int(cmd.support(iid)["warehouses"].warehouse_id.iloc[0])
    kind = cmd.warehouse_stock(wh).query("countable and quantity >= 2").iloc[0]
    held = int(kind.quantity)
    a = cmd.request_materials(iid, kind_id=int(kind.kind_id), quantity=held, warehouse_id=wh,
                              user="wang")
    b = cmd.request_materials(iid, kind_id=int(kind.kind_id), quantity=held, warehouse_id=wh,
                              user="li")
    cmd.advance_task(a["task_id"], "en_route", user="wang")
    before = fingerprint(store)
    with pytest.raises(CommandError) as e:
        cmd.advance_task(b["task_id"], "en_route", user="li")
    assert e.value.key == "command.error.short"
    assert fingerprint(store) == before
    assert store.scalar("SELECT status FROM dispatches WHERE dispatch_id = ?",
                        [b["dispatch_id"]]) == "requested"


def test_experts_are_drawn_without_the_enterprise_involved(cmd, store):
    inc = open_leak(cmd, store)
    task = cmd.draw_experts(inc["incident_id"], n=2, user="wang", type=None, seed=5)
    draw = store.df("SELECT * FROM expert_draws WHERE draw_id = ?", [task["draw_id"]]).iloc[0]
    crit = json.loads(draw.criteria)
    assert crit["enterprise_id"] == inc["enterprise_id"] and draw.drawn_by == "wang"
    ids = json.loads(task["detail"])["expert_ids"]
    employers = store.df("SELECT employer_enterprise_id FROM experts WHERE list_contains(?, "
                         "expert_id)", [ids]).employer_enterprise_id
    assert inc["enterprise_id"] not in set(employers.dropna())
    assert cmd.experts.replay(int(task["draw_id"])) == list(draw.result)


# ---------------------------------------------------------------------- decision support
def test_decision_support_ranks_by_stated_travel_time(cmd, store):
    iid = open_leak(cmd, store)["incident_id"]
    sup = cmd.support(iid)
    assert sup["constants"] == {"detour_factor": 1.3, "speed_kmh": 60.0}
    for key in ("teams", "warehouses", "shelters", "experts"):
        df = sup[key]
        assert len(df), key
        assert ((df.minutes - df.km * 1.3).abs() < 1e-9).all(), key  # 60 km/h: 1 km = 1 min
        if key in ("shelters", "experts", "warehouses"):
            assert (df.minutes.diff().dropna() >= 0).all(), key
    teams = sup["teams"]
    matching = teams[teams.matches]
    assert (matching.minutes.diff().dropna() >= 0).all()
    assert set(matching.kind) <= {"hazchem", "fire", "medical"}
    wh = sup["warehouses"]
    covered = set().union(*map(set, wh[wh.covers].categories))
    assert covered == {"hazchem", "medical", "rescue"} - set(wh.missing.iloc[0].split(", "))
    inst = sup["installations"]
    assert (inst.km <= 3.0).all() and len(inst) >= 1  # the enterprise's own installations
    assert sup["area"]["sector"] is None and sup["area"]["wind_source"] is None  # no direction


def test_a_chemical_leak_affects_the_downwind_sector(cmd, store, clock):
    inc = open_leak(cmd, store)
    lon, lat = inc["lon"], inc["lat"]
    # a weather station measuring wind direction next to the plant: wind from the north
    store.execute("INSERT INTO sensors (sensor_id, kind, unit, lon, lat, county_code, "
                  "period_s) VALUES ('WX-DIR', 'wind_direction', 'deg', ?, ?, ?, 60)",
                  [lon + 0.01, lat, inc["county_code"]])
    store.execute("INSERT INTO readings (feed, seq, ts, sensor_id, value) VALUES ('test', 1, ?, 'WX-DIR', 0.0)",
                  [clock() - timedelta(minutes=5)])
    # installations 2 km south (downwind) and 2 km north (upwind) of the scene
    store.execute("INSERT INTO installations VALUES (990001, ?, '下风向罐区', 'tank_farm', 1, ?, ?),"
                  " (990002, ?, '上风向罐区', 'tank_farm', 1, ?, ?)",
                  [inc["enterprise_id"], lon, lat - 0.018, inc["enterprise_id"], lon,
                   lat + 0.018])
    cmd.invalidate()  # the registries changed under it
    sup = cmd.support(inc["incident_id"])
    area = sup["area"]
    assert area["wind_source"] == "sensor" and area["sector"] == (150.0, 210.0)
    names = set(sup["installations"].name)
    assert "下风向罐区" in names and "上风向罐区" not in names
    assert area["area_km2"] == pytest.approx(3.14159265 * 9 / 6)


# ---------------------------------------------------------------------- reports
def test_reports_are_versioned_and_exported(cmd, store, clock):
    iid = open_leak(cmd, store)["incident_id"]
    draft = cmd.draft_report(iid, "first", user="wang")
    assert "储罐区泄漏" in draft["body"] and "死亡 1 人" in draft["body"]
    clock.step(minutes=20)
    r = cmd.submit_report(iid, "first", draft["body"], user="wang", recipient="市应急管理局")
    clock.step(minutes=5)
    r2 = cmd.revise_report(r["report_id"], draft["body"] + "\n补充：已疏散 200 人", user="li")
    assert r2["version"] == 2 and len(cmd.report_versions(r["report_id"])) == 2
    timers = {t.kind: t for t in cmd.timers(iid)}
    assert timers["first"].state == "done" and timers["first"].done_at == r["submitted_at"]
    page = cmd.export_report(r["report_id"], "html").decode()
    assert "补充：已疏散 200 人" in page and "li" in page and "<script" not in page
    docx = cmd.export_report(r["report_id"], "docx")
    with zipfile.ZipFile(io.BytesIO(docx)) as z:  # read by the format, not by python-docx
        xml = ElementTree.fromstring(z.read("word/document.xml"))
    text = "".join(t.text or "" for t in xml.iter(
        "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}t"))
    assert "补充：已疏散 200 人" in text and "市应急管理局" in text
    with pytest.raises(CommandError, match="already filed"):
        cmd.submit_report(iid, "first", "again", user="wang")


# ---------------------------------------------------------------------- closure and the wall
def test_close_needs_tasks_ended_then_refuses_new_tasks(cmd, store, clock):
    iid = open_leak(cmd, store)["incident_id"]
    task = cmd.assign_team(iid, nearest_team(cmd, iid), user="wang")
    with pytest.raises(CommandError) as e:
        cmd.close_incident(iid, user="wang")
    assert e.value.key == "command.error.active_tasks" and e.value.fmt["n"] == 1
    cmd.advance_task(task["task_id"], "cancelled", user="wang")
    clock.step(minutes=30)
    closed = cmd.close_incident(iid, user="wang", note="险情排除")
    assert (closed["status"], closed["closed_at"]) == ("closed", clock())
    wall = SituationSource(store=store).active_incidents(now_ms=int(clock().timestamp() * 1000))
    assert iid not in set(wall.incident_id)
    assert iid not in set(cmd.wall_incidents().incident_id)
    timers = {t.kind: t.state for t in cmd.timers(iid)}
    assert timers["final"] == "pending"
    cmd.submit_report(iid, "final", "终报：处置结束", user="wang")
    review = cmd.after_action(iid)
    assert review["total_minutes"] == pytest.approx(35.0)
    assert {d["to"] for d in review["durations"]} >= {"closed"}
    assert cmd.export_review(iid, "docx")[:2] == b"PK"


def test_wall_lists_feed_and_command_incidents_once(cmd, store, clock):
    store.execute("INSERT INTO incidents VALUES ('ws://feed', 7, ?, 'INC-1', 'fire', 117.0, "
                  "36.6, '火灾（INC-1）', 'orange', 'open', '370102', NULL, NULL)",
                  [clock() - timedelta(minutes=30)])
    mine = open_leak(cmd, store, deaths=11)["incident_id"]
    wall = cmd.wall_incidents()
    assert list(wall.incident_id) == [mine, "INC-1"]  # II (11 deaths) before the feed's orange
    assert (wall.grade.tolist(), wall.commanded.tolist()) == (["II", "II"], [True, False])
    assert wall.next_report.iloc[0] == "phone"  # 重大: the 30-minute telephone notice first
    taken = cmd.take_over("INC-1", user="li")
    assert (taken["origin"], taken["grade"], taken["origin_ref"]) == ("feed", "II", "ws://feed:7")
    cmd.assign_team("INC-1", nearest_team(cmd, "INC-1"), user="li")
    wall = cmd.wall_incidents()
    assert sorted(wall.incident_id) == sorted([mine, "INC-1"])
    row = wall[wall.incident_id == "INC-1"].iloc[0]
    assert (row.commanded, row.tasks_assigned, row.origin) == (True, 1, "feed")
    clock.step(hours=2)
    assert cmd.wall_incidents().next_report_overdue.all()


def test_open_from_an_alarm_carries_installation_and_readings(cmd, store, clock):
    s = store.df("SELECT sensor_id, installation_id, enterprise_id, county_code FROM sensors "
                 "WHERE kind = 'toxic_gas' ORDER BY sensor_id LIMIT 1").iloc[0]
    store.execute("INSERT INTO alarms (alarm_id, sensor_id, installation_id, enterprise_id, "
                  "county_code, kind, level, raised_at, trigger_value, peak_value, state) "
                  "VALUES (42, ?, ?, ?, ?, 'hi_hi', 'red', ?, 55.0, 61.5, 'raised')",
                  [s.sensor_id, int(s.installation_id), int(s.enterprise_id), s.county_code,
                   clock() - timedelta(minutes=3)])
    store.execute("INSERT INTO readings (feed, seq, ts, sensor_id, value) VALUES ('test', 1, ?, ?, 61.5)",
                  [clock() - timedelta(minutes=2), s.sensor_id])
    pre = cmd.alarm_intake(42)
    assert pre["subtype"] == "hazchem_leak" and s.sensor_id in set(pre["readings"].sensor_id)
    inc = cmd.open_from_alarm(42, user="wang")
    assert (inc["origin"], inc["alarm_id"], inc["installation_id"], inc["enterprise_id"]) == (
        "alarm", 42, int(s.installation_id), int(s.enterprise_id))
    assert "61.5" in inc["description"] and inc["occurred_at"] == clock() - timedelta(minutes=3)


# ---------------------------------------------------------------------- bad input
def bad_inputs(cmd, store, iid, closed_iid):
    team = nearest_team(cmd, iid)
    wh = int(cmd.support(iid)["warehouses"].warehouse_id.iloc[0])
    kind = cmd.warehouse_stock(wh).query("countable").iloc[0]
    cmd.assign_team(iid, team, user="wang")
    future = cmd.clock() + timedelta(hours=2)
    ent = hazchem_enterprise(store)["enterprise_id"]
    return {
        "unknown team": (lambda: cmd.assign_team(iid, 999_999, user="li"),
                         "command.error.unknown_team"),
        "unknown warehouse": (lambda: cmd.request_materials(
            iid, kind_id=int(kind.kind_id), quantity=1, warehouse_id=999_999, user="li"),
            "inventory.error.unknown_warehouse"),
        "unknown expert kind": (lambda: cmd.draw_experts(iid, n=2, tags=["无此标签"], user="li"),
                                "inventory.error.unknown_tag"),
        "unknown county": (lambda: cmd.open_incident(subtype="fire", county_code="999999",
                                                     user="li"), "command.error.unknown_county"),
        "unknown subtype": (lambda: cmd.open_incident(subtype="volcano", county_code="370102",
                                                      user="li"),
                            "command.error.unknown_subtype"),
        "outside the province": (lambda: cmd.open_incident(subtype="fire", lon=126.6, lat=45.7,
                                                           user="li"), "command.error.outside"),
        "not a point": (lambda: cmd.open_incident(subtype="fire", lon="x", lat=36.0, user="li"),
                        "command.error.outside"),
        "no place": (lambda: cmd.open_incident(subtype="fire", user="li"),
                     "command.error.no_place"),
        "future occurrence": (lambda: cmd.open_incident(
            subtype="fire", enterprise_id=ent, occurred_at=future, user="li"),
            "command.error.future"),
        "future learned": (lambda: cmd.open_incident(
            subtype="fire", enterprise_id=ent, learned_at=future, user="li"),
            "command.error.future"),
        "occurred after learned": (lambda: cmd.open_incident(
            subtype="fire", enterprise_id=ent, occurred_at=cmd.clock(),
            learned_at=cmd.clock() - timedelta(hours=1), user="li"), "command.error.order"),
        "negative deaths": (lambda: cmd.correct(iid, deaths=-1, user="li"),
                            "command.error.bad_count"),
        "fractional injured": (lambda: cmd.correct(iid, injured=2.5, user="li"),
                               "command.error.bad_count"),
        "NaN loss": (lambda: cmd.correct(iid, loss_wan=float("nan"), user="li"),
                     "command.error.bad_count"),
        "unknown field": (lambda: cmd.correct(iid, status="closed", user="li"),
                          "command.error.bad_field"),
        "team twice": (lambda: cmd.assign_team(iid, team, user="li"),
                       "command.error.team_taken"),
        "above stock": (lambda: cmd.request_materials(
            iid, kind_id=int(kind.kind_id), quantity=float(kind.quantity) + 1,
            warehouse_id=wh, user="li"), "inventory.error.short"),
        "zero quantity": (lambda: cmd.request_materials(
            iid, kind_id=int(kind.kind_id), quantity=0, warehouse_id=wh, user="li"),
            "inventory.error.bad_quantity"),
        "task on closed incident": (lambda: cmd.assign_team(closed_iid, team + 1, user="li"),
                                    "command.error.closed"),
        "shelter over capacity": (lambda: cmd.open_shelter(iid, 1, people=10**9, user="li"),
                                  "command.error.over_capacity"),
        "empty report": (lambda: cmd.submit_report(iid, "first", " \n\t ", user="li"),
                         "command.error.empty_report"),
        "followup first": (lambda: cmd.submit_report(iid, "followup", "续报", user="li"),
                           "command.error.no_first"),
        "final while open": (lambda: cmd.submit_report(iid, "final", "终报", user="li"),
                             "command.error.final_open"),
        "report on closed": (lambda: cmd.submit_report(closed_iid, "followup", "续报",
                                                       user="li"), "command.error.closed_report"),
        "unknown grade": (lambda: cmd.set_grade(iid, "V", user="li", reason="x"),
                          "command.error.bad_grade"),
        "unknown level": (lambda: cmd.launch_response(iid, "Ⅴ", user="li"),
                          "command.error.bad_level"),
        "unknown incident": (lambda: cmd.launch_response("NOPE", "III", user="li"),
                             "command.error.unknown_incident"),
        "empty note": (lambda: cmd.add_note(iid, "   ", user="li"), "command.error.empty_note"),
        "unknown task": (lambda: cmd.advance_task(10**9, "done", user="li"),
                         "command.error.unknown_task"),
        "unknown alarm": (lambda: cmd.open_from_alarm(10**9, user="li"),
                          "command.error.unknown_alarm"),
        "bad wind": (lambda: cmd.correct(iid, wind_from_deg=400, user="li"),
                     "command.error.bad_wind"),
    }


def test_every_bad_input_is_refused_with_the_store_unchanged(cmd, store, clock):
    iid = open_leak(cmd, store)["incident_id"]
    closed_iid = open_leak(cmd, store, title="已结束")["incident_id"]
    cmd.close_incident(closed_iid, user="wang")
    cases = bad_inputs(cmd, store, iid, closed_iid)
    before = fingerprint(store)
    for name, (action, key) in cases.items():
        with pytest.raises(InventoryError) as e:
            action()
        assert e.value.key == key, (name, e.value.key, str(e.value))
        assert str(e.value), name
        assert fingerprint(store) == before, name
