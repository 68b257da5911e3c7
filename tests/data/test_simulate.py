"""The demo feed: startup contract with serve.py, the protocol, resume, and a realistic province."""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections import Counter, defaultdict

import duckdb
import numpy as np
import orjson
import pytest

from data.province_model import Province, Registry
from data.simulate import DemoFeed, read_registry
from sources.ingest.messages import parse_frame
from tests.conftest import ROOT, arun, wait_until


def receive(url: str, *, until, timeout: float = 20) -> list[str | bytes]:
    """Frames from ``url`` until ``until(frames)`` is true."""
    from websockets.asyncio.client import connect

    async def run():
        frames = []
        async with connect(url, proxy=None, compression=None, max_size=2**24) as ws:
            while not until(frames):
                frames.append(await asyncio.wait_for(ws.recv(), timeout))
        return frames
    return arun(run())


def messages_of(frames) -> list[dict]:
    out = []
    for f in frames:
        data = orjson.loads(f)
        out.extend(data if isinstance(data, list) else [data])
    return out


@pytest.fixture(scope="module")
def registry(tiny_db_template) -> Registry:
    return read_registry(tiny_db_template)


def start_cli(db, *args) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "data.simulate", "--db", str(db), "--port", "0",
                             *args], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.startswith("READY ws://127.0.0.1:") and line.rstrip().endswith("/feed"), line
    return proc, line.split()[1]


def test_cli_says_ready_after_closing_the_store(tiny_db):
    proc, url = start_cli(tiny_db, "--speed", "50")
    try:
        # the simulator has closed the file: the console can open it read-write now
        duckdb.connect(str(tiny_db)).close()
        frames = receive(url + "?since=-1", until=lambda f: len(messages_of(f)) > 200)
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
    sensors = set(read_registry(tiny_db).sensors["sensor_id"])
    for f in frames:
        parsed = parse_frame(f, sensors)
        assert parsed.rejects == []  # the demo feed speaks the protocol exactly


def test_cli_reads_a_copy_when_the_store_is_held(tiny_db):
    held = duckdb.connect(str(tiny_db))  # as the console holds it
    try:
        proc, url = start_cli(tiny_db)
        proc.terminate()
        assert proc.wait(10) == 0
    finally:
        held.close()


def test_since_replays_exactly_what_follows(registry):
    from websockets.exceptions import InvalidStatus

    feed = DemoFeed(registry, speed=200, seed=1).start()
    try:
        wait_until(lambda: feed.history.messages > 3000)
        feed.pause()
        last = feed.last_seq
        since = feed.first_seq + 1234
        frames = receive(f"{feed.url}?since={since}",
                         until=lambda f: f and orjson.loads(f[-1]) and
                         max(m["seq"] for m in messages_of(f[-1:])) >= last)
        seqs = [m["seq"] for m in messages_of(frames)]
        assert seqs == list(range(since + 1, last + 1))
        assert all(len(orjson.loads(f)) <= 300 for f in frames if f.startswith("["))
        everything = receive(f"{feed.url}?since=-1",
                             until=lambda f: f and max(m["seq"] for m in messages_of(f[-1:])) >= last)
        assert [m["seq"] for m in messages_of(everything)] == list(range(feed.first_seq, last + 1))
        with pytest.raises(InvalidStatus):
            receive(feed.url.replace("/feed", "/other"), until=lambda f: True)
    finally:
        feed.stop()


def test_restarted_simulator_never_reuses_a_seq(registry):
    a = DemoFeed(registry, speed=100, seed=1).start()
    wait_until(lambda: a.last_seq > a.first_seq + 100)
    a.stop()
    b = DemoFeed(registry, speed=100, seed=1)
    assert b.first_seq > a.last_seq


def _simulate(registry: Registry, hours: float, dt: float, **rates):
    seq = [0]

    def take(n):
        seq[0] += n
        return seq[0] - n
    province = Province(registry, seed=5, start=1_795_824_000.0, next_seq=take, **rates)
    readings, events = [], []
    for _ in range(int(hours * 3600 / dt)):
        r, e = province.step(dt)
        readings.extend(orjson.loads(m) for _, m in r)
        events.extend(orjson.loads(m) for _, m in e)
    return province, readings, events


@pytest.fixture(scope="module")
def half_day(registry):
    """Twelve simulated hours of a part of the tiny province, with lively event rates."""
    s = registry.sensors
    plant = s[s["kind"].isin(["temperature", "pressure", "tank_level", "toxic_gas"])].head(30)
    water = s[s["kind"].isin(["rain", "river_level", "reservoir_level"])]
    small = Registry(sensors=__import__("pandas").concat([plant, water]), counties=registry.counties,
                     boundaries=registry.boundaries, landslides=registry.landslides)
    return small, *_simulate(small, 12, 120, excursions_per_hour=20, quakes_per_hour=3,
                             warnings_per_hour=2, incidents_per_hour=2)


def test_every_sensor_reports_every_period(half_day):
    small, province, readings, _ = half_day
    counts = Counter(m["sensor_id"] for m in readings)
    period = dict(zip(small.sensors["sensor_id"], small.sensors["period_s"], strict=True))
    for sid, p in period.items():
        assert abs(counts[sid] - 12 * 3600 / p) <= 2, sid
    assert len({m["seq"] for m in readings}) == len(readings)


def test_excursions_go_beyond_thresholds_and_clear(half_day):
    small, province, readings, _ = half_day
    hi = dict(zip(small.sensors["sensor_id"], small.sensors["hi"], strict=True))
    by_sensor = defaultdict(list)
    for m in readings:
        if m["sensor_id"] in hi and np.isfinite(hi[m["sensor_id"]] or np.nan):
            by_sensor[m["sensor_id"]].append(m["value"] > hi[m["sensor_id"]])
    above = [sum(v) / len(v) for v in by_sensor.values()]
    assert max(above) > 0  # some sensors went beyond hi ...
    assert np.mean(above) < 0.25  # ... but values are mostly within limits
    cleared = [v for v in by_sensor.values() if any(v) and not v[-1]]
    assert cleared  # and excursions end


def test_rain_raises_rivers_and_reservoirs(half_day):
    small, province, readings, _ = half_day
    kind = dict(zip(small.sensors["sensor_id"], small.sensors["kind"], strict=True))
    normal = dict(zip(small.sensors["sensor_id"], small.sensors["normal"], strict=True))
    rain = [m["value"] for m in readings if kind[m["sensor_id"]] == "rain"]
    rise = [m["value"] - normal[m["sensor_id"]] for m in readings
            if kind[m["sensor_id"]] in ("river_level", "reservoir_level")]
    assert min(rain) >= 0 and max(rain) > 5
    assert max(rise) > 0.05


def test_events_hotspots_quakes_warnings_incidents(half_day, registry):
    import shapely

    small, province, _, events = half_day
    by_type = defaultdict(list)
    for e in events:
        by_type[e["type"]].append(e)
    hot = by_type["hotspot"]
    assert 72 * 1 <= len(hot) <= 72 * 12  # a batch every 10 minutes, a handful each
    province_shape = shapely.union_all([shapely.from_geojson(g)
                                        for g in registry.boundaries["geojson"]])
    assert all(province_shape.buffer(0.01).contains(shapely.Point(h["lon"], h["lat"])) for h in hot)
    mags = [q["magnitude"] for q in by_type["quake"]]
    assert mags and np.mean(np.array(mags) < 3) > 0.8
    warnings = defaultdict(list)
    for w in by_type["warning"]:
        warnings[w["id"]].append(w["msg_type"])
    assert any(v[0] == "Alert" and v[-1] == "Cancel" for v in warnings.values())
    assert all(v[0] == "Alert" for v in warnings.values())
    codes = set(registry.counties["county_code"])
    assert all(set(w["area"]) <= codes for w in by_type["warning"])
    incidents = defaultdict(list)
    for i in by_type["incident"]:
        incidents[i["id"]].append(i["status"])
    assert any(v == ["open", "closed"] for v in incidents.values())
    sensors = set(small.sensors["sensor_id"])
    assert parse_frame(json.dumps(events), sensors).rejects == []


def test_injected_frames_are_served_in_order_and_replayed(registry):
    feed = DemoFeed(registry, speed=100, seed=2).start()
    try:
        wait_until(lambda: feed.history.messages > 100)
        feed.pause()
        feed.inject("not json {")
        seq = feed.allocate_seqs(1)[0]
        sensor = registry.sensors["sensor_id"].iloc[0]
        feed.inject(json.dumps({"type": "reading", "seq": seq, "ts": 1795824000000,
                                "sensor_id": sensor, "value": 1.0}), seq=seq)
        frames = receive(f"{feed.url}?since=-1", until=lambda f: f and f[-1].startswith('{"type"'))
        assert frames[-2] == "not json {"
        assert json.loads(frames[-1])["seq"] == seq == feed.last_seq
        # since= the last generated seq: both injected frames (they came after it)
        again = receive(f"{feed.url}?since={seq - 1}", until=lambda f: len(f) >= 2)
        assert again[0] == "not json {" and json.loads(again[1])["seq"] == seq
    finally:
        feed.stop()
