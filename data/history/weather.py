"""The weather of the past week under the laws of :mod:`data.province_model`, vectorised over
time: rain cells crossing the province, the stations' readings (rain gauges, rivers and
reservoirs with their lag, weather stations with drift and a daily cycle) and the rainstorm
and geological-hazard warnings the cells call for."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

from data.laws import (
    CELLS_PER_HOUR,
    DIURNAL,
    DRIFT_SD,
    DRIFT_TAU_S,
    LEVEL_NOISE_SD,
    NOISE_SD,
    RAIN_NOISE_SD,
    RESERVOIR_GAIN,
    RESERVOIR_TAU_S,
    RIVER_GAIN,
    RIVER_TAU_S,
    WARNING_EXPIRES_S,
    WARNING_SENDER,
    WEATHER_KINDS,
    Cell,
    diurnal,
    headline,
    new_cell,
    rain_warning_level,
    sensor_span,
)

from .base import FEED, HOUR_S, FeedLog, Past, extra_json

WARMUP_S = 12 * HOUR_S  # rivers and drifts settle before the week begins
STEP_S = 60.0           # station reporting period (data.monitoring.STATION_PERIOD_S)
LANDSLIDE_SENDER = "山东省自然资源厅"
SLIDE_MM_H = 35.0            # a cell this heavy over hill counties: geological-hazard warning
SLIDE_EXPIRES_S = 12 * HOUR_S
SLIDE_AFTER_S = 3 * HOUR_S   # lifted this long after the rain stops


@dataclass
class StationBlock:
    """Readings of the station sensors over one chunk of time.

    ``ts`` and ``value`` are (sensors × steps); ``sensor`` holds registry positions.
    """

    sensor: np.ndarray
    ts: np.ndarray
    value: np.ndarray


class WeatherPast:
    """Rain cells over ``[start - warm-up, end]`` and the station readings they make.

    Call :meth:`block` for consecutive chunks, oldest first (rivers, reservoirs and drifts
    carry their state from one chunk to the next).
    """

    def __init__(self, past: Past):
        self.past = past
        s = past.registry.sensors
        self.kind = s["kind"].to_numpy(dtype=object)
        rain = self.kind == "rain"
        river = self.kind == "river_level"
        reservoir = self.kind == "reservoir_level"
        weather = np.isin(self.kind, WEATHER_KINDS)
        self.rain_idx = np.flatnonzero(rain | river | reservoir)  # sensors that feel the rain
        self.weather_idx = np.flatnonzero(weather)
        self.idx = np.concatenate([self.rain_idx, self.weather_idx])
        num = {c: s[c].to_numpy(dtype=float, na_value=np.nan) for c in
               ("lon", "lat", "normal", "hi")}
        self.lon, self.lat = num["lon"], num["lat"]
        self.normal = np.nan_to_num(num["normal"])
        self.span = sensor_span(self.normal, num["hi"])
        self.is_rain, self.is_river, self.is_reservoir = rain, river, reservoir
        self.nonneg = np.isin(self.kind, ("rain", "wind_speed"))
        rng = past.rng("weather")
        self.phase = rng.uniform(0, STEP_S, len(s))  # each station reports at its own second
        self.acc = np.zeros(len(s))
        self.drift = rng.normal(0, DRIFT_SD, len(s)) * self.span
        self.cells = self._cells(rng)
        self._noise = past.rng("weather/noise")

    # ------------------------------------------------------------------ cells
    def _cells(self, rng: np.random.Generator) -> list[Cell]:
        """Cells as the simulator makes them (two at the start, then arrivals from the west),
        and one over the hills at the end, so that the console starts in the rain."""
        lon, lat = self.lon, self.lat
        self.bbox = (np.nanmin(lon), np.nanmin(lat), np.nanmax(lon), np.nanmax(lat))
        t0 = self.past.start - WARMUP_S
        cells = [new_cell(rng, self.bbox, t0, inside=True) for _ in range(2)]
        t = t0
        while True:
            t += rng.exponential(HOUR_S / CELLS_PER_HOUR)
            if t >= self.past.end:
                break
            cells.append(new_cell(rng, self.bbox, t, inside=False))
        # Now: a cell at 2/5 of its life (rising past orange) over a rain gauge in the hills.
        gauges = np.flatnonzero(self.is_rain)
        hilly = self.hill_counties()
        if hilly:
            county = self.past.registry.sensors["county_code"].to_numpy(dtype=object)
            in_hills = gauges[np.isin(county[gauges], hilly)]
            gauges = in_hills if len(in_hills) else gauges
        g = int(gauges[int(rng.integers(len(gauges)))]) if len(gauges) else None
        c = new_cell(rng, self.bbox, self.past.end - 2.4 * HOUR_S, inside=True)
        c.peak, c.life, c.radius = float(rng.uniform(48, 58)), 6 * HOUR_S, 0.3
        if g is not None:  # place it so that it stands over the gauge at the end
            c.lon = float(lon[g]) - c.vlon * 2.4 * HOUR_S
            c.lat = float(lat[g]) - c.vlat * 2.4 * HOUR_S
        cells.append(c)
        return cells

    def hill_counties(self) -> list[str]:
        """The 40 counties with the most landslide points (the southern and central hills)."""
        slides = self.past.registry.landslides
        if not len(slides):
            return []
        counts = slides["county_code"].value_counts()
        counts = counts.sort_index().sort_values(ascending=False, kind="stable")  # ties by code
        return [str(c) for c in counts.index[:40]]

    def cell_at(self, c: Cell, t) -> tuple:
        """Centre of a cell at time(s) ``t`` (cells move from where they were born)."""
        return c.lon + c.vlon * (t - c.born), c.lat + c.vlat * (t - c.born)

    def intensity(self, c: Cell, t) -> np.ndarray:
        age = (np.asarray(t, dtype=float) - c.born) / c.life
        return np.where((age >= 0) & (age <= 1), c.peak * np.sin(np.pi * np.clip(age, 0, 1)), 0.0)

    def rain(self, idx: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Rain rate (mm/h) at sensors ``idx`` at times ``t`` (sensors × steps)."""
        out = np.zeros(t.shape)
        t_lo, t_hi = float(t.min()), float(t.max())
        lon, lat = self.lon[idx], self.lat[idx]
        for c in self.cells:
            if c.born > t_hi or c.born + c.life < t_lo:
                continue
            cols = np.flatnonzero(((t[0] - c.born) >= -STEP_S) & ((t[0] - c.born) <= c.life + STEP_S))
            if not len(cols):
                continue
            # only sensors within reach of the track matter (exp(-20) is far below 1 µm)
            x0, y0 = self.cell_at(c, max(c.born, t_lo))
            x1, y1 = self.cell_at(c, min(c.born + c.life, t_hi))
            reach = 4.5 * c.radius
            near = np.flatnonzero((lon > min(x0, x1) - reach) & (lon < max(x0, x1) + reach)
                                  & (lat > min(y0, y1) - reach) & (lat < max(y0, y1) + reach))
            if not len(near):
                continue
            tt = t[np.ix_(near, cols)]
            cx, cy = self.cell_at(c, tt)
            d2 = (lon[near, None] - cx) ** 2 + (lat[near, None] - cy) ** 2
            out[np.ix_(near, cols)] += self.intensity(c, tt) * np.exp(-d2 / c.radius ** 2)
        return out

    # ------------------------------------------------------------------ readings
    def block(self, t_a: float, t_b: float) -> StationBlock:
        """Station readings in ``[t_a, t_b)`` (a whole number of minutes)."""
        n = int(round((t_b - t_a) / STEP_S))
        idx = self.idx
        t = t_a + self.phase[idx, None] + STEP_S * np.arange(n)[None, :]
        value = np.empty(t.shape)
        z = self._noise
        r = len(self.rain_idx)
        ri = self.rain_idx
        rain = self.rain(ri, t[:r])
        gauge = self.is_rain[ri]
        value[:r][gauge] = rain[gauge] * (1 + z.normal(0, RAIN_NOISE_SD, rain[gauge].shape))
        for mask, gain, tau in ((self.is_river[ri], RIVER_GAIN, RIVER_TAU_S),
                                (self.is_reservoir[ri], RESERVOIR_GAIN, RESERVOIR_TAU_S)):
            if not mask.any():
                continue
            a = 1 - math.exp(-STEP_S / tau)
            sel = ri[mask]
            acc = lfilter([a], [1, -(1 - a)], rain[mask], axis=1,
                          zi=((1 - a) * self.acc[sel])[:, None])[0]
            self.acc[sel] = acc[:, -1]
            value[:r][mask] = (self.normal[sel, None] + self.span[sel, None] * acc / gain
                               + z.normal(0, LEVEL_NOISE_SD, acc.shape))
        wi = self.weather_idx
        if len(wi):
            a = math.exp(-STEP_S / DRIFT_TAU_S)
            shocks = z.normal(0, 1, (len(wi), n)) * (DRIFT_SD * self.span[wi, None]
                                                     * math.sqrt(1 - a * a))
            drift = lfilter([1.0], [1, -a], shocks, axis=1, zi=(a * self.drift[wi])[:, None])[0]
            self.drift[wi] = drift[:, -1]
            span = self.span[wi, None]
            value[r:] = (self.normal[wi, None] + drift + z.normal(0, NOISE_SD, drift.shape) * span
                         + DIURNAL * span * diurnal(t[r:]))
        value = np.where(self.nonneg[idx, None], np.maximum(value, 0), value)
        return StationBlock(sensor=idx, ts=t, value=np.round(value, 3))

    # ------------------------------------------------------------------ warnings
    def warnings(self, log: FeedLog, step_s: float = 300.0) -> None:
        """Rainstorm warnings of every cell (Alert, Updates, Cancel as the simulator sends
        them) and geological-hazard warnings where a heavy cell crosses hill counties."""
        past = self.past
        counties = past.counties
        c_lon = counties["lon"].to_numpy(dtype=float)
        c_lat = counties["lat"].to_numpy(dtype=float)
        codes = counties["county_code"].to_numpy(dtype=object)
        names = dict(zip(codes, counties["name"], strict=True))
        hill_counties = set(self.hill_counties())
        covered: dict[str, list[tuple[float, float]]] = {}  # county: geo warnings in force
        serial = 0

        def free(code: str, t: float) -> bool:
            return all(not lo <= t < hi for lo, hi in covered.get(code, []))

        def area_of(x: float, y: float, radius: float) -> list[str]:
            d = np.hypot(c_lon - x, c_lat - y)
            near = np.argsort(d, kind="stable")[: max(1, int((d < 1.3 * radius).sum()))][:12]
            return [str(a) for a in codes[near]]

        def emit(wid, t, msg_type, event, level, area, sender, expires_s=WARNING_EXPIRES_S):
            log.add("warnings", t, source="feed", warning_id=wid, msg_type=msg_type, event=event,
                    level=level, area_codes=area, effective=t, expires=t + expires_s,
                    headline=headline(event, level, msg_type, [names[a] for a in area[:3]],
                                      len(area)),
                    description=None, extra=extra_json({"sender_name": sender}))

        for c in sorted(self.cells, key=lambda c: c.born):
            wid, warned, updated = None, None, 0.0
            slide = None
            steps = np.arange(c.born, min(c.born + c.life, past.end), step_s)
            strength = self.intensity(c, steps)
            for t, k in zip(steps.tolist(), strength.tolist(), strict=True):
                level = rain_warning_level(k)
                if level is None and wid is None:
                    continue
                x, y = self.cell_at(c, t)
                if level is not None and wid is None:
                    serial += 1
                    wid, warned, updated = f"W-{int(t)}-h{serial}", level, t
                    emit(wid, t, "Alert", "rainstorm", level, area_of(x, y, c.radius),
                         WARNING_SENDER)
                elif level is not None and level != warned and t - updated > 1800:
                    warned, updated = level, t
                    emit(wid, t, "Update", "rainstorm", level, area_of(x, y, c.radius),
                         WARNING_SENDER)
                if slide is None and k > SLIDE_MM_H:
                    # hill counties under the cell not yet under such a warning
                    area = [a for a in area_of(x, y, c.radius)
                            if a in hill_counties and free(a, t + 1200)]
                    if area:
                        serial += 1
                        slide = (f"W-{int(t)}-h{serial}", "orange" if c.peak > 50 else "yellow",
                                 area)
                        emit(slide[0], t + 1200, "Alert", "landslide", slide[1], area,
                             LANDSLIDE_SENDER, SLIDE_EXPIRES_S)
                        until = min(c.born + c.life + SLIDE_AFTER_S,
                                    t + 1200 + SLIDE_EXPIRES_S)
                        for a in area:
                            covered.setdefault(a, []).append((t + 1200, until))
            end = c.born + c.life
            if wid is not None and end <= past.end:
                x, y = self.cell_at(c, end)
                emit(wid, end, "Cancel", "rainstorm", warned, area_of(x, y, c.radius),
                     WARNING_SENDER)
            if slide is not None and end + SLIDE_AFTER_S <= past.end:
                # the slopes stay soaked for hours after the rain: lifted three hours later
                emit(slide[0], end + SLIDE_AFTER_S, "Cancel", "landslide", slide[1], slide[2],
                     LANDSLIDE_SENDER, SLIDE_EXPIRES_S)

    def raining(self, t) -> bool | np.ndarray:
        """Whether any cell rains (more than 1 mm/h at its centre) at time(s) ``t``."""
        t = np.asarray(t, dtype=float)
        wet = np.zeros(t.shape, dtype=bool)
        for c in self.cells:
            wet |= self.intensity(c, t) > 1
        return bool(wet) if wet.ndim == 0 else wet


__all__ = ["FEED", "StationBlock", "WeatherPast"]
