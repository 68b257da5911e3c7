"""Drills in the store: exercise messages are marked on every row they make (alarms too),
the drill is recorded, the officers' response reviewed, and one purge removes exactly the
drill's rows."""
from __future__ import annotations

import json
import time

import pytest

from sources.alarms.desk import AlarmSource
from sources.alarms.engine import AlarmEngine
from sources.drills.desk import COMMAND_TABLES, DRILL_TABLES, DrillError, DrillSource
from sources.hub import Hub
from sources.ingest.feed import FeedIngest
from sources.ingest.messages import drill_of, parse_frame
from tests.conftest import wait_until
from tests.sources.feed_servers import ScriptedFeed, sending

from .alarm_registry import make_alarm_store, readings

DRILL = "DR-20261201T080000-ab12"


def ex(m: dict) -> dict:
    return {**m, "exercise": True, "drill_id": DRILL, "scenario": "dongying-leak"}


def frames(now_ms: int) -> list[str]:
    real = [{"type": "reading", "seq": i, "ts": now_ms + i, "sensor_id": "T1", "value": 50}
            for i in range(5)]
    drill = [ex({"type": "reading", "seq": 10 + i, "ts": now_ms + 10 + i, "sensor_id": "G1",
                 "value": v}) for i, v in enumerate((10, 30, 60, 70))]
    events = [
        ex({"type": "quake", "seq": 20, "ts": now_ms + 20, "id": "q-drill", "lon": 117.0,
            "lat": 36.6, "depth_km": 8, "magnitude": 4.6}),
        {"type": "quake", "seq": 21, "ts": now_ms + 21, "id": "q-real", "lon": 117.0,
         "lat": 36.6, "depth_km": 8, "magnitude": 3.1},
        ex({"type": "incident", "seq": 22, "ts": now_ms + 22, "id": "i-drill",
            "kind": "hazchem_leak", "lon": 117.0, "lat": 36.6, "title": "【演练】泄漏",
            "level": "red", "status": "open"}),
        ex({"type": "warning", "seq": 23, "ts": now_ms + 23, "id": "w-drill",
            "msg_type": "Alert", "event": "hazchem", "level": "red", "headline": "【演练】预警",
            "area": ["370103"], "effective": now_ms, "expires": now_ms + 3_600_000,
            "status": "Exercise"}),
    ]
    # exercise frames travel on their own, as the demo feed sends them
    return [json.dumps(real), *[json.dumps([m]) for m in drill], json.dumps(events)]


def test_only_an_exercise_flag_makes_a_drill():
    assert drill_of({"exercise": True, "drill_id": DRILL}) == DRILL
    assert drill_of({"exercise": True}) == "exercise"
    assert drill_of({"drill_id": DRILL}) is None  # a drill id alone marks nothing
    assert drill_of({"exercise": "yes", "drill_id": DRILL}) is None
    assert drill_of({"exercise": True, "drill_id": "x" * 65}) == "exercise"
    p = parse_frame(json.dumps([ex({"type": "reading", "seq": 1, "ts": 1, "sensor_id": "A",
                                    "value": 1}),
                                {"type": "reading", "seq": 2, "ts": 2, "sensor_id": "A",
                                 "value": 1}]), {"A"})
    assert p.seq == [1, 2] and p.drills == {0: DRILL}


@pytest.fixture
def fed(tmp_path):
    """A store fed real and exercise messages through a real websocket, with the engine."""
    store = make_alarm_store(tmp_path / "drill.duckdb")
    hub = Hub()
    engine = AlarmEngine(store=store, hub=hub)
    now_ms = int(time.time() * 1000) - 60_000
    with ScriptedFeed([sending(*frames(now_ms))]) as server:
        ingest = FeedIngest(url=server.url, store=store, hub=hub, flush_interval=0.02)
        ingest.add_listener(engine.on_batch)
        ingest.start()
        try:
            wait_until(lambda: ingest.stored == 13, message=f"{ingest.status()}")
        finally:
            ingest.stop()
    yield store, hub
    store.close()


def test_every_row_of_an_exercise_is_marked_and_the_drill_recorded(fed):
    store, hub = fed
    assert store.scalar("SELECT count(*) FROM readings WHERE drill_id = ?", [DRILL]) == 4
    assert store.scalar("SELECT count(*) FROM readings WHERE drill_id IS NULL") == 5
    assert store.arrow("SELECT quake_id, drill_id FROM quakes ORDER BY quake_id").to_pylist() \
        == [{"quake_id": "q-drill", "drill_id": DRILL}, {"quake_id": "q-real", "drill_id": None}]
    assert store.scalar("SELECT drill_id FROM incidents") == DRILL
    assert store.scalar("SELECT drill_id FROM warnings") == DRILL
    # the toxic-gas readings went past hi and hi-hi: the engine's alarm is the drill's
    alarm = store.df("SELECT kind, level, drill_id FROM alarms").iloc[0]
    assert (alarm.kind, alarm.level, alarm.drill_id) == ("hi_hi", "red", DRILL)
    d = store.df("SELECT * FROM drills").iloc[0]
    assert d.drill_id == DRILL and d.scenario == "dongying-leak"
    assert d.started_by.startswith("feed:ws://") and d.last_seen_at > d.started_at


def test_review_then_purge_exactly_the_drills_rows(fed):
    store, hub = fed
    desk = AlarmSource(store=store, hub=hub)
    drills = DrillSource(store=store, hub=hub, active_s=0.001)
    alarm_id = int(store.scalar("SELECT alarm_id FROM alarms WHERE drill_id = ?", [DRILL]))
    desk.acknowledge(alarm_id, "值班员甲")
    summary = drills.summary(DRILL)
    assert summary["alarms"] == 1 and summary["acknowledged"] == 1
    assert summary["ack_median_s"] > 0 and summary["incidents"] == 1
    review = drills.review(DRILL)
    assert set(review.kind) == {"alarm", "incident"}
    assert review[review.kind == "alarm"].iloc[0]["by"] == "值班员甲"
    assert drills.review_csv(DRILL).decode("utf-8-sig").startswith("kind,what,level")
    # a real alarm beside it must survive the purge
    AlarmEngine(store=store, hub=hub).evaluate(readings([("T1", 0, 95.0)], seq0=900))
    tables = (*DRILL_TABLES, "alarm_actions", *COMMAND_TABLES)
    before = {t: store.scalar(f"SELECT count(*) FROM {t}") for t in tables}
    counts = drills.counts(DRILL)
    sub = hub.subscribe()
    deleted = drills.purge(DRILL, actor="管理员")
    assert deleted == counts and sum(deleted.values()) >= 10
    after = {t: store.scalar(f"SELECT count(*) FROM {t}") for t in tables}
    assert {t: before[t] - after[t] for t in tables} == deleted  # exactly the drill's rows
    assert drills.counts(DRILL) == dict.fromkeys(counts, 0)
    assert store.scalar("SELECT count(*) FROM alarms WHERE drill_id IS NULL") == 1
    d = store.df("SELECT purged_by, purged_rows FROM drills").iloc[0]
    assert d.purged_by == "管理员" and d.purged_rows == sum(deleted.values())
    topics = {m.topic for m in sub.drain()[0]}
    assert {"alarm", "warning", "incident", "quake", "drill"} <= topics
    with pytest.raises(DrillError):
        drills.purge("DR-never", actor="管理员")


def test_a_running_drill_is_not_purged(fed):
    store, hub = fed
    drills = DrillSource(store=store, hub=hub, active_s=3600)
    assert drills.active()["drill_id"] == DRILL
    with pytest.raises(DrillError) as err:
        drills.purge(DRILL, actor="x")
    assert err.value.key == "drill.err.running"
    assert drills.counts(DRILL)["readings"] == 4  # nothing gone
