"""The simulated province behind the demo feed (:mod:`data.simulate`).

Vectorised over sensors: each step advances simulated time by ``dt`` seconds and returns the
encoded protocol messages that fell due. Kept apart from the server so it can be tested (and
reasoned about) as plain numpy.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache

import numpy as np
import orjson
import pandas as pd

from data.laws import (
    CELLS_PER_HOUR,
    CST,
    DIURNAL,
    DRIFT_SD,
    DRIFT_TAU_S,
    EXCURSIONS_PER_HOUR,
    HOTSPOT_PASS_S,
    INCIDENT_ZH,
    INCIDENTS_PER_HOUR,
    LEVEL_NOISE_SD,
    NOISE_SD,
    OTHER_EVENTS,
    QUAKES_PER_HOUR,
    RAIN_NOISE_SD,
    RESERVOIR_GAIN,
    RESERVOIR_TAU_S,
    RIVER_GAIN,
    RIVER_TAU_S,
    SATELLITES,
    WARNING_EXPIRES_S,
    WARNING_SENDER,
    WARNINGS_PER_HOUR,
    WEATHER_KINDS,
    Cell,
    diurnal,
    headline,
    new_cell,
    quake_magnitude,
    rain_warning_level,
    sensor_span,
)


@dataclass
class Registry:
    """What the simulation reads from the store (then the file is closed).

    ``installations``, ``stations`` and ``cities`` are only needed to resolve the targets of
    exercise scenarios (:mod:`data.scenario`); they may be empty.
    """

    sensors: pd.DataFrame
    counties: pd.DataFrame
    boundaries: pd.DataFrame = field(default_factory=pd.DataFrame)
    landslides: pd.DataFrame = field(default_factory=pd.DataFrame)
    installations: pd.DataFrame = field(default_factory=pd.DataFrame)
    stations: pd.DataFrame = field(default_factory=pd.DataFrame)
    cities: pd.DataFrame = field(default_factory=pd.DataFrame)

    @classmethod
    def from_connection(cls, con) -> Registry:
        def frame(sql: str) -> pd.DataFrame:
            try:
                return con.sql(sql).df()
            except Exception:  # noqa: BLE001 - an optional table may be missing
                return pd.DataFrame()
        sensors = con.sql(
            "SELECT sensor_id, kind, county_code, lon, lat, period_s, normal, lo_lo, lo, hi, "
            "hi_hi, deadband, unit, installation_id, station_id FROM sensors ORDER BY sensor_id").df()
        return cls(
            sensors=sensors,
            counties=con.sql("SELECT county_code, name, city_code, lon, lat FROM counties "
                             "ORDER BY county_code").df(),
            boundaries=frame("SELECT code, geojson FROM boundaries WHERE level = 'county'"),
            landslides=frame("SELECT point_id, name, kind, county_code, lon, lat "
                             "FROM landslide_points ORDER BY point_id"),
            installations=frame(
                "SELECT i.installation_id, i.enterprise_id, i.name, i.kind, i.hazard_grade, "
                "i.lon, i.lat, e.name AS enterprise, e.county_code FROM installations i "
                "JOIN enterprises e USING (enterprise_id) ORDER BY i.installation_id"),
            stations=frame("SELECT station_id, kind, name, county_code, lon, lat FROM stations "
                           "ORDER BY station_id"),
            cities=frame("SELECT city_code, name, lon, lat FROM cities ORDER BY city_code"),
        )


@lru_cache(maxsize=4096)
def _rfc3339_s(second: int) -> str:
    return datetime.fromtimestamp(second, CST).isoformat(timespec="seconds")


def _rfc3339(t: float) -> str:
    return _rfc3339_s(int(t))




class Province:
    """Sensors, weather and events of the demo province in simulated time."""

    def __init__(self, registry: Registry, *, seed: int | None, start: float,
                 next_seq: Callable[[int], int],
                 excursions_per_hour: float = EXCURSIONS_PER_HOUR,
                 quakes_per_hour: float = QUAKES_PER_HOUR,
                 warnings_per_hour: float = WARNINGS_PER_HOUR,
                 incidents_per_hour: float = INCIDENTS_PER_HOUR, speed: float = 1.0):
        self.rng = np.random.default_rng(seed)
        self.t = self.start = start
        self.speed = max(float(speed), 1e-6)
        self.next_seq = next_seq
        self.excursions_per_hour = excursions_per_hour
        self.quakes_per_hour = quakes_per_hour
        self.warnings_per_hour = warnings_per_hour
        self.incidents_per_hour = incidents_per_hour
        s = registry.sensors
        self.ids = s["sensor_id"].to_numpy(dtype=object)
        self.id_bytes = [orjson.dumps(x) for x in self.ids]
        self.kind = s["kind"].to_numpy(dtype=object)
        n = len(s)
        self.n = n
        num = {c: s[c].to_numpy(dtype=float, na_value=np.nan) for c in
               ("lon", "lat", "period_s", "normal", "lo_lo", "lo", "hi", "hi_hi")}
        self.lon, self.lat = num["lon"], num["lat"]
        self.period = np.where(np.isfinite(num["period_s"]) & (num["period_s"] > 0),
                               num["period_s"], 10.0)
        self.normal = np.nan_to_num(num["normal"])
        self.hi, self.hi_hi, self.lo, self.lo_lo = num["hi"], num["hi_hi"], num["lo"], num["lo_lo"]
        self.span = sensor_span(self.normal, self.hi)
        self.is_rain = self.kind == "rain"
        self.is_river = self.kind == "river_level"
        self.is_reservoir = self.kind == "reservoir_level"
        self.is_weather = np.isin(self.kind, WEATHER_KINDS)
        self.is_plant = ~(self.is_rain | self.is_river | self.is_reservoir | self.is_weather)
        self.nonneg = np.isin(self.kind, ("toxic_gas", "flammable_gas", "rain", "wind_speed"))
        self.use_text_ts = ~self.is_plant  # stations send RFC 3339, plants epoch ms
        self.drift = np.zeros(n)
        self.offset = np.zeros(n)
        self.acc = np.zeros(n)  # smoothed local rain (mm/h) for rivers and reservoirs
        self.acc_drill = np.zeros(n)  # the part of acc that an exercise's rain made
        self.drill = None  # the exercise being played (data.drill.DrillRun), if any
        self.next_due = start + self.rng.uniform(0, 1, n) * self.period
        self.excursions: list[tuple[int, float, float, float]] = []  # idx, t0, dur, amp
        can = self.is_plant & (np.isfinite(self.hi) | np.isfinite(self.lo))
        self.excursion_candidates = np.flatnonzero(can)
        c = registry.counties
        self.county_codes = c["county_code"].to_numpy(dtype=object)
        self.county_names = c["name"].to_numpy(dtype=object)
        self.county_lon = c["lon"].to_numpy(dtype=float)
        self.county_lat = c["lat"].to_numpy(dtype=float)
        pts = np.c_[self.lon, self.lat] if n else np.c_[self.county_lon, self.county_lat]
        self.bbox = (np.nanmin(pts[:, 0]), np.nanmin(pts[:, 1]),
                     np.nanmax(pts[:, 0]), np.nanmax(pts[:, 1])) if len(pts) else (116, 35, 122, 38)
        self._polys = self._polygons(registry.boundaries)
        self.landslides = registry.landslides
        self.cells: list[Cell] = []
        for _ in range(2):
            self._spawn_cell(inside=True)
        self.next_hotspots = start + 5.0
        self.open_warnings: dict[str, dict] = {}
        self.open_incidents: dict[str, dict] = {}
        self.serial = 0

    def wall(self, t: float) -> float:
        """Message time of simulated time ``t``: the wall clock, so that times look live
        (at ``speed`` 20 a ten-minute excursion lasts thirty wall seconds)."""
        return self.start + (t - self.start) / self.speed

    # ------------------------------------------------------------------ geography
    @staticmethod
    def _polygons(boundaries: pd.DataFrame):
        if boundaries is None or boundaries.empty:
            return None
        try:
            import shapely

            geoms = [shapely.from_geojson(g) for g in boundaries["geojson"]]
            return list(zip(boundaries["code"], geoms, strict=True))
        except Exception:  # noqa: BLE001 - no shapely or bad geometry: use county points
            return None

    def random_point(self) -> tuple[float, float, str | None]:
        """A random point inside the province (inside a county outline when known)."""
        i = int(self.rng.integers(len(self.county_codes))) if len(self.county_codes) else -1
        if self._polys:
            import shapely

            code, geom = self._polys[int(self.rng.integers(len(self._polys)))]
            x0, y0, x1, y1 = geom.bounds
            for _ in range(50):
                x, y = self.rng.uniform(x0, x1), self.rng.uniform(y0, y1)
                if geom.contains(shapely.Point(x, y)):
                    return round(float(x), 5), round(float(y), 5), str(code)
        if i >= 0:
            return (round(float(self.county_lon[i] + self.rng.normal(0, 0.02)), 5),
                    round(float(self.county_lat[i] + self.rng.normal(0, 0.02)), 5),
                    str(self.county_codes[i]))
        return 117.0, 36.6, None

    # ------------------------------------------------------------------ weather
    def _spawn_cell(self, inside: bool = False) -> None:
        self.cells.append(new_cell(self.rng, self.bbox, self.t, inside=inside))

    def rain_at(self, lon: np.ndarray, lat: np.ndarray, *, drill_only: bool = False) -> np.ndarray:
        """Rain rate (mm/h) at points now; ``drill_only``: only the exercise's cells."""
        out = np.zeros(len(lon))
        for c in self.cells:
            if drill_only and c.drill is None:
                continue
            k = c.intensity(self.t)
            if k > 0:
                d2 = (lon - c.lon) ** 2 + (lat - c.lat) ** 2
                out += k * np.exp(-d2 / c.radius**2)
        return out

    def _advance_weather(self, dt: float) -> list[bytes]:
        events = []
        if self.rng.random() < dt / 3600 * CELLS_PER_HOUR:
            self._spawn_cell()
        for c in list(self.cells):
            c.lon += c.vlon * dt
            c.lat += c.vlat * dt
            if self.t - c.born > c.life:
                self.cells.remove(c)
                if c.warning_id:
                    events.append(self._warning(c.warning_id, "Cancel", "rainstorm",
                                                c.warned_level or "blue", self._area_of(c)))
                continue
            if c.drill is None:  # an exercise issues its own warnings, from its script
                events.extend(self._rain_warning(c))
        rain = self.rain_at(self.lon, self.lat)
        drill_rain = (self.rain_at(self.lon, self.lat, drill_only=True)
                      if any(c.drill is not None for c in self.cells) else None)
        for mask, tau in ((self.is_river, RIVER_TAU_S), (self.is_reservoir, RESERVOIR_TAU_S)):
            a = 1 - math.exp(-dt / tau)
            self.acc[mask] += (rain[mask] - self.acc[mask]) * a
            if drill_rain is not None or self.acc_drill[mask].any():
                src = drill_rain[mask] if drill_rain is not None else 0.0
                self.acc_drill[mask] += (src - self.acc_drill[mask]) * a
        return events

    def _area_of(self, c: Cell) -> list[str]:
        d = np.hypot(self.county_lon - c.lon, self.county_lat - c.lat)
        near = np.argsort(d)[: max(1, int((d < 1.3 * c.radius).sum()))][:12]
        return [str(x) for x in self.county_codes[near]]

    def _rain_warning(self, c: Cell) -> list[bytes]:
        level = rain_warning_level(c.intensity(self.t))
        if level is None:
            return []
        if c.warning_id is None:
            self.serial += 1
            c.warning_id = f"W-{int(self.t)}-{self.serial}"
            c.warned_level, c.updated_at = level, self.t
            return [self._warning(c.warning_id, "Alert", "rainstorm", level, self._area_of(c))]
        if level != c.warned_level and self.t - c.updated_at > 1800:
            c.warned_level, c.updated_at = level, self.t
            return [self._warning(c.warning_id, "Update", "rainstorm", level, self._area_of(c))]
        return []

    # ------------------------------------------------------------------ messages
    def _message(self, body: dict) -> tuple[int, bytes]:
        seq = self.next_seq(1)
        return seq, orjson.dumps({"seq": seq, **body})

    def message(self, body: dict) -> tuple[int, bytes]:
        """An event message with the next seq: ``(seq, json bytes)``."""
        return self._message(body)

    def now_text(self) -> str:
        """The message time of now (RFC 3339, China time)."""
        return _rfc3339(self.wall(self.t))

    def time_text(self, t: float) -> str:
        """The message time of simulated time ``t``."""
        return _rfc3339(self.wall(t))

    def county_names_of(self, area: list[str]) -> list[str]:
        """Names of the counties of an area (codes), in its order."""
        pos = {c: i for i, c in enumerate(self.county_codes)}
        return [str(self.county_names[pos[a]]) for a in area if a in pos]

    def _warning(self, wid: str, msg_type: str, event: str, level: str, area: list[str]) -> bytes:
        now = self.wall(self.t)
        body = {"type": "warning", "ts": _rfc3339(now), "id": wid, "msg_type": msg_type,
                "event": event, "level": level,
                "headline": headline(event, level, msg_type, self.county_names_of(area[:3]),
                                     len(area)),
                "area": area, "effective": _rfc3339(now),
                "expires": _rfc3339(self.wall(self.t + WARNING_EXPIRES_S)),
                "sender_name": WARNING_SENDER}
        return self._message(body)

    def _events(self, dt: float) -> list[tuple[int, bytes]]:
        r, t = self.rng, self.t
        wall = self.wall(t)
        out: list[tuple[int, bytes]] = []
        # weather first: rain cells raise (and cancel) rainstorm warnings
        for msg in self._advance_weather(dt):
            out.append(msg)
        while t >= self.next_hotspots:  # a satellite pass every 10 minutes
            self.next_hotspots += HOTSPOT_PASS_S
            dry = 1.0 if not any(c.intensity(t) > 1 for c in self.cells) else 0.2
            for _ in range(int(r.poisson(1 + 5 * dry))):
                lon, lat, _code = self.random_point()
                self.serial += 1
                out.append(self._message({
                    "type": "hotspot", "ts": int(wall * 1000), "id": f"HS-{int(t)}-{self.serial}",
                    "lon": lon, "lat": lat, "confidence": round(float(r.uniform(30, 100)), 1),
                    "satellite": str(r.choice(SATELLITES))}))
        for _ in range(int(r.poisson(self.quakes_per_hour * dt / 3600))):
            lon, lat, _ = self.random_point()
            mag = quake_magnitude(r)
            self.serial += 1
            out.append(self._message({
                "type": "quake", "ts": _rfc3339(wall), "id": f"EQ-{int(t)}-{self.serial}",
                "lon": lon, "lat": lat, "depth_km": round(float(r.uniform(5, 25)), 1),
                "magnitude": round(float(mag), 1)}))
        # other warnings: gale, forest fire, landslide, heat, fog
        for _ in range(int(r.poisson(self.warnings_per_hour * dt / 3600))):
            self.serial += 1
            wid = f"W-{int(t)}-{self.serial}"
            event = str(r.choice(OTHER_EVENTS))
            level = str(r.choice(["blue", "yellow", "orange", "red"], p=[.4, .35, .2, .05]))
            k = int(r.integers(1, 6))
            area = [str(x) for x in r.choice(self.county_codes, min(k, len(self.county_codes)),
                                             replace=False)] if len(self.county_codes) else []
            self.open_warnings[wid] = {"event": event, "level": level, "area": area,
                                       "end": t + r.uniform(1, 3) * 3600}
            out.append(self._warning(wid, "Alert", event, level, area))
        for wid, w in list(self.open_warnings.items()):
            if t >= w["end"]:
                del self.open_warnings[wid]
                out.append(self._warning(wid, "Cancel", w["event"], w["level"], w["area"]))
        for _ in range(int(r.poisson(self.incidents_per_hour * dt / 3600))):
            self.serial += 1
            iid = f"INC-{int(t)}-{self.serial}"
            kind = str(r.choice(list(INCIDENT_ZH)))
            if kind == "landslide" and len(self.landslides):
                row = self.landslides.iloc[int(r.integers(len(self.landslides)))]
                lon, lat = round(float(row["lon"]), 5), round(float(row["lat"]), 5)
            else:
                lon, lat, _ = self.random_point()
            level = str(r.choice(["blue", "yellow", "orange", "red"], p=[.45, .35, .15, .05]))
            inc = {"type": "incident", "id": iid, "kind": kind, "lon": lon, "lat": lat,
                   "title": f"{INCIDENT_ZH[kind]}（{iid}）", "level": level}
            self.open_incidents[iid] = {**inc, "end": t + r.uniform(0.5, 3) * 3600}
            out.append(self._message({**inc, "ts": _rfc3339(wall), "status": "open"}))
        for iid, inc in list(self.open_incidents.items()):
            if t >= inc["end"]:
                del self.open_incidents[iid]
                body = {k: v for k, v in inc.items() if k != "end"}
                out.append(self._message({**body, "ts": _rfc3339(wall), "status": "closed"}))
        return out

    # ------------------------------------------------------------------ sensors
    def _advance_excursions(self, dt: float) -> None:
        r, t = self.rng, self.t
        cand = self.excursion_candidates
        if len(cand):
            for _ in range(int(r.poisson(self.excursions_per_hour * dt / 3600))):
                i = int(r.choice(cand))
                if np.isfinite(self.lo[i]) and (not np.isfinite(self.hi[i]) or r.random() < 0.3):
                    low = self.lo_lo[i] if np.isfinite(self.lo_lo[i]) else self.lo[i] - self.span[i]
                    target = self.lo[i] - (self.lo[i] - low) * r.uniform(0.3, 1.6)
                else:
                    high = self.hi_hi[i] if np.isfinite(self.hi_hi[i]) else self.hi[i] + self.span[i]
                    target = self.hi[i] + (high - self.hi[i]) * r.uniform(0.3, 1.6)
                self.excursions.append((i, t, float(r.uniform(180, 900)), target - self.normal[i]))
        self.offset[:] = 0
        keep = []
        for i, t0, dur, amp in self.excursions:
            age = (t - t0) / dur
            if age > 1:
                continue
            keep.append((i, t0, dur, amp))
            self.offset[i] = amp * min(1.0, age / 0.2, (1 - age) / 0.2)
        self.excursions = keep

    def _values(self, idx: np.ndarray, due_t: np.ndarray) -> np.ndarray:
        r = self.rng
        n = len(idx)
        span = self.span[idx]
        v = self.normal[idx] + self.drift[idx] + self.offset[idx] + r.normal(0, NOISE_SD, n) * span
        rain = self.is_rain[idx]
        if rain.any():
            v[rain] = self.rain_at(self.lon[idx][rain], self.lat[idx][rain]) * \
                (1 + r.normal(0, RAIN_NOISE_SD, int(rain.sum())))
        level = self.is_river[idx] | self.is_reservoir[idx]
        if level.any():
            gain = np.where(self.is_river[idx][level], RIVER_GAIN, RESERVOIR_GAIN)
            v[level] = self.normal[idx][level] + span[level] * self.acc[idx][level] / gain \
                + r.normal(0, LEVEL_NOISE_SD, int(level.sum()))
        weather = self.is_weather[idx]
        if weather.any():
            v[weather] += DIURNAL * span[weather] * diurnal(due_t[weather])
        v = np.where(self.nonneg[idx], np.maximum(v, 0), v)
        return np.round(v, 3)

    def _encode(self, idx: np.ndarray, due_t: np.ndarray, values: np.ndarray,
                tag: bytes = b"") -> list[tuple[int, bytes]]:
        """Reading messages of sensors ``idx`` (one seq block); ``tag``: extra fields."""
        if not len(idx):
            return []
        first = self.next_seq(len(idx))
        text = self.use_text_ts[idx]
        ids = self.id_bytes
        ts_ms = ((self.start + (due_t - self.start) / self.speed) * 1000).astype(np.int64)
        out = []
        for k, (i, v, ms, txt) in enumerate(zip(idx.tolist(), values.tolist(), ts_ms.tolist(),
                                                text.tolist(), strict=True)):
            ts = b'"' + _rfc3339(ms / 1000).encode() + b'"' if txt else str(ms).encode()
            out.append((first + k, b'{"type":"reading","seq":%d,"ts":%s,"sensor_id":%s,'
                        b'"value":%r%s}' % (first + k, ts, ids[i], v, tag)))
        return out

    def step(self, dt: float) -> tuple[list[tuple[int, bytes]], list[tuple[int, bytes]]]:
        """Advance ``dt`` simulated seconds; returns (readings, events) as (seq, json bytes).

        Readings of an exercise (sensors its script drives, gauges under its rain) carry its
        tag and are returned with the events, one message per frame, so that no frame mixes
        exercise data with real data.
        """
        dt = max(0.0, float(dt))
        self.t += dt
        a = math.exp(-dt / DRIFT_TAU_S)
        self.drift = self.drift * a + self.rng.normal(0, 1, self.n) * DRIFT_SD * self.span * \
            math.sqrt(max(0.0, 1 - a * a))
        self._advance_excursions(dt)
        events = self._events(dt)
        drill = self.drill
        if drill is not None:
            events.extend(drill.advance(self, dt))
        # a sensor whose schedule fell far behind (pause) restarts from now, not in a burst
        late = self.next_due < self.t - 60 * self.period
        self.next_due[late] = self.t - self.rng.uniform(0, 1, int(late.sum())) * self.period[late]
        readings: list[tuple[int, bytes]] = []
        for _ in range(100):
            due = np.flatnonzero(self.next_due <= self.t)
            if not len(due):
                break
            due_t = self.next_due[due].copy()
            self.next_due[due] += self.period[due]
            values = self._values(due, due_t)
            exercise = drill.apply(self, due, due_t, values) if drill is not None else None
            if exercise is None or not exercise.any():
                readings.extend(self._encode(due, due_t, values))
                continue
            real = ~exercise
            readings.extend(self._encode(due[real], due_t[real], values[real]))
            events.extend(self._encode(due[exercise], due_t[exercise], values[exercise],
                                       drill.tag))
        return readings, events


__all__ = ["Province", "Registry"]
