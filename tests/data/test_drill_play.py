"""Exercises through the real demo feed: the simulator as a subprocess, a websockets client,
the loopback control interface on the feed's port, the event storm's rate."""
from __future__ import annotations

import shutil
import time
from datetime import datetime

import pytest

from data.scenario import SCENARIO_DIR, load
from data.simulate import read_registry
from tests.conftest import wait_until
from tests.data.feed_client import Collector, control, start_simulator, stop_simulator


@pytest.fixture(scope="module")
def registry(tiny_db_template):
    return read_registry(tiny_db_template)


def test_scenario_plays_through_the_feed_exactly_once(tiny_db, registry):
    limits = registry.sensors.set_index("sensor_id")
    toxic = load("dongying-leak", registry).steps[1].args["sensor_id"]
    # 30 × 4: the 26 minutes of the leak in 13 seconds
    proc, url = start_simulator(tiny_db, "--speed", "30", "--scenario", "dongying-leak",
                                "--scenario-speed", "4", "--seed", "5")
    try:
        status, run = control(url, "/scenario/status")
        assert status == 200 and run["state"] == "running" and run["name"] == "dongying-leak"
        drill = run["drill_id"]
        first = Collector(url)
        wait_until(lambda: any(m["type"] == "incident" for m in first.of(drill)), timeout=30)
        first.close()  # a disconnect in the middle of the exercise ...
        second = Collector(url, since=first.last_seq())  # ... and the resume
        wait_until(lambda: control(url, "/scenario/status")[1]["state"] == "finished",
                   timeout=60, interval=0.2)
        time.sleep(0.5)
        second.close()
        everything = Collector(url)  # the whole history once more, from the start
        wait_until(lambda: everything.count() >= first.count() + second.count() - 5_000,
                   timeout=30)
        wait_until(lambda: {m["seq"] for m in everything.of(drill)}
                   >= {m["seq"] for m in first.of(drill) + second.of(drill)}, timeout=30)
        everything.close()
    finally:
        assert stop_simulator(proc) == 0
    a, b = first.of(drill), second.of(drill)
    seqs = [m["seq"] for m in a + b]
    assert len(seqs) == len(set(seqs))  # exactly once across the resume
    assert set(seqs) == {m["seq"] for m in everything.of(drill)}  # nothing lost either
    ex = a + b
    assert all(m["exercise"] is True and m["scenario"] == "dongying-leak" for m in ex)
    assert {m["drill_id"] for m in everything.of()} == {drill}
    values = [m["value"] for m in ex if m["type"] == "reading" and m["sensor_id"] == toxic]
    hi, hi_hi = limits.at[toxic, "hi"], limits.at[toxic, "hi_hi"]
    assert any(hi <= v < hi_hi for v in values) and max(values) >= hi_hi  # hi, then hi-hi
    assert values[-1] < hi  # and back once the leak is stopped
    incident = [m for m in ex if m["type"] == "incident"]
    assert [m["status"] for m in incident] == ["open", "open", "open", "closed"]
    assert incident[1]["deaths"] == 1 and incident[1]["missing"] == 2
    assert not any(m.get("exercise") for m in first.messages + second.messages
                   if m.get("drill_id") != drill)


def test_control_interface(tiny_db, tmp_path):
    scenarios = tmp_path / "scenarios"
    scenarios.mkdir()
    shutil.copy2(SCENARIO_DIR / "dongying-leak.toml", scenarios)
    (scenarios / "broken.toml").write_text(
        'title = "坏的"\n\n[[step]]\nat = "+00:00"\ndo = "ramp"\nsensor = {sensor = "rain", '
        'county = "费县"}\nto = 999\n', encoding="utf-8")
    proc, url = start_simulator(tiny_db, "--speed", "20", "--scenario-dir", str(scenarios))
    feed = Collector(url)
    try:
        status, body = control(url, "/scenarios")
        assert status == 200
        by_name = {s["name"]: s for s in body["scenarios"]}
        assert by_name["dongying-leak"]["ok"] and by_name["dongying-leak"]["steps"] == 16
        assert not by_name["broken"]["ok"]
        assert f"{scenarios / 'broken.toml'}:3: step 1" in by_name["broken"]["error"]
        assert control(url, "/scenario/status") == (200, {"state": "idle", "drill_id": None,
                                                          "name": None})
        status, body = control(url, "/scenario/start?name=broken", "POST")
        assert status == 400 and "out of the physical range" in body["error"]
        assert body["errors"][0].startswith(f"{scenarios / 'broken.toml'}:3: step 1 ")
        status, body = control(url, "/scenario/start?name=nope", "POST")
        assert status == 400 and "unknown scenario 'nope'" in body["error"]
        assert control(url, "/scenario/start?name=../../etc/passwd", "POST")[0] == 400
        assert control(url, "/scenario/start?name=dongying-leak", "GET")[0] == 405
        assert control(url, "/scenario/stop", "POST")[0] == 409
        assert control(url, "/nothing")[0] == 404
        # the feed kept serving through all that
        n = feed.count()
        wait_until(lambda: feed.count() > n + 100, timeout=20)

        status, run = control(url, "/scenario/start?name=dongying-leak&speed=2", "POST")
        assert status == 200 and run["state"] == "running" and run["speed"] == 2
        drill = run["drill_id"]
        assert control(url, "/scenario/start?name=dongying-leak", "POST")[0] == 409
        wait_until(lambda: any(m["type"] == "incident" for m in feed.of(drill)), timeout=30)
        status, paused = control(url, "/scenario/pause", "POST")
        assert status == 200 and paused["state"] == "paused"
        time.sleep(1.0)
        assert control(url, "/scenario/status")[1]["position_s"] == paused["position_s"]
        assert control(url, "/scenario/pause", "POST")[0] == 409
        status, resumed = control(url, "/scenario/resume", "POST")
        assert status == 200 and resumed["state"] == "running"
        wait_until(lambda: control(url, "/scenario/status")[1]["position_s"]
                   > paused["position_s"], timeout=10)
        status, stopped = control(url, "/scenario/stop", "POST")
        assert status == 200 and stopped["state"] == "stopped"
        # stopping closes the incident the exercise had opened
        wait_until(lambda: any(m["type"] == "incident" and m["status"] == "closed"
                               for m in feed.of(drill)), timeout=10)
        n = feed.count()
        wait_until(lambda: feed.count() > n + 100, timeout=20)
        assert control(url, "/scenario/resume", "POST")[0] == 409
    finally:
        feed.close()
        assert stop_simulator(proc) == 0


def test_storm_at_the_rate_asked(tiny_db):
    rate = 1200  # events a minute: 20 a second
    proc, url = start_simulator(tiny_db, "--storm", "--storm-rate", str(rate),
                                "--storm-minutes", "0.25")
    try:
        drill = control(url, "/scenario/status")[1]["drill_id"]
        feed = Collector(url)
        wait_until(lambda: control(url, "/scenario/status")[1]["state"] == "finished",
                   timeout=60, interval=0.2)
        time.sleep(0.5)
        feed.close()
    finally:
        assert stop_simulator(proc) == 0
    ex = feed.of(drill)
    t = sorted(datetime.fromisoformat(m["ts"]).timestamp() for m in ex)
    start = t[0]
    window = [x for x in t if start + 2 <= x < start + 10]  # eight whole seconds inside
    assert len(window) == pytest.approx(rate / 60 * 8, rel=0.2)
    assert {m["type"] for m in ex} == {"warning", "incident", "quake", "hotspot"}


def test_only_loopback_clients_reach_the_desk(registry):
    from data.simulate import DemoFeed

    class Request:
        method = "POST"
        path = "/scenario/start?name=dongying-leak"

    class Connection:
        def __init__(self, host):
            self.remote_address = (host, 40000)

        def respond(self, status, text):  # as websockets' connection builds a response
            from websockets.server import ServerProtocol

            return ServerProtocol().reject(status, text)

    feed = DemoFeed(registry)  # not started: the route alone
    assert feed._route(Connection("192.0.2.7"), Request()).status_code == 403
    assert feed.drills.status()["state"] == "idle"  # and nothing was started
    response = feed._route(Connection("127.0.0.1"), Request())
    assert response.status_code == 200 and b'"state": "running"' in response.body
    Request.path = "/feed"
    assert feed._route(Connection("192.0.2.7"), Request()) is None  # the feed is for everyone
