"""A small, hand-made registry for the alarm tests (no dependency on the demo generator)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa

from sources.store.store import Store

T0 = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)


def make_alarm_store(path: Path | str) -> Store:
    """A store with 2 counties, 2 enterprises, 2 installations, 4 sensors and 1 station."""
    store = Store(path)
    store.insert("counties", pd.DataFrame({
        "county_code": ["370102", "370103"], "name": ["历下区", "市中区"],
        "city": ["济南市", "济南市"], "city_code": ["370100", "370100"],
        "lon": [117.07, 117.0], "lat": [36.67, 36.65], "area_km2": [100.0, 280.0],
        "population": [800_000, 700_000],
    }))
    store.insert("enterprises", pd.DataFrame({
        "enterprise_id": [1, 2], "name": ["<b>齐鲁化工</b>", "泉城石化"],
        "industry": ["hazchem", "hazchem"], "size": ["large", "medium"],
        "county_code": ["370102", "370103"], "lon": [117.1, 117.0], "lat": [36.7, 36.6],
        "risk_level": ["red", "orange"], "is_major_hazard": [True, True],
    }))
    store.insert("installations", pd.DataFrame({
        "installation_id": [11, 21], "enterprise_id": [1, 2], "name": ["1号罐区", "反应釜A"],
        "kind": ["tank_farm", "reactor"], "hazard_grade": [1, 2],
        "lon": [117.1, 117.0], "lat": [36.7, 36.6],
    }))
    store.insert("stations", pd.DataFrame({
        "station_id": ["R1"], "kind": ["river"], "name": ["泺口站"], "county_code": ["370103"],
        "lon": [117.0], "lat": [36.7],
    }))
    nan = float("nan")
    store.insert("sensors", pd.DataFrame({
        "sensor_id": ["T1", "P1", "G1", "L1", "RL1"],
        "kind": ["temperature", "pressure", "toxic_gas", "tank_level", "river_level"],
        "unit": ["°C", "MPa", "ppm", "m", "m"],
        "lon": [117.1] * 5, "lat": [36.7] * 5,
        "county_code": ["370102", "370102", "370103", "370102", "370103"],
        "installation_id": pd.array([11, 11, 21, 11, None], dtype="Int32"),
        "enterprise_id": pd.array([1, 1, 2, 1, None], dtype="Int32"),
        "station_id": [None, None, None, None, "R1"],
        "period_s": [1.0, 1.0, 2.0, 1.0, 60.0],
        "normal": [50.0, 1.0, 0.0, 5.0, 20.0],
        "lo_lo": [10.0, 0.2, nan, 1.0, nan],
        "lo": [20.0, 0.5, nan, 2.0, nan],
        "hi": [80.0, 2.0, 25.0, 8.0, 25.0],
        "hi_hi": [90.0, 2.5, 50.0, 9.0, 27.0],
        "deadband": [2.0, 0.1, 1.0, 0.2, 0.1],
    }))
    return store


def readings(rows: list[tuple[str, float, float]], *, feed: str = "ws://test/feed",
             t0: datetime = T0, seq0: int = 0) -> pa.Table:
    """An Arrow batch like the ingest's from ``(sensor_id, seconds after t0, value)``."""
    return pa.table({
        "feed": [feed] * len(rows),
        "seq": pa.array(range(seq0, seq0 + len(rows)), pa.int64()),
        "ts": pa.array([t0 + timedelta(seconds=s) for _, s, _ in rows],
                       pa.timestamp("us", tz="UTC")),
        "sensor_id": [r[0] for r in rows],
        "value": pa.array([float(r[2]) for r in rows], pa.float64()),
    })
