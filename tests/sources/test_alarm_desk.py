"""The alarm lifecycle (incl. the acknowledge race), escalation, report numbers, quarantine."""
from __future__ import annotations

import threading
from datetime import timedelta

import pandas as pd
import pytest

from sources.alarms.desk import AlarmActionError, AlarmSource
from sources.alarms.engine import AlarmEngine
from sources.hub import Hub

from .alarm_registry import T0, make_alarm_store, readings


@pytest.fixture
def astore(tmp_path):
    s = make_alarm_store(tmp_path / "desk.duckdb")
    yield s
    s.close()


@pytest.fixture
def hub():
    return Hub()


@pytest.fixture
def desk(astore, hub):
    return AlarmSource(store=astore, hub=hub, escalate_after_min=10)


@pytest.fixture
def engine(astore, hub):
    return AlarmEngine(store=astore, hub=hub, hold_s=60)


def test_lifecycle_stores_and_publishes_every_action(engine, desk, hub, astore):
    engine.evaluate(readings([("T1", 0, 95)]))
    sub = hub.subscribe(["alarm"])
    desk.acknowledge(1, "张三")
    with pytest.raises(AlarmActionError) as err:
        desk.dispose(1, "张三", "   ")
    assert err.value.key == "alarm.err.note_required"
    with pytest.raises(AlarmActionError) as err:
        desk.close(1, "张三")
    assert err.value.key == "alarm.err.wrong_state" and err.value.info["state"] == "acknowledged"
    desk.dispose(1, "李四", "已关闭进料阀，现场降温")
    desk.close(1, "李四")
    a = desk.alarm(1)
    assert (a["state"], a["acked_by"], a["disposed_by"], a["closed_by"]) == (
        "closed", "张三", "李四", "李四")
    assert a["disposal_note"] == "已关闭进料阀，现场降温"
    assert a["acked_at"] <= a["disposed_at"] <= a["closed_at"]
    hist = desk.actions(1)
    assert hist.action.tolist() == ["raise", "acknowledge", "dispose", "close"]
    assert hist.actor.tolist() == ["system", "张三", "李四", "李四"]
    published = [d for m in sub.drain()[0] for d in m.payload]
    assert [(d["change"], d["state"]) for d in published] == [
        ("acknowledge", "acknowledged"), ("dispose", "disposed"), ("close", "closed")]
    assert desk.open_alarms().empty
    with pytest.raises(AlarmActionError) as err:
        desk.acknowledge(99, "x")
    assert err.value.key == "alarm.err.not_found"


def test_concurrent_acknowledge_exactly_one_wins(engine, desk, astore):
    engine.evaluate(readings([("T1", 0, 95)]))
    barrier = threading.Barrier(2)
    results = {}

    def officer(name):
        barrier.wait()
        try:
            desk.acknowledge(1, name)
            results[name] = "won"
        except AlarmActionError as exc:
            results[name] = exc

    threads = [threading.Thread(target=officer, args=(n,)) for n in ("王五", "赵六")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [n for n, r in results.items() if r == "won"]
    assert len(winners) == 1
    loser = next(r for r in results.values() if r != "won")
    assert loser.key == "alarm.err.already_acknowledge" and loser.info["by"] == winners[0]
    assert astore.scalar("SELECT count(*) FROM alarm_actions WHERE action = 'acknowledge'") == 1
    assert desk.alarm(1)["acked_by"] == winners[0]


def test_red_alarm_unacknowledged_escalates_once(engine, desk, hub):
    engine.evaluate(readings([("T1", 0, 95), ("P1", 0, 2.2), ("G1", 0, 60)]))  # red, orange, red
    desk.acknowledge(engine.open_alarms()["G1"], "张三")  # acknowledged: not escalated
    sub = hub.subscribe(["alarm"])
    assert desk.escalate_overdue(T0 + timedelta(minutes=9)) == []
    ids = desk.escalate_overdue(T0 + timedelta(minutes=11))
    sensors = {desk.alarm(i)["sensor_id"] for i in ids}
    assert sensors == {"T1"}
    assert desk.escalate_overdue(T0 + timedelta(minutes=30)) == []
    assert [d["change"] for m in sub.drain()[0] for d in m.payload] == ["escalate"]
    assert desk.actions(ids[0]).actor.tolist()[-1] == "system"


def test_report_numbers_match_hand_computation(engine, desk, astore):
    # T1 (enterprise 1, 历下区): raised t=0, back at t=100, cleared after the 60 s hold
    engine.evaluate(readings([("T1", 0, 85), ("T1", 100, 70), ("T1", 160, 70)]))
    # L1 (enterprise 1): raised t=0 (hi_hi, red), still active
    engine.evaluate(readings([("L1", 0, 9.5)]))
    # G1 (enterprise 2, 市中区): raised t=0, back at t=300 -> cleared at 300 after the hold
    engine.evaluate(readings([("G1", 0, 30), ("G1", 300, 10), ("G1", 400, 10)]))
    desk.acknowledge(1, "a", at=T0 + timedelta(seconds=120))   # T1: 2 min to ack
    desk.acknowledge(2, "a", at=T0 + timedelta(seconds=240))   # L1: 4 min to ack
    desk.dispose(1, "a", "ok", at=T0 + timedelta(seconds=300))
    desk.close(1, "a", at=T0 + timedelta(seconds=600))          # T1: 10 min to clear (close)
    now = T0 + timedelta(seconds=1200)
    rep = desk.report("enterprise", T0 - timedelta(hours=1), T0 + timedelta(hours=1), now=now)
    rows = rep.set_index("name")
    e1 = rows.loc["<b>齐鲁化工</b>"]
    # durations: T1 100 s, L1 still active -> now: 1200 s; total 1300 s
    assert (e1.alarms, e1.red, e1.county) == (2, 1, "历下区")
    assert e1.total_duration_min == pytest.approx(1300 / 60)
    assert e1.mean_duration_min == pytest.approx(650 / 60)
    assert e1.mean_ack_min == pytest.approx(3.0)
    assert e1.mean_clear_min == pytest.approx(10.0)
    e2 = rows.loc["泉城石化"]
    assert (e2.alarms, e2.total_duration_min) == (1, pytest.approx(5.0))
    assert pd.isna(e2.mean_ack_min) and pd.isna(e2.mean_clear_min)
    by_county = desk.report("county", T0 - timedelta(hours=1), T0 + timedelta(hours=1),
                            now=now).set_index("name")
    assert by_county.alarms.to_dict() == {"历下区": 2, "市中区": 1}
    # the period filter: nothing raised in the day before
    assert desk.report("county", T0 - timedelta(days=1), T0 - timedelta(hours=1)).empty


def test_open_alarms_are_enriched_and_ordered(engine, desk):
    engine.evaluate(readings([("P1", 0, 2.1), ("T1", 5, 95), ("RL1", 6, 25.5)]))
    df = desk.open_alarms()
    assert df.sensor_id.tolist() == ["T1", "RL1", "P1"]  # red first, then newest first
    t1 = df.iloc[0]
    assert (t1.enterprise, t1.installation, t1.county, t1.sensor_kind, t1.threshold) == (
        "<b>齐鲁化工</b>", "1号罐区", "历下区", "temperature", 90.0)
    assert df.iloc[1].enterprise == "泺口站"  # a station sensor is named by its station


def test_quarantine_latest_first_and_by_reason(desk, astore):
    astore.insert("quarantine", pd.DataFrame({
        "feed": ["f"] * 3, "received_at": [T0, T0 + timedelta(seconds=1), T0 + timedelta(seconds=2)],
        "reason": ["bad_json", "unknown_sensor", "bad_json"], "raw": ["{", '{"x":1}', "x" * 5000],
    }))
    q = desk.quarantine()
    assert q.received_at.is_monotonic_decreasing and len(q) == 3
    assert len(q.raw.iloc[0]) == 2000
    assert desk.quarantine("unknown_sensor").raw.tolist() == ['{"x":1}']
    assert desk.quarantine_reasons() == ["bad_json", "unknown_sensor"]
