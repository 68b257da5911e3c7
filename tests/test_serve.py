"""serve.py end to end: every route answers, /health tells the truth, SIGTERM stops cleanly."""
from __future__ import annotations

import json

import pytest

import dashboards
from tests.conftest import wait_until

pytestmark = pytest.mark.slow


def test_every_route_is_served_and_health_is_json(serve):
    console = serve("--no-demo-feed")
    for cls in dashboards.discover():
        status, body, _ = console.get(f"/{cls.route}")
        assert status == 200, (cls.route, body[:300])
        assert b"<html" in body.lower()
    status, body, headers = console.get("/health")
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    data = json.loads(body)
    assert data["status"] == "ok"
    assert data["db"] == str(console.db)
    assert data["feeds"] == []
    # memory for the operators: the process's RSS (what the soak watches) and DuckDB's share
    import psutil

    mem = data["memory"]
    rss = psutil.Process(console.proc.pid).memory_info().rss / 2**20
    assert abs(mem["rss_mb"] - rss) < 0.2 * rss, (mem, rss)
    assert 0 < mem["duckdb_mb"] < mem["rss_mb"]
    assert sum(mem["duckdb_by_tag_mb"].values()) == pytest.approx(mem["duckdb_mb"], abs=0.5)
    assert all(k.islower() for k in mem["duckdb_by_tag_mb"])
    # RSS splits into anonymous (heaps) and file-backed (code, libraries) pages
    assert abs(mem["rss_anon_mb"] + mem["rss_file_mb"] - mem["rss_mb"]) < 0.05 * mem["rss_mb"]
    assert mem["rss_anon_mb"] > mem["duckdb_mb"]
    if mem["malloc_used_mb"] is not None:  # glibc: its heap is part of the RSS
        assert 0 < mem["malloc_used_mb"] + mem["malloc_free_mb"] < mem["rss_mb"]
    assert isinstance(mem["arrow_mb"], float) and mem["arrow_mb"] < mem["rss_mb"]
    assert mem["sessions"] == 0  # pages fetched over plain HTTP, none opened in a browser
    # what was built before serving is out of the collector's sight (modules, registries)
    assert mem["gc_frozen_objects"] > 100_000, mem


HANG_ON_STOP = """
import time
from sources.service import Service

def hang_on_stop():  # a service that never finishes stopping
    time.sleep(600)

class Hanging(Service):
    interval_s = None

    def run_once(self):
        pass

    def stop(self, timeout=None):
        hang_on_stop()

_build = serve.build_console

def build_console(*args, **kwargs):
    console = _build(*args, **kwargs)
    console.add_service(Hanging())
    return console

serve.build_console = build_console
"""


def test_a_stop_that_hangs_is_ended_with_every_stack_logged(serve):
    """A console stuck while stopping would hold the store's file forever: past
    --stop-timeout it logs every thread's stack (what was stuck) and exits by force."""
    import time

    from serve import EXIT_STUCK

    console = serve("--no-demo-feed", "--stop-timeout", "2", prelude=HANG_ON_STOP)
    started = time.monotonic()
    rc = console.stop(timeout=30)
    took = time.monotonic() - started
    log = console.log.read_text()
    assert rc == EXIT_STUCK, log[-3000:]
    assert 2 <= took < 15, took
    assert "did not stop within 2 s" in log
    assert "hang_on_stop" in log and "Thread 0x" in log  # the stuck frame, named
    from sources.store.store import Store

    Store(console.db).close()  # the file is free again


def test_sigusr1_logs_every_stack_and_keeps_serving(serve):
    import signal

    console = serve("--no-demo-feed")
    console.proc.send_signal(signal.SIGUSR1)
    wait_until(lambda: "Thread 0x" in console.log.read_text(), timeout=10,
               message="no stack dump in the log")
    assert console.health()["status"] == "ok"
    assert console.stop() == 0


def test_unknown_route_is_404(serve):
    console = serve("--no-demo-feed")
    status, _, _ = console.get("/no-such-page")
    assert status == 404


def test_sigterm_stops_cleanly_and_releases_the_store(serve):
    console = serve("--no-demo-feed")
    assert console.stop() == 0, console.log.read_text()[-6000:]
    # the file is released: another process (this one) can open it read-write
    from sources.store.store import Store

    Store(console.db).close()


def test_demo_feed_flows_into_health(serve):
    console = serve("--speed", "10")
    feeds = console.health()["feeds"]
    assert len(feeds) == 1 and feeds[0]["url"].startswith("ws://")
    first = wait_until(lambda: console.health()["feeds"][0]["received"] > 0, timeout=30)
    assert first
    received = console.health()["feeds"][0]["received"]
    wait_until(lambda: console.health()["feeds"][0]["received"] > received, timeout=30,
               message="received does not grow")
    assert console.health()["feeds"][0]["connected"] is True
