"""Natural-hazard monitoring: rainfall, water levels, landslide risk, quakes, hotspots, fire
danger and the county risk assessment per hazard — all computed from the stored readings at a
time ``at`` (so a slider can replay the last 24 h).

Rules (documented here and in the README; every threshold is a class attribute):

* **Rainfall accumulation** over a window ``(at - w, at]``: a rain-gauge reading is "mm in the
  last hour", so the rain of one reporting period is ``value * period_s / 3600``; the window's
  total is their sum. "now" shows the latest hourly rate. Classes (mm): 1 h / now
  2.5/8/16/30/50, 24 h 10/25/50/100/250 (CMA), 72 h 25/50/100/200/400.
* **Rainfall surface**: inverse-distance weighting (power 2, km on a local projection) of
  the gauges' totals on a grid over the province, cells outside the province are NaN.
* **Landslide (disaster chain)**: rain24 at a point (IDW of the gauges) over its
  ``rain_threshold_mm`` gives ``ratio``; ratio ≥ 0.6 blue, ≥ 1 yellow, ≥ 1.5 orange, ≥ 2 red.
  An earthquake of M ≥ 4 within 50 km in the last 72 h raises the level one step.
* **Fire danger** (per county, from its nearest weather sensors): score
  ``T + 2·RH + W + D`` with T (°C) <0,10,20,25,30 → 0..5, RH (%) ≥80,60,45,30,20 → 0..5,
  wind (m/s) <1.6,3.4,5.5,8,10.8 → 0..5, D days since ≥ 0.5 mm/h rain <1,2,3,5,10 → 0..5
  (capped by the stored history). ≥ 8 blue, ≥ 12 yellow, ≥ 16 orange, ≥ 20 red; 24 h rain
  ≥ 5 mm means wet fuel: no level.
* **County risk**: flood = max(rain24 ≥ 50/100/250 → blue/yellow/orange, rain3 ≥ 50 orange,
  ≥ 100 red, a river above warning level orange / above guarantee level red, a reservoir
  above its flood-limit level yellow); drought (short-term proxy) = rain72 < 1 mm and lowest
  RH < 40/30/20/10 %; gale = max wind ≥ 10.8/17.2/24.5/32.7 m/s; heat = max temperature
  ≥ 33/35/37/40 °C; freezing = min temperature ≤ 0/−5/−10/−15 °C (all over 24 h).
"""
from __future__ import annotations

import datetime as dt
from typing import ClassVar

import numpy as np
import pandas as pd
import param

from sources.base import Source, query
from sources.geo import CountyGeometry
from sources.levels import COLORS, LEVELS, NONE_COLOR, worst

HAZARDS = ("flood", "drought", "gale", "heat", "freezing")
WINDOWS = {"now": 1, "1h": 1, "24h": 24, "72h": 72}  # hours
RAIN_CLASSES = {"now": (2.5, 8, 16, 30, 50), "1h": (2.5, 8, 16, 30, 50),
                "24h": (10, 25, 50, 100, 250), "72h": (25, 50, 100, 200, 400)}
RAIN_COLORS = ("#a6f28f", "#3dba3d", "#61b8ff", "#0000fe", "#fa00fa", "#800040")
#: Colours of the levels on the monitoring map (the official four, grey for none).
LEVEL_COLORS = {"none": NONE_COLOR, **COLORS}


def level_of(value, thresholds, *, below: bool = False) -> str:
    """The level of ``value`` against four ascending (or, with ``below``, descending) limits."""
    if value is None or not np.isfinite(value):
        return "none"
    hits = sum((value <= t) if below else (value >= t) for t in thresholds)
    return "none" if hits == 0 else LEVELS[hits - 1]


def _km(lon, lat, lat0):
    """Local equirectangular projection in km (good enough at province scale)."""
    return np.asarray(lon) * 111.32 * np.cos(np.radians(lat0)), np.asarray(lat) * 110.57


def idw(src_lon, src_lat, values, lon, lat, *, power: float = 2.0, k: int = 12) -> np.ndarray:
    """Inverse-distance weighted values at (lon, lat) from the ``k`` nearest sources (NaN
    sources skipped); distances in km on a local projection."""
    from scipy.spatial import cKDTree

    values = np.asarray(values, dtype="float64")
    ok = np.isfinite(values)
    lon, lat = np.asarray(lon, dtype="float64"), np.asarray(lat, dtype="float64")
    if not ok.any():
        return np.full(lon.shape, np.nan)
    lat0 = float(np.mean(np.asarray(src_lat, dtype="float64")[ok]))
    sx, sy = _km(np.asarray(src_lon, dtype="float64")[ok],
                 np.asarray(src_lat, dtype="float64")[ok], lat0)
    tx, ty = _km(lon.ravel(), lat.ravel(), lat0)
    k = min(k, int(ok.sum()))
    dist, idx = cKDTree(np.column_stack([sx, sy])).query(np.column_stack([tx, ty]), k=k)
    dist, idx = dist.reshape(len(tx), k), idx.reshape(len(tx), k)
    w = 1.0 / np.maximum(dist, 1e-3) ** power
    out = (w * values[ok][idx]).sum(axis=1) / w.sum(axis=1)
    return out.reshape(lon.shape)


class MonitoringSource(Source):
    """Monitoring layers and the county risk assessment at a time ``at``."""

    source_type: ClassVar[str] = "monitoring"

    geography = param.ClassSelector(class_=CountyGeometry, default=None, allow_None=True,
                                    doc="The province's counties (built from the store when "
                                        "None; the console shares one).")
    quake_km = param.Number(default=50.0, doc="Radius of a quake's effect on landslide points.")
    quake_magnitude = param.Number(default=4.0, doc="Magnitude that raises landslide levels.")

    LANDSLIDE_RATIOS: ClassVar[tuple] = (0.6, 1.0, 1.5, 2.0)
    FIRE_LEVELS: ClassVar[tuple] = (8, 12, 16, 20)
    FLOOD_RAIN24: ClassVar[tuple] = (50, 100, 250, float("inf"))
    DROUGHT_RH: ClassVar[tuple] = (40, 30, 20, 10)
    GALE: ClassVar[tuple] = (10.8, 17.2, 24.5, 32.7)
    HEAT: ClassVar[tuple] = (33, 35, 37, 40)
    FREEZING: ClassVar[tuple] = (0, -5, -10, -15)

    @property
    def geo(self) -> CountyGeometry:
        if self.geography is None:
            self.geography = CountyGeometry(self.store)
        return self.geography

    @query(max_age=10.0, maxsize=16)
    def layers(self, window: str = "24h", hours_back: float = 0) -> dict:
        """Every layer of the monitoring map for a window, ``hours_back`` before now
        (``at, rain, surface, water, landslide, quake, hotspot, fire``), shared by every
        page for 10 s."""
        at = self.reference_time() + pd.Timedelta(hours=hours_back)
        return {"at": at, "rain": self.rainfall(window, at),
                "surface": self.rain_surface(window, at), "water": self.water_levels(at),
                "landslide": self.landslide_risk(at), "quake": self.quakes(at),
                "hotspot": self.hotspots(at), "fire": self.fire_danger(at)}

    # ------------------------------------------------------------------ time
    def reference_time(self) -> dt.datetime:
        """'Now' of the data: the latest reading's time, or the clock when there is none."""
        value = self.store.scalar("SELECT max(ts) FROM readings")
        if value is None:
            return dt.datetime.now(dt.UTC)
        return pd.Timestamp(value).tz_convert("UTC").to_pydatetime()

    def _at(self, at) -> dt.datetime:
        if at is None:
            return self.reference_time()
        return pd.Timestamp(at).tz_convert("UTC").to_pydatetime() if pd.Timestamp(at).tzinfo \
            else pd.Timestamp(at).tz_localize("UTC").to_pydatetime()

    def sensor_stats(self, kinds, at=None, hours: float = 24) -> pd.DataFrame:
        """Per sensor of ``kinds``: accumulation, max, min, last value over ``(at-h, at]``."""
        at = self._at(at)
        return self.store.df(
            "SELECT s.sensor_id, s.kind, s.station_id, s.county_code, s.lon, s.lat, "
            "sum(r.value * s.period_s / 3600.0) AS acc, max(r.value) AS vmax, "
            "min(r.value) AS vmin, arg_max(r.value, r.ts) AS last, max(r.ts) AS last_ts, "
            "count(r.value) AS n FROM sensors s LEFT JOIN readings r "
            "ON r.sensor_id = s.sensor_id AND r.ts > ? AND r.ts <= ? "
            "WHERE list_contains(?, s.kind) GROUP BY ALL ORDER BY s.sensor_id",
            [at - dt.timedelta(hours=hours), at, list(kinds)])

    # ------------------------------------------------------------------ rainfall
    def rainfall(self, window: str = "24h", at=None) -> pd.DataFrame:
        """Rain gauges with ``rain_mm`` over the window, its class (0..5) and colour."""
        if window not in WINDOWS:
            raise ValueError(f"window must be one of {list(WINDOWS)}, not {window!r}")
        df = self.sensor_stats(["rain"], at, WINDOWS[window])
        df["rain_mm"] = (df["last"] if window == "now" else df["acc"]).astype("float64")
        df["rain_mm"] = df["rain_mm"].fillna(0.0)
        df["rain_class"] = np.searchsorted(RAIN_CLASSES[window], df["rain_mm"], side="right")
        df["color"] = [RAIN_COLORS[c] if r >= 0.1 else LEVEL_COLORS["none"]
                       for c, r in zip(df["rain_class"], df["rain_mm"], strict=True)]
        names = self.store.df("SELECT station_id, name FROM stations")
        return df.merge(names, on="station_id", how="left")

    def rain_surface(self, window: str = "24h", at=None, nx: int = 120, ny: int = 90):
        """IDW rainfall on a grid: ``(lon_1d, lat_1d, values[ny, nx])``, NaN outside."""
        gauges = self.rainfall(window, at)
        lon, lat, inside = self.geo.grid(nx, ny)
        values = idw(gauges["lon"], gauges["lat"], gauges["rain_mm"], lon, lat)
        values = np.where(inside, values, np.nan)
        return lon[0, :], lat[:, 0], values

    # ------------------------------------------------------------------ water
    def water_levels(self, at=None) -> pd.DataFrame:
        """River and reservoir stations: last level (≤ 6 h old) against their limits."""
        df = self.sensor_stats(["river_level", "reservoir_level"], at, 6)
        st = self.store.df("SELECT station_id, kind AS station_kind, name, river, "
                           "warning_level, guarantee_level, flood_limit_level, "
                           "dam_crest_level FROM stations")
        df = df.merge(st, on="station_id", how="left")
        df["level_m"] = df["last"].astype("float64")
        river = df["kind"] == "river_level"
        df["limit_m"] = np.where(river, df["warning_level"], df["flood_limit_level"])
        df["excess_m"] = df["level_m"] - df["limit_m"]
        df["over"] = df["excess_m"] > 0
        over_g = river & (df["level_m"] > df["guarantee_level"])
        df["state"] = np.select([df["level_m"].isna(), over_g, df["over"] & river, df["over"]],
                                ["no_data", "over_guarantee", "over_warning",
                                 "over_flood_limit"], "normal")
        return df

    def hydrograph(self, station_id: str, at=None, hours: float = 72) -> dict:
        """Level history of a station with its limits: ``{"readings": df, ...limits}``."""
        at = self._at(at)
        readings = self.store.df(
            "SELECT r.ts, r.value FROM readings r JOIN sensors s USING (sensor_id) "
            "WHERE s.station_id = ? AND list_contains(['river_level', 'reservoir_level'], "
            "s.kind) AND r.ts > ? AND r.ts <= ? ORDER BY r.ts",
            [station_id, at - dt.timedelta(hours=hours), at])
        st = self.store.df("SELECT * FROM stations WHERE station_id = ?", [station_id])
        limits = st.iloc[0].to_dict() if len(st) else {}
        return {"readings": readings, "station": limits}

    # ------------------------------------------------------------------ geology, quakes, fire
    def quakes(self, at=None, hours: float = 72) -> pd.DataFrame:
        """Earthquakes of the last ``hours`` with ``hours_ago``."""
        at = self._at(at)
        df = self.store.df("SELECT quake_id, ts, lon, lat, depth_km, magnitude FROM quakes "
                           "WHERE ts > ? AND ts <= ? ORDER BY ts",
                           [at - dt.timedelta(hours=hours), at])
        df["hours_ago"] = [(at - pd.Timestamp(t).to_pydatetime()).total_seconds() / 3600
                           for t in df["ts"]]
        return df

    def hotspots(self, at=None, hours: float = 24) -> pd.DataFrame:
        """Fire hotspots of the last ``hours`` (one row per hotspot id, its latest report)."""
        at = self._at(at)
        return self.store.df(
            "SELECT hotspot_id, max(ts) AS ts, arg_max(lon, ts) AS lon, arg_max(lat, ts) AS lat,"
            " max(confidence) AS confidence, arg_max(satellite, ts) AS satellite FROM hotspots "
            "WHERE ts > ? AND ts <= ? GROUP BY hotspot_id ORDER BY ts",
            [at - dt.timedelta(hours=hours), at])

    def landslide_risk(self, at=None) -> pd.DataFrame:
        """Landslide points with ``rain24_mm``, ``ratio`` and ``level`` (see module rules)."""
        pts = self.store.df("SELECT point_id, name, kind, county_code, lon, lat, scale, "
                            "threatened_people, rain_threshold_mm FROM landslide_points")
        gauges = self.rainfall("24h", at)
        rain = idw(gauges["lon"], gauges["lat"], gauges["rain_mm"], pts["lon"], pts["lat"])
        pts["rain24_mm"] = np.nan_to_num(rain, nan=0.0)
        pts["ratio"] = pts["rain24_mm"] / pts["rain_threshold_mm"].clip(lower=1e-6)
        rank = np.searchsorted(self.LANDSLIDE_RATIOS, pts["ratio"].to_numpy(), side="right")
        quakes = self.quakes(at, 72)
        quakes = quakes[quakes["magnitude"] >= self.quake_magnitude]
        near = np.zeros(len(pts), dtype=bool)
        for q in quakes.itertuples():
            x, y = _km(pts["lon"].to_numpy() - q.lon, pts["lat"].to_numpy() - q.lat, q.lat)
            near |= np.hypot(x, y) <= self.quake_km
        pts["quake_near"] = near
        rank = np.minimum(rank + near.astype(int), 4)
        pts["level"] = np.array(("none", *LEVELS))[rank]
        return pts

    def _county_weather(self, at=None) -> pd.DataFrame:
        """Per county, from the nearest sensor of each kind: 24 h temperature, RH, wind."""
        counties = self.geo.points[["county_code", "name", "lon", "lat"]].copy()
        stats = self.sensor_stats(["air_temperature", "humidity", "wind_speed"], at, 24)
        stats = stats[stats["n"] > 0]
        for kind, cols in (("air_temperature", ("temp_now", "temp_max", "temp_min")),
                           ("humidity", ("rh_now", "rh_max", "rh_min")),
                           ("wind_speed", ("wind_now", "wind_max", "wind_min"))):
            s = stats[stats["kind"] == kind]
            if s.empty:
                for c in cols:
                    counties[c] = np.nan
                continue
            cx, cy = _km(counties["lon"], counties["lat"], 36.0)
            sx, sy = _km(s["lon"], s["lat"], 36.0)
            nearest = np.argmin((cx[:, None] - sx[None, :]) ** 2
                                + (cy[:, None] - sy[None, :]) ** 2, axis=1)
            for col, src in zip(cols, ("last", "vmax", "vmin"), strict=True):
                counties[col] = s[src].to_numpy(dtype="float64")[nearest]
        return counties

    def _county_rain(self, at=None) -> pd.DataFrame:
        """Per county: max gauge rain over 3/24/72 h (IDW at the county point if no gauge),
        and hours since the last hour with ≥ 0.5 mm."""
        at = self._at(at)
        pts = self.geo.points[["county_code", "lon", "lat"]].copy()
        for w, col in ((3, "rain3_mm"), (24, "rain24_mm"), (72, "rain72_mm")):
            g = self.sensor_stats(["rain"], at, w)
            g["acc"] = g["acc"].fillna(0.0)
            by_county = g.groupby("county_code")["acc"].max()
            est = idw(g["lon"], g["lat"], g["acc"], pts["lon"], pts["lat"]) if len(g) else \
                np.full(len(pts), np.nan)
            pts[col] = pts["county_code"].map(by_county).fillna(pd.Series(est, index=pts.index))
        wet = self.store.df(
            "SELECT s.county_code, max(r.ts) AS last_wet FROM readings r JOIN sensors s "
            "USING (sensor_id) WHERE s.kind = 'rain' AND r.value >= 0.5 AND r.ts <= ? "
            "GROUP BY 1", [at])
        first = self.store.scalar("SELECT min(ts) FROM readings")
        span_h = ((at - pd.Timestamp(first).to_pydatetime()).total_seconds() / 3600
                  if first is not None else 0.0)
        pts = pts.merge(wet, on="county_code", how="left")
        pts["dry_days"] = [
            span_h / 24 if pd.isna(t) else (at - pd.Timestamp(t).to_pydatetime()).total_seconds()
            / 86400 for t in pts["last_wet"]]
        return pts.drop(columns=["lon", "lat", "last_wet"])

    def fire_danger(self, at=None) -> pd.DataFrame:
        """Each county's fire-danger index and level (see the module rules)."""
        df = self._county_weather(at).merge(self._county_rain(at), on="county_code")
        score = (np.searchsorted((0, 10, 20, 25, 30), df["temp_now"].fillna(-99), side="right")
                 + 2 * (5 - np.searchsorted((20, 30, 45, 60, 80), df["rh_now"].fillna(100),
                                            side="right"))
                 + np.searchsorted((1.6, 3.4, 5.5, 8.0, 10.8), df["wind_now"].fillna(0),
                                   side="right")
                 + np.searchsorted((1, 2, 3, 5, 10), df["dry_days"].fillna(0), side="right"))
        df["fire_index"] = score
        df["fire_level"] = [level_of(s, self.FIRE_LEVELS) for s in score]
        df.loc[df["rain24_mm"] >= 5, "fire_level"] = "none"
        return df

    # ------------------------------------------------------------------ county risk
    @query(max_age=10.0, maxsize=8)
    def county_risk(self, at=None) -> pd.DataFrame:
        """Level per county and hazard (flood, drought, gale, heat, freezing) and ``worst``."""
        df = self.fire_danger(at)
        water = self.water_levels(at)
        flood_water = {}
        for w in water.itertuples():
            lv = {"over_guarantee": "red", "over_warning": "orange",
                  "over_flood_limit": "yellow"}.get(w.state)
            if lv:
                flood_water[w.county_code] = worst([lv, flood_water.get(w.county_code)])
        df["water_level"] = [flood_water.get(c, "none") for c in df["county_code"]]
        df["flood"] = [
            worst([level_of(r24, self.FLOOD_RAIN24),
                   "red" if r3 >= 100 else "orange" if r3 >= 50 else "none", wl])
            for r24, r3, wl in zip(df["rain24_mm"].fillna(0), df["rain3_mm"].fillna(0),
                                   df["water_level"], strict=True)]
        df["drought"] = [level_of(rh, self.DROUGHT_RH, below=True) if r72 < 1 else "none"
                         for rh, r72 in zip(df["rh_min"], df["rain72_mm"].fillna(0),
                                            strict=True)]
        df["gale"] = [level_of(v, self.GALE) for v in df["wind_max"]]
        df["heat"] = [level_of(v, self.HEAT) for v in df["temp_max"]]
        df["freezing"] = [level_of(v, self.FREEZING, below=True) for v in df["temp_min"]]
        df["worst"] = [worst(r) for r in df[list(HAZARDS)].itertuples(index=False)]
        return df
