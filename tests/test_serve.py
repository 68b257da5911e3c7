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
    # RSS splits into anonymous (heaps) and file-backed (code, libraries) pages
    assert abs(mem["rss_anon_mb"] + mem["rss_file_mb"] - mem["rss_mb"]) < 0.05 * mem["rss_mb"]
    assert mem["rss_anon_mb"] > mem["duckdb_mb"]
    if mem["malloc_used_mb"] is not None:  # glibc: its heap is part of the RSS
        assert 0 < mem["malloc_used_mb"] + mem["malloc_free_mb"] < mem["rss_mb"]
    assert mem["arrow_mb"] is not None and mem["arrow_mb"] >= 0
    assert mem["sessions"] == 0  # pages fetched over plain HTTP, none opened in a browser


def test_unknown_route_is_404(serve):
    console = serve("--no-demo-feed")
    status, _, _ = console.get("/no-such-page")
    assert status == 404


def test_sigterm_stops_cleanly_and_releases_the_store(serve):
    console = serve("--no-demo-feed")
    assert console.stop() == 0
    # the file is released: another process (this one) can open it read-write
    from sources.store import Store

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
