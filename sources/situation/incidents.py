"""The board's incidents and ticker: open incidents, what happened near each, the nearest
rescue resources, and the latest events of every kind.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from sources.base import query
from sources.drills import DRILL_MARK
from sources.geo import haversine_km, haversine_sql

# incident kind (free text from the feed) -> material categories and expert types worth showing
_KIND_NEEDS = (
    (("fire", "burn", "火"), ("fire", "rescue"), ("safety", "rescue")),
    (("chem", "leak", "explo", "gas", "toxic", "危化", "泄漏", "爆炸"), ("hazchem", "rescue", "medical"),
     ("safety", "rescue")),
    (("flood", "rain", "storm", "dam", "洪", "雨"), ("flood", "living", "rescue"), ("natural", "rescue")),
    (("quake", "landslide", "collapse", "debris", "地震", "滑坡", "崩塌"), ("rescue", "living", "medical"),
     ("natural", "rescue")),
    (("mine", "矿"), ("rescue", "medical"), ("safety", "rescue")),
)


def needs_for(kind: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(material categories, expert types) relevant to an incident of ``kind``."""
    low = (kind or "").lower()
    for words, materials, experts in _KIND_NEEDS:
        if any(w in low for w in words):
            return materials, experts
    return ("rescue", "living", "medical"), ("rescue", "general")


class IncidentQueries:
    """The incident and ticker part of :class:`~sources.situation.source.SituationSource`."""

    def active_incidents(self, now_ms: int | None = None, upto_ms: int | None = None) -> pd.DataFrame:
        """Open incidents (latest row of each), most severe and newest first.

        ``upto_ms`` restricts to rows received by then (the state 24 h ago).
        """
        return self._df(
            """
            WITH cur AS (  -- latest row of each and when it began (LATEST_NOTE)
              SELECT unnest(arg_max(x, (x.ts, x.seq))), min(epoch_ms(x.ts)) AS started_ms
              FROM incidents x
              WHERE $u::BIGINT IS NULL OR epoch_ms(x.ts) <= $u::BIGINT
              GROUP BY x.incident_id)
            SELECT incident_id, kind, lon, lat, title, level, status, county_code, drill_id,
                   epoch_ms(ts) AS ts_ms, started_ms
            FROM cur
            WHERE status = 'open'
            ORDER BY CASE level WHEN 'red' THEN 0 WHEN 'orange' THEN 1 WHEN 'yellow' THEN 2
                     ELSE 3 END, ts DESC
            """, {"u": upto_ms})

    # ------------------------------------------------------------------ ticker
    def ticker(self, limit: int | None = None) -> pd.DataFrame:
        """Latest events, newest first: ``ts_ms, kind, level, title, detail, key``.

        ``kind`` is alarm / warning / incident / quake; ``detail`` is the alarm kind
        (hi, hi_hi...), the warning message type, the incident status or the magnitude.
        """
        n = int(limit or self.ticker_size)
        df = self._df(
            f"""
            (SELECT epoch_ms(raised_at) AS ts_ms, 'alarm' AS kind, level,
                    sensor_id AS title, kind AS detail, 'a' || alarm_id AS key,
                    installation_id AS inst, drill_id IS NOT NULL AS drill
             FROM alarms ORDER BY raised_at DESC LIMIT {n})
            UNION ALL
            (SELECT epoch_ms(created_at), 'warning', level, headline, msg_type,
                    'w' || warning_id || ':' || version, NULL, drill_id IS NOT NULL
             FROM warnings ORDER BY created_at DESC LIMIT {n})
            UNION ALL
            (SELECT epoch_ms(ts), 'incident', level, title, status,
                    'i' || incident_id || ':' || seq, NULL, drill_id IS NOT NULL
             FROM incidents ORDER BY ts DESC LIMIT {n})
            UNION ALL
            (SELECT epoch_ms(ts), 'quake',
                    CASE WHEN magnitude >= 6 THEN 'red' WHEN magnitude >= 5 THEN 'orange'
                         WHEN magnitude >= 4 THEN 'yellow' ELSE 'blue' END,
                    quake_id, printf('%.1f', magnitude), 'q' || quake_id, NULL,
                    drill_id IS NOT NULL
             FROM quakes ORDER BY ts DESC LIMIT {n})
            ORDER BY ts_ms DESC, key LIMIT {n}
            """)
        # an alarm is named by its installation (its sensor when it has none)
        names = self.places()[0].name.reindex(df.inst).to_numpy(dtype=object)
        df["title"] = np.where(pd.notna(names), names, df.title.to_numpy(dtype=object))
        df = df.drop(columns="inst")
        if len(df):
            quake = df.kind == "quake"
            if quake.any():
                df.loc[quake, "title"] = self._quake_places(df.loc[quake, "title"].tolist())
            # an exercise's event says so wherever it shows (feeds mark their own titles)
            unmarked = df.drill & ~df.title.astype(str).str.startswith(DRILL_MARK)
            df.loc[unmarked, "title"] = DRILL_MARK + df.loc[unmarked, "title"].astype(str)
        return df

    def _quake_places(self, quake_ids: list[str]) -> list[str]:
        """The name of the county nearest to each quake (a label an operator knows)."""
        q = self._df("SELECT quake_id, lon, lat FROM quakes WHERE list_contains($ids, quake_id)",
                     {"ids": quake_ids}).drop_duplicates("quake_id").set_index("quake_id")
        counties = self.counties()
        names = []
        for qid in quake_ids:
            if qid in q.index and len(counties):
                d = haversine_km(q.at[qid, "lon"], q.at[qid, "lat"], counties.lon.values,
                                 counties.lat.values)
                names.append(str(counties.name.values[int(np.argmin(d))]))
            else:
                names.append(str(qid))
        return names

    # ------------------------------------------------------------------ incidents
    def incident_timeline(self, incident_id: str, limit: int = 12) -> pd.DataFrame:
        """What happened so far: the incident's own updates and events near it since it began.

        Columns ``ts_ms, kind, level, title, detail``, oldest first (the last ``limit``).
        """
        inc = self._df("SELECT * FROM incidents WHERE incident_id = $id ORDER BY ts, seq",
                       {"id": incident_id})
        if not len(inc):
            return pd.DataFrame(columns=["ts_ms", "kind", "level", "title", "detail"])
        last = inc.iloc[-1]
        t0_ms = int(pd.Timestamp(inc.ts.iloc[0]).value // 1_000_000)  # rows are oldest first
        params = {"id": incident_id, "lon": float(last.lon), "lat": float(last.lat),
                  "county": last.county_code, "t0": t0_ms}
        df = self._df(
            f"""
            SELECT epoch_ms(ts) AS ts_ms, 'incident' AS kind, level, title, status AS detail
            FROM incidents WHERE incident_id = $id
            UNION ALL
            SELECT epoch_ms(q.ts), 'quake', 'blue', q.quake_id, printf('%.1f', q.magnitude)
            FROM quakes q
            WHERE epoch_ms(q.ts) >= $t0 AND {haversine_sql('q.lon', 'q.lat')} < 50
            UNION ALL
            SELECT epoch_ms(h.ts), 'hotspot', 'orange', h.hotspot_id, printf('%.0f', h.confidence)
            FROM hotspots h
            WHERE epoch_ms(h.ts) >= $t0 AND {haversine_sql('h.lon', 'h.lat')} < 10
            UNION ALL
            SELECT epoch_ms(w.created_at), 'warning', w.level, w.headline, w.msg_type
            FROM warnings w
            WHERE epoch_ms(w.created_at) >= $t0 AND $county::VARCHAR IS NOT NULL
              AND list_contains(w.area_codes, $county::VARCHAR)
            """, params)
        # alarms at installations within 10 km (positions from the registry, not a join)
        a = self._df(
            "SELECT epoch_ms(raised_at) AS ts_ms, level, sensor_id, kind AS detail, "
            "installation_id FROM alarms WHERE epoch_ms(raised_at) >= $t0 "
            "AND installation_id IS NOT NULL", {"t0": t0_ms})
        if len(a):
            a = self._place_alarms(a)
            a = a[haversine_km(params["lon"], params["lat"], a.lon.to_numpy(dtype=float),
                               a.lat.to_numpy(dtype=float)) < 10]
            a = pd.DataFrame({"ts_ms": a.ts_ms, "kind": "alarm", "level": a.level,
                              "title": a.name, "detail": a.detail})
            df = pd.concat([df, a], ignore_index=True) if len(df) else a
        # oldest first; the incident's own rows before other events at the same instant
        df = df.sort_values("ts_ms", kind="stable")
        return df.tail(limit).reset_index(drop=True)

    @query(maxsize=32)
    def nearest_resources(self, lon: float, lat: float, kind: str = "",
                          k: int | None = None) -> dict[str, pd.DataFrame]:
        """Nearest rescue teams, warehouses (with key materials), shelters and experts.

        Every frame has ``name, lon, lat, km`` and a ``note`` (team kind and members, key
        materials, capacity, expert type and title), nearest first.
        """
        k = int(k or self.nearest_k)
        p = {"lon": float(lon), "lat": float(lat), "k": k}
        dist = haversine_sql()
        materials, expert_types = needs_for(kind)
        teams = self._df(
            f"SELECT name, kind, members, lon, lat, {dist} AS km FROM rescue_teams "
            "ORDER BY km LIMIT $k", p)
        teams["note"] = teams.kind + " · " + teams.members.astype(str)
        houses = self._df(
            f"SELECT warehouse_id, name, level, lon, lat, {dist} AS km FROM warehouses "
            "ORDER BY km LIMIT $k", p)
        stock = self._df(
            """
            SELECT s.warehouse_id, m.name, m.unit, m.category, s.quantity,
                   list_contains($cats, m.category) AS relevant
            FROM stock s JOIN material_kinds m USING (kind_id)
            WHERE list_contains($ids, s.warehouse_id) AND s.quantity > 0
            ORDER BY relevant DESC, s.quantity DESC
            """, {"ids": [int(x) for x in houses.warehouse_id], "cats": list(materials)})
        notes = []
        for wid in houses.warehouse_id:
            top = stock[stock.warehouse_id == wid].head(3)
            notes.append("、".join(f"{r.name} {r.quantity:g}{r.unit}" for r in top.itertuples()))
        houses["note"] = notes
        shelters = self._df(
            f"SELECT name, kind, capacity, lon, lat, {dist} AS km FROM shelters "
            "ORDER BY km LIMIT $k", p)
        shelters["note"] = shelters.capacity.astype(str)
        experts = self._df(
            f"""SELECT name, type, title, phone, lon, lat, {dist} AS km FROM experts
            WHERE available ORDER BY list_contains($types, type) DESC, km LIMIT $k""",
            {**p, "types": list(expert_types)})
        experts["note"] = experts.type + " · " + experts.title.fillna("")
        return {"teams": teams, "warehouses": houses, "shelters": shelters, "experts": experts}

    def _commanded(self, incidents: pd.DataFrame) -> dict[str, dict]:
        """The command state (grade, response, tasks, next report) of the shown incidents
        that officers command (``command``: the console's command source)."""
        command = getattr(self, "command", None)
        if command is None or not len(incidents):
            return {}
        wall = command.wall_incidents()
        wall = wall[wall.commanded & wall.incident_id.isin(set(incidents.incident_id))]
        return {r["incident_id"]: r for r in wall.to_dict("records")}

    def incident_details(self, incidents: pd.DataFrame) -> list[dict]:
        """Timeline and nearest resources of the first ``max_incidents`` incidents."""
        out = []
        commanded = self._commanded(incidents.head(self.max_incidents))
        for inc in incidents.head(self.max_incidents).itertuples():
            # resources do not move: cached per incident position and kind
            near = self.nearest_resources(round(inc.lon, 5), round(inc.lat, 5), inc.kind)
            row = inc._asdict()
            row["command"] = commanded.get(inc.incident_id)
            out.append({"incident": row, "timeline": self.incident_timeline(inc.incident_id),
                        "nearest": near})
        return out

