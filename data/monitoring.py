"""Demo registry of monitored things: major hazard installations with their sensors, rain
gauges, river stations, reservoirs, weather stations, and geological hazard points.

Thresholds follow the usual practice: tank levels and pressures have low and high limits,
temperatures high limits, gas detectors two high levels (GB/T 50493: flammable gas 25 / 50
%LEL; toxic gas 1× / 2× the occupational limit); river stations alarm at the warning and
guarantee levels, reservoirs at the flood-limit level and near the dam crest.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from data import names
from data.synth import allocate, cat, pick, scatter, short_name, town_names, uniform_in_counties

INSTALLATION_SENSORS = {  # first three sensors by installation kind; the rest at random
    "tank_farm": ["tank_level", "temperature", "flammable_gas"],
    "reactor": ["temperature", "pressure", "flammable_gas"],
    "warehouse": ["temperature", "toxic_gas", "flammable_gas"],
    "pipeline": ["pressure", "temperature", "flammable_gas"],
}
SENSOR_UNITS = {
    "tank_level": "m", "temperature": "°C", "pressure": "MPa", "toxic_gas": "ppm",
    "flammable_gas": "%LEL", "rain": "mm", "river_level": "m", "reservoir_level": "m",
    "air_temperature": "°C", "wind_speed": "m/s", "humidity": "%",
}
_EXTRA_KINDS = ["tank_level", "temperature", "pressure", "toxic_gas", "flammable_gas"]
STATION_PERIOD_S = 60.0
_COLUMNS = ["sensor_id", "kind", "unit", "lon", "lat", "county_code", "installation_id",
            "enterprise_id", "station_id", "period_s", "normal", "lo_lo", "lo", "hi", "hi_hi",
            "deadband"]


def _thresholds(rng: np.random.Generator, kind: str) -> tuple:
    """(normal, lo_lo, lo, hi, hi_hi, deadband) of an installation sensor."""
    nan = None
    if kind == "tank_level":
        h = round(float(rng.uniform(8, 22)), 1)
        return (round(h * rng.uniform(0.4, 0.7), 2), round(0.08 * h, 2), round(0.15 * h, 2),
                round(0.85 * h, 2), round(0.92 * h, 2), round(0.02 * h, 2))
    if kind == "temperature":
        t = float(rng.choice([25.0, 35.0, rng.uniform(60, 220)]))
        return (round(t, 1), nan, nan, round(t + max(10, 0.15 * t), 1),
                round(t + max(20, 0.3 * t), 1), round(max(1.0, 0.02 * t), 1))
    if kind == "pressure":
        p = float(np.exp(rng.uniform(np.log(0.15), np.log(4.0))))
        return (round(p, 3), round(0.3 * p, 3), round(0.55 * p, 3), round(1.3 * p, 3),
                round(1.5 * p, 3), round(0.03 * p, 3))
    if kind == "toxic_gas":
        hi = float(rng.choice([10.0, 20.0, 25.0, 30.0, 1.0]))  # H2S, NH3, CO ..., Cl2
        return (round(0.05 * hi, 3), nan, nan, hi, 2 * hi, round(0.1 * hi, 2))
    if kind == "flammable_gas":
        return (round(float(rng.uniform(0.5, 2.0)), 1), nan, nan, 25.0, 50.0, 2.0)
    raise ValueError(kind)


def build_installations(world, store) -> None:
    """installations at the chemical enterprises with major hazards, and their sensors."""
    rng = world.rng("installations")
    ent = world.enterprises
    n_major = world.counts["major_hazard_enterprises"]
    n_inst = world.counts["installations"]
    hazchem = np.flatnonzero(ent.industry.to_numpy() == "hazchem")
    size_w = ent["size"].map({"large": 8, "medium": 4, "small": 1.5, "micro": 0.5}).to_numpy()
    chosen = np.sort(rng.choice(hazchem, size=min(n_major, len(hazchem)), replace=False,
                                p=size_w[hazchem] / size_w[hazchem].sum()))
    ent.loc[ent.index[chosen], "is_major_hazard"] = True
    per = allocate(rng, n_inst, size_w[chosen] * rng.lognormal(0, 0.4, len(chosen)), minimum=1)
    idx = np.repeat(chosen, per)
    kinds = list(names.INSTALLATION_KINDS)
    kind = pick(rng, kinds, n_inst, p=[0.45, 0.3, 0.15, 0.1])
    number = np.concatenate([np.arange(1, k + 1) for k in per]).astype(str)
    chem = pick(rng, names.TANK_CHEMICALS, n_inst)
    label = np.array([names.INSTALLATION_KINDS[k] for k in kind])
    codes = ent.county_code.to_numpy()[idx]
    lon, lat = scatter(world.geo, rng, codes, ent.lon.to_numpy()[idx], ent.lat.to_numpy()[idx],
                       0.15)
    inst = pd.DataFrame({
        "installation_id": np.arange(1, n_inst + 1, dtype=np.int32),
        "enterprise_id": ent.enterprise_id.to_numpy()[idx],
        "name": cat(chem, label, number, "号"), "kind": kind,
        "hazard_grade": pick(rng, ["1", "2", "3", "4"], n_inst, p=[1, 2, 3, 4]).astype(np.int32),
        "lon": lon, "lat": lat,
    })
    store.insert("installations", inst)

    rows = []
    for row, code in zip(inst.itertuples(index=False), codes, strict=True):
        n_sensors = int(rng.integers(3, 9))
        kinds_here = INSTALLATION_SENSORS[row.kind] + list(
            pick(rng, _EXTRA_KINDS, n_sensors - 3, p=[3, 3, 2, 2, 3]))
        for j, k in enumerate(kinds_here, start=1):
            rows.append((f"IN{row.installation_id:05d}-{j}", k, SENSOR_UNITS[k], row.lon,
                         row.lat, code, row.installation_id, row.enterprise_id, None,
                         float(rng.integers(5, 11)), *_thresholds(rng, k)))
    sensors = pd.DataFrame(rows, columns=_COLUMNS[:10] + ["normal", "lo_lo", "lo", "hi",
                                                          "hi_hi", "deadband"])
    store.insert("sensors", sensors.astype({"installation_id": "Int32", "enterprise_id": "Int32"}))


def _elevation(rng, city_codes: np.ndarray) -> np.ndarray:
    """A rough ground elevation (m): low on the Yellow River plain, higher in the hills."""
    hills = np.array([names.LANDSLIDE_WEIGHT.get(c, 1.0) for c in city_codes])
    return np.round(5 + 25 * hills * rng.uniform(0.5, 1.5, len(city_codes)), 1)


def build_stations(world, store) -> None:
    """stations (rain, river, reservoir, weather) and one sensor row per measured quantity."""
    rng = world.rng("stations")
    counties = world.counties
    city_of = dict(zip(counties.county_code, counties.city_code, strict=True))
    name_of = dict(zip(counties.county_code, counties.name, strict=True))
    frames, sensors = [], []

    # Rain gauges: spread by area, somewhat denser in the hills.
    n = world.counts["rain_gauges"]
    hill = counties.city_code.map(names.LANDSLIDE_WEIGHT).to_numpy() ** 0.3
    codes = pick(rng, counties.county_code, n, p=counties.area_km2.to_numpy() * hill)
    lon, lat = uniform_in_counties(world.geo, rng, codes)
    rain = pd.DataFrame({"station_id": [f"RG{i:05d}" for i in range(1, n + 1)], "kind": "rain",
                         "name": cat(town_names(rng, n), "雨量站"), "county_code": codes,
                         "lon": lon, "lat": lat})
    frames.append(rain)
    sensors.append(_station_sensors(rain, "rain", normal=0.0, hi=30.0, hi_hi=50.0, deadband=2.0))

    # River stations on the rivers of each city.
    n = world.counts["river_stations"]
    codes = pick(rng, counties.county_code, n, p=counties.area_km2)
    rivers = np.array([names.RIVERS[city_of[c]][min(int(rng.geometric(0.45)) - 1,
                                                    len(names.RIVERS[city_of[c]]) - 1)]
                       for c in codes])
    lon, lat = uniform_in_counties(world.geo, rng, codes)
    normal = _elevation(rng, np.array([city_of[c] for c in codes])) + rng.uniform(1, 3, n)
    warning = normal + rng.uniform(2, 5, n)
    guarantee = warning + rng.uniform(1, 2.5, n)
    place = np.array([short_name(name_of[c]) for c in codes])
    river = pd.DataFrame({"station_id": [f"RV{i:04d}" for i in range(1, n + 1)], "kind": "river",
                          "name": cat(rivers, place, pick(rng, names.TOWN_STEMS, n), "站"),
                          "county_code": codes, "lon": lon, "lat": lat, "river": rivers,
                          "warning_level": warning.round(2), "guarantee_level": guarantee.round(2)})
    frames.append(river)
    sensors.append(_station_sensors(river, "river_level", normal=normal.round(2),
                                    hi=river.warning_level, hi_hi=river.guarantee_level,
                                    deadband=0.05))

    # Reservoirs: in the hills; the large ones carry their real names, in their own city.
    n = world.counts["reservoirs"]
    weight = counties.area_km2.to_numpy() * counties.city_code.map(names.LANDSLIDE_WEIGHT)
    codes = pick(rng, counties.county_code, n, p=weight).astype(object)
    n_large = max(1, round(n * 37 / 254))
    real = [(name, c) for c in sorted(names.RESERVOIRS) for name in names.RESERVOIRS[c]]
    res_names = cat(pick(rng, names.TOWN_STEMS, n), pick(rng, names.TOWN_STEMS, n),
                    "水库").astype(object)
    for i, j in zip(range(n_large), rng.permutation(len(real)), strict=False):
        res_names[i], city_code = real[j]
        in_city = counties[counties.city_code == city_code]
        codes[i] = pick(rng, in_city.county_code, 1, p=in_city.area_km2)[0]
    codes = codes.astype(str)
    scale = np.where(np.arange(n) < n_large, "large", "medium")
    lon, lat = uniform_in_counties(world.geo, rng, codes)
    crest = _elevation(rng, np.array([city_of[c] for c in codes])) + rng.uniform(30, 120, n)
    normal_level = crest - rng.uniform(2, 6, n)
    flood_limit = normal_level - rng.uniform(0.5, 3, n)
    capacity = np.where(scale == "large", rng.uniform(100, 800, n), rng.uniform(10, 100, n))
    res = pd.DataFrame({"station_id": [f"RS{i:04d}" for i in range(1, n + 1)],
                        "kind": "reservoir", "name": res_names, "county_code": codes,
                        "lon": lon, "lat": lat, "scale": scale,
                        "flood_limit_level": flood_limit.round(2),
                        "normal_level": normal_level.round(2), "dam_crest_level": crest.round(2),
                        "capacity_mcm": capacity.round(1)})
    frames.append(res)
    sensors.append(_station_sensors(res, "reservoir_level",
                                    normal=(flood_limit - rng.uniform(0.3, 2, n)).round(2),
                                    hi=res.flood_limit_level,
                                    hi_hi=(crest - rng.uniform(0.5, 1.5, n)).round(2),
                                    deadband=0.05))

    # One weather station per county, at the county seat.
    wx = pd.DataFrame({"station_id": "WX" + counties.county_code, "kind": "weather",
                       "name": counties.name + "气象站", "county_code": counties.county_code,
                       "lon": counties.lon, "lat": counties.lat})
    frames.append(wx)
    sensors += [
        _station_sensors(wx, "air_temperature", normal=15.0, lo_lo=-15.0, lo=-10.0, hi=35.0,
                         hi_hi=40.0, deadband=1.0),
        _station_sensors(wx, "wind_speed", normal=3.0, hi=17.2, hi_hi=24.5, deadband=1.0),
        _station_sensors(wx, "humidity", normal=60.0, lo_lo=10.0, lo=20.0, deadband=2.0),
        _station_sensors(wx, "rain", normal=0.0, hi=30.0, hi_hi=50.0, deadband=2.0),
    ]
    store.insert("stations", pd.concat(frames, ignore_index=True))
    store.insert("sensors", pd.concat(sensors, ignore_index=True))


def _station_sensors(stations: pd.DataFrame, kind: str, *, normal, lo_lo=None, lo=None,
                     hi=None, hi_hi=None, deadband=None) -> pd.DataFrame:
    n = len(stations)
    suffix = {"rain": "rain", "river_level": "level", "reservoir_level": "level"}.get(kind, kind)
    out = pd.DataFrame({
        "sensor_id": stations.station_id.to_numpy() + "-" + suffix, "kind": kind,
        "unit": SENSOR_UNITS[kind], "lon": stations.lon.to_numpy(),
        "lat": stations.lat.to_numpy(), "county_code": stations.county_code.to_numpy(),
        "installation_id": pd.array([None] * n, dtype="Int32"),
        "enterprise_id": pd.array([None] * n, dtype="Int32"),
        "station_id": stations.station_id.to_numpy(), "period_s": STATION_PERIOD_S,
    })
    for col, value in (("normal", normal), ("lo_lo", lo_lo), ("lo", lo), ("hi", hi),
                       ("hi_hi", hi_hi), ("deadband", deadband)):
        out[col] = np.nan if value is None else np.broadcast_to(np.asarray(value, float), (n,))
    return out


def build_landslides(world, store) -> None:
    """landslide_points (地质灾害隐患点): many in the southern and central hills, few on the plain."""
    rng = world.rng("landslides")
    counties = world.counties
    n = world.counts["landslide_points"]
    weight = (counties.area_km2 * counties.city_code.map(names.LANDSLIDE_WEIGHT)).to_numpy()
    weight = np.where(counties.county_code.isin(names.PLAIN_COUNTIES), weight * 0.02, weight)
    codes = pick(rng, counties.county_code, n, p=weight)
    # Half clustered in valleys around a few centres per county, half spread out.
    lon, lat = uniform_in_counties(world.geo, rng, codes)
    centres = rng.permutation(n)[: max(1, n // 40)]
    near = rng.random(n) < 0.5
    c = np.array([centres[i % len(centres)] for i in range(n)])
    same = codes[c] == codes
    move = near & same
    lon_c, lat_c = scatter(world.geo, rng, codes[move], lon[c[move]], lat[c[move]], 3.0)
    lon[move], lat[move] = lon_c, lat_c
    kinds = list(names.LANDSLIDE_KINDS)
    kind = pick(rng, kinds, n, p=list(names.LANDSLIDE_KINDS.values()))
    zh = {"landslide": "滑坡", "collapse": "崩塌", "debris_flow": "泥石流", "subsidence": "地面塌陷"}
    scale = pick(rng, ["small", "medium", "large"], n, p=[0.8, 0.17, 0.03])
    people = np.round(rng.lognormal(3.5, 1.0, n) * np.select(
        [scale == "large", scale == "medium"], [5, 2], 1)).astype(np.int32) + 3
    store.insert("landslide_points", pd.DataFrame({
        "point_id": np.arange(1, n + 1, dtype=np.int32),
        "name": cat(town_names(rng, n), pick(rng, names.TOWN_STEMS, n), "村",
                    np.array([zh[k] for k in kind]), "隐患点"),
        "kind": kind, "county_code": codes, "lon": lon, "lat": lat, "scale": scale,
        "threatened_people": people,
        "rain_threshold_mm": rng.uniform(50, 150, n).round(0),
    }))
