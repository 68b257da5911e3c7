"""Geography, once: GeoJSON rings, distances, and the province's counties (outlines, lookup).

Every module that parses an outline, measures a distance or asks "which county is this
point in" imports it from here. Nothing here imports Panel.
"""
from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import shapely

#: Mean Earth radius (km), IUGG.
EARTH_KM = 6371.0088

Ring = list[tuple[float, float]]


# ---------------------------------------------------------------------- distances
def haversine_km(lon0, lat0, lon, lat) -> np.ndarray:
    """Great-circle distance in km from ``(lon0, lat0)`` to each ``(lon, lat)`` (degrees).

    Any argument may be an array (numpy broadcasting).
    """
    lon0, lat0, lon, lat = (np.radians(np.asarray(v, dtype="float64"))
                            for v in (lon0, lat0, lon, lat))
    a = np.sin((lat - lat0) / 2) ** 2 + np.cos(lat0) * np.cos(lat) * np.sin((lon - lon0) / 2) ** 2
    return 2 * EARTH_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def haversine_sql(lon: str = "lon", lat: str = "lat") -> str:
    """SQL for the great-circle distance in km from ``($lon, $lat)`` to the columns given."""
    return (
        f"2 * {EARTH_KM} * asin(sqrt(pow(sin(radians({lat} - $lat) / 2), 2) + "
        f"cos(radians($lat)) * cos(radians({lat})) * pow(sin(radians({lon} - $lon) / 2), 2)))"
    )


# ---------------------------------------------------------------------- rings
def geometry(geojson: str | dict | None) -> dict | None:
    """The geometry dict of GeoJSON text or a dict (a Feature's geometry); None if malformed."""
    if not isinstance(geojson, str | dict) or not geojson:
        return None
    try:
        geo = json.loads(geojson) if isinstance(geojson, str) else geojson
    except ValueError:  # a malformed drawn area must not take a page down
        return None
    if not isinstance(geo, dict):
        return None
    if geo.get("type") == "Feature":
        geo = geo.get("geometry") or {}
    return geo if geo.get("type") in ("Polygon", "MultiPolygon") else None


def rings(geojson: str | dict | None, *, holes: bool = False) -> list[Ring]:
    """Rings of a GeoJSON Polygon / MultiPolygon (or Feature) as ``[(lon, lat), ...]`` lists.

    Exterior rings only (what ``patches`` fill), or every ring with ``holes=True``. Anything
    that is not a polygon, or malformed, gives no ring.
    """
    geo = geometry(geojson)
    if geo is None:
        return []
    coords = geo.get("coordinates") or []
    polys = coords if geo["type"] == "MultiPolygon" else [coords]
    out: list[Ring] = []
    for poly in polys:
        for ring in (poly if holes else poly[:1]):
            out.append([(float(p[0]), float(p[1])) for p in ring])
    return out


def polygonal(shape: shapely.Geometry) -> shapely.Geometry:
    """The polygons of a geometry (an intersection may add lines and points): a Polygon,
    a MultiPolygon, or an empty Polygon."""
    polys: list[shapely.Polygon] = []

    def walk(g):
        if g.is_empty:
            return
        if g.geom_type == "Polygon":
            polys.append(g)
        elif hasattr(g, "geoms"):
            for part in g.geoms:
                walk(part)

    walk(shape)
    if not polys:
        return shapely.Polygon()
    return polys[0] if len(polys) == 1 else shapely.MultiPolygon(polys)


def clip_to(shape: shapely.Geometry, region: shapely.Geometry) -> shapely.Geometry:
    """The part of ``shape`` inside ``region`` (polygons only); a shape wholly inside is
    returned as it is (its own vertices, order and start)."""
    if shapely.contains(region, shape):
        return polygonal(shape)
    return polygonal(shapely.intersection(shape, region))


def shape_rings(shape) -> list[Ring]:
    """Exterior rings ``(lon, lat)`` of each polygon of a shapely geometry."""
    shape = polygonal(shape)
    return [list(p.exterior.coords) for p in getattr(shape, "geoms", [shape]) if not p.is_empty]


def rings_xy(rings_: Iterable[Sequence]) -> tuple[np.ndarray, np.ndarray]:
    """Rings as one x and one y array with NaN between rings (one multi-part glyph)."""
    parts = [np.asarray(r, dtype="float64") for r in rings_ if len(r)]
    if not parts:
        return np.array([]), np.array([])
    xs = np.concatenate([np.append(p[:, 0], np.nan) for p in parts])
    ys = np.concatenate([np.append(p[:, 1], np.nan) for p in parts])
    return xs[:-1], ys[:-1]


def simplify(ring: Ring, tolerance: float) -> Ring:
    """Douglas–Peucker simplification of a ring (unchanged below 16 points)."""
    if tolerance <= 0 or len(ring) < 16:
        return ring
    return list(shapely.LineString(ring).simplify(tolerance).coords)


# ---------------------------------------------------------------------- counties
class CountyGeometry:
    """The province's counties and cities from the store, parsed once on first use.

    Outlines (``boundaries``), representative points and populations (``counties``),
    point-in-county and area-to-counties lookups. One instance is shared by every source of
    a console (thread-safe lazy loading); a notebook builds its own with ``CountyGeometry(store)``.
    """

    def __init__(self, store):
        self.store = store
        self._lock = threading.Lock()
        self._loaded = False

    @classmethod
    def load(cls, store) -> CountyGeometry:
        """Build and parse now."""
        geo = cls(store)
        geo._load()
        return geo

    def _load(self) -> None:
        if self._loaded:
            return
        with self._lock:
            if self._loaded:
                return
            b = self.store.df("SELECT code, name, geojson FROM boundaries "
                              "WHERE level = 'county' ORDER BY code")
            pts = self.store.df("SELECT county_code, name, city, lon, lat, population "
                                "FROM counties ORDER BY county_code")
            shapes, outer = {}, {}
            for code, text in zip(b["code"], b["geojson"], strict=True):
                shape = shapely.geometry.shape(json.loads(text))
                shapely.prepare(shape)
                shapes[code] = shape
                outer[code] = shape_rings(shape)
            names = dict(zip(pts["county_code"], pts["name"], strict=True))
            names.update({c: n for c, n in zip(b["code"], b["name"], strict=True)
                          if c not in names})
            self._shapes, self._rings, self._names, self._points = shapes, outer, names, pts
            self._codes = sorted(names)
            self._tree_codes = list(shapes)
            self._tree = shapely.STRtree([shapes[c] for c in self._tree_codes])
            self._loaded = True

    # ------------------------------------------------------------------ what was parsed
    @property
    def codes(self) -> list[str]:
        """County codes, sorted."""
        self._load()
        return self._codes

    @property
    def names(self) -> dict[str, str]:
        """County name by code."""
        self._load()
        return self._names

    @property
    def shapes(self) -> dict[str, Any]:
        """Prepared shapely geometry by county code."""
        self._load()
        return self._shapes

    @property
    def rings(self) -> dict[str, list[Ring]]:
        """Exterior rings ``[(lon, lat), ...]`` by county code."""
        self._load()
        return self._rings

    @property
    def points(self) -> pd.DataFrame:
        """``county_code, name, city, lon, lat, population`` of every county."""
        self._load()
        return self._points

    @property
    def province(self):
        """The province's outline (union of its counties), prepared."""
        self._load()
        if not hasattr(self, "_province"):
            province = shapely.union_all(list(self._shapes.values())).buffer(0)
            shapely.prepare(province)
            self._province = province
        return self._province

    # ------------------------------------------------------------------ lookups
    def county_of(self, lon: float, lat: float) -> str | None:
        """The county containing a point (None outside the province)."""
        self._load()
        try:
            hits = self._tree.query(shapely.Point(float(lon), float(lat)), predicate="intersects")
        except (TypeError, ValueError):
            return None
        return self._tree_codes[int(min(hits))] if len(hits) else None

    def counties_in(self, area) -> list[str]:
        """Codes of the counties a GeoJSON area (text or dict) or shapely shape touches."""
        self._load()
        if isinstance(area, str | dict):
            geo = geometry(area)
            if geo is None:
                return []
            area = shapely.geometry.shape(geo)
        return sorted(self._tree_codes[int(i)]
                      for i in self._tree.query(area, predicate="intersects"))

    def intersecting(self, shape) -> list[str]:
        """Codes of the counties an area overlaps by more than a sliver."""
        return sorted(code for code in self.counties_in(shape)
                      if self.shapes[code].intersection(shape).area > 1e-7)

    def point(self, code: str) -> tuple[float, float] | None:
        """The representative ``(lon, lat)`` of a county, None if unknown."""
        row = self.points[self.points.county_code == str(code)]
        if not len(row) or pd.isna(row.lon.iloc[0]):
            return None
        return float(row.lon.iloc[0]), float(row.lat.iloc[0])

    def grid(self, nx: int = 120, ny: int = 90):
        """Cell centres (lon, lat 2-D arrays) over the province and its inside mask."""
        cache = self.__dict__.setdefault("_grids", {})
        if (nx, ny) not in cache:
            x0, y0, x1, y1 = self.province.bounds
            lon, lat = np.meshgrid(np.linspace(x0, x1, nx), np.linspace(y0, y1, ny))
            cache[(nx, ny)] = (lon, lat, shapely.contains_xy(self.province, lon, lat))
        return cache[(nx, ny)]

    def outlines(self, values: dict | None = None) -> list[dict]:
        """One dict per county for ``hv.Polygons`` (lon/lat with NaN between parts)."""
        out = []
        for code in self.codes:
            xs, ys = rings_xy(self.rings.get(code, []))
            if not len(xs):
                continue
            item = {"lon": xs, "lat": ys, "county_code": code, "name": self.names.get(code, code)}
            item.update((values or {}).get(code, {}))
            out.append(item)
        return out
