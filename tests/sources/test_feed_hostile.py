"""A hostile gateway: whatever it sends, the ingest keeps going, stores every valid message
exactly once and quarantines every bad one with its reason."""
from __future__ import annotations

import json
import time

import pytest

from sources.ingest.feed import FeedIngest
from tests.conftest import wait_until
from tests.sources.feed_servers import (
    TS,
    ScriptedFeed,
    SilentServer,
    abort,
    batch,
    idle,
    msg,
    sending,
    stored_seqs,
)


@pytest.fixture
def sensor(store) -> str:
    return store.scalar("SELECT min(sensor_id) FROM sensors")


def _reading_text(seq: int, sensor: str, value: str) -> str:
    return (f'{{"type":"reading","seq":{seq},"ts":{TS},"sensor_id":"{sensor}",'
            f'"value":{value}}}')


def test_hostile_feed(store, sensor):
    s = sensor
    bad_batch = "[" + ",".join([
        _reading_text(11, s, "1.5"),
        _reading_text(1001, s, "NaN"),
        _reading_text(1002, s, "Infinity"),
        _reading_text(1003, s, "-Infinity"),
        _reading_text(12, s, "2.5"),
        _reading_text(1004, s, "1e400"),          # a huge number: infinite once decoded
        _reading_text(1005, s, "123456789012345678901234567890"),
        _reading_text(1006, s, '"12.5"'),         # a string, not a number
        _reading_text(1007, s, "true"),           # a bool, not a number
        json.dumps(msg(1008, "NO-SUCH-SENSOR")),
        json.dumps({"type": "telepathy", "seq": 1009, "ts": TS}),
        json.dumps({"type": "reading", "ts": TS, "sensor_id": s, "value": 1}),  # no seq
        json.dumps({"type": "quake", "seq": 1010, "ts": TS, "id": "Q", "lon": 117, "lat": 36,
                    "depth_km": 5, "magnitude": 12}),
        json.dumps({"type": "hotspot", "seq": 1011, "ts": TS, "id": "H", "lon": 250, "lat": 36,
                    "confidence": 50, "satellite": "x"}),
        "[1, 2]",
        _reading_text(13, s, "3.5"),
    ]) + "]"
    huge = "[" + _reading_text(5000, s, "1.0") + "," + \
        json.dumps("x" * (20 * 1024 * 1024)) + "]"  # a 20 MiB frame
    first = sending(
        batch(msg(i, s) for i in range(1, 11)),
        "this is not JSON {",
        bad_batch,
        batch([msg(3, s), msg(4, s), msg(14, s)]),   # 3 and 4 again: duplicates
        json.dumps(msg(0, s)),                      # seq going backwards, never stored: kept
        batch([msg(15, s)]),
        huge,
        then=idle,
    )

    async def second(ws, since):  # dropped mid-batch: 21..25 sent, 26..30 never
        await ws.send(batch(msg(i, s) for i in range(since + 1, 21)))
        await ws.send(batch(msg(i, s) for i in range(21, 26)))
        await abort(ws, since)

    async def third(ws, since):  # sends, then accepts and never sends again
        await ws.send(batch(msg(i, s) for i in range(since + 1, 31)))
        await idle(ws, since)

    fourth = sending(batch(msg(i, s) for i in range(31, 36)))
    with ScriptedFeed([first, second, third, fourth]) as server:
        ingest = FeedIngest(url=server.url, store=store, flush_interval=0.05,
                            backoff_initial=0.05, backoff_max=0.3, idle_timeout=1.5).start()
        try:
            wait_until(lambda: ingest.intervals.max == 35, timeout=30,
                       message=f"all valid messages stored: {ingest.status()}")
            assert server.sinces[:4] == [-1, 15, 25, 30]
            wait_until(lambda: "no frame for 1.5 s" in (ingest.last_error or ""), timeout=5)
            status = ingest.status()
        finally:
            ingest.stop()
    assert stored_seqs(store, server.url) == list(range(36))
    assert status["duplicates"] == 2 and status["reconnects"] >= 3
    quarantined = store.df("SELECT reason, raw FROM quarantine WHERE feed = ?", [server.url])
    reasons = quarantined["reason"].tolist()
    expected = {
        "malformed_json": 1, "non_finite: value": 4, "out_of_range: value": 1,
        "wrong_type: value": 2, "unknown_sensor: NO-SUCH-SENSOR": 1, "unknown_type": 1,
        "missing_field: seq": 1, "out_of_range: magnitude": 1, "out_of_range: lon": 1,
        "not_an_object": 1, "frame_too_large": 1,
    }
    for reason, n in expected.items():
        assert reasons.count(reason) == n, (reason, reasons)
    assert len(reasons) == sum(expected.values())
    assert status["rejected"] == len(reasons)
    assert status["rejected_by_reason"]["non_finite"] == 4
    raw = dict(zip(reasons, quarantined["raw"], strict=True))
    assert raw["malformed_json"] == "this is not JSON {"
    assert "NO-SUCH-SENSOR" in raw["unknown_sensor: NO-SUCH-SENSOR"]
    assert max(len(r.encode()) for r in quarantined["raw"]) <= 64 * 1024


def test_a_server_that_never_answers_does_not_hang_the_ingest(store):
    with SilentServer() as silent:
        ingest = FeedIngest(url=silent.url, store=store, open_timeout=0.3,
                            backoff_initial=0.05, backoff_max=0.2).start()
        try:
            wait_until(lambda: ingest.reconnects >= 2, timeout=15)
            status = ingest.status()
            assert not status["connected"] and "Timeout" in status["last_error"]
        finally:
            began = time.monotonic()
            ingest.stop()
            assert time.monotonic() - began < 5


def test_an_unreachable_feed_is_retried_with_back_off(store):
    from tests.conftest import free_port

    port = free_port()
    ingest = FeedIngest(url=f"ws://127.0.0.1:{port}/feed", store=store,
                        backoff_initial=0.05, backoff_max=0.2).start()
    try:
        wait_until(lambda: ingest.reconnects >= 3, timeout=10)
        assert not ingest.status()["connected"]
        assert ingest.status()["last_error"]
    finally:
        ingest.stop()


def test_no_frame_raises_out_of_the_ingest_or_stops_its_writer(store, sensor):
    """Property: random frames through the ingest's own parse → batch → write path."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    ingest = FeedIngest(url="ws://property/feed", store=store)
    ingest.writer.load()
    ingest._sensors = ingest.writer.sensors
    texts = st.text(max_size=12)
    anything = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | texts,
                            lambda c: st.lists(c, max_size=3) | st.dictionaries(texts, c, max_size=3),
                            max_leaves=8)
    message = st.fixed_dictionaries({
        "type": st.sampled_from(["reading", "hotspot", "quake", "warning", "incident", "?"]),
        "seq": st.integers(-2, 50), "ts": st.sampled_from([TS, "2026-11-28T08:00:00+08:00", "x"]),
    }, optional={"sensor_id": st.sampled_from([sensor, "nope"]) | anything,
                 "value": st.floats() | anything, "id": texts | anything,
                 "lon": st.floats(-200, 200), "lat": st.floats(-100, 100),
                 "confidence": st.floats(-10, 110), "satellite": texts, "depth_km": st.floats(),
                 "magnitude": st.floats(-3, 11), "msg_type": st.sampled_from(["Alert", "Cancel"]),
                 "event": texts, "level": st.sampled_from(["red", "blue", "pink"]),
                 "headline": texts, "area": st.lists(texts, max_size=2) | anything,
                 "effective": st.just(TS), "expires": st.just(TS), "kind": texts,
                 "title": texts, "status": st.sampled_from(["open", "closed"]), "x": anything})

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(message, max_size=8) | anything | st.binary(max_size=30))
    def run(frame):
        text = frame if isinstance(frame, bytes) else json.dumps(frame, allow_nan=True)
        ingest.on_frame(text)
        batch = ingest.take_batch()
        if batch is not None:
            ingest.writer.write(batch)
        assert ingest.writer.write_errors == 0, ingest.writer.last_error

    run()
    assert ingest.received > 0
    seqs = stored_seqs(store, "ws://property/feed")
    assert len(seqs) == len(set(seqs))  # exactly once, whatever came


def test_a_failed_write_is_replayed_never_skipped(store, sensor):
    """The store refuses a batch (the table is gone for a moment): the ingest reconnects,
    asks since the last persisted seq, and stores everything once when the store is back."""
    async def replaying(ws, since):
        for start in range(since + 1, 60, 10):
            await ws.send(batch(msg(i, sensor) for i in range(start, min(start + 10, 60))))
        await ws.wait_closed()

    with ScriptedFeed([sending(batch(msg(i, sensor) for i in range(10)), then=idle),
                       replaying]) as server:
        ingest = FeedIngest(url=server.url, store=store, flush_interval=0.02,
                            backoff_initial=0.05, backoff_max=0.2).start()
        try:
            wait_until(lambda: ingest.stored == 10)
            store.execute("ALTER TABLE readings RENAME TO readings_away")
            try:
                ingest.force_reconnect()  # the second connection's batches now fail
                wait_until(lambda: ingest.status()["write_errors"] >= 1, timeout=10)
            finally:
                store.execute("ALTER TABLE readings_away RENAME TO readings")
            wait_until(lambda: ingest.stored == 60, timeout=20, message=f"{ingest.status()}")
            # the failed batches were never counted as stored: the next connection asked
            # since 9 again, and got them back
            assert server.sinces[:3] == [-1, 9, 9]
        finally:
            ingest.stop()
    assert stored_seqs(store, server.url) == list(range(60))
