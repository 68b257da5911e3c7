"""Exercises played inside the simulated province (no server): what a run sends, how its
sensors cross their limits for the console's own alarm engine, pause/stop, the storm's rate."""
from __future__ import annotations

import shutil
import textwrap
from collections import Counter, defaultdict

import numpy as np
import orjson
import pyarrow as pa
import pytest

from data.drill_control import DrillControl, DrillStateError, storm_scenario
from data.province_model import Province
from data.scenario import ScenarioError, load
from data.simulate import read_registry
from sources.ingest.messages import parse_frame

START = 1_796_000_000.0


@pytest.fixture(scope="module")
def registry(tiny_db_template):
    return read_registry(tiny_db_template)


def province(registry, seed: int = 3) -> tuple[Province, DrillControl]:
    seq = [0]

    def take(n):
        seq[0] += n
        return seq[0] - n
    p = Province(registry, seed=seed, start=START, next_seq=take)
    return p, DrillControl(p, registry)


def play(p: Province, seconds: float, dt: float = 2.0) -> tuple[list[dict], list[dict]]:
    """Step the province; (real readings, exercise-or-event messages) as dicts."""
    real, other = [], []
    for _ in range(int(seconds / dt)):
        r, e = p.step(dt)
        real.extend(orjson.loads(m) for _, m in r)
        other.extend(orjson.loads(m) for _, m in e)
    return real, other


def exercise(messages: list[dict], drill_id: str | None = None) -> list[dict]:
    return [m for m in messages if m.get("exercise") and (drill_id is None
                                                           or m["drill_id"] == drill_id)]


@pytest.fixture(scope="module")
def rainstorm(registry):
    p, ctl = province(registry)
    status = ctl.start("linyi-rainstorm")
    real, other = play(p, 3700)
    return p, ctl, status, real, other


def test_a_run_goes_from_start_to_finish(rainstorm):
    p, ctl, status, real, other = rainstorm
    assert status["state"] == "running" and status["drill_id"].startswith("DR-")
    end = ctl.status()
    assert end["state"] == "finished" and end["steps_done"] == end["steps_total"] == 28
    assert end["position_s"] >= end["duration_s"]


def test_every_message_of_the_run_is_tagged_and_in_a_frame_of_its_own(rainstorm, registry):
    p, ctl, status, real, other = rainstorm
    drill = status["drill_id"]
    ex = exercise(other)
    assert ex and all(m["drill_id"] == drill and m["scenario"] == "linyi-rainstorm" for m in ex)
    assert not any("exercise" in m for m in real)  # real readings never carry the tag
    by_type = Counter(m["type"] for m in ex)
    assert by_type["warning"] == 8 and by_type["incident"] == 5 and by_type["reading"] > 100
    for m in ex:
        if m["type"] == "warning":
            assert m["status"] == "Exercise" and m["headline"].startswith("【演练】")
        if m["type"] == "incident":
            assert m["title"].startswith("【演练】") and {"deaths", "injured", "missing"} <= set(m)
    seqs = [m["seq"] for m in real + other]
    assert len(seqs) == len(set(seqs))  # one seq space with the province
    sensors = set(registry.sensors["sensor_id"])
    parsed = parse_frame(orjson.dumps(ex), sensors)
    assert parsed.rejects == [] and parsed.accepted == len(ex)  # the ingest takes them


def test_rain_gauges_rivers_and_reservoir_cross_their_limits(rainstorm, registry):
    p, ctl, status, real, other = rainstorm
    s = registry.sensors.set_index("sensor_id")
    scenario = load("linyi-rainstorm", registry)
    driven = {st.args["sensor_id"] for st in scenario.steps if st.do == "ramp"}
    peak = defaultdict(float)
    for m in exercise(other):
        if m["type"] == "reading":
            peak[m["sensor_id"]] = max(peak[m["sensor_id"]], m["value"])
    for sid in driven:
        assert peak[sid] >= s.at[sid, "hi"], sid
    kinds = {s.at[sid, "kind"]: peak[sid] >= s.at[sid, "hi_hi"] for sid in driven}
    assert kinds["rain"] and kinds["river_level"]  # red: past hi-hi / the guarantee level
    # its rain cell reaches gauges it does not drive, and the run marks them too
    rained = {m["sensor_id"] for m in exercise(other) if m["type"] == "reading"} - driven
    assert any(peak[sid] > 30 for sid in rained)


def test_the_run_closes_what_it_opened_and_hands_back(rainstorm):
    p, ctl, status, real, other = rainstorm
    ex = exercise(other)
    last = {}
    for m in ex:
        if m["type"] in ("warning", "incident"):
            last[m["id"]] = m.get("msg_type") or m["status"]
    assert last and set(last.values()) <= {"Cancel", "closed"}
    assert not any(c.drill is not None for c in p.cells)
    assert not p.acc_drill.any()
    _, after = play(p, 120)
    assert not exercise(after)


def test_the_engine_raises_a_red_alarm_from_the_leak(registry, tiny_db, tmp_path):
    from sources.alarms.engine import AlarmEngine
    from sources.store.store import Store

    p, ctl = province(registry)
    run = ctl.start("dongying-leak", speed=1.0)
    _, other = play(p, 240, dt=1.0)
    ex = [m for m in exercise(other, run["drill_id"]) if m["type"] == "reading"]
    path = tmp_path / "engine.duckdb"
    shutil.copy2(tiny_db, path)
    store = Store(path)
    try:
        engine = AlarmEngine(store=store)
        ts = np.array([m["ts"] for m in ex], dtype=np.int64) * 1000
        changes = engine.evaluate(pa.table({
            "ts": pa.array(ts).cast(pa.timestamp("us", tz="UTC")),
            "sensor_id": [m["sensor_id"] for m in ex], "value": [m["value"] for m in ex]}))
        scenario = load("dongying-leak", registry)
        toxic = scenario.steps[1].args["sensor_id"]
        mine = [c for c in changes if c.get("sensor_id") == toxic or c["alarm_id"] in {
            x["alarm_id"] for x in changes if x.get("sensor_id") == toxic}]
        raised = [c for c in mine if c["change"] == "raise"]
        assert len(raised) == 1 and raised[0]["kind"] in ("hi", "hi_hi")
        alarm = store.df("SELECT kind, level FROM alarms WHERE alarm_id = ?",
                         [raised[0]["alarm_id"]]).iloc[0]
        assert (alarm.kind, alarm.level) == ("hi_hi", "red")
        first_hi = min(m["ts"] for m in ex if m["sensor_id"] == toxic
                       and m["value"] >= registry.sensors.set_index("sensor_id").at[toxic, "hi"])
        assert first_hi - START * 1000 < 60_000  # alive within a minute
    finally:
        store.close()


def test_pause_resume_stop(registry):
    p, ctl = province(registry)
    with pytest.raises(DrillStateError, match="no exercise"):
        ctl.pause()
    ctl.start("dongying-leak")
    play(p, 200)
    paused = ctl.pause()
    assert paused["state"] == "paused"
    _, other = play(p, 120)
    assert ctl.status()["position_s"] == paused["position_s"]
    assert not [m for m in exercise(other) if m["type"] != "reading"]  # no steps while paused
    held = [m["value"] for m in exercise(other) if m["type"] == "reading"
            and m["sensor_id"] == load("dongying-leak", registry).steps[1].args["sensor_id"]]
    assert held and np.ptp(held) < 0.2 * max(held)  # the driven sensor holds its value
    with pytest.raises(DrillStateError, match="is paused"):
        ctl.start("yishui-quake")
    assert ctl.resume()["state"] == "running"
    play(p, 60)
    assert ctl.status()["position_s"] > paused["position_s"]
    sent = []
    stopped = ctl.stop(publish=lambda msgs: sent.extend(orjson.loads(m) for _, m in msgs))
    assert stopped["state"] == "stopped"
    assert [(m["type"], m["status"]) for m in sent] == [("incident", "closed")]
    assert sent[0]["drill_id"] == stopped["drill_id"]
    _, after = play(p, 60)
    assert not exercise(after)
    with pytest.raises(DrillStateError):
        ctl.resume()


def test_a_bad_or_unknown_scenario_does_not_start(registry, tmp_path):
    p, ctl = province(registry)
    with pytest.raises(ScenarioError, match="unknown scenario 'nope'"):
        ctl.start("nope")
    with pytest.raises(ScenarioError, match="speed"):
        ctl.start("storm", speed=0)
    assert ctl.status()["state"] == "idle"


def test_demo_scenario_plays_again(registry, tmp_path):
    path = tmp_path / "short.toml"
    path.write_text(textwrap.dedent("""
        title = "短演练"
        [[step]]
        at = "+00:00"
        do = "quake"
        where = "沂水县"
        magnitude = 3.1
    """), encoding="utf-8")
    p, ctl = province(registry)
    first = ctl.start(str(path), repeat=True)["drill_id"]
    _, other = play(p, 700, dt=5)
    quakes = [m for m in exercise(other) if m["type"] == "quake"]
    assert len({m["drill_id"] for m in quakes}) == 2 and quakes[0]["drill_id"] == first
    assert ctl.status()["repeat"] is True


def test_storm_rate_is_exact(registry):
    p, ctl = province(registry)
    run = ctl.start(storm_scenario(rate=400, minutes=1))
    _, first = play(p, 45, dt=0.1)
    ex = exercise(first, run["drill_id"])
    assert abs(len(ex) - 300) <= 1  # 400 a minute for 45 s
    assert Counter(m["type"] for m in ex).keys() == {"warning", "incident", "quake", "hotspot"}
    _, rest = play(p, 30, dt=0.1)
    total = len(ex) + len(exercise(rest, run["drill_id"]))
    assert 400 <= total <= 400 + 60  # and it closes what it opened
    assert ctl.status()["state"] == "finished"
    warnings = defaultdict(list)
    for m in ex + exercise(rest):
        if m["type"] == "warning":
            warnings[m["id"]].append(m["msg_type"])
    assert all(v[0] == "Alert" and v[-1] == "Cancel" for v in warnings.values())
    assert parse_frame(orjson.dumps(ex), set(registry.sensors["sensor_id"])).rejects == []
