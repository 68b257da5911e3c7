"""A hand-made store for the warnings / monitoring tests: four square counties, a few
stations and sensors, points to preview, and a helper that inserts readings (Arrow batches).

Layout (lon 117–118, lat 36–37), each county 0.5° square::

    370103 (NW)  370104 (NE)
    370101 (SW)  370102 (SE)
"""
from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa

from sources.store.store import Store

T0 = dt.datetime(2026, 11, 28, 0, 0, tzinfo=dt.UTC)
SQUARES = {"370101": (117.0, 36.0), "370102": (117.5, 36.0),
           "370103": (117.0, 36.5), "370104": (117.5, 36.5)}
NAMES = {"370101": "甲区", "370102": "乙县", "370103": "丙县", "370104": "<b>丁县</b>"}


def square(x0: float, y0: float, d: float = 0.5) -> list[list[float]]:
    return [[x0, y0], [x0 + d, y0], [x0 + d, y0 + d], [x0, y0 + d], [x0, y0]]


def make_store(path) -> Store:
    """A store with the schema and the small registry above."""
    store = Store(path)
    import pandas as pd

    counties = pd.DataFrame([
        {"county_code": c, "name": NAMES[c], "city": "测试市", "city_code": "370100",
         "lon": x + 0.25, "lat": y + 0.25, "area_km2": 2500.0, "population": 100_000 + i}
        for i, (c, (x, y)) in enumerate(SQUARES.items())])
    boundaries = pd.DataFrame([
        {"code": c, "level": "county", "name": NAMES[c], "parent_code": "370100",
         "geojson": json.dumps({"type": "Polygon", "coordinates": [square(x, y)]})}
        for c, (x, y) in SQUARES.items()])
    stations = pd.DataFrame([
        {"station_id": "R1", "kind": "rain", "name": "雨量一", "county_code": "370101",
         "lon": 117.25, "lat": 36.25},
        {"station_id": "R2", "kind": "rain", "name": "雨量二", "county_code": "370104",
         "lon": 117.75, "lat": 36.75},
        {"station_id": "H1", "kind": "river", "name": "河道一", "county_code": "370102",
         "lon": 117.75, "lat": 36.25, "river": "小清河", "warning_level": 10.0,
         "guarantee_level": 12.0},
        {"station_id": "K1", "kind": "reservoir", "name": "水库一", "county_code": "370103",
         "lon": 117.25, "lat": 36.75, "scale": "large", "flood_limit_level": 50.0,
         "normal_level": 52.0, "dam_crest_level": 56.0},
        {"station_id": "W1", "kind": "weather", "name": "气象一", "county_code": "370101",
         "lon": 117.2, "lat": 36.2},
    ])
    sensors = pd.DataFrame([
        {"sensor_id": "rain-R1", "kind": "rain", "unit": "mm", "station_id": "R1",
         "lon": 117.25, "lat": 36.25, "county_code": "370101", "period_s": 3600.0},
        {"sensor_id": "rain-R2", "kind": "rain", "unit": "mm", "station_id": "R2",
         "lon": 117.75, "lat": 36.75, "county_code": "370104", "period_s": 600.0},
        {"sensor_id": "lvl-H1", "kind": "river_level", "unit": "m", "station_id": "H1",
         "lon": 117.75, "lat": 36.25, "county_code": "370102", "period_s": 600.0},
        {"sensor_id": "lvl-K1", "kind": "reservoir_level", "unit": "m", "station_id": "K1",
         "lon": 117.25, "lat": 36.75, "county_code": "370103", "period_s": 600.0},
        {"sensor_id": "t-W1", "kind": "air_temperature", "unit": "°C", "station_id": "W1",
         "lon": 117.2, "lat": 36.2, "county_code": "370101", "period_s": 600.0},
        {"sensor_id": "h-W1", "kind": "humidity", "unit": "%", "station_id": "W1",
         "lon": 117.2, "lat": 36.2, "county_code": "370101", "period_s": 600.0},
        {"sensor_id": "w-W1", "kind": "wind_speed", "unit": "m/s", "station_id": "W1",
         "lon": 117.2, "lat": 36.2, "county_code": "370101", "period_s": 600.0},
    ])
    landslides = pd.DataFrame([
        {"point_id": 1, "name": "滑坡一", "kind": "landslide", "county_code": "370101",
         "lon": 117.26, "lat": 36.26, "scale": "small", "threatened_people": 30,
         "rain_threshold_mm": 50.0},
        {"point_id": 2, "name": "泥石流二", "kind": "debris_flow", "county_code": "370104",
         "lon": 117.74, "lat": 36.74, "scale": "large", "threatened_people": 200,
         "rain_threshold_mm": 100.0},
    ])
    enterprises = pd.DataFrame([
        {"enterprise_id": i, "name": f"企业{i}", "industry": "hazchem", "size": "small",
         "county_code": c, "lon": SQUARES[c][0] + 0.1, "lat": SQUARES[c][1] + 0.1,
         "risk_level": "yellow", "is_major_hazard": i == 1}
        for i, c in enumerate(SQUARES, start=1)])
    shelters = pd.DataFrame([
        {"shelter_id": i, "name": f"避难场所{i}", "kind": "school", "county_code": c,
         "lon": SQUARES[c][0] + 0.3, "lat": SQUARES[c][1] + 0.3, "capacity": 1000 * i}
        for i, c in enumerate(SQUARES, start=1)])
    with store.transaction() as cur:
        for table, df in (("counties", counties), ("boundaries", boundaries),
                          ("stations", stations), ("sensors", sensors),
                          ("landslide_points", landslides), ("enterprises", enterprises),
                          ("shelters", shelters)):
            store.insert(table, df, cur=cur)
    return store


def add_readings(store: Store, rows: list[tuple[dt.datetime, str, float]], feed="test") -> None:
    """Insert readings ``(ts, sensor_id, value)`` as one Arrow batch."""
    start = store.scalar("SELECT coalesce(max(seq), 0) FROM readings") + 1
    table = pa.table({
        "feed": pa.array([feed] * len(rows)),
        "seq": pa.array(range(start, start + len(rows)), pa.int64()),
        "ts": pa.array([r[0] for r in rows], pa.timestamp("us", tz="UTC")),
        "sensor_id": pa.array([r[1] for r in rows]),
        "value": pa.array([float(r[2]) for r in rows], pa.float64()),
    })
    store.insert("readings", table)


def hourly(sensor: str, values: list[float], end: dt.datetime = T0, step_s: int = 3600):
    """Readings of one sensor ending at ``end``, one per ``step_s``."""
    n = len(values)
    return [(end - dt.timedelta(seconds=step_s * (n - 1 - i)), sensor, v)
            for i, v in enumerate(values)]
