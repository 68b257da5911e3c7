"""The console with no page at all: a real feed ingest -> alarm engine -> store and hub, the
alarm timer forgetting alarms officers closed, warnings expiring, and a stop that leaves no
thread behind."""
from __future__ import annotations

import datetime as dt
import threading
import time

import pytest

from bench.alarm_latency import BenchFeed
from sources.console import Console
from tests.conftest import wait_until

from .alarm_registry import make_alarm_store


@pytest.fixture
def feed():
    f = BenchFeed()
    yield f
    f.stop()


@pytest.mark.slow
def test_a_console_without_pages_raises_alarms_and_expires_warnings(tmp_path, feed):
    """Nothing of dashboards/ is imported: the console alone runs the alarm engine, its
    timer and the warning expiry (removing a page removes only that page)."""
    before = {t.ident for t in threading.enumerate()}
    console = Console(store=make_alarm_store(tmp_path / "svc.duckdb"), feeds=[feed.url],
                      load_layers=False, snapshot_interval_s=0, malloc_trim_s=0.5).start()
    try:
        rt = console
        sub = rt.hub.subscribe(["alarm", "warning"])
        now = int(time.time() * 1000)
        seqs = feed.next_seqs(3)
        feed.send([{"type": "reading", "seq": seqs[0], "ts": now, "sensor_id": "T1", "value": 50},
                   {"type": "reading", "seq": seqs[1], "ts": now + 1, "sensor_id": "T1",
                    "value": 92.5},
                   {"type": "reading", "seq": seqs[2], "ts": now + 2, "sensor_id": "NOPE",
                    "value": 1}])
        wait_until(lambda: rt.store.scalar("SELECT count(*) FROM alarms") == 1, timeout=15)
        assert rt.store.scalar("SELECT kind FROM alarms") == "hi_hi"
        changes = wait_until(lambda: [d for m in sub.drain()[0] if m.topic == "alarm"
                                      for d in m.payload], timeout=5)
        assert changes[0]["change"] == "raise" and changes[0]["sensor_id"] == "T1"
        # an officer closes it while the value is still high: the timer makes the engine
        # forget it, and the next breaching reading raises a new alarm
        desk = console.alarms
        desk.acknowledge(1, "a")
        desk.dispose(1, "a", "note")
        desk.close(1, "a")
        wait_until(lambda: console.alarm_engine.open_alarms() == {}, timeout=5)
        seq = feed.next_seqs(1)[0]
        feed.send([{"type": "reading", "seq": seq, "ts": now + 3, "sensor_id": "T1",
                    "value": 93}])
        wait_until(lambda: rt.store.scalar("SELECT count(*) FROM alarms") == 2, timeout=15)
        # a warning issued for a second expires by itself: the expiry service publishes it
        issued = dt.datetime.now(dt.UTC)
        w = console.warnings.issue(event="rainstorm", level="blue", headline="短时暴雨",
                                   counties=["370102"], effective=issued,
                                   expires=issued + dt.timedelta(seconds=1), sender="值班员")
        expired = wait_until(lambda: [d for m in sub.drain()[0] if m.topic == "warning"
                                      for d in m.payload if d.get("status") == "expired"],
                             timeout=5)
        assert expired[0]["warning_id"] == w["warning_id"]
        health = console.health()
        assert health["services"]["AlarmTimer"]["runs"] > 0
        assert health["services"]["WarningExpiry"]["errors"] == 0
        assert health["services"]["MemoryTrimmer"]["runs"] >= 1
        assert health["feeds"][0]["stored"] == 3 and health["feeds"][0]["rejected"] == 1
    finally:
        console.stop()
    # every thread the console started has ended: none without an owner
    left = [t for t in threading.enumerate() if t.ident not in before and t.is_alive()]
    assert not left, left


def test_the_console_imports_no_page():
    """Building and starting a console needs nothing of dashboards/ or views/."""
    import subprocess
    import sys

    code = ("import sys, sources.console, serve; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('dashboards', 'views')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_failing_start_stops_what_it_started(tmp_path):
    """A feed URL already ingested into this store is refused at start: what started before
    it is stopped again and the store is closed, no thread left."""
    before = {t.ident for t in threading.enumerate()}
    store = make_alarm_store(tmp_path / "fail.duckdb")
    console = Console(store=store, feeds=["ws://127.0.0.1:9/a", "ws://127.0.0.1:9/a"],
                      load_layers=False, snapshot_interval_s=0, malloc_trim_s=0)
    with pytest.raises(ValueError, match="already ingested"):
        console.start()
    time.sleep(0.2)
    left = [t for t in threading.enumerate() if t.ident not in before and t.is_alive()]
    assert not left, left
    from sources.store.store import Store

    Store(tmp_path / "fail.duckdb").close()  # the file is free again
