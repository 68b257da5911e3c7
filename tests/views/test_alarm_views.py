"""Alarm queue, report and feed status views on a real store and hub (no browser)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import panel as pn
import pytest

from sources.access.guard import Guard
from sources.access.sessions import Principal
from sources.alarms.desk import AlarmSource
from sources.alarms.engine import AlarmEngine
from sources.hub import Hub
from tests.sources.alarm_registry import T0, make_alarm_store, readings
from views.alarm_queue import AlarmQueue, beep_wav
from views.alarm_report import AlarmReport
from views.feed_status import FeedStatus


@pytest.fixture
def rt(tmp_path):
    """A store and a hub, as the console holds them."""
    from types import SimpleNamespace

    store = make_alarm_store(tmp_path / "views.duckdb")
    yield SimpleNamespace(store=store, hub=Hub())
    store.close()


@pytest.fixture
def engine(rt):
    return AlarmEngine(store=rt.store, hub=rt.hub, hold_s=60)


@pytest.fixture
def source(rt):
    return AlarmSource(store=rt.store, hub=rt.hub)


def officer(name: str, jurisdiction: str = "370000") -> Guard:
    return Guard.of(Principal(name=name, role="officer", jurisdiction=jurisdiction))


def now_readings(rows):
    return readings(rows, t0=datetime.now(UTC) - timedelta(seconds=10))


def test_queue_streams_patches_and_drops_rows_from_the_hub(engine, source):
    engine.evaluate(now_readings([("P1", 0, 2.1)]))
    q = AlarmQueue(source=source, lang="en")
    pn.panel(q).get_root()  # renders
    assert q.table.value.index.tolist() == [1] and q.new_red == 0
    engine.evaluate(now_readings([("T1", 1, 95), ("RL1", 1, 25.5)]))
    q.pull()
    ids = engine.open_alarms()
    t1, rl1 = ids["T1"], ids["RL1"]
    v = q.table.value
    assert set(v.index) == {1, t1, rl1}
    assert v.loc[t1, "enterprise"] == "<b>齐鲁化工</b>" and v.loc[t1, "kind"] == "High-high"
    assert v.loc[t1, "threshold"] == "90" and v.loc[t1, "value"] == "95 / 95 °C"
    assert q.new_red == 1 and q.banner.visible and "&lt;b&gt;" in q.banner.object
    # the sorted view: red first, then newest
    assert q.table.current_view.index.tolist()[0] == t1
    # a peak and an officer's acknowledge patch the rows in place
    engine.evaluate(now_readings([("P1", 2, 2.4)]))
    engine.tick()  # new peaks go out with the timer's tick
    source.acknowledge(rl1, "值班员甲")
    q.pull()
    assert q.table.value.loc[1, "value"] == "2.1 / 2.4 MPa"
    assert (q.table.value.loc[rl1, "state"], q.table.value.loc[rl1, "acked_by"]) == (
        "Acknowledged", "值班员甲")
    # closing removes the row, on every page
    source.dispose(rl1, "值班员甲", "巡查确认")
    source.close(rl1, "值班员甲")
    q.pull()
    assert rl1 not in q.table.value.index and q.counter.object.startswith("2 open alarms")


def test_queue_reloads_when_it_missed_messages(engine, source):
    q = AlarmQueue(source=source, lang="zh")
    q._sub.maxsize = 2
    for i in range(5):
        engine.evaluate(readings([("T1", i * 1000, 85), ("T1", i * 1000 + 100, 50),
                                  ("T1", i * 1000 + 200, 50)]))
    q.pull()
    assert len(q.table.value) == 5 and q.table.value["kind"].eq("高报").all()


def test_queue_actions_and_the_losers_message(engine, source):
    engine.evaluate(now_readings([("T1", 0, 95)]))
    a = AlarmQueue(source=source, lang="en", guard=officer("officer-a"))
    b = AlarmQueue(source=source, lang="zh", guard=officer("officer-b"))
    a._act("acknowledge")
    assert "Select an alarm" in a.message.object
    a.table.selection = [0]
    b.table.selection = [0]
    a._act("acknowledge")
    b._act("acknowledge")
    assert "acknowledged" in a.message.object and "ok" in a.message.object
    assert "officer-a" in b.message.object and "确认" in b.message.object
    b._act("dispose")
    assert "err" in b.message.object  # no note
    b.note.value = "关阀降温"
    b._act("dispose")
    assert source.alarm(1)["disposal_note"] == "关阀降温"


def test_a_county_officer_sees_and_acts_on_the_county_only(engine, source):
    """T1 is in 370102, G1 in 370103: the officer of 370103 sees G1's alarm only, and
    acting on T1's alarm (as if it were selected) is refused and recorded."""
    from sources.access.audit import AuditLog

    engine.evaluate(now_readings([("T1", 0, 95), ("G1", 0, 30)]))
    audit = AuditLog(source.store)
    county = Guard.of(Principal(name="xian", role="officer", jurisdiction="370103"),
                      audit=audit)
    q = AlarmQueue(source=source, lang="en", guard=county)
    assert set(q.table.value.county_code) == {"370103"}
    province = AlarmQueue(source=source, lang="en", guard=officer("sheng"))
    assert set(province.table.value.county_code) == {"370102", "370103"}
    t1 = int(province.table.value.index[province.table.value.county_code == "370102"][0])
    q.table.value = province.table.value  # a forged selection of another county's alarm
    q.table.selection = [list(q.table.value.index).index(t1)]
    q._act("acknowledge")
    assert "outside your jurisdiction" in q.message.object
    assert source.alarm(t1)["state"] == "raised"
    denied = audit.export(action="alarm.acknowledge")
    assert list(denied.outcome) == ["denied"] and list(denied.user_name) == ["xian"]
    wall = AlarmQueue(source=source, lang="en",
                      guard=Guard.of(Principal(name="wall1", role="wall",
                                               jurisdiction="370000")))
    wall.table.selection = [0]
    wall._act("acknowledge")
    assert "Your role may not" in wall.message.object


def test_queue_filters(engine, source):
    engine.evaluate(now_readings([("T1", 0, 95), ("P1", 0, 2.1), ("G1", 0, 30)]))
    q = AlarmQueue(source=source, lang="en")
    q.level_filter.value = ["red"]
    assert q.table.current_view.sensor.str.contains("T1").all() and len(q.table.current_view) == 1
    q.level_filter.value = []
    q.county_filter.value = "370103"
    assert len(q.table.current_view) == 1
    q.county_filter.value = ""
    q.search.value_input = "泉城"
    assert q.table.current_view.enterprise.tolist() == ["泉城石化"]


def test_beep_is_a_local_wav():
    wav = beep_wav()
    assert wav[:4] == b"RIFF" and wav[8:12] == b"WAVE" and len(wav) > 1000


def test_report_view_and_csv(engine, source):
    engine.evaluate(readings([("T1", 0, 85), ("T1", 100, 70), ("T1", 160, 70)]))
    day = (T0 + timedelta(hours=8)).date()
    r = AlarmReport(source=source, lang="en", start=day, end=day)
    assert r.table.value["Alarms"].tolist() == [1]
    assert r.table.value["Mean duration (min)"].tolist() == [pytest.approx(1.7)]
    csv = r._csv().getvalue()
    assert csv.startswith("\ufeffName,County,Alarms") and "<b>齐鲁化工</b>" in csv
    r.by = "county"
    assert r.table.value["Name"].tolist() == ["历下区"]
    r.start = r.end = day - timedelta(days=1)
    assert r.table.value.empty and r.empty.visible


def test_feed_status_cards_and_quarantine(rt, source):
    from sources.ingest.feed import FeedIngest

    ingest = FeedIngest(url="ws://127.0.0.1:9/<script>", store=rt.store, hub=rt.hub)
    rt.store.insert("quarantine", __import__("pandas").DataFrame({
        "feed": ["f", "f"], "received_at": [T0, T0 + timedelta(seconds=1)],
        "reason": ["bad_json", "unknown_sensor"], "raw": ["{<b>", "{}"]}))
    fs = FeedStatus(source=source, ingests=[ingest], lang="en")
    html = fs.cards_html()
    assert "Disconnected" in html and "&lt;script&gt;" in html and "<script>" not in html
    assert fs.quarantine.value.reason.tolist() == ["unknown_sensor", "bad_json"]
    fs.reason.value = "bad_json"
    assert fs.quarantine.value.raw.tolist() == ["{<b>"]
    assert "No feed" in FeedStatus(source=source, lang="en").cards_html()
