"""The feed message parser: every protocol type, every kind of bad input, and properties."""
from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sources.ingest.messages import RAW_LIMIT, cut_raw, parse_frame, parse_ts, reason_code

SENSORS = frozenset({"T1", "P1"})
TS = "2026-11-28T08:00:00+08:00"
TS_US = 1795824000 * 1_000_000  # 2026-11-28T00:00:00Z


def reading(seq=1, **kw):
    return {"type": "reading", "seq": seq, "ts": TS, "sensor_id": "T1", "value": 1.5, **kw}


def frame(*messages) -> str:
    return json.dumps(list(messages) if len(messages) != 1 else messages[0])


def reasons(parsed) -> list[str]:
    return [r for r, _ in parsed.rejects]


def test_valid_reading_single_and_batch():
    p = parse_frame(frame(reading(5)), SENSORS)
    assert (p.seq, p.ts_us, p.sensor_id, p.value) == ([5], [TS_US], ["T1"], [1.5])
    p = parse_frame(frame(reading(1), reading(2, ts=1795824000123, value=3)), SENSORS)
    assert p.seq == [1, 2] and p.ts_us == [TS_US, 1795824000123000] and p.value == [1.5, 3.0]
    assert p.rejects == [] and p.newest_ts_us == 1795824000123000


@pytest.mark.parametrize("bad, reason", [
    ({"seq": 1}, "missing_field: type"),
    (reading(value=None), "missing_field: value"),
    (reading(value="1.5"), "wrong_type: value"),
    (reading(value=True), "wrong_type: value"),  # a bool is not a number
    (reading(value=float("nan")), "non_finite: value"),
    (reading(value=float("inf")), "non_finite: value"),
    (reading(value=1e300), "out_of_range: value"),
    (reading(value=10**40), "out_of_range: value"),
    (reading(seq=-1), "out_of_range: seq"),
    (reading(seq=1.0), "wrong_type: seq"),
    (reading(seq=True), "wrong_type: seq"),
    (reading(seq=2**64), "out_of_range: seq"),
    (reading(sensor_id="NOPE"), "unknown_sensor: NOPE"),
    (reading(sensor_id=7), "wrong_type: sensor_id"),
    (reading(ts="2026-11-28T08:00:00"), "bad_time: ts has no UTC offset"),
    (reading(ts="yesterday"), "bad_time: ts"),
    (reading(ts=10**16), "out_of_range: ts"),
    (reading(ts=1.5), "wrong_type: ts"),
    ({"type": "gossip", "seq": 3, "ts": TS}, "unknown_type"),
    ({"type": ["reading"], "seq": 3}, "unknown_type"),
    ([1, 2], "not_an_object"),
])
def test_bad_messages_are_refused_with_their_reason_and_neighbours_kept(bad, reason):
    p = parse_frame(json.dumps([reading(1), bad, reading(2)]), SENSORS)
    assert p.seq == [1, 2]
    assert reasons(p) == [reason]
    assert p.rejects[0][1]  # the raw text is kept


def test_malformed_json_rejects_the_frame_only():
    p = parse_frame('[{"type": "reading", "seq": 1', SENSORS)
    assert reasons(p) == ["malformed_json"] and p.accepted == 0
    assert p.rejects[0][1].startswith('[{"type"')


def test_nan_in_a_batch_costs_only_that_message():
    nan = '{"type":"reading","seq":2,"ts":' + json.dumps(TS) + ',"sensor_id":"T1","value":NaN}'
    text = "[" + ",".join([json.dumps(reading(1)), nan, json.dumps(reading(3))]) + "]"
    p = parse_frame(text, SENSORS)
    assert p.seq == [1, 3] and reasons(p) == ["non_finite: value"]
    assert "NaN" in p.rejects[0][1]


def test_lone_surrogate_is_refused_not_stored():
    text = '[{"type":"hotspot","seq":1,"ts":1795824000000,"id":"\\ud800","lon":117,"lat":36,' \
           '"confidence":50,"satellite":"FY-3D"}, ' + json.dumps(reading(2)) + "]"
    p = parse_frame(text, SENSORS)
    assert p.seq == [2] and reasons(p) == ["bad_text: invalid unicode"]
    p.rejects[0][1].encode("utf-8")  # quarantinable


def test_every_event_type():
    msgs = [
        {"type": "hotspot", "seq": 1, "ts": TS, "id": "H1", "lon": 117.1, "lat": 36.5,
         "confidence": 80, "satellite": "FY-3D", "frp": 12.5},
        {"type": "quake", "seq": 2, "ts": TS, "id": "Q1", "lon": 118.0, "lat": 36.0,
         "depth_km": 10, "magnitude": 2.1},
        {"type": "warning", "seq": 3, "ts": TS, "id": "W1", "msg_type": "Alert",
         "event": "rainstorm", "level": "orange", "headline": "暴雨橙色预警",
         "area": ["370102", "370103"], "effective": TS, "expires": "2026-11-28T20:00:00+08:00"},
        {"type": "warning", "seq": 4, "ts": TS, "id": "W2", "msg_type": "Cancel",
         "event": "gale", "level": "blue", "headline": "h",
         "area": {"type": "Polygon", "coordinates": [[[117, 36], [118, 36], [118, 37], [117, 36]]]},
         "effective": TS, "expires": TS},
        {"type": "incident", "seq": 5, "ts": TS, "id": "I1", "kind": "fire", "lon": 117.0,
         "lat": 36.6, "title": "<b>仓库火灾</b>", "level": "red", "status": "open"},
    ]
    p = parse_frame(json.dumps(msgs), SENSORS)
    assert p.rejects == []
    kinds = [k for k, _ in p.events]
    assert kinds == ["hotspot", "quake", "warning", "warning", "incident"]
    hot = p.events[0][1]
    assert hot["hotspot_id"] == "H1" and json.loads(hot["extra"]) == {"frp": 12.5}
    assert p.events[2][1]["area_codes"] == ["370102", "370103"]
    assert json.loads(p.events[3][1]["area_geojson"])["type"] == "Polygon"
    assert p.events[4][1]["title"] == "<b>仓库火灾</b>" and p.events[4][1]["extra"] is None


@pytest.mark.parametrize("field, value, reason", [
    ("lon", 181, "out_of_range: lon"),
    ("lat", -91, "out_of_range: lat"),
    ("confidence", 101, "out_of_range: confidence"),
    ("id", "", "out_of_range: id"),
    ("satellite", None, "missing_field: satellite"),
])
def test_bad_hotspots(field, value, reason):
    m = {"type": "hotspot", "seq": 1, "ts": TS, "id": "H1", "lon": 117.1, "lat": 36.5,
         "confidence": 80, "satellite": "FY-3D", field: value}
    assert reasons(parse_frame(json.dumps(m), SENSORS)) == [reason]


@pytest.mark.parametrize("field, value, reason", [
    ("magnitude", 10.5, "out_of_range: magnitude"),
    ("magnitude", -3, "out_of_range: magnitude"),
    ("depth_km", -1, "out_of_range: depth_km"),
])
def test_bad_quakes(field, value, reason):
    m = {"type": "quake", "seq": 1, "ts": TS, "id": "Q", "lon": 117.1, "lat": 36.5,
         "depth_km": 5, "magnitude": 2, field: value}
    assert reasons(parse_frame(json.dumps(m), SENSORS)) == [reason]


@pytest.mark.parametrize("field, value, reason", [
    ("msg_type", "Retract", "bad_value: msg_type"),
    ("level", "purple", "bad_value: level"),
    ("area", "370102", "wrong_type: area"),
    ("area", [], "out_of_range: area"),
    ("area", {"type": "Point", "coordinates": [1, 2]}, "bad_value: area"),
    ("expires", "soon", "bad_time: expires"),
])
def test_bad_warnings(field, value, reason):
    m = {"type": "warning", "seq": 1, "ts": TS, "id": "W", "msg_type": "Alert", "event": "gale",
         "level": "blue", "headline": "h", "area": ["370102"], "effective": TS, "expires": TS,
         field: value}
    assert reasons(parse_frame(json.dumps(m), SENSORS)) == [reason]


def test_incident_status_must_be_known():
    m = {"type": "incident", "seq": 1, "ts": TS, "id": "I", "kind": "fire", "lon": 117,
         "lat": 36, "title": "t", "level": "red", "status": "burning"}
    assert reasons(parse_frame(json.dumps(m), SENSORS)) == ["bad_value: status"]


def test_time_formats():
    assert parse_ts("2026-11-28T00:00:00Z") == TS_US
    assert parse_ts("2026-11-28T08:00:00.5+08:00") == TS_US + 500_000
    assert parse_ts(1795824000000) == TS_US


def test_raw_is_cut_at_64_kib_and_valid_utf8():
    raw = cut_raw("预" * RAW_LIMIT)
    assert len(raw.encode("utf-8")) <= RAW_LIMIT
    p = parse_frame("{" + "x" * (RAW_LIMIT * 2), SENSORS)
    assert len(p.rejects[0][1].encode("utf-8")) <= RAW_LIMIT
    assert reason_code("missing_field: value") == "missing_field"


# ---------------------------------------------------------------------- properties
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8),
                                                                      children, max_size=4),
    max_leaves=10,
)
field_values = {
    "type": st.sampled_from(["reading", "hotspot", "quake", "warning", "incident", "x"]),
    "seq": st.integers(min_value=-5, max_value=2**64) | json_values,
    "ts": st.sampled_from([TS, 1795824000000, "bad", None, 1.5]) | json_values,
    "sensor_id": st.sampled_from(["T1", "P1", "X"]) | json_values,
    "value": st.floats(allow_nan=True, allow_infinity=True) | json_values,
    "lon": st.floats(-200, 200) | json_values, "lat": st.floats(-100, 100) | json_values,
    "area": st.lists(st.text(max_size=6), max_size=3) | json_values,
}
messages = st.fixed_dictionaries({}, optional={**field_values, **{
    k: json_values for k in ("id", "confidence", "satellite", "depth_km", "magnitude",
                             "msg_type", "event", "level", "headline", "effective",
                             "expires", "kind", "title", "status", "extra")}})


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(messages | json_values, max_size=6))
def test_no_frame_raises_and_every_message_is_accounted_for(batch):
    text = json.dumps(batch, allow_nan=True)
    p = parse_frame(text, SENSORS)
    assert p.accepted + len(p.rejects) == len(batch)
    for reason, raw in p.rejects:
        assert reason and isinstance(raw, str)
        raw.encode("utf-8")
    for v in p.value:
        assert v == v and abs(v) <= 1e15
    for seq in p.seq:
        assert type(seq) is int and 0 <= seq < 2**63


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200))
def test_arbitrary_bytes_never_raise(data):
    p = parse_frame(data, SENSORS)
    assert p.accepted == 0 and len(p.rejects) >= 1  # nothing valid in noise: refused, kept
