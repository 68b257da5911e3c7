"""Feed ingest: every type stored exactly once, duplicates, resume, several feeds at once."""
from __future__ import annotations

import json

import numpy as np
import pytest

from sources.hub import Hub
from sources.ingest.feed import FeedIngest, with_since
from sources.ingest.seqs import SeqIntervals, load_intervals
from tests.conftest import wait_until
from tests.sources.feed_servers import TS, ScriptedFeed, abort, batch, msg, sending, stored_seqs


@pytest.fixture
def ingests():
    """Start ingests with short timings; every one is stopped at the end."""
    started: list[FeedIngest] = []

    def make(url, store, hub=None, **params) -> FeedIngest:
        params = {"flush_interval": 0.05, "backoff_initial": 0.05, "backoff_max": 0.5, **params}
        ingest = FeedIngest(url=url, store=store, hub=hub, **params)
        started.append(ingest)
        return ingest.start()

    yield make
    for ingest in started:
        ingest.stop()


@pytest.fixture
def sensors(store) -> list[str]:
    return store.arrow("SELECT sensor_id FROM sensors ORDER BY sensor_id LIMIT 3").column(0).to_pylist()


def test_with_since_keeps_other_parameters():
    assert with_since("ws://h:1/feed", -1) == "ws://h:1/feed?since=-1"
    assert with_since("ws://h:1/feed?token=a&since=4", 9) == "ws://h:1/feed?token=a&since=9"


def test_seq_intervals():
    iv = SeqIntervals()
    assert iv.max is None and not iv.contains(np.array([1])).any()
    iv.add(np.array([5, 6, 7]))
    iv.add(np.array([8, 9]))  # continues the last interval
    iv.add(np.array([1, 2, 20]))
    assert list(zip(iv.starts, iv.ends, strict=True)) == [(1, 2), (5, 9), (20, 20)]
    assert iv.contains(np.array([0, 1, 3, 5, 9, 10, 20, 21])).tolist() == [
        False, True, False, True, True, False, True, False]
    iv.add(np.array([3, 4, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19]))
    assert list(zip(iv.starts, iv.ends, strict=True)) == [(1, 20)] and iv.count == 20


def test_every_type_stored_once_and_published(store, ingests, sensors):
    county, lon, lat = store.arrow(
        "SELECT county_code, lon, lat FROM counties ORDER BY county_code LIMIT 1").to_pylist()[0].values()
    messages = [
        msg(1, sensors[0], 10.5), msg(2, sensors[1], 20.0, gateway="g1"),
        {"type": "hotspot", "seq": 3, "ts": TS, "id": "H1", "lon": lon, "lat": lat,
         "confidence": 80, "satellite": "FY-3D", "frp": 3.5},
        {"type": "quake", "seq": 4, "ts": "2026-11-28T08:00:00+08:00", "id": "Q1", "lon": lon,
         "lat": lat, "depth_km": 10, "magnitude": 2.4},
        {"type": "warning", "seq": 5, "ts": TS, "id": "W1", "msg_type": "Alert",
         "event": "rainstorm", "level": "yellow", "headline": "暴雨黄色预警", "area": [county],
         "effective": TS, "expires": TS + 3_600_000},
        {"type": "incident", "seq": 6, "ts": TS, "id": "I1", "kind": "fire", "lon": lon,
         "lat": lat, "title": "<script>火</script>", "level": "red", "status": "open"},
    ]
    update = {**messages[4], "seq": 7, "msg_type": "Update", "level": "orange"}
    closed = {**messages[5], "seq": 8, "status": "closed"}
    hub = Hub()
    sub = hub.subscribe()
    seen = []
    feed_script = sending(batch(messages), json.dumps(update), json.dumps(closed))
    with ScriptedFeed([feed_script]) as server:
        ingest = ingests(server.url, store, hub)
        ingest.add_listener(lambda topic, table: seen.append((topic, table.num_rows)))
        wait_until(lambda: ingest.status()["stored"] == 8, message="8 messages stored")
    r = store.df("SELECT * FROM readings ORDER BY seq")
    assert r["seq"].tolist() == [1, 2] and r["feed"].unique().tolist() == [server.url]
    assert r["value"].tolist() == [10.5, 20.0] and str(r["ts"].dt.tz) != "None"
    h = store.df("SELECT * FROM hotspots")
    assert h["hotspot_id"].tolist() == ["H1"] and json.loads(h["extra"][0]) == {"frp": 3.5}
    assert store.scalar("SELECT magnitude FROM quakes") == 2.4
    w = store.df("SELECT * FROM warnings ORDER BY version")
    assert w["version"].tolist() == [1, 2] and w["msg_type"].tolist() == ["Alert", "Update"]
    assert set(w["source"]) == {"feed"} and set(w["sender"]) == {server.url}
    assert list(w["area_codes"][0]) == [county]
    inc = store.df("SELECT * FROM incidents ORDER BY seq")
    assert inc["status"].tolist() == ["open", "closed"]
    assert inc["county_code"].tolist() == [county, county]
    assert inc["title"][0] == "<script>火</script>"  # stored as sent; views escape it
    topics = {m.topic for m in sub.drain()[0]}
    assert "feed_status" in topics  # the feed-status panels hear about the feed each second
    topics.discard("feed_status")
    assert topics == {"reading", "hotspot", "quake", "warning", "incident"}
    assert {t for t, _ in seen} == topics
    status = ingest.status()
    assert status["last_seq"] == 8 and status["rejected"] == 0 and status["received"] == 8
    for key in ("url", "connected", "duplicates", "rejected_by_reason", "last_error", "lag_s",
                "rate_per_s", "reconnects", "last_message_at"):
        assert key in status


def test_duplicates_are_dropped_and_late_seqs_accepted(store, ingests, sensors):
    s = sensors[0]
    first = batch(msg(i, s) for i in range(10, 20))
    again = batch(msg(i, s) for i in range(15, 25))  # 15..19 again
    late = batch([msg(5, s), msg(12, s), msg(5, s)])  # 5 never stored; 12 stored; 5 twice
    with ScriptedFeed([sending(first, again, late)]) as server:
        ingest = ingests(server.url, store)
        wait_until(lambda: ingest.stored == 16, message="16 distinct seqs stored")
        wait_until(lambda: ingest.duplicates == 7)
    assert stored_seqs(store, server.url) == [5, *range(10, 25)]
    assert ingest.status()["rejected"] == 0


def test_resume_asks_since_the_last_persisted_seq(store, ingests, sensors):
    s = sensors[0]

    async def replaying(ws, since):  # a feed that honours since= over seqs 0..99
        for start in range(since + 1, 100, 10):
            await ws.send(batch(msg(i, s) for i in range(start, min(start + 10, 100))))
            if start >= 40 and since < 0:
                ws.transport.abort()  # dropped mid-stream the first time
                return
        await ws.wait_closed()

    with ScriptedFeed([replaying]) as server:
        ingest = ingests(server.url, store)
        wait_until(lambda: ingest.stored == 100, message="all 100 stored after the drop")
        assert server.sinces[0] == -1 and server.sinces[1] >= 39
        ingest.stop()
        assert stored_seqs(store, server.url) == list(range(100))
        # a new ingest (a restarted console) resumes after the highest persisted seq
        again = ingests(server.url, store)
        wait_until(lambda: len(server.sinces) == 3)
        assert server.sinces[2] == 99 and again.intervals.max == 99
    assert stored_seqs(store, server.url) == list(range(100))


def test_demo_feed_dropped_connections_lose_nothing(store, ingests):
    from data.simulate import DemoFeed, read_registry

    feed = DemoFeed(read_registry(store.path), speed=300, seed=3).start()
    try:
        ingest = ingests(feed.url, store)
        for n in range(1, 4):
            before = ingest.stored
            wait_until(lambda b=before, n=n: ingest.stored > b + 500 and ingest.connected
                       and ingest.connections == n, timeout=20)
            feed.drop_connections()
        feed.pause()
        wait_until(lambda: ingest.status()["last_seq"] == feed.last_seq and ingest.connected
                   and ingest.connections == 4, timeout=20, message="caught up after the drops")
        assert ingest.reconnects >= 3
        seqs = stored_seqs(store, feed.url)
        assert seqs == list(range(feed.first_seq, feed.last_seq + 1))
        assert ingest.status()["rejected"] == 0
    finally:
        feed.stop()


def test_several_feeds_at_once(store, ingests):
    from data.simulate import DemoFeed, read_registry

    registry = read_registry(store.path)
    feeds = [DemoFeed(registry, speed=200, seed=i).start() for i in range(3)]
    try:
        running = [ingests(f.url, store) for f in feeds]
        wait_until(lambda: all(i.stored > 300 for i in running), timeout=20)
        feeds[1].drop_connections()
        for f in feeds:
            f.pause()
        for f, i in zip(feeds, running, strict=True):
            wait_until(lambda f=f, i=i: i.intervals.max == f.last_seq, timeout=20)
            assert stored_seqs(store, f.url) == list(range(f.first_seq, f.last_seq + 1))
    finally:
        for f in feeds:
            f.stop()


def test_listener_errors_are_counted_and_never_stop_the_ingest(store, ingests, sensors):
    calls = []

    def broken(topic, table):
        calls.append(table.num_rows)
        raise RuntimeError("alarm engine bug")

    frames = [batch([msg(i, sensors[0])]) for i in range(5)]
    with ScriptedFeed([sending(*frames[:2], then=abort), sending(*frames)]) as server:
        ingest = ingests(server.url, store, flush_interval=0.01)
        ingest.add_listener(broken)
        wait_until(lambda: ingest.stored == 5)
    assert ingest.status()["listener_errors"] >= 1 and sum(calls) >= 3


def test_stop_writes_the_pending_batch(store, ingests, sensors):
    with ScriptedFeed([sending(batch(msg(i, sensors[1]) for i in range(50)))]) as server:
        ingest = ingests(server.url, store, flush_interval=9)
        wait_until(lambda: ingest.received == 50)
        assert store.scalar("SELECT count(*) FROM readings") == 0
        ingest.stop()
    assert store.scalar("SELECT count(*) FROM readings") == 50
    assert not ingest.status()["connected"]


def test_intervals_loaded_with_gaps_and_islands(store, sensors):
    import pyarrow as pa

    seqs = [*range(10), *range(20, 25), 40]
    store.insert("readings", pa.table({
        "feed": ["ws://x/feed"] * len(seqs), "seq": pa.array(seqs, pa.int64()),
        "ts": pa.array([TS * 1000] * len(seqs), pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        "sensor_id": [sensors[0]] * len(seqs), "value": [1.0] * len(seqs)}))
    store.execute("INSERT INTO hotspots VALUES ('ws://x/feed', 10, now(), 'h', 1, 1, 1, 's', NULL, NULL)")
    iv = load_intervals(store, "ws://x/feed")
    assert list(zip(iv.starts.tolist(), iv.ends.tolist(), strict=True)) == [(0, 10), (20, 24), (40, 40)]
    assert load_intervals(store, "ws://other/feed").max is None


def test_memory_is_capped_for_gappy_seqs_and_late_ones_are_checked_in_the_store(
        store, ingests, sensors):
    s = sensors[0]
    odd = [msg(i, s) for i in range(1, 400, 2)]  # 200 runs of one seq each
    late = [msg(3, s), msg(4, s), msg(399, s), msg(401, s)]  # 3 stored long ago, 4 never
    with ScriptedFeed([sending(batch(odd[:100]), batch(odd[100:]), batch(late))]) as server:
        ingest = FeedIngest(url=server.url, store=store, flush_interval=0.02)
        ingest.writer.intervals.max_intervals = 40
        ingest.start()
        ingest.writer.intervals.max_intervals = 40
        try:
            wait_until(lambda: ingest.stored == 202, message=f"{ingest.status()}")
            assert len(ingest.intervals) <= 40 and ingest.intervals.floor > 3
            assert ingest.duplicates == 2
        finally:
            ingest.stop()
    assert stored_seqs(store, server.url) == sorted([*range(1, 400, 2), 4, 401])
    again = load_intervals(store, server.url, max_rows=50)
    assert again.floor is not None and again.max == 401 and len(again) <= 50


def test_the_same_url_twice_into_one_store_is_refused(store, ingests):
    with ScriptedFeed([sending()]) as server:
        ingests(server.url, store)
        with pytest.raises(ValueError, match="already ingested"):
            FeedIngest(url=server.url, store=store).start()
