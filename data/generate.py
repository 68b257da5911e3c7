"""Deterministic demo data: Shandong province on its real county boundaries.

``python -m data.generate --scale tiny|small|demo|large --seed N --db PATH`` builds a complete
store: every registry table of ``data/schema.sql``, and the week of live data before the
build (readings, alarms worked by the duty officers, warnings, incidents, quakes, hotspots:
:mod:`data.history`; ``--no-history`` leaves the live tables empty). The same seed gives
identical tables; dates are relative to the build day (``today``) and the history ends at
the build's moment (``--now``), both fixed when given.

The build writes ``PATH.tmp`` and renames it over ``PATH`` at the end, so an interrupted build
never leaves a half-written store.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from data import names
from data.geo import Geography, boundaries_frame, load_shandong
from data.synth import (
    allocate,
    cat,
    mobile_phones,
    morton_key,
    person_names,
    pick,
    scatter,
    short_name,
    street_addresses,
    town_names,
    uniform_in_counties,
)

_DEMO = {
    "enterprises": 85_000, "risk_points": 2_350_000, "hazards": 250_000,
    "major_hazard_enterprises": 1_190, "installations": 4_210,
    "rain_gauges": 1_500, "river_stations": 300, "reservoirs": 254, "weather_stations": 136,
    "landslide_points": 10_000, "warehouses": 760, "material_kinds": 1_250,
    "stock_items": 22_670_000, "rescue_teams": 500, "shelters": 2_000, "experts": 600,
    "expert_tags": 150,
}
#: Target row counts per scale (stock_items is the sum of stock.quantity; sensors follow the
#: installations and stations: 3–8 per installation, one per rain/river/reservoir station and
#: four per weather station).
SCALES: dict[str, dict[str, int]] = {
    "tiny": {
        "enterprises": 2_000, "risk_points": 20_000, "hazards": 2_000,
        "major_hazard_enterprises": 20, "installations": 60, "rain_gauges": 60,
        "river_stations": 24, "reservoirs": 16, "weather_stations": 136,
        "landslide_points": 200, "warehouses": 40, "material_kinds": 120,
        "stock_items": 400_000, "rescue_teams": 24, "shelters": 80, "experts": 40,
        "expert_tags": 150,
    },
    "small": {k: (v if k in ("weather_stations", "expert_tags") else round(v / 10))
              for k, v in _DEMO.items()},
    "demo": dict(_DEMO),
    "large": {**_DEMO, "risk_points": 23_500_000},
}
RISK_LEVELS = ("red", "orange", "yellow", "blue")
# Point grade given its enterprise's grade (rows: enterprise red..blue; columns: point grade).
_POINT_GRADE = np.array([
    [0.15, 0.25, 0.35, 0.25],
    [0.00, 0.20, 0.40, 0.40],
    [0.00, 0.00, 0.35, 0.65],
    [0.00, 0.00, 0.00, 1.00],
])
# 2020 census population of the cities, millions.
_CITY_POPULATION_M = {
    "370100": 9.20, "370200": 10.07, "370300": 4.70, "370400": 3.86, "370500": 2.19,
    "370600": 7.10, "370700": 9.39, "370800": 8.36, "370900": 5.47, "371000": 2.91,
    "371100": 2.97, "371300": 11.02, "371400": 5.61, "371500": 5.95, "371600": 3.93,
    "371700": 8.80,
}
_SIZE_SHARE = {"large": 0.03, "medium": 0.12, "small": 0.45, "micro": 0.40}
_SIZE_POINTS = {"large": 6.0, "medium": 2.5, "small": 1.0, "micro": 0.5}
_SIZE_SPREAD_KM = {"large": 0.6, "medium": 0.4, "small": 0.25, "micro": 0.15}
_PARK_SHARE = {"hazchem": 0.7, "metallurgy": 0.4, "nonferrous": 0.4, "machinery": 0.2,
               "building_materials": 0.2, "textile": 0.2, "light_industry": 0.2,
               "logistics": 0.15, "gas": 0.1}
_REMOTE = {"mining", "fireworks", "explosives"}  # away from towns
POINTS_CHUNK = 2_500_000  # risk points generated and inserted per batch


@dataclass
class World:
    """What the build steps share: geography, counts, seed, the registry built so far."""

    geo: Geography
    counts: dict[str, int]
    seed: int
    today: dt.date
    counties: pd.DataFrame = None
    towns: pd.DataFrame = None
    parks: pd.DataFrame = None
    enterprises: pd.DataFrame = None
    point_enterprise: np.ndarray = None
    point_level: np.ndarray = None
    extra: dict = field(default_factory=dict)

    def rng(self, step: str) -> np.random.Generator:
        """An independent generator per step, so that steps do not disturb each other."""
        return np.random.default_rng([self.seed, zlib.crc32(step.encode())])


def dictionary(values: np.ndarray, categories) -> pa.DictionaryArray:
    """A dictionary-encoded Arrow string column from integer codes into ``categories``."""
    return pa.DictionaryArray.from_arrays(pa.array(np.asarray(values, dtype=np.int32)),
                                          pa.array(list(categories), pa.string()))


# ---------------------------------------------------------------------- geography
def build_geography(world: World, store) -> None:
    """cities, counties (with population), boundaries, industries; towns and parks."""
    rng = world.rng("geography")
    geo = world.geo
    counties = geo.counties.copy()
    urban = counties.name.str.endswith("区") & (counties.area_km2 < 700)
    weight = counties.area_km2 * np.where(urban, 4.0, 1.0) * rng.lognormal(0, 0.15, len(counties))
    share = weight / weight.groupby(counties.city_code).transform("sum")
    city_pop = counties.city_code.map(_CITY_POPULATION_M) * 1e6
    counties["population"] = (share * city_pop).round().astype("int64")
    counties["urban"] = urban
    world.counties = counties

    # Towns: the county seat (its representative point) and a few townships around it.
    n_towns = np.clip((counties.area_km2 / 180).round().astype(int), 3, 10).to_numpy()
    codes = np.repeat(counties.county_code.to_numpy(), n_towns)
    lon, lat = uniform_in_counties(geo, rng, codes)
    towns = pd.DataFrame({"county_code": codes, "name": town_names(rng, len(codes)),
                          "lon": lon, "lat": lat, "seat": False})
    seats = pd.DataFrame({"county_code": counties.county_code, "name": counties.name,
                          "lon": counties.lon, "lat": counties.lat, "seat": True})
    world.towns = pd.concat([seats, towns], ignore_index=True)

    # Industrial and chemical parks: a few per city, in its non-urban counties.
    rows = []
    for city_code, group in counties.groupby("city_code"):
        pool = group[~group.urban]
        pool = pool if len(pool) else group
        k = int(rng.integers(2, 5))
        chosen = pool.county_code.to_numpy()[rng.choice(len(pool), size=k, replace=k > len(pool))]
        for code in chosen:
            name = short_name(counties.set_index("county_code").at[code, "name"])
            rows.append((city_code, code, name + names.PARK_KINDS[len(rows) % 5]))
    parks = pd.DataFrame(rows, columns=["city_code", "county_code", "name"])
    parks["lon"], parks["lat"] = uniform_in_counties(geo, rng, parks.county_code.to_numpy())
    world.parks = parks

    with store.transaction() as cur:
        store.insert("cities", geo.cities, cur=cur)
        store.insert("counties", counties.drop(columns=["urban"]), cur=cur)
        store.insert("boundaries", boundaries_frame(geo), cur=cur)
        store.insert("industries", pd.DataFrame(
            [(k, zh, en) for k, (zh, en) in names.INDUSTRIES.items()],
            columns=["industry", "name_zh", "name_en"]), cur=cur)


# ---------------------------------------------------------------------- enterprises
def build_enterprises(world: World, store) -> None:
    """enterprises: industry, size, county, place (towns, parks), grade and contacts."""
    rng = world.rng("enterprises")
    n = world.counts["enterprises"]
    counties, towns, parks = world.counties, world.towns, world.parks
    industries = list(names.INDUSTRIES)
    ind = rng.choice(len(industries), size=n, p=_norm([names.INDUSTRY_SHARE[k]
                                                      for k in industries]))
    industry = np.array(industries)[ind]
    sizes = list(_SIZE_SHARE)
    size_p = np.array(list(_SIZE_SHARE.values()))
    size = np.array(sizes)[rng.choice(4, size=n, p=size_p)]
    heavy = np.isin(industry, ["hazchem", "metallurgy", "nonferrous"])
    upgrade = heavy & (rng.random(n) < 0.25)
    size = np.where(upgrade & (size == "micro"), "small",
                    np.where(upgrade & (size == "small"), "medium", size))

    county = pick(rng, counties.county_code, n, p=counties.population)
    anchor_lon = np.empty(n)
    anchor_lat = np.empty(n)
    spread = np.empty(n)
    park_name = np.full(n, "", dtype=object)
    # Park-bound enterprises move to a park of their city.
    park_share = np.array([_PARK_SHARE.get(k, 0.0) for k in industry])
    to_park = rng.random(n) < park_share
    city_of = dict(zip(counties.county_code, counties.city_code, strict=True))
    city = np.array([city_of[c] for c in county])
    for city_code, group in parks.groupby("city_code"):
        idx = np.flatnonzero(to_park & (city == city_code))
        which = rng.integers(0, len(group), len(idx))
        county[idx] = group.county_code.to_numpy()[which]
        anchor_lon[idx] = group.lon.to_numpy()[which]
        anchor_lat[idx] = group.lat.to_numpy()[which]
        park_name[idx] = group.name.to_numpy()[which]
        spread[idx] = 1.5
    # The others gather around the county seat and townships.
    rest = np.flatnonzero(~to_park)
    town_weight = np.where(towns.seat, 3.0, 1.0)
    town_codes = towns.county_code.to_numpy()
    for code in np.unique(county[rest]):
        idx = rest[county[rest] == code]
        cand = np.flatnonzero(town_codes == code)
        which = cand[rng.choice(len(cand), size=len(idx), p=_norm(town_weight[cand]))]
        anchor_lon[idx] = towns.lon.to_numpy()[which]
        anchor_lat[idx] = towns.lat.to_numpy()[which]
        spread[idx] = np.where(towns.seat.to_numpy()[which], 2.5, 1.2)
    lon, lat = scatter(world.geo, rng, county, anchor_lon, anchor_lat, spread,
                       fallback="uniform")
    # Mines and explosives away from towns; a few workshops in the villages.
    remote = np.flatnonzero(np.isin(industry, list(_REMOTE))
                            | (~to_park & (rng.random(n) < 0.08)))
    lon[remote], lat[remote] = uniform_in_counties(world.geo, rng, county[remote])

    # The enterprise's grade bounds its points' grades (its worst point has that grade).
    f = np.array([names.INDUSTRY_RISK[k] for k in industry]) * pd.Series(size).map(
        {"large": 1.5, "medium": 1.2, "small": 1.0, "micro": 0.8}).to_numpy()
    p_red, p_orange, p_yellow = 0.038 * f, 0.15 * f, np.full(n, 0.40)
    u = rng.random(n)
    grade = np.select([u < p_red, u < p_red + p_orange, u < p_red + p_orange + p_yellow],
                      [0, 1, 2], 3)

    county_row = counties.set_index("county_code").loc[county]
    trade = cat(pick(rng, names.TRADE_CHARS, n), pick(rng, names.TRADE_CHARS, n))
    word = np.array([names.INDUSTRY_WORDS[k][j % len(names.INDUSTRY_WORDS[k])]
                     for k, j in zip(industry, rng.integers(0, 1000, n), strict=True)])
    prefix_kind = rng.choice(3, size=n, p=[0.25, 0.45, 0.30])
    prefix = np.select([prefix_kind == 0, prefix_kind == 1],
                       ["山东", np.vectorize(short_name)(county_row.city.to_numpy())],
                       np.vectorize(short_name)(county_row.name.to_numpy()))
    suffix = pick(rng, names.COMPANY_SUFFIX, n)
    name = cat(prefix, trade, word, suffix).astype(object)
    dup = pd.Series(name).duplicated().to_numpy()
    name[dup] = cat(name[dup], "（", county_row.name.to_numpy()[dup], "分公司）")
    address = street_addresses(rng, county_row.city.to_numpy(), county_row.name.to_numpy())
    in_park = park_name != ""
    park_address = cat("山东省", county_row.city.to_numpy(), county_row.name.to_numpy(),
                       park_name.astype(str), rng.integers(1, 300, n).astype(str), "号")
    address = np.where(in_park, park_address, address)
    ent = pd.DataFrame({
        "name": name, "industry": industry, "size": size, "county_code": county,
        "address": address,
        "contact_name": person_names(rng, n), "contact_phone": mobile_phones(rng, n),
        "lon": lon, "lat": lat, "grade": grade, "is_major_hazard": False,
    })
    # Number enterprises (and so their risk points) along a Z-order curve: map viewport
    # queries then touch few row groups.
    ent = ent.iloc[np.argsort(morton_key(lon, lat), kind="stable")].reset_index(drop=True)
    ent.insert(0, "enterprise_id", np.arange(1, n + 1, dtype=np.int32))
    world.enterprises = ent


def _norm(w) -> np.ndarray:
    w = np.asarray(w, dtype=float)
    return w / w.sum()


# ---------------------------------------------------------------------- risk points
def build_risk_points(world: World, store, tick: Callable[[str], None] | None = None) -> None:
    """risk_points: a few hundred metres around their enterprise, graded under its grade."""
    rng = world.rng("risk_points")
    ent = world.enterprises
    total = world.counts["risk_points"]
    weight = (rng.lognormal(0, 0.6, len(ent)) * ent["size"].map(_SIZE_POINTS).to_numpy()
              * np.sqrt(ent.industry.map(names.INDUSTRY_RISK).to_numpy()))
    per_ent = allocate(rng, total, weight, minimum=1)
    ent_idx = np.repeat(np.arange(len(ent)), per_ent)
    grade_of_ent = ent.grade.to_numpy()
    cum = np.cumsum(_POINT_GRADE, axis=1)
    u = rng.random(total)
    point_ent_grade = grade_of_ent[ent_idx]
    level = np.empty(total, dtype=np.int8)
    for g in range(4):
        m = point_ent_grade == g
        level[m] = np.minimum(np.searchsorted(cum[g], u[m], side="left"), 3)
    del u, point_ent_grade
    first = np.r_[0, np.cumsum(per_ent)[:-1]]
    level[first] = grade_of_ent  # the worst point carries the enterprise's grade
    world.point_enterprise = ent_idx.astype(np.int32) + 1
    world.point_level = level

    kinds = list(names.RISK_POINT_KINDS)
    kind_p = _norm([0.35, 0.2, 0.2, 0.15, 0.05, 0.05])
    county_codes = np.asarray(world.counties.county_code)
    county_pos = {c: i for i, c in enumerate(county_codes)}
    ent_county = np.array([county_pos[c] for c in ent.county_code], dtype=np.int32)
    ent_spread = ent["size"].map(_SIZE_SPREAD_KM).to_numpy()
    ent_lon, ent_lat = ent.lon.to_numpy(), ent.lat.to_numpy()
    for start in range(0, total, POINTS_CHUNK):
        stop = min(total, start + POINTS_CHUNK)
        crng = world.rng(f"risk_points/{start}")
        e = ent_idx[start:stop]
        codes = county_codes[ent_county[e]]
        lon, lat = scatter(world.geo, crng, codes, ent_lon[e], ent_lat[e], ent_spread[e])
        table = pa.table({
            "point_id": pa.array(np.arange(start + 1, stop + 1, dtype=np.int32)),
            "enterprise_id": pa.array(world.point_enterprise[start:stop]),
            "county_code": dictionary(ent_county[e], county_codes),
            "kind": dictionary(crng.choice(len(kinds), size=stop - start, p=kind_p), kinds),
            "risk_level": dictionary(level[start:stop], RISK_LEVELS),
            "lon": pa.array(lon), "lat": pa.array(lat),
        })
        store.insert("risk_points", table)
        if tick is not None:
            tick(f"risk points {stop:,}/{total:,}")

    # Enterprise grade: its worst point's, raised one step for a few (inspection findings).
    grade = ent.grade.to_numpy().copy()
    bump = (rng.random(len(ent)) < 0.03) & (grade > 0)
    grade[bump] -= 1
    ent["risk_level"] = np.array(RISK_LEVELS)[grade]


def write_enterprises(world: World, store) -> None:
    """Insert the enterprises (after risk points and installations have settled grades)."""
    cols = ["enterprise_id", "name", "industry", "size", "county_code", "address",
            "contact_name", "contact_phone", "lon", "lat", "risk_level", "is_major_hazard"]
    store.insert("enterprises", world.enterprises[cols])


# ---------------------------------------------------------------------- hazards
def build_hazards(world: World, store) -> None:
    """hazards (隐患): found in inspections at risk points; ≈ 15 % still open or rectifying."""
    rng = world.rng("hazards")
    h = world.counts["hazards"]
    level = world.point_level
    weight = np.array([4.0, 3.0, 2.0, 1.0])[level]
    point = rng.choice(len(level), size=h, p=weight / weight.sum())
    point.sort()
    age = np.floor(rng.exponential(240, h)).astype(int) % 730
    found = np.datetime64(world.today) - age.astype("timedelta64[D]")
    major = rng.random(h) < np.where(level[point] <= 1, 0.10, 0.01)
    days = np.where(major, pick(rng, ["30", "60", "90"], h).astype(int),
                    pick(rng, ["7", "15", "30", "60"], h, p=[3, 3, 2, 1]).astype(int))
    deadline = found + days.astype("timedelta64[D]")
    # Not yet closed: about 15 %, mostly recent ones (weighted sampling by key u^(1/w)).
    key = rng.random(h) ** (1.0 / np.exp(-age / 150.0))
    not_closed = np.zeros(h, dtype=bool)
    not_closed[np.argsort(-key, kind="stable")[:round(0.15 * h)]] = True
    status = np.where(not_closed, np.where(rng.random(h) < 0.6, "open", "rectifying"), "closed")
    took = np.minimum(np.ceil(rng.uniform(0.1, 1.25, h) * days).astype(int), age)
    closed_on = pd.array(found + took.astype("timedelta64[D]"))
    closed_on[not_closed] = pd.NaT
    # About a third of the unfinished ones are past their deadline; the rest are due soon.
    nc = np.flatnonzero(not_closed)
    overdue = rng.random(len(nc)) < 0.35
    today = np.datetime64(world.today)
    due = np.where(overdue, -rng.integers(1, 120, len(nc)), rng.integers(0, 60, len(nc)))
    deadline[nc] = today + due.astype("timedelta64[D]")
    found[nc] = np.minimum(deadline[nc] - days[nc].astype("timedelta64[D]"),
                           today - rng.integers(0, 5, len(nc)).astype("timedelta64[D]"))
    store.insert("hazards", pd.DataFrame({
        "hazard_id": np.arange(1, h + 1, dtype=np.int32),
        "enterprise_id": world.point_enterprise[point],
        "point_id": (point + 1).astype(np.int32),
        "description": pick(rng, names.HAZARD_DESCRIPTIONS, h),
        "severity": np.where(major, "major", "general"),
        "found_on": found, "deadline": deadline, "status": status, "closed_on": closed_on,
    }))


# ---------------------------------------------------------------------- build
def build(path: str | Path, *, scale: str = "demo", seed: int = 7, progress: bool = True,
          today: dt.date | None = None, history: bool = True,
          now: dt.datetime | None = None) -> dict[str, int]:
    """Build a complete demo store at ``path`` (replacing it atomically).

    Parameters
    ----------
    path : str or Path
        DuckDB file to create. Built as ``path + '.tmp'`` and renamed at the end.
    scale : {'tiny', 'small', 'demo', 'large'}
        Target counts, see :data:`SCALES`.
    seed : int
        Seed of every random choice; the same seed gives the same tables.
    progress : bool
        Show a tqdm progress bar of the steps.
    today : datetime.date, optional
        Reference day of the dates (hazards); the UTC date of ``now`` by default.
    history : bool
        Write the week before ``now`` into the live tables (:mod:`data.history`).
    now : datetime.datetime, optional
        End of the history: the clock by default, or the end of ``today`` when that day
        is over (:func:`data.history.history_end`), to the minute.

    Returns
    -------
    dict
        Rows written by the history per table (empty without history).
    """
    from data import monitoring, resources
    from data.history import build_history, history_end
    from sources.store.store import Store

    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}: one of {', '.join(SCALES)}")
    if int(seed) < 0:
        raise ValueError(f"seed must be a non-negative integer, not {seed!r}")
    if now is None:
        now = history_end(today)
    elif now.tzinfo is None:
        raise ValueError("now must be an aware datetime (with its UTC offset)")
    now = now.astimezone(dt.UTC).replace(second=0, microsecond=0)
    today = today or now.date()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    for stale in (tmp, tmp.with_name(tmp.name + ".wal")):
        stale.unlink(missing_ok=True)

    counts = SCALES[scale]
    n_chunks = -(-counts["risk_points"] // POINTS_CHUNK)
    steps = 9 + n_chunks + int(history)
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=steps, desc=f"{scale} store", unit="step")

    def tick(label: str) -> None:
        if bar is not None:
            bar.set_postfix_str(label)
            bar.update(1)

    started = time.perf_counter()
    store = Store(tmp)
    try:
        world = World(geo=load_shandong(), counts=counts, seed=seed, today=today)
        build_geography(world, store)
        tick("geography")
        build_enterprises(world, store)
        tick("enterprises")
        build_risk_points(world, store, tick)
        build_hazards(world, store)
        tick("hazards")
        monitoring.build_installations(world, store)
        tick("installations")
        write_enterprises(world, store)
        tick("enterprises written")
        monitoring.build_stations(world, store)
        tick("stations")
        monitoring.build_landslides(world, store)
        tick("landslides")
        resources.build_resources(world, store)
        tick("resources")
        resources.build_experts(world, store)
        tick("experts")
        counts: dict[str, int] = {}
        info = {"scale": scale, "seed": str(seed), "today": today.isoformat()}
        if history:
            counts = build_history(world, store, now=now)
            info.update(history_from=(now - dt.timedelta(days=7)).isoformat(),
                        history_to=now.isoformat())
            tick("history")
        info.update(built_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                    seconds=f"{time.perf_counter() - started:.1f}")
        store.insert("build_info", pd.DataFrame({"key": list(info),
                                                 "value": list(info.values())}))
        store.close()
    except BaseException:
        store.close()
        tmp.unlink(missing_ok=True)
        tmp.with_name(tmp.name + ".wal").unlink(missing_ok=True)
        if bar is not None:
            bar.close()
        raise
    path.with_name(path.name + ".wal").unlink(missing_ok=True)
    os.replace(tmp, path)
    if bar is not None:
        bar.close()
    return counts


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m data.generate --scale demo --seed 7 --db var/console.duckdb``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=list(SCALES), default="demo")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--db", default="var/console.duckdb")
    parser.add_argument("--today", type=dt.date.fromisoformat, default=None,
                        help="reference day of the dates, YYYY-MM-DD (default: today, UTC)")
    parser.add_argument("--now", type=_aware, default=None,
                        help="end of the history, RFC 3339 with offset (default: the clock, "
                             "or the end of --today when that day is over)")
    parser.add_argument("--no-history", action="store_true",
                        help="leave the live tables (readings, alarms, warnings, ...) empty")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    counts = build(args.db, scale=args.scale, seed=args.seed, progress=not args.no_progress,
                   today=args.today, history=not args.no_history, now=args.now)
    print(f"built {args.scale} store at {args.db} in {time.perf_counter() - t0:.1f} s")
    if counts:
        print("history: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))


def _aware(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no UTC offset")
    return value


if __name__ == "__main__":
    main()
