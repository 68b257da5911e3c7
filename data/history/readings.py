"""The readings of the past week and the alarms they raised.

Every reading is evaluated by the console's own alarm engine (:class:`sources.alarms.AlarmEngine`)
in time order, so the alarms of the history follow its rules exactly (thresholds, upgrades,
deadband, hold time, ids from 1 up: the engine at the console's start goes on from the
highest). What is kept:

- station sensors (rain gauges, rivers, reservoirs, weather): every reading of the last 72 h,
  the longest window the monitoring views read, at their 60 s period (the rainfall
  accumulation weighs each reading by ``period_s``: a coarser step would under-count rain);
- before that, only the readings of a sensor from 20 min before each of its alarms to 20 min
  after it cleared (the alarm report and the desk can show what happened);
- installation sensors: every reading around each excursion at the sensor's own period,
  and every sensor's last 6 h at a 2 min step (the enterprise card's sparklines).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from .base import DAY_S, MINUTE_S, Past
from .plants import PlantPast
from .weather import WARMUP_S, WeatherPast

RECENT_STATIONS_S = 3 * DAY_S
AROUND_ALARM_S = 20 * MINUTE_S
SLICE_S = 3600.0
TS_TYPE = pa.timestamp("us", tz="UTC")


@dataclass
class Chunk:
    """Readings sorted by time: registry positions, epoch microseconds, values."""

    sensor: np.ndarray
    ts_us: np.ndarray
    value: np.ndarray

    def __len__(self) -> int:
        return len(self.ts_us)

    def take(self, mask: np.ndarray) -> Chunk:
        return Chunk(self.sensor[mask], self.ts_us[mask], self.value[mask])


def _us(t: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(t) * 1e6).astype(np.int64)


def _sorted(sensor, ts_us, value) -> Chunk:
    order = np.argsort(ts_us, kind="stable")
    return Chunk(sensor[order].astype(np.int32), ts_us[order], value[order])


def _merge_sorted(a: Chunk, b: Chunk) -> Chunk:
    """Two chunks sorted by time as one (linear: ``b``'s rows slot in after ``a``'s equals)."""
    if not len(b):
        return a
    at = np.searchsorted(a.ts_us, b.ts_us, side="right") + np.arange(len(b))
    keep = np.ones(len(a) + len(b), dtype=bool)
    keep[at] = False
    out = []
    for x, y in ((a.sensor, b.sensor), (a.ts_us, b.ts_us), (a.value, b.value)):
        z = np.empty(len(keep), dtype=x.dtype)
        z[keep], z[at] = x, y
        out.append(z)
    return Chunk(*out)


class ReadingsPast:
    """Generates the week's readings chunk by chunk and runs the alarm engine over them.

    After :meth:`run`, :attr:`chunks` holds what is kept, oldest first.
    """

    def __init__(self, past: Past, weather: WeatherPast, plants: PlantPast, store):
        self.past, self.weather, self.plants, self.store = past, weather, plants, store
        s = past.registry.sensors
        self.ids = s["sensor_id"].to_numpy(dtype=object)
        num = {c: s[c].to_numpy(dtype=float, na_value=np.nan) for c in
               ("lo_lo", "lo", "hi", "hi_hi")}
        self.lo_lo, self.lo, self.hi, self.hi_hi = (num[k] for k in ("lo_lo", "lo", "hi", "hi_hi"))
        self.is_station = np.zeros(len(s), dtype=bool)
        self.is_station[weather.idx] = True
        self.chunks: list[Chunk] = []
        self.evaluated = 0

    def _breach(self, c: Chunk) -> np.ndarray:
        s, v = c.sensor, c.value
        with np.errstate(invalid="ignore"):
            return (v >= self.hi[s]) | (v >= self.hi_hi[s]) | (v <= self.lo[s]) | (v <= self.lo_lo[s])

    def run(self) -> None:
        """Generate, evaluate and keep the readings of the whole period, oldest first."""
        from sources.alarms.engine import AlarmEngine

        engine = AlarmEngine(store=self.store)
        if not np.array_equal(engine.sensor_ids, self.ids):
            raise RuntimeError("the alarm engine and the history disagree on the sensors")
        past = self.past
        ep = _sorted(*self._us_rows(self.plants.episode_rows()))
        recent = _sorted(*self._us_rows(self.plants.recent_rows()))
        t_a = past.start - WARMUP_S
        old: list[tuple[Chunk, np.ndarray]] = []
        while t_a < past.end - 1:
            t_b = min(t_a + DAY_S, past.end) if t_a >= past.start else past.start
            block = self.weather.block(t_a, t_b)
            if t_b <= past.start:  # warm-up: rivers and drifts settle, nothing is kept
                t_a = t_b
                continue
            chunk = self._merge(block, ep, recent, t_a, t_b)
            involved = self._evaluate(engine, chunk, t_a, t_b)
            if t_a >= past.end - RECENT_STATIONS_S - 1:
                self.chunks.append(chunk)
            else:  # stations: candidates around alarms, filtered once every alarm is known
                keep = ~self.is_station[chunk.sensor] | involved[chunk.sensor]
                old.append((chunk.take(keep), keep[keep] & self.is_station[chunk.sensor[keep]]))
            t_a = t_b
        engine.last_seen[:] = np.nan  # no stale alarms: only flush the peaks still pending
        engine.tick()
        self.chunks = [self._around_alarms(c, station) for c, station in old] + self.chunks

    def _us_rows(self, rows):
        s, t, v = rows
        return s, _us(t), v

    def _merge(self, block, ep: Chunk, recent: Chunk, t_a: float, t_b: float) -> Chunk:
        """Station readings of a chunk with the installation readings in it, by time."""
        # t = t_a + phase + 60 k with phase < 60 s: column by column in phase order is sorted
        order = np.argsort(self.weather.phase[block.sensor], kind="stable")
        ts = block.ts[order].T.ravel()
        sensor = np.broadcast_to(block.sensor[order][:, None], block.ts.shape).T.ravel()
        value = block.value[order].T.ravel()
        out = Chunk(sensor.astype(np.int32), _us(ts), value)
        a, b = _us(np.array([t_a, t_b]))
        for rows in (ep, recent):
            lo, hi = np.searchsorted(rows.ts_us, [a, b])
            if hi > lo:
                out = _merge_sorted(out, Chunk(rows.sensor[lo:hi], rows.ts_us[lo:hi],
                                               rows.value[lo:hi]))
        return out

    def _evaluate(self, engine, chunk: Chunk, t_a: float, t_b: float) -> np.ndarray:
        """Feed the engine hour by hour with the readings that matter (sensors in breach or
        in alarm); returns which sensors were involved in the chunk."""
        breach = self._breach(chunk)
        involved = np.zeros(len(self.ids), dtype=bool)
        involved[engine.open_code != 0] = True
        involved[chunk.sensor[breach]] = True
        edges = np.searchsorted(chunk.ts_us, _us(np.arange(t_a, t_b + SLICE_S, SLICE_S)))
        for lo, hi in zip(edges[:-1], edges[1:], strict=True):
            if hi <= lo:
                continue
            hot = np.zeros(len(self.ids), dtype=bool)
            hot[engine.open_code != 0] = True
            hot[chunk.sensor[lo:hi][breach[lo:hi]]] = True
            rows = np.flatnonzero(hot[chunk.sensor[lo:hi]]) + lo
            if not len(rows):
                continue
            self.evaluated += len(rows)
            engine.evaluate(pa.table({
                "ts": pa.array(chunk.ts_us[rows]).cast(TS_TYPE),
                "sensor_id": pa.array(self.ids[chunk.sensor[rows]].tolist(), pa.string()),
                "value": pa.array(chunk.value[rows]),
            }), now=self.past.end)
        return involved

    def _around_alarms(self, chunk: Chunk, station: np.ndarray) -> Chunk:
        """Keep the station readings within :data:`AROUND_ALARM_S` of one of their alarms."""
        if not station.any():
            return chunk
        a = self.store.df(
            "SELECT sensor_id, epoch_us(raised_at) AS lo, epoch_us(cleared_at) AS hi "
            "FROM alarms ORDER BY sensor_id, raised_at")
        pos = {sid: i for i, sid in enumerate(self.ids)}
        base = int(_us(np.array([self.past.start - WARMUP_S]))[0])
        span = int(20 * DAY_S * 1e6)  # keys: sensor * span + time since base
        end = int(_us(np.array([self.past.end]))[0])
        margin = int(AROUND_ALARM_S * 1e6)
        s = a["sensor_id"].map(pos).to_numpy(dtype=np.int64)
        lo = a["lo"].to_numpy(dtype=np.int64) - margin - base
        hi = a["hi"].fillna(end).to_numpy(dtype=np.int64) + margin - base
        k_lo, k_hi = s * span + lo, s * span + hi
        order = np.argsort(k_lo, kind="stable")
        k_lo, k_hi = k_lo[order], np.maximum.accumulate(k_hi[order])
        key = chunk.sensor.astype(np.int64) * span + (chunk.ts_us - base)
        i = np.searchsorted(k_lo, key, side="right") - 1
        inside = (i >= 0) & (key <= k_hi[np.maximum(i, 0)])
        # a running maximum across sensors is harmless: keys of two sensors are far apart
        return chunk.take(~station | inside)
