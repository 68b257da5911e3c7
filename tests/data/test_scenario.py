"""Exercise scenarios as files: the shipped ones validate against a real tiny store, and a bad
one fails with messages that name the file, the line and the step."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from data.scenario import ScenarioError, available, compile_scenario, load, parse_duration
from data.simulate import read_registry
from tests.conftest import ROOT

SHIPPED = ["linyi-rainstorm", "dongying-leak", "yishui-quake", "storm"]


@pytest.fixture(scope="module")
def registry(tiny_db_template):
    return read_registry(tiny_db_template)


def write(tmp_path, text: str, name: str = "bad.toml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def line(path, text: str, nth: int = 1) -> int:
    """Line number of the ``nth`` line of ``path`` that holds ``text``."""
    hits = [n for n, x in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
            if text in x]
    return hits[nth - 1]


def step_line(path, nth: int) -> int:
    return line(path, "[[step]]", nth)


def errors_of(path, registry) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        compile_scenario(path, registry)
    assert str(info.value) == "\n".join(info.value.errors)
    return info.value.errors


# ---------------------------------------------------------------------- shipped
def test_the_shipped_scenarios():
    assert set(SHIPPED) <= set(available())


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_scenario_validates_on_the_tiny_store(name, registry):
    s = load(name, registry)
    assert s.title and s.steps and s.duration > 0
    assert [st.at for st in s.steps] == sorted(st.at for st in s.steps)
    assert load(name, registry) == s  # resolves the same way every time


def test_leak_drives_gas_through_hi_and_hi_hi(registry):
    s = load("dongying-leak", registry)
    sensors = registry.sensors
    kinds = {}
    for st in s.steps:
        if st.do == "ramp":
            row = sensors.iloc[st.args["sensor"]]
            kinds.setdefault(row["kind"], []).append(st.args["value"] / row["hi_hi"])
    assert max(kinds["toxic_gas"]) > 1 and max(kinds["flammable_gas"]) > 1  # beyond hi-hi
    first = next(st for st in s.steps if st.do == "ramp")
    row = sensors.iloc[first.args["sensor"]]
    assert first.args["value"] > row["hi"] and first.args["over"] <= 60  # alive within a minute
    incident = [st.args for st in s.steps if st.do == "incident"]
    assert incident[0]["kind"] == "hazchem_leak" and incident[-1]["status"] == "closed"
    assert max(i["deaths"] for i in incident) > 0 and max(i["injured"] for i in incident) > 0
    # every sensor of the leak is one installation's
    ids = {sensors.iloc[st.args["sensor"]]["installation_id"] for st in s.steps
           if st.do == "ramp"}
    assert len(ids) == 1


def test_rainstorm_goes_from_gauges_to_rivers_to_slopes(registry):
    s = load("linyi-rainstorm", registry)
    kinds = [registry.sensors.iloc[st.args["sensor"]]["kind"] for st in s.steps
             if st.do == "ramp"]
    assert kinds.index("rain") < kinds.index("river_level") < kinds.index("reservoir_level")
    rain = next(st for st in s.steps if st.do == "rain")
    assert 117.5 < rain.args["lon0"] < rain.args["lon1"] < 119.0  # west to east over Linyi
    warnings = [st.args for st in s.steps if st.do == "warning"]
    assert {w["event"] for w in warnings} == {"rainstorm", "landslide", "flood"}
    assert all(c.startswith("3713") for w in warnings for c in w["area"])
    assert [w["msg_type"] for w in warnings if w["key"] == "rain"] == [
        "Alert", "Update", "Update", "Cancel"]
    assert {st.args["kind"] for st in s.steps if st.do == "incident"} == {"landslide", "flood"}


def test_quake_with_aftershocks_on_the_fault(registry):
    s = load("yishui-quake", registry)
    q = next(st for st in s.steps if st.do == "quake").args
    assert 4 <= q["magnitude"] < 5 and len(q["aftershocks"]) == 18
    assert all(a["magnitude"] < q["magnitude"] for a in q["aftershocks"])
    times = [a["after"] for a in q["aftershocks"]]
    assert times == sorted(times) and times[-1] <= 40 * 60
    assert sum(t < 600 for t in times) > len(times) / 2  # Omori: most in the first minutes


def test_durations():
    assert parse_duration("+01:30") == 90 and parse_duration("1:00:05") == 3605
    assert parse_duration(12) == 12
    for bad in ("5 min", "+1:75", "-00:10", True):
        with pytest.raises(ValueError):
            parse_duration(bad)


# ---------------------------------------------------------------------- bad ones
GOOD_HEAD = """
    title = "测试"

    [targets]
    gauge = { sensor = "rain", near = "费县" }
    plant = { installation = "any", having = ["toxic_gas"] }
"""


def test_unknown_sensor_kind_names_the_target_line(tmp_path, registry):
    path = write(tmp_path, """
        title = "测试"

        [targets]
        gauge = { sensor = "rain", near = "费县" }
        probe = { sensor = "radiation", county = "费县" }

        [[step]]
        at = "+00:00"
        do = "ramp"
        sensor = "probe"
        to = 10
    """)
    errors = errors_of(path, registry)
    assert errors[0] == (f"{path}:{line(path, 'probe =')}: target 'probe': unknown sensor "
                         "kind 'radiation' (one of tank_level, temperature, pressure, "
                         "toxic_gas, flammable_gas, rain, river_level, reservoir_level, "
                         "air_temperature, wind_speed, humidity)")
    assert errors[1] == (f"{path}:{step_line(path, 1)}: step 1 (+00:00, do = 'ramp'): unknown "
                         f"target 'probe' (this scenario's targets: gauge)")


def test_unknown_county_and_time_order_name_their_steps(tmp_path, registry):
    path = write(tmp_path, GOOD_HEAD + """
        [[step]]
        at = "+02:00"
        do = "ramp"
        sensor = "gauge"
        to = 40

        [[step]]
        at = "+03:00"
        do = "warning"
        id = "w"
        event = "rainstorm"
        level = "orange"
        area = ["费县", "火星县"]

        [[step]]
        at = "+01:00"
        do = "note"
        text = "too early"
    """)
    errors = errors_of(path, registry)
    assert errors == [
        f"{path}:{step_line(path, 2)}: step 2 (+03:00, do = 'warning'): unknown county '火星县'",
        f"{path}:{step_line(path, 3)}: step 3 (+01:00, do = 'note'): at +01:00 comes before "
        f"the previous step's +02:00 (steps are in time order)",
    ]


def test_value_out_of_physical_range_and_missing_limit(tmp_path, registry):
    path = write(tmp_path, GOOD_HEAD + """
        [[step]]
        at = "+00:00"
        do = "ramp"
        sensor = "gauge"
        to = 500

        [[step]]
        at = "+00:10"
        do = "ramp"
        sensor = "plant.toxic_gas"
        to = "lo * 0.5"

        [[step]]
        at = "+00:20"
        do = "ramp"
        sensor = "plant.humidity"
        to = 10

        [[step]]
        at = "+00:30"
        do = "ramp"
        sensor = "plant.toxic_gas"
        to = "hi_hi times two"
    """)
    errors = errors_of(path, registry)
    assert len(errors) == 4
    assert errors[0].startswith(f"{path}:{step_line(path, 1)}: step 1 (+00:00, do = 'ramp'): "
                                f"value 500 mm is out of the physical range of ")
    assert errors[0].endswith("(rain: 0 … 300)")
    assert errors[1].startswith(f"{path}:{step_line(path, 2)}: step 2 (+00:10, do = 'ramp'): "
                                f"sensor IN")
    assert errors[1].endswith("(toxic_gas) has no lo")
    assert f"{path}:{step_line(path, 3)}: step 3" in errors[2]
    assert "has no humidity sensor" in errors[2]
    assert f"{path}:{step_line(path, 4)}: step 4" in errors[3]
    assert "bad value 'hi_hi times two'" in errors[3]


def test_unknown_action_key_and_order_of_messages(tmp_path, registry):
    path = write(tmp_path, GOOD_HEAD + """
        [[step]]
        at = "+00:00"
        do = "explode"

        [[step]]
        at = "+00:00"
        do = "release"
        sensor = "gauge"
        ovre = "01:00"

        [[step]]
        at = "+00:05"
        do = "warning"
        id = "w"
        msg_type = "Update"
        level = "red"

        [[step]]
        at = "5 minutes"
        do = "note"
        text = "?"

        [[step]]
        at = "+00:06"
        do = "incident"
        id = "i"
        status = "closed"
    """)
    errors = errors_of(path, registry)
    assert errors[0] == (f"{path}:{step_line(path, 1)}: step 1 (+00:00, do = 'explode'): "
                         f"unknown action 'explode' (one of ramp, release, rain, warning, "
                         f"incident, quake, hotspots, storm, note)")
    assert errors[1] == (f"{path}:{step_line(path, 2)}: step 2 (+00:00, do = 'release'): "
                         f"unknown key 'ovre' (did you mean 'over'?)")
    assert errors[2] == (f"{path}:{step_line(path, 3)}: step 3 (+00:05, do = 'warning'): "
                         f"warning 'w' is not issued yet: the first message is an Alert")
    assert errors[3] == (f"{path}:{step_line(path, 4)}: step 4: bad at '5 minutes': write "
                         f"'+mm:ss' or '+h:mm:ss'")
    assert errors[4].startswith(f"{path}:{step_line(path, 5)}: step 5 (+00:06, "
                                f"do = 'incident'): incident 'i' is not open yet")


def test_not_toml_and_no_steps(tmp_path, registry):
    path = write(tmp_path, 'title = "x"\n[targets\n')
    assert errors_of(path, registry)[0].startswith(f"{path}:2: not valid TOML")
    path = write(tmp_path, 'titel = "x"\n', name="empty.toml")
    assert errors_of(path, registry) == [
        f"{path}:1: unknown top-level key 'titel' (title, description, targets, step)",
        f"{path}:1: a scenario needs a title",
        f"{path}:1: a scenario needs at least one [[step]]"]


def test_ambiguous_county_and_point_outside(tmp_path, registry):
    path = write(tmp_path, """
        title = "测试"

        [targets]
        centre = { county = "市中区" }
        sea = { point = [125.0, 36.0] }
        jinan = { county = "济南市/市中区" }

        [[step]]
        at = "+00:00"
        do = "quake"
        where = "jinan"
        magnitude = 3.0
    """)
    errors = errors_of(path, registry)
    assert errors == [
        f"{path}:{line(path, 'centre =')}: target 'centre': county '市中区' is ambiguous "
        f"(370103, 370402): write 'city/county' or the code",
        f"{path}:{line(path, 'sea =')}: target 'sea': point [125.0, 36.0] is outside the "
        f"province"]


def test_cli_check(tmp_path, tiny_db_template):
    ok = subprocess.run([sys.executable, "-m", "data.scenario", "check", "dongying-leak",
                         "--db", str(tiny_db_template)], capture_output=True, text=True,
                        cwd=ROOT, timeout=120)
    assert ok.returncode == 0 and ok.stdout.startswith("OK dongying-leak: 16 steps, +26:00")
    bad = write(tmp_path, GOOD_HEAD + '\n[[step]]\nat = "+00:00"\ndo = "ramp"\n'
                                      'sensor = "gauge"\nto = -1\n')
    out = subprocess.run([sys.executable, "-m", "data.scenario", "check", str(bad), "--db",
                          str(tiny_db_template)], capture_output=True, text=True, cwd=ROOT,
                         timeout=120)
    assert out.returncode == 1
    assert out.stdout.startswith(f"{bad}:{step_line(bad, 1)}: step 1 (+00:00, do = 'ramp'): "
                                 f"value -1")
    unknown = subprocess.run([sys.executable, "-m", "data.scenario", "check", "nope", "--db",
                              str(tiny_db_template)], capture_output=True, text=True, cwd=ROOT,
                             timeout=120)
    assert unknown.returncode == 1 and "unknown scenario 'nope' (available: " in unknown.stdout


def test_a_sensor_by_role_in_an_enterprise_named(tmp_path, registry):
    inst = registry.installations
    name = inst["enterprise"].iloc[0]
    first = inst[inst["enterprise"] == name]["installation_id"].min()
    path = write(tmp_path, f"""
        title = "测试"

        [targets]
        plant = {{ installation = "any", enterprise = "{name}" }}

        [[step]]
        at = "+00:00"
        do = "ramp"
        sensor = "plant.flammable_gas"
        to = "hi_hi + 5"
        over = "00:30"
    """, name="named.toml")
    step = compile_scenario(path, registry).steps[0]
    row = registry.sensors.iloc[step.args["sensor"]]
    assert (row["installation_id"], row["kind"]) == (first, "flammable_gas")
    assert step.args["value"] == row["hi_hi"] + 5
    bad = write(tmp_path, path.read_text(encoding="utf-8").replace(name, "不存在的化工公司"),
                name="unnamed.toml")
    assert errors_of(bad, registry) == [
        f"{bad}:{line(bad, 'plant =')}: target 'plant': no installation of enterprise "
        f"'不存在的化工公司'",
        f"{bad}:{step_line(bad, 1)}: step 1 (+00:00, do = 'ramp'): unknown target 'plant' in "
        f"'plant.flammable_gas'"]
