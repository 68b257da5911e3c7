"""Vectorised building blocks of the demo data: people, phones, addresses, places.

Every function takes a seeded ``numpy.random.Generator`` and returns arrays, so the generator
never loops over rows.
"""
from __future__ import annotations

import numpy as np

from data import names
from data.geo import Geography, inside, sample_in_county

DEG_PER_KM = 1 / 111.2


def pick(rng: np.random.Generator, choices, n: int, p=None) -> np.ndarray:
    """``n`` items of ``choices`` (a list of strings), as a numpy array of str."""
    arr = np.asarray(list(choices))
    if p is not None:
        p = np.asarray(p, dtype=float)
        p = p / p.sum()
    return arr[rng.choice(len(arr), size=n, p=p)]


def cat(*parts) -> np.ndarray:
    """Element-wise string concatenation of arrays and scalars."""
    out = np.asarray(parts[0]).astype(object)
    for part in parts[1:]:
        out = out + np.asarray(part).astype(object)
    return out.astype(str)


def person_names(rng: np.random.Generator, n: int) -> np.ndarray:
    """Chinese personal names: a surname and one or two given characters."""
    surname = pick(rng, names.SURNAMES, n, p=np.linspace(3, 1, len(names.SURNAMES)))
    g1 = pick(rng, names.GIVEN_CHARS, n)
    g2 = pick(rng, names.GIVEN_CHARS, n)
    two = rng.random(n) < 0.7
    return np.where(two, cat(surname, g1, g2), cat(surname, g1))


def mobile_phones(rng: np.random.Generator, n: int) -> np.ndarray:
    """Mainland mobile numbers (11 digits)."""
    prefix = pick(rng, ["13", "15", "18", "17", "19"], n, p=[4, 3, 3, 1, 1])
    rest = rng.integers(0, 10**9, n)
    return cat(prefix, np.char.zfill(rest.astype(str), 9))


def landline_phones(rng: np.random.Generator, city_codes: np.ndarray) -> np.ndarray:
    """Office numbers with the city's area code, e.g. ``0531-86123456``."""
    area = {"370100": "0531", "370200": "0532", "370300": "0533", "370400": "0632",
            "370500": "0546", "370600": "0535", "370700": "0536", "370800": "0537",
            "370900": "0538", "371000": "0631", "371100": "0633", "371300": "0539",
            "371400": "0534", "371500": "0635", "371600": "0543", "371700": "0530"}
    codes = np.array([area.get(c, "0531") for c in city_codes])
    number = rng.integers(2 * 10**7, 9 * 10**7, len(city_codes))
    return cat(codes, "-", number.astype(str))


def short_name(name: str) -> str:
    """济南市 -> 济南, 历下区 -> 历下 (kept when only one character would remain)."""
    if len(name) > 2 and name[-1] in "市区县":
        return name[:-1]
    return name


def town_names(rng: np.random.Generator, n: int) -> np.ndarray:
    """Plausible township names (two characters and 镇/街道/乡)."""
    a = pick(rng, names.TOWN_STEMS, n)
    b = pick(rng, names.TOWN_STEMS, n)
    kind = pick(rng, names.TOWN_KINDS, n)
    return cat(a, b, kind)


def street_addresses(rng: np.random.Generator, city: np.ndarray,
                     county: np.ndarray) -> np.ndarray:
    """``山东省济南市历下区泉城路123号``."""
    n = len(city)
    road = cat(pick(rng, names.ROAD_STEMS, n), pick(rng, names.ROAD_KINDS, n))
    number = rng.integers(1, 999, n).astype(str)
    return cat("山东省", city, county, road, number, "号")


def scatter(geo: Geography, rng: np.random.Generator, county_codes: np.ndarray,
            lon0: np.ndarray, lat0: np.ndarray, sigma_km, *, tries: int = 6,
            fallback: str = "anchor") -> tuple[np.ndarray, np.ndarray]:
    """Scatter points around anchors, keeping every point inside its county.

    Points are drawn from a normal distribution of ``sigma_km`` around each anchor; those
    that fall outside their county are redrawn (with a shrinking spread) up to ``tries``
    times, then put on the anchor itself (``fallback="anchor"``, the anchor must lie in the
    county) or drawn uniformly inside the county (``fallback="uniform"``).

    Returns
    -------
    tuple of numpy.ndarray
        ``lon, lat``, every point inside its county.
    """
    n = len(county_codes)
    sigma = np.broadcast_to(np.asarray(sigma_km, dtype=float), (n,)) * DEG_PER_KM
    coslat = np.cos(np.radians(lat0))
    lon = np.empty(n)
    lat = np.empty(n)
    todo = np.arange(n)
    for attempt in range(tries):
        if len(todo) == 0:
            break
        s = sigma[todo] * (0.6 ** attempt)
        lon[todo] = lon0[todo] + rng.normal(0, 1, len(todo)) * s / coslat[todo]
        lat[todo] = lat0[todo] + rng.normal(0, 1, len(todo)) * s
        ok = inside(geo, county_codes[todo], lon[todo], lat[todo])
        todo = todo[~ok]
    if len(todo):
        if fallback == "anchor":
            lon[todo], lat[todo] = lon0[todo], lat0[todo]
        else:
            codes = county_codes[todo]
            for code in np.unique(codes):
                idx = todo[codes == code]
                lon[idx], lat[idx] = sample_in_county(geo, code, len(idx), rng)
    return lon, lat


def uniform_in_counties(geo: Geography, rng: np.random.Generator,
                        county_codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One point drawn uniformly inside the county of each entry."""
    n = len(county_codes)
    lon = np.empty(n)
    lat = np.empty(n)
    for code in np.unique(county_codes):
        idx = np.flatnonzero(county_codes == code)
        lon[idx], lat[idx] = sample_in_county(geo, code, len(idx), rng)
    return lon, lat


def allocate(rng: np.random.Generator, total: int, weights: np.ndarray,
             minimum: int = 0) -> np.ndarray:
    """Split ``total`` into integer counts proportional to ``weights`` (each ≥ ``minimum``)."""
    weights = np.asarray(weights, dtype=float)
    base = np.full(len(weights), minimum, dtype=np.int64)
    rest = total - base.sum()
    if rest < 0:
        raise ValueError(f"cannot give {minimum} each of {len(weights)} out of {total}")
    return base + rng.multinomial(rest, weights / weights.sum())


def morton_key(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Z-order (Morton) key of lon/lat within Shandong's extent.

    Rows stored in this order are near each other on the map too, so that DuckDB's row-group
    min/max statistics let a map viewport query skip most of a large table.
    """
    def spread(v: np.ndarray) -> np.ndarray:
        v = v.astype(np.uint64) & np.uint64(0xFFFF)
        for shift, mask in ((8, 0x00FF00FF), (4, 0x0F0F0F0F), (2, 0x33333333),
                            (1, 0x55555555)):
            v = (v | (v << np.uint64(shift))) & np.uint64(mask)
        return v

    x = np.clip((np.asarray(lon) - 114.0) / 9.0 * 65535, 0, 65535)
    y = np.clip((np.asarray(lat) - 34.0) / 5.0 * 65535, 0, 65535)
    return spread(x) | (spread(y) << np.uint64(1))
