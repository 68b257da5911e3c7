"""Decision support (辅助决策): what is around an incident, ranked by estimated travel time.

There is no road network offline, so the travel time is an estimate stated with its
constants: ``minutes = straight-line km × detour_factor ÷ speed_kmh × 60`` (defaults 1.3 —
a typical ratio of road to straight-line distance — and 60 km/h, an emergency vehicle's
average on mixed roads). Distances are great-circle (:func:`haversine_km`).

The affected area is a circle of the incident type's radius; for a gas release
(``Subtype.downwind``) it is the downwind sector (± ``sector_half_deg``) given by the wind
direction of the nearest weather station that measures one (a ``wind_direction`` sensor,
degrees the wind blows from, read within ``wind_max_age_min``), else the direction an
officer entered on the incident, else the whole circle (said so). The demo registry's
weather stations measure wind speed but not direction. Population in the area is estimated
from the incident county's density (people / km²) × the area.
"""
from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from sources.base import query
from sources.geo import haversine_km

from .catalog import SUBTYPES
from .common import CommandError, aware


def bearing_deg(lon0: float, lat0: float, lon, lat) -> np.ndarray:
    """Initial bearing (degrees clockwise from north) from (lon0, lat0) to each point."""
    p0, p1 = math.radians(lat0), np.radians(np.asarray(lat, dtype="float64"))
    dl = np.radians(np.asarray(lon, dtype="float64") - lon0)
    x = np.sin(dl) * np.cos(p1)
    y = math.cos(p0) * np.sin(p1) - math.sin(p0) * np.cos(p1) * np.cos(dl)
    return (np.degrees(np.arctan2(x, y)) + 360.0) % 360.0


class DecisionSupport:
    """Mixin of :class:`~sources.command.source.CommandSource`: resources around a point."""

    # ------------------------------------------------------------------ registries (read once)
    @query(table=False, maxsize=16)
    def _registry(self, name: str) -> pd.DataFrame:
        sql = {
            "teams": "SELECT team_id, name, kind, members, leader, phone, equipment, "
                     "county_code, lon, lat FROM rescue_teams ORDER BY team_id",
            "shelters": "SELECT shelter_id, name, kind, capacity, county_code, lon, lat "
                        "FROM shelters ORDER BY shelter_id",
            "warehouses": "SELECT warehouse_id, name, level, county_code, lon, lat, "
                          "contact_phone FROM warehouses ORDER BY warehouse_id",
            "installations": "SELECT i.installation_id, i.name, i.kind, i.hazard_grade, "
                             "i.enterprise_id, e.name AS enterprise, i.lon, i.lat "
                             "FROM installations i LEFT JOIN enterprises e USING (enterprise_id) "
                             "ORDER BY i.installation_id",
            "enterprises": "SELECT enterprise_id, name, industry, risk_level, is_major_hazard, "
                           "county_code, lon, lat FROM enterprises ORDER BY enterprise_id",
            "wind_direction": "SELECT s.sensor_id, s.station_id, st.name AS station, s.lon, "
                              "s.lat FROM sensors s LEFT JOIN stations st USING (station_id) "
                              "WHERE s.kind = 'wind_direction'",
            "wind_speed": "SELECT s.sensor_id, s.station_id, st.name AS station, s.lon, s.lat "
                          "FROM sensors s LEFT JOIN stations st USING (station_id) "
                          "WHERE s.kind = 'wind_speed'",
        }[name]
        return self.store.df(sql)

    def _travel(self, df: pd.DataFrame, lon: float, lat: float) -> pd.DataFrame:
        df = df.copy()
        df["km"] = haversine_km(lon, lat, df["lon"], df["lat"])
        df["minutes"] = df["km"] * self.detour_factor / self.speed_kmh * 60.0
        return df

    # ------------------------------------------------------------------ the answer
    def support(self, incident_id: str | None = None, *, lon: float | None = None,
                lat: float | None = None, subtype: str | None = None,
                enterprise_id: int | None = None, wind_from_deg: float | None = None,
                county_code: str | None = None, k: int = 10,
                now: datetime | None = None) -> dict:
        """Teams, warehouses, shelters, experts, and what lies in the affected area.

        Give an ``incident_id`` (its place, type, enterprise and wind) or a point and a
        ``subtype``. Returns a dict of frames (``teams``, ``warehouses``, ``shelters``,
        ``experts``, ``installations``, ``enterprises``) each with ``km`` and ``minutes``,
        and ``area`` (radius, sector, wind, population estimate) and ``constants``.
        """
        now = aware(now) if now is not None else self.now()
        if incident_id is not None:
            inc = self.version(incident_id)
            if inc is None:
                raise CommandError("command.error.unknown_incident", "unknown incident: {id}",
                                   id=incident_id)
            lon, lat, subtype = inc["lon"], inc["lat"], inc["subtype"]
            enterprise_id, county_code = inc["enterprise_id"], inc["county_code"]
            wind_from_deg = inc["wind_from_deg"] if wind_from_deg is None else wind_from_deg
        st = SUBTYPES.get(str(subtype))
        if st is None:
            raise CommandError("command.error.unknown_subtype", "unknown incident type: {type}",
                               type=subtype)
        if lon is None or lat is None:
            raise CommandError("command.error.no_place",
                               "give the place: a map point, an enterprise or a county")
        lon, lat = float(lon), float(lat)
        area = self.affected_area(lon, lat, st, county_code=county_code,
                                  wind_from_deg=wind_from_deg, now=now)
        inst = self._in_area(area, self._registry("installations"))
        ent = self._in_area(area, self._registry("enterprises"))
        area.update(enterprises=len(ent), major_hazard_enterprises=int(ent.is_major_hazard.sum()),
                    installations=len(inst))
        busy = self.commitments(None)  # teams and shelters, one read
        return {"point": (lon, lat), "subtype": st.key, "area": area,
                "constants": {"detour_factor": self.detour_factor, "speed_kmh": self.speed_kmh},
                "teams": self.nearest_teams(lon, lat, st, k, busy=busy),
                "warehouses": self.covering_warehouses(lon, lat, st, k),
                "shelters": self.free_shelters(lon, lat, k, busy=busy),
                "experts": self.matching_experts(lon, lat, st, enterprise_id, k, now),
                "installations": inst, "enterprises": ent.head(200)}

    def nearest_teams(self, lon: float, lat: float, st, k: int = 10,
                      busy: pd.DataFrame | None = None) -> pd.DataFrame:
        """Teams of the specialties the type needs, quickest first (others fill up to ``k``);
        a team committed now says to which incident and by whom."""
        df = self._travel(self._registry("teams"), lon, lat)
        df["matches"] = df["kind"].isin(st.teams)
        df = pd.concat([df[df.matches].nsmallest(k, "minutes"),
                        df[~df.matches].nsmallest(k, "minutes")]).head(k)
        busy = self.commitments(None) if busy is None else busy
        busy = busy[busy.resource == "team"].set_index("resource_id")
        df["committed_to"] = busy["incident_id"].reindex(df["team_id"]).to_numpy()
        df["committed_by"] = busy["actor"].reindex(df["team_id"]).to_numpy()
        return df.reset_index(drop=True)

    def covering_warehouses(self, lon: float, lat: float, st, k: int = 10) -> pd.DataFrame:
        """Warehouses holding the material categories the type needs, quickest first.

        ``categories`` lists the needed ones a warehouse holds; ``covers`` marks the quickest
        warehouses that together hold every needed category (walked in travel order, a
        warehouse is taken when it adds one). ``pending`` counts its dispatches requested or
        approved but not shipped (stock already promised elsewhere).
        """
        held = self.store.df(
            "SELECT s.warehouse_id, list(DISTINCT k.category ORDER BY k.category) AS categories, "
            "count(*) AS kinds FROM stock s JOIN material_kinds k USING (kind_id) "
            "WHERE s.quantity > 0 AND list_contains($cats, k.category) GROUP BY 1",
            {"cats": list(st.materials)})
        pending = self.store.df(
            "SELECT from_warehouse_id AS warehouse_id, count(*) AS pending FROM dispatches "
            "WHERE status IN ('requested', 'approved') GROUP BY 1")
        df = self._registry("warehouses").merge(held, on="warehouse_id")
        df = self._travel(df, lon, lat).sort_values(["minutes", "warehouse_id"])
        need, covers = set(st.materials), []
        for cats in df["categories"]:
            adds = bool(need & set(cats))
            covers.append(adds)
            need -= set(cats)
        df["covers"] = covers
        df["missing"] = ", ".join(sorted(need))  # categories no warehouse holds
        df = df[df.covers | (np.arange(len(df)) < k)].reset_index(drop=True)
        df = df.merge(pending, on="warehouse_id", how="left")
        df["pending"] = df["pending"].fillna(0).astype("int64")
        df["categories"] = df["categories"].map(list)
        return df

    def free_shelters(self, lon: float, lat: float, k: int = 10,
                      busy: pd.DataFrame | None = None) -> pd.DataFrame:
        """Shelters with free capacity (capacity minus people of shelters opened now)."""
        df = self._travel(self._registry("shelters"), lon, lat)
        busy = self.commitments(None) if busy is None else busy
        busy = busy[busy.resource == "shelter"]
        used = pd.Series(busy["quantity"].to_numpy(dtype=float), index=busy["resource_id"])
        df["occupied"] = used.reindex(df["shelter_id"]).fillna(0).to_numpy()
        df["free"] = df["capacity"] - df["occupied"]
        df["committed_to"] = busy.set_index("resource_id")["incident_id"].reindex(
            df["shelter_id"]).to_numpy()
        return df[df["free"] > 0].nsmallest(k, "minutes").reset_index(drop=True)

    def matching_experts(self, lon: float, lat: float, st, enterprise_id, k: int = 10,
                         now: datetime | None = None) -> pd.DataFrame:
        """Available experts with the type's tags (none employed by the enterprise involved),
        quickest first, with the inventory's recommendation score."""
        tags = [t for t in st.expert_tags if t in set(self.known_tags())]
        if not tags:
            return pd.DataFrame(columns=["expert_id", "name", "type", "title", "employer",
                                         "score", "km", "minutes", "lon", "lat"])
        df = self.experts.recommend(tags, lon=lon, lat=lat, enterprise_id=enterprise_id,
                                    limit=10_000, now=now)
        df = df.rename(columns={"distance_km": "km"}).merge(
            self.experts.registry()[["expert_id", "lon", "lat"]], on="expert_id", how="left")
        df["minutes"] = df["km"] * self.detour_factor / self.speed_kmh * 60.0
        return df.nsmallest(k, "minutes").reset_index(drop=True)

    def warehouse_stock(self, warehouse_id: int, categories: list[str] | None = None
                        ) -> pd.DataFrame:
        """Kinds a warehouse holds: quantity, pending (promised, not shipped), available."""
        return self.store.df(
            "SELECT s.kind_id, k.name, k.category, k.unit, k.countable, s.quantity, "
            "coalesce(p.pending, 0) AS pending, s.quantity - coalesce(p.pending, 0) AS available "
            "FROM stock s JOIN material_kinds k USING (kind_id) LEFT JOIN ("
            "  SELECT kind_id, sum(quantity) AS pending FROM dispatches WHERE status IN "
            "  ('requested', 'approved') AND from_warehouse_id = $w GROUP BY 1) p USING (kind_id) "
            "WHERE s.warehouse_id = $w AND s.quantity > 0 "
            "AND ($cats::VARCHAR[] IS NULL OR list_contains($cats, k.category)) "
            "ORDER BY k.category, k.kind_id", {"w": int(warehouse_id), "cats": categories})

    # ------------------------------------------------------------------ affected area
    def wind_at(self, lon: float, lat: float, now: datetime) -> dict:
        """Wind at the nearest station measuring it: from_deg / speed_ms (None if unknown)."""
        out = {"from_deg": None, "speed_ms": None, "station": None, "station_km": None,
               "at": None}
        for kind, key in (("wind_direction", "from_deg"), ("wind_speed", "speed_ms")):
            sensors = self._registry(kind)
            if sensors.empty:
                continue
            km = haversine_km(lon, lat, sensors["lon"], sensors["lat"])
            for i in np.argsort(km)[:3]:  # the nearest with a recent reading
                row = self.store.arrow(
                    "SELECT arg_max(value, ts) AS v, max(ts) AS ts FROM readings "
                    "WHERE sensor_id = ? AND ts > ? AND ts <= ?",
                    [sensors["sensor_id"].iloc[i],
                     now - timedelta(minutes=self.wind_max_age_min), now]).to_pylist()[0]
                if row["v"] is not None:
                    out[key] = float(row["v"])
                    if key == "from_deg" or out["station"] is None:
                        out.update(station=sensors["station"].iloc[i],
                                   station_km=float(km[i]), at=row["ts"])
                    break
        return out

    def affected_area(self, lon: float, lat: float, st, *, county_code: str | None = None,
                      wind_from_deg: float | None = None, now: datetime | None = None) -> dict:
        """Radius, sector (for gas releases) and the estimated population of the area."""
        now = aware(now) if now is not None else self.now()
        area = {"lon": lon, "lat": lat, "radius_km": st.radius_km, "sector": None,
                "wind": None, "wind_source": None}
        if st.downwind:
            wind = self.wind_at(lon, lat, now)
            area["wind"] = wind
            src = "sensor" if wind["from_deg"] is not None else (
                "officer" if wind_from_deg is not None else None)
            frm = wind["from_deg"] if src == "sensor" else wind_from_deg
            calm = wind["speed_ms"] is not None and wind["speed_ms"] < self.calm_ms
            if frm is not None and not calm:
                down = (float(frm) + 180.0) % 360.0
                area["sector"] = (down - self.sector_half_deg, down + self.sector_half_deg)
                area["wind_source"] = src
            else:
                area["wind_source"] = "calm" if calm else None
        share = 1.0 if area["sector"] is None else 2 * self.sector_half_deg / 360.0
        area["area_km2"] = math.pi * st.radius_km ** 2 * share
        c = self.counties()
        code = county_code or self.county_of(lon, lat)
        hit = c[c.county_code == code]
        density = float(hit.population.iloc[0] / hit.area_km2.iloc[0]) \
            if len(hit) and hit.area_km2.iloc[0] else 0.0
        area.update(county_code=code, density_per_km2=density,
                    population=int(round(density * area["area_km2"])))
        return area

    def _in_area(self, area: dict, registry: pd.DataFrame) -> pd.DataFrame:
        """Rows of a registry (lon, lat) in the affected area, nearest first, with km and
        minutes (distances on the arrays first: only the rows inside are copied)."""
        km = haversine_km(area["lon"], area["lat"], registry["lon"], registry["lat"])
        mask = km <= area["radius_km"]
        if area["sector"] is not None:
            lo, hi = area["sector"]
            b = bearing_deg(area["lon"], area["lat"], registry["lon"].to_numpy()[mask],
                            registry["lat"].to_numpy()[mask])
            off = np.abs((b - (lo + hi) / 2 + 180.0) % 360.0 - 180.0)
            keep = (off <= (hi - lo) / 2) | (km[mask] < 0.05)  # the scene itself is in
            mask[np.flatnonzero(mask)[~keep]] = False
        df = registry[mask].copy()
        df["km"] = km[mask]
        df["minutes"] = df["km"] * self.detour_factor / self.speed_kmh * 60.0
        return df.sort_values("km").reset_index(drop=True)

def sector_ring(area: dict, steps: int = 24) -> tuple[list[float], list[float]]:
    """The affected area's outline (lon, lat lists): a circle or the downwind sector."""
    lon0, lat0, r = area["lon"], area["lat"], area["radius_km"]
    if area.get("sector") is None:
        angles = np.linspace(0, 360, steps * 2 + 1)
        start: list[float] = []
    else:
        lo, hi = area["sector"]
        angles = np.linspace(lo, hi, steps + 1)
        start = [0.0]
    dlat = r / 111.195 * np.cos(np.radians(angles))
    dlon = r / (111.195 * math.cos(math.radians(lat0))) * np.sin(np.radians(angles))
    xs = [lon0 + d for d in start] + list(lon0 + dlon) + ([lon0] if start else [])
    ys = [lat0 + d for d in start] + list(lat0 + dlat) + ([lat0] if start else [])
    return xs, ys

