"""The alarm services as serve.py starts them: a real feed ingest -> engine -> store and hub;
the timer forgets alarms officers closed."""
from __future__ import annotations

import time

import pytest

from bench.alarm_latency import BenchFeed
from dashboards.alarms import start_services
from sources.alarms.desk import AlarmSource
from sources.runtime import Runtime
from tests.conftest import wait_until

from .alarm_registry import make_alarm_store


@pytest.fixture
def feed():
    f = BenchFeed()
    yield f
    f.stop()


@pytest.mark.slow
def test_ingest_to_alarm_end_to_end(tmp_path, feed):
    from sources.ingest.feed import FeedIngest

    rt = Runtime(store=make_alarm_store(tmp_path / "svc.duckdb"))
    ingest = FeedIngest(url=feed.url, store=rt.store, hub=rt.hub)
    rt.ingests = [ingest]
    ingest.start()
    rt.on_stop(ingest.stop)
    try:
        services = start_services(rt)
        assert start_services(rt) is services  # built once
        sub = rt.hub.subscribe(["alarm"])
        now = int(time.time() * 1000)
        seqs = feed.next_seqs(3)
        feed.send([{"type": "reading", "seq": seqs[0], "ts": now, "sensor_id": "T1", "value": 50},
                   {"type": "reading", "seq": seqs[1], "ts": now + 1, "sensor_id": "T1",
                    "value": 92.5},
                   {"type": "reading", "seq": seqs[2], "ts": now + 2, "sensor_id": "NOPE",
                    "value": 1}])
        wait_until(lambda: rt.store.scalar("SELECT count(*) FROM alarms") == 1, timeout=15)
        assert rt.store.scalar("SELECT kind FROM alarms") == "hi_hi"
        changes = wait_until(lambda: [d for m in sub.drain()[0] for d in m.payload], timeout=5)
        assert changes[0]["change"] == "raise" and changes[0]["sensor_id"] == "T1"
        # an officer closes it while the value is still high: the engine forgets it, and
        # the next breaching reading raises a new alarm
        desk = AlarmSource(store=rt.store, hub=rt.hub)
        desk.acknowledge(1, "a")
        desk.dispose(1, "a", "note")
        desk.close(1, "a")
        wait_until(lambda: services.engine.open_alarms() == {}, timeout=5)
        seq = feed.next_seqs(1)[0]
        feed.send([{"type": "reading", "seq": seq, "ts": now + 3, "sensor_id": "T1",
                    "value": 93}])
        wait_until(lambda: rt.store.scalar("SELECT count(*) FROM alarms") == 2, timeout=15)
    finally:
        rt.stop()
