"""MonitoringSource on hand-made readings: rainfall classes and accumulation, surface, water
levels, the landslide rule, fire danger and the county risk rules."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from sources.warnings.monitoring import MonitoringSource, idw, level_of, worst

from .warnings_store import T0, add_readings, hourly, make_store


@pytest.fixture
def wstore(tmp_path):
    s = make_store(tmp_path / "m.duckdb")
    yield s
    s.close()


@pytest.fixture
def wet(wstore):
    """R1: 3 mm/h for 24 h (hourly gauge); R2: 3 mm/h reported every 10 min for 24 h;
    river 11 m (warning 10), reservoir 49 m (limit 50); hot, windy, dry-ish weather."""
    add_readings(wstore, [
        *hourly("rain-R1", [3.0] * 24),
        *hourly("rain-R2", [3.0] * 144, step_s=600),
        *hourly("lvl-H1", [9.0, 10.5, 11.0], step_s=600),
        *hourly("lvl-K1", [48.0, 49.0], step_s=600),
        *hourly("t-W1", [20.0, 36.0, 30.0], step_s=600),
        *hourly("h-W1", [60.0, 25.0, 40.0], step_s=600),
        *hourly("w-W1", [5.0, 18.0, 6.0], step_s=600),
    ])
    return MonitoringSource(store=wstore)


def by(df, col, key):
    return df.set_index(col).loc[key]


def test_accumulation_and_classes(wet):
    rain = wet.rainfall("24h")
    assert by(rain, "sensor_id", "rain-R1")["rain_mm"] == pytest.approx(72.0)
    assert by(rain, "sensor_id", "rain-R2")["rain_mm"] == pytest.approx(72.0)  # 144 × 3 × 600/3600
    assert list(rain["rain_class"]) == [3, 3]  # 50 ≤ 72 < 100: 暴雨
    one = wet.rainfall("1h")
    assert by(one, "sensor_id", "rain-R1")["rain_mm"] == pytest.approx(3.0)
    assert by(one, "sensor_id", "rain-R2")["rain_mm"] == pytest.approx(3.0)
    assert list(one["rain_class"]) == [1, 1]
    assert list(wet.rainfall("now")["rain_mm"]) == [3.0, 3.0]
    # replay: twelve hours earlier the 24 h total covers only 12 h of rain
    early = wet.rainfall("24h", at=T0 - dt.timedelta(hours=12))
    assert by(early, "sensor_id", "rain-R1")["rain_mm"] == pytest.approx(36.0)  # 12 × 3
    with pytest.raises(ValueError, match="window"):
        wet.rainfall("2h")


def test_class_edges():
    from sources.warnings.monitoring import RAIN_CLASSES

    edges = np.searchsorted(RAIN_CLASSES["24h"], [0, 9.9, 10, 24.9, 25, 50, 100, 249, 250],
                            side="right")
    assert list(edges) == [0, 0, 1, 1, 2, 3, 4, 4, 5]


def test_surface_is_clipped_to_the_province(wet):
    xs, ys, values = wet.rain_surface("24h", nx=40, ny=30)
    assert values.shape == (30, 40)
    assert np.nanmin(values) == pytest.approx(72.0) and np.nanmax(values) == pytest.approx(72.0)
    inside = np.isfinite(values)
    assert 0.5 < inside.mean() <= 1.0
    assert idw([0, 1], [0, 0], [0, 10], np.array([0.0, 0.5]), np.array([0.0, 0.0]))[1] == \
        pytest.approx(5.0)


def test_water_levels_and_hydrograph(wet):
    w = wet.water_levels()
    river, reservoir = by(w, "station_id", "H1"), by(w, "station_id", "K1")
    assert river["level_m"] == 11.0 and river["over"] and river["state"] == "over_warning"
    assert reservoir["level_m"] == 49.0 and not reservoir["over"] and reservoir["state"] == "normal"
    h = wet.hydrograph("H1")
    assert list(h["readings"]["value"]) == [9.0, 10.5, 11.0]
    assert h["station"]["warning_level"] == 10.0


def test_landslide_rule_and_quake_chain(wet):
    pts = wet.landslide_risk()
    p1, p2 = by(pts, "point_id", 1), by(pts, "point_id", 2)
    assert p1["ratio"] == pytest.approx(72 / 50) and p1["level"] == "yellow"  # 1 ≤ 1.44 < 1.5
    assert p2["ratio"] == pytest.approx(72 / 100) and p2["level"] == "blue"   # 0.6 ≤ 0.72 < 1
    quake = pd.DataFrame([{"feed": "t", "seq": 1, "ts": T0 - dt.timedelta(hours=2),
                           "quake_id": "q1", "lon": 117.3, "lat": 36.3, "depth_km": 10.0,
                           "magnitude": 4.5, "extra": None}])
    wet.store.insert("quakes", quake)
    pts = wet.landslide_risk()
    assert by(pts, "point_id", 1)["level"] == "orange"  # raised one step by the quake
    assert by(pts, "point_id", 2)["level"] == "blue"    # ≈ 60 km away: unchanged
    q = wet.quakes()
    assert q.iloc[0]["hours_ago"] == pytest.approx(2.0)


def test_county_risk_rules(wet):
    risk = wet.county_risk().set_index("county_code")
    assert risk.loc["370101", "flood"] == "blue"     # rain24 72 ≥ 50
    assert risk.loc["370102", "flood"] == "orange"   # river above its warning level
    assert set(risk["gale"]) == {"yellow"}           # max wind 18 ≥ 17.2
    assert set(risk["heat"]) == {"yellow"}           # max 36 ≥ 35
    assert set(risk["freezing"]) == {"none"}
    assert set(risk["drought"]) == {"none"}          # it rained
    assert risk.loc["370102", "worst"] == "orange"
    assert set(risk["fire_level"]) == {"none"}       # ≥ 5 mm in 24 h: wet fuel


def test_dry_county_drought_and_fire(wstore):
    add_readings(wstore, [
        # the first reading (T0 − 24 h) is outside the 24 h window but starts the history
        *hourly("t-W1", [0.0, -12.0, 22.0], step_s=43200),
        *hourly("h-W1", [30.0, 30.0, 25.0], step_s=43200),
        *hourly("w-W1", [2.0, 2.0, 9.0], step_s=43200),
        *hourly("rain-R1", [0.0, 0.0, 0.0], step_s=43200),
    ])
    src = MonitoringSource(store=wstore)
    risk = src.county_risk().set_index("county_code")
    assert set(risk["drought"]) == {"yellow"}        # no rain, lowest RH 25 < 30
    assert set(risk["freezing"]) == {"orange"}       # min −12 ≤ −10
    # T 22 → 3, RH 25 → 2×4, wind 9 → 4, one dry day → 1: 16 = orange
    assert set(risk["fire_index"]) == {16} and set(risk["fire_level"]) == {"orange"}


def test_level_helpers():
    assert level_of(12, (10.8, 17.2, 24.5, 32.7)) == "blue"
    assert level_of(float("nan"), (1, 2, 3, 4)) == "none"
    assert level_of(-11, (0, -5, -10, -15), below=True) == "orange"
    assert worst(["none", "yellow", "blue"]) == "yellow" and worst([]) == "none"
