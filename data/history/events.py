"""Events of the past week as the feeds sent them: satellite fire hotspots every ten minutes,
small earthquakes, and incidents opened, followed up and closed (with casualties)."""
from __future__ import annotations

import numpy as np

from data.laws import (
    HOTSPOT_PASS_S,
    INCIDENT_ZH,
    INCIDENTS_PER_HOUR,
    QUAKES_PER_HOUR,
    SATELLITES,
    quake_magnitude,
)
from data.synth import short_name

from .base import HOUR_S, MINUTE_S, FeedLog, Past, extra_json
from .weather import WeatherPast

LEVELS = ("blue", "yellow", "orange", "red")
HIGHWAYS = ("G2京沪高速", "G3京台高速", "G15沈海高速", "G18荣乌高速", "G20青银高速",
            "G22青兰高速", "G25长深高速", "G35济广高速", "S1济聊高速", "G104国道", "G205国道")
FIRE_PLACES = ("居民楼", "厂房", "仓库", "商铺", "林地", "农贸市场")


def hotspots(past: Past, weather: WeatherPast, log: FeedLog) -> None:
    """A satellite pass every ten minutes; more hotspots when no rain falls anywhere."""
    rng = past.rng("hotspots")
    serial = 0
    passes = np.arange(past.start + rng.uniform(0, HOTSPOT_PASS_S), past.end, HOTSPOT_PASS_S)
    for t, wet in zip(passes.tolist(), weather.raining(passes).tolist(), strict=True):
        dry = 0.2 if wet else 1.0
        for _ in range(int(rng.poisson(1 + 5 * dry))):
            lon, lat, _ = past.random_point(rng)
            serial += 1
            log.add("hotspots", t, hotspot_id=f"HS-{int(t)}-h{serial}", lon=lon, lat=lat,
                    confidence=round(float(rng.uniform(30, 100)), 1),
                    satellite=str(rng.choice(SATELLITES)), extra=None)


def quakes(past: Past, log: FeedLog) -> None:
    """Small quakes (Gutenberg-Richter) at the simulator's rate; at least one in the last day."""
    rng = past.rng("quakes")
    times = list(np.sort(rng.uniform(past.start, past.end,
                                     rng.poisson(QUAKES_PER_HOUR * (past.end - past.start) / HOUR_S))))
    if not any(t > past.end - 24 * HOUR_S for t in times):
        times.append(past.end - rng.uniform(1, 20) * HOUR_S)
    for serial, t in enumerate(sorted(times), start=1):
        lon, lat, _ = past.random_point(rng)
        log.add("quakes", t, quake_id=f"EQ-{int(t)}-h{serial}", lon=lon, lat=lat,
                depth_km=round(float(rng.uniform(5, 25)), 1),
                magnitude=round(float(quake_magnitude(rng)), 1), extra=None)


def grade(deaths: int, injured: int, base: str) -> str:
    """Incident level: the accident grade its casualties reach (3+ deaths or 10+ injured:
    较大, yellow; 10+ or 50+: 重大, orange; 30+ or 100+: 特别重大, red), at least ``base``."""
    by_casualties = (3 if deaths >= 30 or injured >= 100 else 2 if deaths >= 10 or injured >= 50
                     else 1 if deaths >= 3 or injured >= 10 else 0)
    return LEVELS[max(by_casualties, LEVELS.index(base))]


class IncidentPast:
    """Incidents at the simulator's rate, placed where they happen: landslides and urban
    flooding under the rain, leaks and explosions at major hazard installations, road
    accidents on the highways, fires anywhere."""

    def __init__(self, past: Past, weather: WeatherPast, log: FeedLog):
        self.past, self.weather, self.log = past, weather, log
        self.rng = past.rng("incidents")
        self.serial = 0

    def build(self) -> None:
        rng, past = self.rng, self.past
        n = rng.poisson(INCIDENTS_PER_HOUR * (past.end - past.start) / HOUR_S)
        for t in np.sort(rng.uniform(past.start, past.end - 2 * HOUR_S, n)):
            self.incident(float(t), float(rng.uniform(0.5, 3)) * HOUR_S)
        # the console starts with two incidents on hand: a road accident an hour old, and
        # what the rain of now has just done
        self.incident(past.end - 70 * MINUTE_S, 4 * HOUR_S, kind="traffic_accident")
        self.incident(past.end - 25 * MINUTE_S, 5 * HOUR_S, kind="rain")

    def _rain_place(self, t: float):
        """Centre of the heaviest cell raining at ``t`` inside the province, or None."""
        best = None
        for c in self.weather.cells:
            k = float(self.weather.intensity(c, t))
            x, y = self.weather.cell_at(c, t)
            if k > 15 and self.past.county_of(x, y) and (best is None or k > best[0]):
                best = (k, x, y, c.radius)
        return best

    def _place(self, t: float, kind: str | None):
        """(kind, lon, lat, title) of an incident at ``t``."""
        rng, past = self.rng, self.past
        rain = self._rain_place(t)
        if kind == "rain" or (kind is None and rain is not None and rng.random() < 0.4):
            if rain is None:
                rain = (20.0, *past.random_point(rng)[:2], 0.2)
            _, x, y, radius = rain
            slides = past.registry.landslides
            if len(slides):
                d = np.hypot(slides["lon"].to_numpy() - x, slides["lat"].to_numpy() - y)
                if d.min() < radius:
                    p = slides.iloc[int(np.argmin(d))]
                    return ("landslide", round(float(p.lon), 5), round(float(p.lat), 5),
                            f"{str(p['name']).split('村')[0]}村{INCIDENT_ZH['landslide']}")
            code = past.county_of(x, y) or past.random_point(rng)[2]
            lon, lat, code = past.random_point(rng, [code])
            return ("flood", lon, lat, f"{past.county_name(code)}城区{INCIDENT_ZH['flood']}")
        if kind is None:
            kind = str(rng.choice(["fire", "traffic_accident", "hazchem_leak", "explosion"],
                                  p=[0.4, 0.4, 0.15, 0.05]))
        inst = past.registry.installations
        if kind in ("hazchem_leak", "explosion") and len(inst):
            i = inst.iloc[int(rng.integers(len(inst)))]
            return (kind, round(float(i.lon), 5), round(float(i.lat), 5),
                    f"{i.enterprise}{i['name']}{INCIDENT_ZH[kind]}")
        if kind in ("hazchem_leak", "explosion"):
            kind = "fire"
        lon, lat, code = past.random_point(rng)
        county = short_name(past.county_name(code))
        if kind == "traffic_accident":
            return (kind, lon, lat, f"{HIGHWAYS[int(rng.integers(len(HIGHWAYS)))]}{county}段"
                                    f"{INCIDENT_ZH[kind]}")
        return (kind, lon, lat,
                f"{county}{FIRE_PLACES[int(rng.integers(len(FIRE_PLACES)))]}{INCIDENT_ZH[kind]}")

    def incident(self, t: float, duration: float, kind: str | None = None) -> None:
        """Open an incident at ``t``; a follow-up report (续报) for some; closed after
        ``duration`` unless that is after the end of the period."""
        rng, past = self.rng, self.past
        kind, lon, lat, title = self._place(t, kind)
        self.serial += 1
        iid = f"INC-{int(t)}-h{self.serial}"
        lam = {"traffic_accident": (0.3, 2.0, 0.0), "fire": (0.1, 0.6, 0.0),
               "hazchem_leak": (0.2, 1.5, 0.0), "explosion": (0.6, 3.0, 0.2),
               "landslide": (0.2, 0.6, 0.8), "flood": (0.0, 0.2, 0.1)}[kind]
        deaths, injured, missing = (int(rng.poisson(x)) for x in lam)
        base = str(rng.choice(LEVELS, p=[.45, .35, .15, .05]))
        county = past.county_of(lon, lat)

        def report(at: float, status: str, d: int, i: int, m: int, note: str) -> None:
            self.log.add("incidents", at, incident_id=iid, kind=kind, lon=lon, lat=lat,
                         title=title, level=grade(d, i, base), status=status,
                         county_code=county,
                         extra=extra_json({"deaths": d, "injured": i, "missing": m,
                                           "report": note}))

        report(t, "open", deaths, injured, missing, "首报")
        if rng.random() < 0.5:  # a follow-up: the count of the injured rises, missing found
            at = t + rng.uniform(0.2, 0.8) * duration
            if at < past.end:
                injured += int(rng.poisson(0.8))
                deaths, missing = deaths + int(rng.binomial(missing, 0.3)), 0
                report(at, "open", deaths, injured, missing, "续报")
        if t + duration < past.end:
            report(t + duration, "closed", deaths, injured, missing, "终报")
