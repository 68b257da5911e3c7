"""What the steps of the history share: the period, the registry, seeded generators, and the
log of feed messages they produce (written with seqs in time order at the end)."""
from __future__ import annotations

import datetime as dt
import json
import zlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import shapely

from data.geo import Geography
from data.laws import CST
from data.province_model import Registry

FEED = "history://demo"
"""Feed name of every row the history writes as if a feed had sent it (its own seq space)."""

DAY_S = 86_400.0
HOUR_S = 3_600.0
MINUTE_S = 60.0


@dataclass
class Past:
    """The period ``[start, end]`` (epoch seconds, UTC) and what the province holds.

    ``end`` is the moment the console is meant to start at ("now" of the build); every row
    of the history lies before it.
    """

    start: float
    end: float
    seed: int
    registry: Registry
    geo: Geography

    def rng(self, step: str) -> np.random.Generator:
        """An independent generator per step (steps do not disturb each other)."""
        return np.random.default_rng([self.seed, zlib.crc32(f"history/{step}".encode())])

    @property
    def counties(self) -> pd.DataFrame:
        return self.registry.counties

    def county_of(self, lon: float, lat: float) -> str | None:
        """The county holding a point (as the ingest looks it up for incidents)."""
        for code, shape in self.geo.county_shapes.items():
            if shapely.contains_xy(shape, lon, lat):
                return str(code)
        return None

    def county_name(self, code: str) -> str:
        names = dict(zip(self.counties["county_code"], self.counties["name"], strict=True))
        return str(names.get(code, code))

    def random_point(self, rng: np.random.Generator,
                     codes: list[str] | None = None) -> tuple[float, float, str]:
        """A uniform point inside a county (drawn from ``codes``, else any county)."""
        pool = codes or list(self.geo.county_shapes)
        code = str(pool[int(rng.integers(len(pool)))])
        shape = self.geo.county_shapes[code]
        x0, y0, x1, y1 = shape.bounds
        for _ in range(200):
            x, y = rng.uniform(x0, x1), rng.uniform(y0, y1)
            if shapely.contains_xy(shape, x, y):
                return round(float(x), 5), round(float(y), 5), code
        row = self.counties.set_index("county_code").loc[code]
        return round(float(row.lon), 5), round(float(row.lat), 5), code


def china_day(t: float) -> str:
    """``YYYYMMDD`` of epoch seconds ``t`` in China time (warning numbers count per day)."""
    return dt.datetime.fromtimestamp(t, CST).strftime("%Y%m%d")


def extra_json(fields: dict) -> str | None:
    """Unknown extra fields of a message as the ingest stores them (JSON, or None)."""
    return json.dumps(fields, ensure_ascii=False, allow_nan=True, default=str) if fields else None


@dataclass
class FeedLog:
    """Messages "received" from :data:`FEED` during the past, by table, each with its ``ts``.

    Seqs are given when they are written (:mod:`data.history.write`): in time order with
    the readings, so the history reads like one feed's stream.
    """

    rows: dict[str, list[dict]] = field(default_factory=lambda: {
        "hotspots": [], "quakes": [], "warnings": [], "incidents": []})

    def add(self, table: str, ts: float, **columns) -> None:
        self.rows[table].append({"ts": float(ts), **columns})

    def count(self, table: str) -> int:
        return len(self.rows[table])
