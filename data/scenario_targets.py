"""What an exercise scenario names, resolved against the registry: places (cities, counties,
points), targets (a sensor, an installation, a landslide point) and sensor values
(``"hi_hi * 1.5"``). Every choice is deterministic (registry order, then distance), so a
scenario resolves the same way at every scale of the demo store.

A target is a TOML inline table, one of::

    {sensor = "rain", county = "兰陵县"}            # the first rain sensor of the county
    {sensor = "river_level", near = "临沂市", rank = 2}   # the second nearest to Linyi
    {installation = "any", near = "东营市", having = ["toxic_gas", "flammable_gas"]}
    {installation = "tank_farm", enterprise = "山东某某化工有限公司", rank = 1}
    {landslide = "any", city = "临沂市"}
    {county = "费县"}  /  {city = "临沂市"}  /  {point = [118.65, 35.75]}

``county``/``city``/``near`` take a name (``临沂市``, ``临沂``, ``兰陵县``), a code
(``371324``) or ``"city/county"`` where a county name is shared (``济南市/市中区``); ``near``
also takes ``[lon, lat]``. ``near`` orders by distance (ties by id), otherwise by id.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from data.province_model import Registry

SENSOR_KINDS = ("tank_level", "temperature", "pressure", "toxic_gas", "flammable_gas", "rain",
                "river_level", "reservoir_level", "air_temperature", "wind_speed", "humidity")
INSTALLATION_KINDS = ("tank_farm", "reactor", "warehouse", "pipeline")
LANDSLIDE_KINDS = ("landslide", "collapse", "debris_flow", "subsidence")
# What a sensor can physically show (a scripted value outside is a typo, not a drill).
PHYSICAL = {"temperature": (-60.0, 1500.0), "pressure": (0.0, 100.0),
            "toxic_gas": (0.0, 10_000.0), "flammable_gas": (0.0, 100.0), "rain": (0.0, 300.0),
            "air_temperature": (-50.0, 50.0), "wind_speed": (0.0, 80.0), "humidity": (0.0, 100.0)}
LIMITS = ("normal", "lo_lo", "lo", "hi", "hi_hi")
_VALUE = re.compile(r"^\s*(?:(?P<num1>[-+]?\d+(?:\.\d*)?)\s*\*\s*)?(?P<limit>[a-z_]+)\s*"
                    r"(?:(?P<op>[*+-])\s*(?P<num2>\d+(?:\.\d*)?))?\s*$")


class TargetError(ValueError):
    """A name or target that does not resolve; the message says what and why."""


@dataclass(frozen=True)
class Place:
    """A resolved location: a point, and the county holding it."""

    lon: float
    lat: float
    county_code: str | None
    label: str


@dataclass(frozen=True)
class Target:
    """A resolved target: ``kind`` is sensor / installation / landslide / place."""

    kind: str
    place: Place
    sensor: int | None = None          # registry position of a sensor
    installation: int | None = None    # installation_id
    label: str = ""


class Resolver:
    """Resolves names against a :class:`~data.province_model.Registry`."""

    def __init__(self, registry: Registry):
        self.r = registry
        c = registry.counties
        self.county_codes = c["county_code"].astype(str).tolist()
        self.county_names = dict(zip(self.county_codes, c["name"].astype(str), strict=True))
        self.county_city = {code: code[:4] + "00" for code in self.county_codes}
        self.county_point = dict(zip(self.county_codes, zip(c["lon"], c["lat"], strict=True),
                                     strict=True))
        ci = registry.cities
        self.city_names = (dict(zip(ci["city_code"].astype(str), ci["name"].astype(str),
                                    strict=True)) if len(ci) else {})
        self.city_point = (dict(zip(ci["city_code"].astype(str), zip(ci["lon"], ci["lat"],
                                                                     strict=True), strict=True))
                           if len(ci) else {})
        self._shapes = None
        s = registry.sensors
        self.sensor_ids = s["sensor_id"].astype(str).to_numpy()
        self.sensor_kind = s["kind"].astype(str).to_numpy()
        self.sensor_county = s["county_code"].astype(str).to_numpy()
        self.sensor_lon = s["lon"].to_numpy(dtype=float)
        self.sensor_lat = s["lat"].to_numpy(dtype=float)
        inst = s["installation_id"] if "installation_id" in s else pd.Series([None] * len(s))
        self.sensor_inst = inst.astype("Int64").to_numpy(dtype=float, na_value=np.nan)

    # ------------------------------------------------------------------ places
    def county(self, name) -> str:
        """County code of a name, short name, code or ``city/county``."""
        text = str(name).strip()
        if text in self.county_names:
            return text
        city = None
        if "/" in text:
            city_text, text = (p.strip() for p in text.split("/", 1))
            city = self.city(city_text)
        hits = [c for c in self.county_codes
                if (city is None or self.county_city[c] == city)
                and text in (self.county_names[c], _short(self.county_names[c]))]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise TargetError(f"county {name!r} is ambiguous ({', '.join(hits)}): write "
                              f"'city/county' or the code")
        raise TargetError(f"unknown county {name!r}")

    def city(self, name) -> str:
        text = str(name).strip()
        if text in self.city_names:
            return text
        hits = [c for c, n in self.city_names.items() if text in (n, _short(n))]
        if not hits and re.fullmatch(r"37\d{2}00", text) and any(
                k.startswith(text[:4]) for k in self.county_codes):
            return text  # a store without the cities table still has its counties
        if len(hits) == 1:
            return hits[0]
        raise TargetError(f"unknown city {name!r}")

    def area(self, names) -> list[str]:
        """County codes of a list of county and city names (a city stands for its counties)."""
        if isinstance(names, str):
            names = [names]
        if not isinstance(names, list) or not names:
            raise TargetError("area must be a non-empty list of counties or cities")
        out: list[str] = []
        for n in names:
            try:
                codes = [self.county(n)]
            except TargetError as county_error:
                try:
                    city = self.city(n)
                except TargetError:
                    raise county_error from None
                codes = [c for c in self.county_codes if self.county_city[c] == city]
            out.extend(c for c in codes if c not in out)
        return out

    def county_of(self, lon: float, lat: float) -> str | None:
        if self._shapes is None:
            import shapely

            b = self.r.boundaries
            self._shapes = ([(str(c), shapely.from_geojson(g)) for c, g in
                             zip(b["code"], b["geojson"], strict=True)] if len(b) else [])
        import shapely

        for code, shape in self._shapes:
            if shapely.contains_xy(shape, lon, lat):
                return code
        return None

    def place(self, spec) -> Place:
        """A point: ``[lon, lat]`` inside the province, or a county or city (its point)."""
        if isinstance(spec, list):
            if len(spec) != 2 or not all(isinstance(v, int | float) for v in spec):
                raise TargetError(f"a point is [lon, lat], not {spec!r}")
            lon, lat = float(spec[0]), float(spec[1])
            code = self.county_of(lon, lat)
            if code is None and self._shapes:
                raise TargetError(f"point [{lon}, {lat}] is outside the province")
            return Place(lon, lat, code, f"[{lon}, {lat}]")
        try:
            code = self.county(spec)
            lon, lat = self.county_point[code]
            return Place(float(lon), float(lat), code, self.county_names[code])
        except TargetError as county_error:
            try:
                city = self.city(spec)
            except TargetError:
                raise county_error from None
            if city in self.city_point:
                lon, lat = self.city_point[city]
            else:
                pts = [self.county_point[c] for c in self.county_codes if c.startswith(city[:4])]
                lon, lat = np.mean(pts, axis=0)
            return Place(float(lon), float(lat), self.county_of(float(lon), float(lat)),
                         self.city_names.get(city, city))

    # ------------------------------------------------------------------ targets
    def _filter(self, spec: dict, codes: np.ndarray, lon: np.ndarray, lat: np.ndarray,
                ids: np.ndarray) -> np.ndarray:
        """Positions matching ``county``/``city``, ordered by ``near`` distance or by id."""
        keep = np.ones(len(codes), dtype=bool)
        if "county" in spec:
            keep &= codes == self.county(spec["county"])
        if "city" in spec:
            keep &= np.array([c[:4] for c in codes]) == self.city(spec["city"])[:4]
        pos = np.flatnonzero(keep)
        if "near" in spec:
            p = self.place(spec["near"])
            d = np.hypot((lon[pos] - p.lon) * np.cos(np.radians(p.lat)), lat[pos] - p.lat)
            return pos[np.lexsort((ids[pos], d))]
        return pos[np.argsort(ids[pos], kind="stable")]

    def _rank(self, spec: dict, pos: np.ndarray, what: str) -> int:
        rank = spec.get("rank", 1)
        if not isinstance(rank, int) or rank < 1:
            raise TargetError(f"rank must be a whole number from 1, not {rank!r}")
        where = ", ".join(f"{k} {spec[k]}" for k in ("county", "city", "near") if k in spec)
        if len(pos) < rank:
            raise TargetError(f"no {what}{' in/near ' + where if where else ''}"
                              f"{f' (rank {rank}: only {len(pos)})' if len(pos) else ''}")
        return int(pos[rank - 1])

    def target(self, spec) -> Target:
        """Resolve a target table (see the module docstring)."""
        if not isinstance(spec, dict):
            raise TargetError(f"a target is a table like {{sensor = 'rain', county = ...}}, "
                              f"not {spec!r}")
        allowed = {"sensor", "installation", "landslide", "county", "city", "near", "rank",
                   "having", "point", "enterprise"}
        unknown = sorted(set(spec) - allowed)
        if unknown:
            raise TargetError(f"unknown key {unknown[0]!r} in target (one of "
                              f"{', '.join(sorted(allowed))})")
        if "sensor" in spec:
            return self._sensor_target(spec)
        if "installation" in spec:
            return self._installation_target(spec)
        if "landslide" in spec:
            return self._landslide_target(spec)
        if "point" in spec:
            return Target("place", self.place(spec["point"]))
        if "county" in spec or "city" in spec:
            return Target("place", self.place(spec.get("county", spec.get("city"))))
        raise TargetError("a target needs sensor, installation, landslide, county, city or point")

    def _sensor_target(self, spec: dict) -> Target:
        kind = spec["sensor"]
        if kind not in SENSOR_KINDS:
            raise TargetError(f"unknown sensor kind {kind!r} (one of {', '.join(SENSOR_KINDS)})")
        match = self.sensor_kind == kind
        pos = self._filter(spec, self.sensor_county, self.sensor_lon, self.sensor_lat,
                           self.sensor_ids)
        pos = pos[match[pos]]
        i = self._rank(spec, pos, f"{kind} sensor")
        place = Place(float(self.sensor_lon[i]), float(self.sensor_lat[i]),
                      str(self.sensor_county[i]), str(self.sensor_ids[i]))
        return Target("sensor", place, sensor=i, label=str(self.sensor_ids[i]))

    def _installation_target(self, spec: dict) -> Target:
        kind = spec["installation"]
        inst = self.r.installations
        if kind != "any" and kind not in INSTALLATION_KINDS:
            raise TargetError(f"unknown installation kind {kind!r} (any, "
                              f"{', '.join(INSTALLATION_KINDS)})")
        having = spec.get("having", [])
        if isinstance(having, str):
            having = [having]
        for k in having:
            if k not in SENSOR_KINDS:
                raise TargetError(f"unknown sensor kind {k!r} in having")
        if not len(inst):
            raise TargetError("the store has no installations")
        ids = inst["installation_id"].to_numpy(dtype=np.int64)
        ok = np.ones(len(inst), dtype=bool) if kind == "any" else (inst["kind"] == kind).to_numpy()
        for k in having:
            with_k = set(self.sensor_inst[(self.sensor_kind == k) & ~np.isnan(self.sensor_inst)]
                         .astype(np.int64).tolist())
            ok &= np.isin(ids, list(with_k))
        if "enterprise" in spec:  # by name: the whole name, else a part of it
            name = str(spec["enterprise"]).strip()
            names = inst["enterprise"].astype(str)
            exact = (names == name).to_numpy()
            ok &= exact if exact.any() else names.str.contains(name, regex=False).to_numpy()
        pos = self._filter(spec, inst["county_code"].astype(str).to_numpy(),
                           inst["lon"].to_numpy(dtype=float), inst["lat"].to_numpy(dtype=float),
                           ids)
        pos = pos[ok[pos]]
        what = f"{'' if kind == 'any' else kind + ' '}installation" + (
            f" of enterprise {spec['enterprise']!r}" if "enterprise" in spec else "") + (
            f" with {' and '.join(having)}" if having else "")
        row = inst.iloc[self._rank(spec, pos, what)]
        place = Place(float(row["lon"]), float(row["lat"]), str(row["county_code"]),
                      f"{row['enterprise']}{row['name']}")
        return Target("installation", place, installation=int(row["installation_id"]),
                      label=place.label)

    def _landslide_target(self, spec: dict) -> Target:
        kind = spec["landslide"]
        pts = self.r.landslides
        if kind != "any" and kind not in LANDSLIDE_KINDS:
            raise TargetError(f"unknown landslide kind {kind!r} (any, {', '.join(LANDSLIDE_KINDS)})")
        if not len(pts):
            raise TargetError("the store has no landslide points")
        ok = np.ones(len(pts), dtype=bool) if kind == "any" else (pts["kind"] == kind).to_numpy()
        pos = self._filter(spec, pts["county_code"].astype(str).to_numpy(),
                           pts["lon"].to_numpy(dtype=float), pts["lat"].to_numpy(dtype=float),
                           pts["point_id"].to_numpy(dtype=np.int64))
        pos = pos[ok[pos]]
        row = pts.iloc[self._rank(spec, pos, "landslide point")]
        # 屯石镇东村滑坡隐患点 -> 屯石镇东村: the place, for titles like 屯石镇东村山体滑坡
        label = re.sub(r"(滑坡|崩塌|泥石流|地面塌陷)?隐患点$", "", str(row["name"]))
        place = Place(float(row["lon"]), float(row["lat"]), str(row["county_code"]), label)
        return Target("landslide", place, label=place.label)

    def sensor_of(self, target: Target, kind: str | None) -> int:
        """The sensor a step drives: a sensor target, or ``installation.kind``."""
        if target.kind == "sensor" and kind is None:
            return int(target.sensor)
        if target.kind == "installation" and kind is not None:
            if kind not in SENSOR_KINDS:
                raise TargetError(f"unknown sensor kind {kind!r}")
            pos = np.flatnonzero((self.sensor_inst == target.installation)
                                 & (self.sensor_kind == kind))
            if not len(pos):
                raise TargetError(f"installation {target.installation} ({target.label}) has no "
                                  f"{kind} sensor")
            return int(pos[np.argsort(self.sensor_ids[pos], kind="stable")][0])
        raise TargetError("a sensor is a sensor target, or an installation target's "
                          "'name.kind' (e.g. plant.toxic_gas)")

    # ------------------------------------------------------------------ values
    def value(self, sensor: int, spec) -> float:
        """A value of ``sensor``: a number, a limit, or ``limit * k`` / ``limit ± x``;
        refused outside what the sensor can physically show."""
        s = self.r.sensors.iloc[sensor]
        if isinstance(spec, bool) or not isinstance(spec, int | float | str):
            raise TargetError(f"a value is a number or an expression like 'hi_hi * 1.5', "
                              f"not {spec!r}")
        if isinstance(spec, str):
            m = _VALUE.match(spec)
            if not m or m["limit"] not in LIMITS or (m["num1"] and m["op"]):
                raise TargetError(f"bad value {spec!r}: a number, or a limit "
                                  f"({', '.join(LIMITS)}) times a number, plus or minus one")
            base = s[m["limit"]]
            if base is None or pd.isna(base):
                raise TargetError(f"sensor {s['sensor_id']} ({s['kind']}) has no {m['limit']}")
            base = float(base)
            if m["num1"]:
                value = float(m["num1"]) * base
            elif m["op"] == "*":
                value = base * float(m["num2"])
            elif m["op"] == "+":
                value = base + float(m["num2"])
            elif m["op"] == "-":
                value = base - float(m["num2"])
            else:
                value = base
        else:
            value = float(spec)
        lo, hi = self.physical(sensor)
        if not (np.isfinite(value) and lo <= value <= hi):
            raise TargetError(f"value {value:g} {s['unit'] if 'unit' in s else ''}".rstrip()
                              + f" is out of the physical range of {s['sensor_id']} "
                                f"({s['kind']}: {lo:g} … {hi:g})")
        return round(value, 3)

    def physical(self, sensor: int) -> tuple[float, float]:
        """What a sensor can physically show."""
        s = self.r.sensors.iloc[sensor]
        kind = s["kind"]
        if kind in PHYSICAL:
            return PHYSICAL[kind]
        top = max(float(v) for v in (s["hi"], s["hi_hi"], s["normal"]) if pd.notna(v))
        if kind == "tank_level":  # hi_hi is 92 % of the tank's height
            height = float(s["hi_hi"]) / 0.92 if pd.notna(s["hi_hi"]) else top
            return 0.0, round(height, 3)
        # river and reservoir levels are elevations: a few metres around their limits
        return round(float(s["normal"]) - 15.0, 3), round(top + 10.0, 3)


def _short(name: str) -> str:
    return name[:-1] if len(name) > 2 and name[-1] in "市区县" else name
