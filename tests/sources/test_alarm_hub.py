"""The hub under a slow, a closed and a failing subscriber: publish never blocks, overflow is seen."""
from __future__ import annotations

import threading
import time

from sources.hub import Hub


def test_slow_subscriber_never_blocks_publish_nor_others():
    hub = Hub()
    slow = hub.subscribe(["alarm"], maxsize=10)  # a tab that never drains
    fast = hub.subscribe(["alarm"], maxsize=100_000)
    t = time.perf_counter()
    for i in range(20_000):
        hub.publish("alarm", [{"alarm_id": i}])
    elapsed = time.perf_counter() - t
    assert elapsed < 2.0, f"publishing took {elapsed:.2f} s"
    got, missed = fast.drain()
    assert not missed and [m.payload[0]["alarm_id"] for m in got] == list(range(20_000))
    got, missed = slow.drain()
    # the slow one keeps the newest messages and knows it missed some: it reloads the store
    assert missed and slow.dropped == 20_000 - 10
    assert [m.payload[0]["alarm_id"] for m in got] == list(range(19_990, 20_000))
    assert slow.drain() == ([], False), "missed is reported once, then reset"


def test_closed_and_failing_subscribers_are_dropped_without_harm():
    hub = Hub()
    closed = hub.subscribe(["alarm"])
    hub.unsubscribe(closed)

    def broken_page():
        raise RuntimeError("session destroyed")

    failing = hub.subscribe(["alarm"], notify=broken_page)
    other = hub.subscribe(["alarm", "reading"])
    hub.publish("alarm", [1])
    hub.publish("reading", "batch")
    hub.publish("quake", "ignored")
    assert closed.closed and closed.drain() == ([], False)
    assert failing.closed and hub.subscribers == 1
    assert [m.topic for m in other.drain()[0]] == ["alarm", "reading"]


def test_concurrent_publishers_and_a_draining_reader():
    hub = Hub()
    sub = hub.subscribe(["reading"], maxsize=1_000_000)
    seen = []
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            seen.extend(m.payload for m in sub.drain()[0])
            time.sleep(0.001)

    def publisher(k):
        for i in range(5_000):
            hub.publish("reading", (k, i))

    r = threading.Thread(target=reader)
    r.start()
    pubs = [threading.Thread(target=publisher, args=(k,)) for k in range(4)]
    for p in pubs:
        p.start()
    for p in pubs:
        p.join()
    stop.set()
    r.join()
    seen.extend(m.payload for m in sub.drain()[0])
    assert len(seen) == 20_000 and len(set(seen)) == 20_000
    for k in range(4):  # each publisher's order is kept
        assert [i for kk, i in seen if kk == k] == list(range(5_000))
