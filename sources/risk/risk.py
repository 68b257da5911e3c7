"""Queries of the enterprise risk map (``/risk``) and its shared in-memory point layer.

:class:`RiskSource` keeps the SQL: legend counts, enterprise cards, the county risk index,
exports. :meth:`RiskSource.load_layer` reads every risk point once into a
:class:`RiskLayer` (a :class:`~sources.risk.pointlayer.PointLayer` plus its enterprises' attributes
for filters); the console (:class:`sources.console.Console`) loads one per process and every page shares it.
"""
from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np
import pandas as pd
import param

from sources.base import Source
from sources.risk.pointlayer import GRADES, PointLayer

#: Weights of the county risk index components (they sum to 1); see :func:`risk_index`.
INDEX_WEIGHTS = {"density": 0.5, "overdue": 0.3, "alarms": 0.2}
#: Components are divided by this percentile over the units (and capped at 1).
NORM_PERCENTILE = 95
#: Weight of each grade in the weighted density of the index (points per km²).
DENSITY_WEIGHTS = {"red": 3.0, "orange": 1.0, "yellow": 0.0, "blue": 0.0}

_GRADE_CASE = ("(CASE {col} WHEN 'red' THEN 0 WHEN 'orange' THEN 1 "
               "WHEN 'yellow' THEN 2 ELSE 3 END)")


@dataclass(frozen=True)
class RiskFilter:
    """What the map shows: empty tuples mean 'all'. Hashable (a cache key)."""

    cities: tuple[str, ...] = ()
    counties: tuple[str, ...] = ()
    industries: tuple[str, ...] = ()
    sizes: tuple[str, ...] = ()
    grades: tuple[str, ...] = GRADES

    def within(self, scope: str | None) -> RiskFilter:
        """This filter narrowed to a jurisdiction's county-code prefix (``3713``: a city,
        ``371302``: a county; None: the province, as it is)."""
        if scope is None:
            return self
        if len(scope) == 4:  # a city: its counties among those chosen, else all of them
            return replace(self, cities=(scope + "00",),
                           counties=tuple(c for c in self.counties if c.startswith(scope)))
        return replace(self, cities=(), counties=(scope,))

    @property
    def filters_enterprises(self) -> bool:
        return bool(self.cities or self.counties or self.industries or self.sizes)

    def where(self, e: str = "e", c: str = "c") -> tuple[str, list]:
        """SQL conditions on enterprises ``e`` joined with counties ``c`` and their params."""
        conds, params = ["TRUE"], []
        for values, col in ((self.cities, f"{c}.city_code"), (self.counties, f"{e}.county_code"),
                            (self.industries, f"{e}.industry"), (self.sizes, f"{e}.size")):
            if values:
                conds.append(f"list_contains(?::VARCHAR[], {col})")
                params.append(list(values))
        return " AND ".join(conds), params


@dataclass
class RiskLayer:
    """The shared point layer and its enterprises, aligned with the layer's ``ent`` index."""

    points: PointLayer
    enterprises: pd.DataFrame  # enterprise_id, industry, size, county_code, city_code

    def mask(self, flt: RiskFilter) -> np.ndarray | None:
        """uint8 mask over the enterprises for ``flt``; None when it filters none out."""
        if not flt.filters_enterprises:
            return None
        e = self.enterprises
        keep = np.ones(len(e), bool)
        for values, col in ((flt.cities, "city_code"), (flt.counties, "county_code"),
                            (flt.industries, "industry"), (flt.sizes, "size")):
            if values:
                keep &= e[col].isin(values).to_numpy()
        return keep.astype(np.uint8)

    @property
    def nbytes(self) -> int:
        return self.points.nbytes + int(self.enterprises.memory_usage(deep=True).sum())


class RiskSource(Source):
    """Queries of the enterprise safety risk map."""

    source_type: ClassVar[str] = "risk"

    as_of = param.Date(default=None, allow_None=True,
                       doc="Date of 'today' for overdue hazards and the 7-day alarm rate "
                           "(None: the current date).")

    # ------------------------------------------------------------------ helpers
    def _today(self) -> dt.date:
        d = self.as_of
        if d is None:
            return dt.datetime.now(dt.UTC).date()
        return d.date() if isinstance(d, dt.datetime) else d

    def _has_table(self, name: str) -> bool:
        return name in self.store.tables()

    # ------------------------------------------------------------------ layer
    def load_layer(self, *, grid: int = 512) -> RiskLayer:
        """Read every risk point into a float32, spatially ordered layer (once per process)."""
        ents = self.store.df(
            "SELECT e.enterprise_id, e.industry, e.size, e.county_code, c.city_code "
            "FROM enterprises e LEFT JOIN counties c USING (county_code) "
            "ORDER BY e.enterprise_id")
        pts = self.store.arrow(
            "WITH ei AS (SELECT enterprise_id, (row_number() OVER (ORDER BY enterprise_id) - 1)"
            " AS idx FROM enterprises) "
            "SELECT p.lon::FLOAT AS x, p.lat::FLOAT AS y, "
            f"{_GRADE_CASE.format(col='p.risk_level')}::UTINYINT AS cat, ei.idx::INTEGER AS ent "
            "FROM risk_points p JOIN ei USING (enterprise_id)")
        cols = {n: pts.column(n).to_numpy() for n in ("x", "y", "cat", "ent")}
        del pts
        if len(cols["x"]):
            extent = (float(cols["x"].min()) - 1e-3, float(cols["x"].max()) + 1e-3,
                      float(cols["y"].min()) - 1e-3, float(cols["y"].max()) + 1e-3)
        else:
            extent = None
        layer = PointLayer.from_arrays(
            cols["x"], cols["y"], cols["cat"], cols["ent"],
            enterprise_ids=ents["enterprise_id"].to_numpy(np.int64), grid=grid, extent=extent)
        for c in ("industry", "size", "county_code", "city_code"):
            ents[c] = ents[c].astype("category")
        return RiskLayer(points=layer, enterprises=ents)

    # ------------------------------------------------------------------ options
    def cities(self) -> pd.DataFrame:
        return self.store.df("SELECT city_code, name FROM cities ORDER BY city_code")

    def counties(self, cities: tuple[str, ...] = ()) -> pd.DataFrame:
        if cities:
            return self.store.df(
                "SELECT county_code, name, city, city_code FROM counties "
                "WHERE list_contains(?::VARCHAR[], city_code) ORDER BY county_code",
                [list(cities)])
        return self.store.df(
            "SELECT county_code, name, city, city_code FROM counties ORDER BY county_code")

    def industries(self, lang: str = "zh") -> pd.DataFrame:
        """Industry keys and labels: the ``industries`` table when filled, else the keys."""
        if self._has_table("industries"):
            col = "name_en" if lang == "en" else "name_zh"
            df = self.store.df(
                f"SELECT DISTINCT e.industry, coalesce(i.{col}, e.industry) AS name "
                "FROM enterprises e LEFT JOIN industries i USING (industry) ORDER BY 1")
        else:
            df = self.store.df(
                "SELECT DISTINCT industry, industry AS name FROM enterprises ORDER BY 1")
        return df

    def sizes(self) -> list[str]:
        return self.store.arrow(
            "SELECT DISTINCT size FROM enterprises ORDER BY 1").column(0).to_pylist()

    def extent(self) -> tuple[float, float, float, float]:
        """Bounds of the counties' representative points and the risk points."""
        row = self.store.arrow(
            "SELECT min(lon), max(lon), min(lat), max(lat) FROM risk_points").to_pylist()[0]
        vals = list(row.values())
        if any(v is None for v in vals):
            return (114.8, 122.7, 34.4, 38.4)
        x0, x1, y0, y1 = (float(v) for v in vals)
        return (x0 - 0.01, x1 + 0.01, y0 - 0.01, y1 + 0.01)

    # ------------------------------------------------------------------ map queries
    def counts(self, bounds, flt: RiskFilter = RiskFilter()) -> dict[str, int]:
        """Risk points per grade inside ``bounds`` (x0, x1, y0, y1) for ``flt`` (SQL).

        The same rule as the layer: float32 coordinates, lower bounds in, upper bounds out.
        Grades hidden by ``flt.grades`` are counted too (the legend shows them greyed).
        """
        where, params = flt.where()
        x0, x1, y0, y1 = map(float, bounds)
        df = self.store.df(
            "SELECT p.risk_level, count(*) AS n FROM risk_points p "
            "JOIN enterprises e USING (enterprise_id) "
            "LEFT JOIN counties c ON c.county_code = e.county_code "
            "WHERE p.lon::FLOAT >= ? AND p.lon::FLOAT < ? AND p.lat::FLOAT >= ? "
            f"AND p.lat::FLOAT < ? AND {where} GROUP BY 1",
            [x0, x1, y0, y1, *params])
        got = dict(zip(df["risk_level"], df["n"], strict=True))
        return {g: int(got.get(g, 0)) for g in GRADES}

    def points(self, bounds, flt: RiskFilter = RiskFilter(), *, limit: int = 5000) -> pd.DataFrame:
        """Single risk points in ``bounds`` with their enterprise (street-level glyphs)."""
        where, params = flt.where()
        x0, x1, y0, y1 = map(float, bounds)
        return self.store.df(
            "SELECT p.point_id, p.lon, p.lat, p.risk_level, p.kind, p.enterprise_id, "
            "e.name AS enterprise FROM risk_points p JOIN enterprises e USING (enterprise_id) "
            "LEFT JOIN counties c ON c.county_code = e.county_code "
            "WHERE p.lon >= ? AND p.lon < ? AND p.lat >= ? AND p.lat < ? "
            f"AND list_contains(?::VARCHAR[], p.risk_level) AND {where} "
            "ORDER BY p.point_id LIMIT ?",
            [x0, x1, y0, y1, list(flt.grades), *params, int(limit)])

    def search(self, text: str, flt: RiskFilter = RiskFilter(), *,
               limit: int = 20) -> pd.DataFrame:
        """Enterprises whose name contains ``text`` (case-insensitive), best matches first,
        among those of ``flt`` (a user's jurisdiction: its cities or counties)."""
        text = (text or "").strip()
        if not text:
            return pd.DataFrame(columns=["enterprise_id", "name", "county", "lon", "lat"])
        where, params = flt.where()
        return self.store.df(
            "SELECT e.enterprise_id, e.name, c.name AS county, e.lon, e.lat, e.risk_level "
            "FROM enterprises e LEFT JOIN counties c ON c.county_code = e.county_code "
            f"WHERE contains(lower(e.name), lower(?)) AND {where} "
            "ORDER BY (CASE WHEN starts_with(lower(e.name), lower(?)) THEN 0 ELSE 1 END), "
            "length(e.name), e.enterprise_id LIMIT ?", [text, *params, text, int(limit)])

    def readings_count(self) -> int:
        """Readings stored so far (the live counter starts from it)."""
        return int(self.store.scalar("SELECT count(*) FROM readings") or 0)

    def boundaries(self, level: str = "county", prefix: str = "") -> pd.DataFrame:
        """Outlines (GeoJSON text) of the counties or cities (whose code starts with
        ``prefix``: a jurisdiction's)."""
        return self.store.df(
            "SELECT code, name, parent_code, geojson FROM boundaries WHERE level = ? "
            "AND starts_with(code, ?) ORDER BY code", [level, prefix or ""])

    # ------------------------------------------------------------------ enterprise card
    def enterprise(self, enterprise_id, lang: str = "zh") -> dict | None:
        """Identity of one enterprise, or None when there is no such enterprise."""
        try:
            eid = int(enterprise_id)
        except (TypeError, ValueError):
            return None
        rows = self.store.arrow(
            "SELECT e.*, c.name AS county, c.city FROM enterprises e "
            "LEFT JOIN counties c USING (county_code) WHERE e.enterprise_id = ?",
            [eid]).to_pylist()
        if not rows:
            return None
        ent = rows[0]
        if self._has_table("industries"):
            names = self.store.arrow("SELECT name_zh, name_en FROM industries WHERE industry = ?",
                                     [ent["industry"]]).to_pylist()
            if names:
                ent["industry_name"] = names[0]["name_en" if lang == "en" else "name_zh"]
        return ent

    def enterprise_points(self, enterprise_id: int) -> dict[str, int]:
        df = self.store.df(
            "SELECT risk_level, count(*) AS n FROM risk_points WHERE enterprise_id = ? "
            "GROUP BY 1", [int(enterprise_id)])
        got = dict(zip(df["risk_level"], df["n"], strict=True))
        return {g: int(got.get(g, 0)) for g in GRADES}

    def hazards(self, enterprise_id: int) -> pd.DataFrame:
        """Open hazards (not closed) with their deadlines; ``overdue`` when past deadline."""
        return self.store.df(
            "SELECT hazard_id, description, severity, found_on, deadline, status, "
            "deadline < ? AS overdue FROM hazards WHERE enterprise_id = ? "
            "AND status <> 'closed' ORDER BY deadline, hazard_id",
            [self._today(), int(enterprise_id)])

    def installations(self, enterprise_id: int) -> pd.DataFrame:
        return self.store.df(
            "SELECT installation_id, name, kind, hazard_grade FROM installations "
            "WHERE enterprise_id = ? ORDER BY hazard_grade, installation_id",
            [int(enterprise_id)])

    def sensors(self, enterprise_id: int) -> pd.DataFrame:
        """The enterprise's sensors with thresholds and their latest reading."""
        return self.store.df(
            "WITH s AS (SELECT * FROM sensors WHERE enterprise_id = ?), "
            "last AS (SELECT r.sensor_id, arg_max(r.value, r.ts) AS value, max(r.ts) AS ts "
            "FROM readings r JOIN s USING (sensor_id) GROUP BY 1) "
            "SELECT s.sensor_id, s.installation_id, s.kind, s.unit, s.lo_lo, s.lo, s.hi, "
            "s.hi_hi, last.value, last.ts FROM s LEFT JOIN last USING (sensor_id) "
            "ORDER BY s.installation_id, s.sensor_id", [int(enterprise_id)])

    def history(self, sensor_ids, *, hours: float = 6.0) -> pd.DataFrame:
        """Readings of ``sensor_ids`` over the last ``hours`` before each one's latest."""
        ids = [str(s) for s in sensor_ids]
        if not ids:
            return pd.DataFrame(columns=["sensor_id", "ts", "value"])
        return self.store.df(
            "WITH r AS (SELECT sensor_id, ts, value FROM readings "
            "WHERE list_contains(?::VARCHAR[], sensor_id)), "
            "m AS (SELECT sensor_id, max(ts) AS last FROM r GROUP BY 1) "
            "SELECT r.sensor_id, r.ts, r.value FROM r JOIN m USING (sensor_id) "
            "WHERE r.ts >= m.last - to_microseconds(?::BIGINT) ORDER BY r.sensor_id, r.ts",
            [ids, int(hours * 3600e6)])

    def alarms(self, enterprise_id: int) -> pd.DataFrame:
        """Open alarms (not closed) of the enterprise, newest first."""
        return self.store.df(
            "SELECT alarm_id, sensor_id, kind, level, raised_at, trigger_value, state "
            "FROM alarms WHERE enterprise_id = ? AND state <> 'closed' "
            "ORDER BY raised_at DESC", [int(enterprise_id)])

    # ------------------------------------------------------------------ county index
    def index_components(self, level: str = "county") -> pd.DataFrame:
        """Raw components of the risk index per county (or city); see :func:`risk_index`."""
        today = self._today()
        since = dt.datetime.combine(today, dt.time(), dt.UTC) - dt.timedelta(days=7)
        until = dt.datetime.combine(today, dt.time(), dt.UTC) + dt.timedelta(days=1)
        key = "c.county_code" if level == "county" else "c.city_code"
        name = "c.name" if level == "county" else "c.city"
        df = self.store.df(
            f"WITH u AS (SELECT {key} AS code, any_value({name}) AS name, "
            "sum(coalesce(c.area_km2, 0)) AS area_km2 FROM counties c GROUP BY 1), "
            f"pts AS (SELECT {key} AS code, "
            "count(*) FILTER (WHERE p.risk_level = 'red') AS red, "
            "count(*) FILTER (WHERE p.risk_level = 'orange') AS orange, "
            "count(*) FILTER (WHERE p.risk_level = 'yellow') AS yellow, "
            "count(*) FILTER (WHERE p.risk_level = 'blue') AS blue "
            "FROM risk_points p JOIN enterprises e USING (enterprise_id) "
            "JOIN counties c ON c.county_code = e.county_code GROUP BY 1), "
            f"ents AS (SELECT {key} AS code, count(*) AS enterprises FROM enterprises e "
            "JOIN counties c USING (county_code) GROUP BY 1), "
            f"hz AS (SELECT {key} AS code, count(*) AS overdue_hazards FROM hazards h "
            "JOIN enterprises e USING (enterprise_id) JOIN counties c "
            "ON c.county_code = e.county_code WHERE h.status <> 'closed' AND h.deadline < ? "
            "GROUP BY 1), "
            f"al AS (SELECT {key} AS code, count(*) AS alarms_7d FROM alarms a "
            "JOIN counties c ON c.county_code = a.county_code "
            "WHERE a.raised_at >= ? AND a.raised_at < ? GROUP BY 1) "
            "SELECT u.code, u.name, u.area_km2, coalesce(ents.enterprises, 0) AS enterprises, "
            "coalesce(red, 0) AS red, coalesce(orange, 0) AS orange, "
            "coalesce(yellow, 0) AS yellow, coalesce(blue, 0) AS blue, "
            "coalesce(overdue_hazards, 0) AS overdue_hazards, coalesce(alarms_7d, 0) AS alarms_7d "
            "FROM u LEFT JOIN pts USING (code) LEFT JOIN ents USING (code) "
            "LEFT JOIN hz USING (code) LEFT JOIN al USING (code) ORDER BY u.code",
            [today, since, until])
        for c in ("enterprises", "red", "orange", "yellow", "blue", "overdue_hazards",
                  "alarms_7d"):
            df[c] = df[c].astype(np.int64)
        return df

    def county_index(self, level: str = "county") -> pd.DataFrame:
        """The composite risk index per county (or city), highest first."""
        # ties (components capped at 1) are broken by the raw components
        return risk_index(self.index_components(level)).sort_values(
            ["index", "density", "overdue", "alarms"], ascending=False,
            kind="stable").reset_index(drop=True)

    def ranked_enterprises(self, code: str, *, level: str = "county",
                           limit: int = 200) -> pd.DataFrame:
        """Enterprises of a county (or city), ranked by weighted red/orange points and hazards."""
        col = "e.county_code" if level == "county" else "c.city_code"
        return self.store.df(
            "WITH pts AS (SELECT enterprise_id, "
            "count(*) FILTER (WHERE risk_level = 'red') AS red, "
            "count(*) FILTER (WHERE risk_level = 'orange') AS orange, count(*) AS points "
            "FROM risk_points GROUP BY 1), "
            "hz AS (SELECT enterprise_id, count(*) AS overdue_hazards FROM hazards "
            "WHERE status <> 'closed' AND deadline < ? GROUP BY 1) "
            "SELECT e.enterprise_id, e.name, e.industry, e.risk_level, "
            "coalesce(pts.red, 0) AS red, coalesce(pts.orange, 0) AS orange, "
            "coalesce(pts.points, 0) AS points, coalesce(hz.overdue_hazards, 0) "
            "AS overdue_hazards, 3 * coalesce(pts.red, 0) + coalesce(pts.orange, 0) "
            "+ 2 * coalesce(hz.overdue_hazards, 0) AS score "
            "FROM enterprises e LEFT JOIN counties c USING (county_code) "
            "LEFT JOIN pts USING (enterprise_id) LEFT JOIN hz USING (enterprise_id) "
            f"WHERE {col} = ? ORDER BY score DESC, e.enterprise_id LIMIT ?",
            [self._today(), code, int(limit)])

    # ------------------------------------------------------------------ export
    def export_enterprises(self, flt: RiskFilter = RiskFilter()) -> pd.DataFrame:
        """The filtered enterprises with their points per grade (grade filter: points)."""
        where, params = flt.where()
        return self.store.df(
            "WITH pts AS (SELECT enterprise_id, "
            + ", ".join(f"count(*) FILTER (WHERE risk_level = '{g}') AS {g}" for g in GRADES)
            + " FROM risk_points WHERE list_contains(?::VARCHAR[], risk_level) GROUP BY 1) "
            "SELECT e.enterprise_id, e.name, e.industry, e.size, c.city, c.name AS county, "
            "e.address, e.contact_name, e.contact_phone, e.risk_level, e.lon, e.lat, "
            + ", ".join(f"coalesce(pts.{g}, 0) AS points_{g}" for g in GRADES)
            + " FROM enterprises e LEFT JOIN counties c USING (county_code) "
            f"JOIN pts USING (enterprise_id) WHERE {where} ORDER BY e.enterprise_id",
            [list(flt.grades), *params])

    def export_points(self, bounds, flt: RiskFilter = RiskFilter(), *,
                      limit: int = 1_000_000) -> pd.DataFrame:
        """The filtered risk points inside ``bounds`` (at most ``limit``)."""
        where, params = flt.where()
        x0, x1, y0, y1 = map(float, bounds)
        return self.store.df(
            "SELECT p.point_id, p.enterprise_id, e.name AS enterprise, p.kind, p.risk_level, "
            "p.county_code, p.lon, p.lat FROM risk_points p "
            "JOIN enterprises e USING (enterprise_id) "
            "LEFT JOIN counties c ON c.county_code = e.county_code "
            "WHERE p.lon::FLOAT >= ? AND p.lon::FLOAT < ? AND p.lat::FLOAT >= ? "
            "AND p.lat::FLOAT < ? AND list_contains(?::VARCHAR[], p.risk_level) "
            f"AND {where} ORDER BY p.point_id LIMIT ?",
            [x0, x1, y0, y1, list(flt.grades), *params, int(limit)])


def risk_index(components: pd.DataFrame, weights: dict[str, float] | None = None,
               density_weights: dict[str, float] | None = None) -> pd.DataFrame:
    """The composite county risk index (0..100) from its raw components.

    Components per unit (county or city):

    - ``density``: weighted density of severe points, (3·red + 1·orange) per km²;
    - ``overdue``: open hazards past their deadline per 100 enterprises;
    - ``alarms``: sensor alarms raised per day over the last 7 days.

    Each component is divided by its 95th percentile over the units and capped at 1 (so one
    tiny, dense urban district does not flatten every other county; the maximum is used
    when the percentile is 0, and a component that is 0 everywhere counts 0). The index is
    ``100 · Σ weight · normalised component`` (weights 0.5 / 0.3 / 0.2).
    """
    w = weights or INDEX_WEIGHTS
    dw = density_weights or DENSITY_WEIGHTS
    df = components.copy()
    area = df["area_km2"].astype(float).where(df["area_km2"].astype(float) > 0)
    severe = sum(dw[g] * df[g].astype(float) for g in GRADES)
    df["density"] = (severe / area).fillna(0.0)
    ents = df["enterprises"].astype(float)
    df["overdue"] = (100.0 * df["overdue_hazards"].astype(float) / ents.where(ents > 0)).fillna(0.0)
    df["alarms"] = df["alarms_7d"].astype(float) / 7.0
    total = np.zeros(len(df))
    for comp, weight in w.items():
        values = df[comp].to_numpy(float)
        top = float(np.percentile(values, NORM_PERCENTILE)) if len(values) else 0.0
        if top <= 0 and len(values):
            top = float(values.max())
        norm = (df[comp] / top).clip(upper=1.0) if top > 0 else df[comp] * 0.0
        df[f"{comp}_norm"] = norm
        total = total + weight * norm.to_numpy()
    df["index"] = 100.0 * total
    return df


def to_csv_bytes(df: pd.DataFrame) -> bytes:
    """CSV with a BOM so that Excel opens Chinese text correctly."""
    return df.to_csv(index=False).encode("utf-8-sig")


def to_excel_bytes(df: pd.DataFrame, sheet: str = "export") -> bytes:
    """An .xlsx workbook (openpyxl) of ``df``; timezone-aware times are written as UTC."""
    out = df.copy()
    for c in out.columns:
        if isinstance(out[c].dtype, pd.DatetimeTZDtype):
            out[c] = out[c].dt.tz_convert("UTC").dt.tz_localize(None)
    buf = io.BytesIO()
    out.to_excel(buf, index=False, sheet_name=sheet, engine="openpyxl")
    return buf.getvalue()
