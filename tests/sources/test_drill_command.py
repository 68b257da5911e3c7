"""A drill's incidents under command: opened from the drill's alarm, taken over from its feed
incident or marked at intake, they carry the drill everywhere (the wall's list, the
statistics' table); they move no real stock; the review measures intake and dispatch; the
purge removes them with every command row, leaving a real incident's untouched."""
from __future__ import annotations

from datetime import timedelta

import pandas as pd

from sources.drills.desk import COMMAND_TABLES, DrillSource
from tests.sources.command_fixtures import (  # noqa: F401 - fixtures
    clock_fixture,
    cmd_fixture,
    fingerprint,
    open_leak,
)

DRILL = "DR-20240601T075500-cafe"


def _drill_world(store, clock):
    """A drill that began 5 minutes ago: its record, a toxic-gas alarm and a feed incident."""
    start = clock() - timedelta(minutes=5)
    store.execute("INSERT INTO drills (drill_id, scenario, title, started_at, started_by, "
                  "last_seen_at, ended_at) VALUES (?, 'dongying-leak', '危化品泄漏演练', ?, "
                  "'值班长', ?, ?)", [DRILL, start, clock(), clock()])
    s = store.df("SELECT sensor_id, installation_id, enterprise_id, county_code FROM sensors "
                 "WHERE kind = 'toxic_gas' ORDER BY sensor_id LIMIT 1").iloc[0]
    store.execute("INSERT INTO alarms (alarm_id, sensor_id, installation_id, enterprise_id, "
                  "county_code, kind, level, raised_at, trigger_value, peak_value, state, "
                  "drill_id) VALUES (77, ?, ?, ?, ?, 'hi_hi', 'red', ?, 55.0, 61.5, 'raised', ?)",
                  [s.sensor_id, int(s.installation_id), int(s.enterprise_id), s.county_code,
                   start + timedelta(minutes=1), DRILL])
    store.execute("INSERT INTO incidents (feed, seq, ts, incident_id, kind, lon, lat, title, "
                  "level, status, county_code, drill_id) VALUES ('ws://demo', 9, ?, 'DRI-1', "
                  "'fire', 117.0, 36.6, '【演练】火灾', 'orange', 'open', '370102', ?)",
                  [start + timedelta(minutes=2), DRILL])


def _team(cmd, iid) -> int:
    return int(cmd.support(iid)["teams"].team_id.iloc[0])


def test_a_drills_incidents_are_marked_move_no_stock_and_purge_cleanly(cmd, store, clock):
    _drill_world(store, clock)
    real = open_leak(cmd, store)["incident_id"]
    cmd.assign_team(real, _team(cmd, real), user="wang")
    real_rows = {t: store.scalar(f"SELECT count(*) FROM {t} WHERE incident_id = ?", [real])
                 for t in ("command_incidents", "command_tasks", "command_commitments")}

    from_alarm = cmd.open_from_alarm(77, user="li")
    taken = cmd.take_over("DRI-1", user="li")
    by_hand = cmd.open_incident(subtype="flood", user="zhao", county_code="370102",
                                drill_id=DRILL)
    drill_ids = {from_alarm["incident_id"], "DRI-1", by_hand["incident_id"]}
    assert {from_alarm["drill_id"], taken["drill_id"], by_hand["drill_id"]} == {DRILL}
    # every version and its mirror row for the wall carry the drill
    cmd.correct("DRI-1", user="li", injured=3)
    assert store.scalar("SELECT count(*) FROM command_incidents WHERE drill_id IS NULL "
                        "AND incident_id <> ?", [real]) == 0
    assert store.scalar("SELECT count(*) FROM incidents WHERE feed = 'command' AND "
                        "incident_id <> ? AND drill_id IS NULL", [real]) == 0
    wall = cmd.wall_incidents().set_index("incident_id")
    assert wall.loc[sorted(drill_ids), "drill_id"].eq(DRILL).all()
    assert pd.isna(wall.loc[real, "drill_id"])

    # dispatch in the drill: a team is committed; materials move no real stock
    clock.step(minutes=1)
    team = cmd.assign_team("DRI-1", _team(cmd, "DRI-1"), user="li")
    wh = int(cmd.support("DRI-1")["warehouses"].warehouse_id.iloc[0])
    kind = cmd.warehouse_stock(wh).query("countable and quantity >= 2").iloc[0]
    before = fingerprint(store)
    mat = cmd.request_materials("DRI-1", kind_id=int(kind.kind_id), quantity=2,
                                warehouse_id=wh, user="li")
    assert mat["dispatch_id"] is None
    cmd.advance_task(mat["task_id"], "en_route", user="li")
    cmd.advance_task(mat["task_id"], "on_scene", user="li")
    after = fingerprint(store)
    assert (after["stock"], after["dispatches"], after["stock_ledger"]) == (
        before["stock"], before["dispatches"], before["stock_ledger"])

    drills = DrillSource(store=store, hub=cmd.hub, active_s=0.001)
    review = drills.review(DRILL)
    assert set(review[review.kind == "command"].by) == {"li", "zhao"}
    dispatched = review[review.kind == "dispatch"]
    assert len(dispatched) == 2 and set(dispatched.response) == {"assigned", "on_scene"}
    summary = drills.summary(DRILL)
    assert summary["commanded"] == 3 and summary["dispatches"] == 2
    assert summary["first_dispatch_s"] == 6 * 60  # the drill began 5 min before, +1 min

    counts = drills.counts(DRILL)
    assert counts["command_incidents"] == 4 and counts["command_tasks"] == 2
    deleted = drills.purge(DRILL, actor="管理员")
    assert {t: deleted[t] for t in COMMAND_TABLES} == {t: counts[t] for t in COMMAND_TABLES}
    assert all(v == 0 for v in drills.counts(DRILL).values())
    # the real incident and its commitment are untouched; the drill's team is free again
    assert real_rows == {t: store.scalar(f"SELECT count(*) FROM {t} WHERE incident_id = ?",
                                         [real]) for t in real_rows}
    assert team["resource_id"] not in set(cmd.commitments()["resource_id"]) or \
        team["resource_id"] == _team(cmd, real)
    assert set(cmd.wall_incidents().incident_id) == {real}
