"""The laws of the simulated province, shared by the demo feed (:mod:`data.province_model`)
and the past the generator writes (:mod:`data.history`), so both follow the same model:
sensor drift and noise, rain cells and the lag of rivers and reservoirs, the daily cycle of
the weather stations, the rates of events, warning levels and headlines."""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta, timezone

import numpy as np

CST = timezone(timedelta(hours=8))
STATION_KINDS = ("rain", "river_level", "reservoir_level")
WEATHER_KINDS = ("air_temperature", "wind_speed", "humidity")
SATELLITES = ("FY-3D", "FY-4B", "NOAA-20", "Terra", "Aqua", "Himawari-9")
LEVEL_ZH = {"blue": "蓝色", "yellow": "黄色", "orange": "橙色", "red": "红色"}
EVENT_ZH = {"rainstorm": "暴雨", "gale": "大风", "landslide": "地质灾害", "forest_fire": "森林火险",
            "heat": "高温", "fog": "大雾", "flood": "洪水", "freezing": "低温冰冻", "blizzard": "暴雪",
            "drought": "干旱", "earthquake": "地震", "thunderstorm": "雷电"}
INCIDENT_ZH = {"fire": "火灾", "hazchem_leak": "危化品泄漏", "traffic_accident": "道路交通事故",
               "flood": "城乡内涝", "landslide": "山体滑坡", "explosion": "爆炸"}

DRIFT_TAU_S = 600.0       # sensor drift: Ornstein-Uhlenbeck time constant ...
DRIFT_SD = 0.12           # ... and stationary spread, in spans (hi - normal)
NOISE_SD = 0.03           # reading noise, in spans
RAIN_NOISE_SD = 0.05      # rain gauges: relative noise
LEVEL_NOISE_SD = 0.01     # rivers and reservoirs: noise in metres
RIVER_GAIN, RESERVOIR_GAIN = 20.0, 30.0       # mm/h of smoothed rain per span of level rise
RIVER_TAU_S, RESERVOIR_TAU_S = 3 * 3600.0, 6 * 3600.0  # lag of the level behind the rain
DIURNAL = 0.2             # weather stations: daily swing, in spans
CELLS_PER_HOUR = 0.6      # new rain cells entering the province
EXCURSIONS_PER_HOUR = 4.0
QUAKES_PER_HOUR = 0.3
WARNINGS_PER_HOUR = 0.5
INCIDENTS_PER_HOUR = 0.5
HOTSPOT_PASS_S = 600.0    # a satellite pass every 10 minutes
WARNING_EXPIRES_S = 6 * 3600.0
RAIN_WARNING_MM_H = (("red", 50.0), ("orange", 35.0), ("yellow", 20.0))
OTHER_EVENTS = ("gale", "forest_fire", "landslide", "heat", "fog")
WARNING_SENDER = "山东省气象台"


@dataclass
class Cell:
    """A moving rain cell."""

    lon: float
    lat: float
    vlon: float  # degrees per second
    vlat: float
    radius: float  # degrees
    peak: float  # mm/h
    born: float
    life: float
    warning_id: str | None = None
    warned_level: str | None = None
    updated_at: float = 0.0
    drill: object | None = None  # the exercise (data.drill.DrillRun) that made this cell

    def intensity(self, t: float) -> float:
        age = (t - self.born) / self.life
        return self.peak * math.sin(math.pi * age) if 0 <= age <= 1 else 0.0


def new_cell(rng: np.random.Generator, bbox: tuple, t: float, *, inside: bool) -> Cell:
    """A rain cell of the model: born inside the province or entering it from the west."""
    x0, y0, x1, y1 = bbox
    lon = rng.uniform(x0, x1) if inside else x0 - 0.3
    lat = rng.uniform(y0, y1)
    speed = rng.uniform(0.1, 0.35) / 3600  # degrees per hour → per second
    angle = rng.uniform(-0.4, 0.6)
    return Cell(lon, lat, speed * math.cos(angle), speed * math.sin(angle),
                rng.uniform(0.15, 0.5), rng.uniform(8, 60), t, rng.uniform(2, 7) * 3600)


def rain_warning_level(intensity: float) -> str | None:
    """The rainstorm warning level a cell of this peak rate (mm/h) calls for, or None."""
    for level, mm_h in RAIN_WARNING_MM_H:
        if intensity > mm_h:
            return level
    return None


def diurnal(t) -> np.ndarray:
    """The daily cycle of the weather sensors at epoch seconds ``t`` (−1 … 1, peak at 15:00
    China time)."""
    hour = ((np.asarray(t, dtype=float) / 3600) + 8) % 24
    return np.sin((hour - 9) / 24 * 2 * np.pi)


def sensor_span(normal: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The scale of a sensor's variations: ``hi - normal`` (else 20 % of normal, at least 1)."""
    span = hi - normal
    return np.where(np.isfinite(span) & (span > 0), span, np.maximum(np.abs(normal) * 0.2, 1.0))


def quake_magnitude(rng: np.random.Generator) -> float:
    """A small quake's magnitude (Gutenberg-Richter, b = 1, from M 0.8; at most 6.5)."""
    return min(6.5, 0.8 + rng.exponential(1 / math.log(10)))


def headline(event: str, level: str, msg_type: str, names: list[str], n_area: int) -> str:
    """``平邑县、费县等地发布暴雨橙色预警`` (the first three county names of the area)."""
    verb = {"Alert": "发布", "Update": "更新", "Cancel": "解除"}[msg_type]
    return (f"{'、'.join(names[:3]) or '全省'}{'等地' if n_area > 3 else ''}"
            f"{verb}{EVENT_ZH.get(event, event)}{LEVEL_ZH[level]}预警")

