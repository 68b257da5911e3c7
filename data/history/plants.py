"""Sensors of the major hazard installations in the past week: the model's excursions beyond
their limits (about four an hour across the province, each a few minutes long), four more
placed so that the console starts with alarms in every state, and the last hours of every
sensor for the enterprise cards' sparklines."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

from data.laws import (
    DRIFT_SD,
    DRIFT_TAU_S,
    EXCURSIONS_PER_HOUR,
    NOISE_SD,
    STATION_KINDS,
    WEATHER_KINDS,
    sensor_span,
)

from .base import HOUR_S, MINUTE_S, Past

MARGIN_S = 10 * MINUTE_S      # readings kept before and after an excursion
RECENT_S = 6 * HOUR_S         # every sensor's last hours (the cards draw 6 h)
RECENT_STEP_S = 120.0         # ... at this step: 180 points per sparkline


@dataclass(frozen=True)
class Excursion:
    """A sensor going beyond a limit: ``target`` reached after a fifth of ``duration``, held,
    and back in the last fifth (the shape of the simulator's excursions).

    ``role`` names the scripted ones (``escalated``, ``acknowledged``, ``disposed``,
    ``raised``): the desk's lifecycle of their alarms is set, not drawn.
    """

    sensor: int
    t0: float
    duration: float
    target: float
    role: str = ""


class PlantPast:
    """Excursions and readings of the installations' sensors."""

    def __init__(self, past: Past):
        self.past = past
        s = past.registry.sensors
        kind = s["kind"].to_numpy(dtype=object)
        self.plant = ~np.isin(kind, (*STATION_KINDS, *WEATHER_KINDS))
        num = {c: s[c].to_numpy(dtype=float, na_value=np.nan) for c in
               ("normal", "lo_lo", "lo", "hi", "hi_hi", "period_s")}
        self.normal = np.nan_to_num(num["normal"])
        self.lo_lo, self.lo, self.hi, self.hi_hi = (num[k] for k in ("lo_lo", "lo", "hi", "hi_hi"))
        self.span = sensor_span(self.normal, self.hi)
        self.period = np.where(np.isfinite(num["period_s"]) & (num["period_s"] > 0),
                               num["period_s"], 10.0)
        self.nonneg = np.isin(kind, ("toxic_gas", "flammable_gas"))
        self.kind = kind
        drawn = self._draw()
        recent = {e.sensor for e in drawn if e.t0 > past.end - 3 * HOUR_S}
        self.excursions = drawn + self._scripted(recent)

    def _target(self, rng, i: int) -> float:
        """Where an excursion of sensor ``i`` goes (as ``Province._advance_excursions``)."""
        if np.isfinite(self.lo[i]) and (not np.isfinite(self.hi[i]) or rng.random() < 0.3):
            low = self.lo_lo[i] if np.isfinite(self.lo_lo[i]) else self.lo[i] - self.span[i]
            return float(self.lo[i] - (self.lo[i] - low) * rng.uniform(0.3, 1.6))
        high = self.hi_hi[i] if np.isfinite(self.hi_hi[i]) else self.hi[i] + self.span[i]
        return float(self.hi[i] + (high - self.hi[i]) * rng.uniform(0.3, 1.6))

    def _draw(self) -> list[Excursion]:
        rng = self.past.rng("plants/excursions")
        cand = np.flatnonzero(self.plant & (np.isfinite(self.hi) | np.isfinite(self.lo)))
        if not len(cand):
            return []
        out = []
        free_from: dict[int, float] = {}  # one excursion at a time per sensor
        t = self.past.start
        while True:
            t += rng.exponential(HOUR_S / EXCURSIONS_PER_HOUR)
            if t >= self.past.end - 2 * HOUR_S:  # the last two hours are scripted
                break
            i = int(cand[int(rng.integers(len(cand)))])
            duration = float(rng.uniform(180, 900))
            target = self._target(rng, i)
            if t - MARGIN_S < free_from.get(i, -math.inf):
                continue
            free_from[i] = t + duration + MARGIN_S
            out.append(Excursion(i, float(t), duration, target))
        return out

    def _scripted(self, busy: set[int]) -> list[Excursion]:
        """Four excursions of the last two hours whose alarms the desk left in each state:
        a gas leak still red and unacknowledged (escalated), one acknowledged, one disposed
        (waiting to be closed), one just raised."""
        rng = self.past.rng("plants/scripted")
        both = self.plant & np.isfinite(self.hi) & np.isfinite(self.hi_hi)
        both[list(busy)] = False
        gas = np.flatnonzero(both & self.nonneg)
        pool = np.flatnonzero(both)
        if len(pool) < 4:
            return []
        end = self.past.end
        first = int(gas[int(rng.integers(len(gas)))]) if len(gas) else int(pool[0])
        rest = [int(i) for i in rng.permutation(pool) if i != first][:3]

        def above(i: int, share: float) -> float:
            return float(self.hi[i] + (self.hi_hi[i] - self.hi[i]) * share)

        return [
            Excursion(first, end - 42 * MINUTE_S, 60 * MINUTE_S, above(first, 1.35), "escalated"),
            Excursion(rest[0], end - 30 * MINUTE_S, 50 * MINUTE_S, above(rest[0], 0.55),
                      "acknowledged"),
            Excursion(rest[1], end - 95 * MINUTE_S, 15 * MINUTE_S, above(rest[1], 0.6),
                      "disposed"),
            Excursion(rest[2], end - 8 * MINUTE_S, 20 * MINUTE_S, above(rest[2], 0.45), "raised"),
        ]

    # ------------------------------------------------------------------ readings
    def _series(self, rng, i: int, t: np.ndarray) -> np.ndarray:
        """Drift and noise of sensor ``i`` at times ``t`` (regular steps)."""
        n = len(t)
        step = float(t[1] - t[0]) if n > 1 else self.period[i]
        a = math.exp(-step / DRIFT_TAU_S)
        shocks = rng.normal(0, 1, n) * DRIFT_SD * self.span[i] * math.sqrt(1 - a * a)
        drift0 = rng.normal(0, DRIFT_SD * self.span[i])
        drift = lfilter([1.0], [1, -a], shocks, zi=[a * drift0])[0]
        return self.normal[i] + drift + rng.normal(0, NOISE_SD, n) * self.span[i]

    def episode_rows(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Readings around every excursion, at the sensor's own period: ``(sensor, ts, value)``."""
        rng = self.past.rng("plants/episodes")
        sensors, stamps, values = [], [], []
        for e in self.excursions:
            p = self.period[e.sensor]
            t = np.arange(e.t0 - MARGIN_S + rng.uniform(0, p), min(
                e.t0 + e.duration + MARGIN_S, self.past.end), p)
            v = self._series(rng, e.sensor, t)
            age = (t - e.t0) / e.duration
            shape = np.clip(np.minimum(np.minimum(1.0, age / 0.2), (1 - age) / 0.2), 0, None)
            v = v + (e.target - self.normal[e.sensor]) * np.where((age >= 0) & (age <= 1),
                                                                 shape, 0.0)
            sensors.append(np.full(len(t), e.sensor, dtype=np.int32))
            stamps.append(t)
            values.append(v)
        return self._pack(sensors, stamps, values)

    def recent_rows(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every installation sensor over the last :data:`RECENT_S`, outside its excursions."""
        rng = self.past.rng("plants/recent")
        end = self.past.end
        busy: dict[int, list[tuple[float, float]]] = {}
        for e in self.excursions:
            busy.setdefault(e.sensor, []).append((e.t0 - MARGIN_S, e.t0 + e.duration + MARGIN_S))
        idx = np.flatnonzero(self.plant)
        n = int(RECENT_S / RECENT_STEP_S)
        t = end - RECENT_S + rng.uniform(0, RECENT_STEP_S, len(idx))[:, None] \
            + RECENT_STEP_S * np.arange(n)[None, :]
        a = math.exp(-RECENT_STEP_S / DRIFT_TAU_S)
        span = self.span[idx, None]
        shocks = rng.normal(0, 1, t.shape) * DRIFT_SD * span * math.sqrt(1 - a * a)
        drift0 = rng.normal(0, 1, len(idx)) * DRIFT_SD * self.span[idx]
        drift = lfilter([1.0], [1, -a], shocks, axis=1, zi=(a * drift0)[:, None])[0]
        v = self.normal[idx, None] + drift + rng.normal(0, NOISE_SD, t.shape) * span
        keep = np.ones(t.shape, dtype=bool)
        pos = {int(s): k for k, s in enumerate(idx)}
        for s, spans in busy.items():
            for lo, hi in spans:
                keep[pos[s]] &= ~((t[pos[s]] >= lo) & (t[pos[s]] <= hi))
        sensor = np.broadcast_to(idx[:, None], t.shape)
        return self._pack([sensor[keep]], [t[keep]], [v[keep]])

    def _pack(self, sensors, stamps, values):
        if not sensors:
            return np.zeros(0, np.int32), np.zeros(0), np.zeros(0)
        s = np.concatenate(sensors).astype(np.int32)
        t = np.concatenate(stamps)
        v = np.concatenate(values)
        v = np.where(self.nonneg[s], np.maximum(v, 0), v)
        return s, t, np.round(v, 3)
