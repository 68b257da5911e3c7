"""The situation of the province for the command-hall board: KPIs, events, incidents, layers.

Every query takes ``now_ms`` (epoch milliseconds, default: the wall clock) so that tests and
case replays can ask "what did the board show at time T". Times leave DuckDB as epoch
milliseconds (``epoch_ms``) so no time-zone conversion happens on the way.

:meth:`SituationSource.situation` bundles everything one board page shows and is shared by
every open page: ten pages on the wall cost one set of queries, and a part is read again only
after an event that changes it (``PARTS``) or when it is ``max_age`` seconds old.
"""
from __future__ import annotations

import json
import math
import threading
import time
from collections import Counter
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import param

from sources.base import Source

LEVELS = ("red", "orange", "yellow", "blue")
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
EARTH_KM = 6371.0088

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


# The parts of the situation and the hub topics whose events change them. A board re-reads a
# part only after such an event (or when it is ``max_age`` old): feed status arrives every
# second and re-reads nothing; an alarm re-reads the alarms, the ticker and the incident
# panels, whose timelines hold every kind of event near the incident. "rejected" is raised by
# the feeds' own counters (a new quarantine count).
PARTS: dict[str, frozenset[str]] = {
    "warnings": frozenset({"warning"}),
    "alarms": frozenset({"alarm"}),
    "hotspots": frozenset({"hotspot"}),
    "quakes": frozenset({"quake"}),
    "ticker": frozenset({"alarm", "warning", "incident", "quake"}),
    "incidents": frozenset({"incident", "alarm", "warning", "quake", "hotspot"}),
    "rejected": frozenset({"rejected"}),
}
TOPICS = frozenset().union(*PARTS.values())

# LATEST_NOTE: the queries the board repeats twice a second avoid window functions and hash
# joins. DuckDB 2.0 keeps bookkeeping for every buffer such an operator used until its buffer
# pool's eviction queue is purged, which a console with little memory pressure rarely does:
# 10,000 ``row_number() OVER (...)`` or join queries grew the heap by 28 MB (arg_max and
# plain aggregates: 0.5 MB), and a wall page made the server grow ≈ 1.2 MB a minute. So
# "latest row of each" is ``arg_max``, registry lookups (names, positions) are pandas
# reindexing of registries read once (``places()``), and the store turns off late
# materialization (it makes a small ``ORDER BY … LIMIT`` a row-id join: sources/store/store.py).


def haversine_sql(lon: str = "lon", lat: str = "lat") -> str:
    """SQL for the great-circle distance in km from ``($lon, $lat)`` to the columns given."""
    return (
        f"2 * {EARTH_KM} * asin(sqrt(pow(sin(radians({lat} - $lat) / 2), 2) + "
        f"cos(radians($lat)) * cos(radians({lat})) * pow(sin(radians({lon} - $lon) / 2), 2)))"
    )


def haversine_km(lon1, lat1, lon2, lat2):
    """Great-circle distance in km (numpy-friendly)."""
    lon1, lat1, lon2, lat2 = map(np.radians, (lon1, lat1, lon2, lat2))
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_KM * np.arcsin(np.sqrt(a))


def needs_for(kind: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(material categories, expert types) relevant to an incident of ``kind``."""
    low = (kind or "").lower()
    for words, materials, experts in _KIND_NEEDS:
        if any(w in low for w in words):
            return materials, experts
    return ("rescue", "living", "medical"), ("rescue", "general")


def _rings(geojson: str | dict | None) -> list[list[tuple[float, float]]]:
    """Exterior rings of a GeoJSON Polygon / MultiPolygon (or Feature) as coordinate lists."""
    if not isinstance(geojson, str | dict) or not geojson:
        return []
    try:
        geo = json.loads(geojson) if isinstance(geojson, str) else geojson
    except ValueError:  # a malformed drawn area must not take the board down
        return []
    if not isinstance(geo, dict):
        return []
    if geo.get("type") == "Feature":
        geo = geo.get("geometry") or {}
    kind, coords = geo.get("type"), geo.get("coordinates") or []
    if kind == "Polygon":
        return [coords[0]] if coords else []
    if kind == "MultiPolygon":
        return [poly[0] for poly in coords if poly]
    return []


def _simplify(ring, tolerance: float):
    """Douglas-Peucker through shapely when present; the ring as it is otherwise."""
    if tolerance <= 0 or len(ring) < 16:
        return ring
    try:
        from shapely.geometry import LineString
    except ImportError:  # pragma: no cover - shapely is a dependency
        return ring
    return list(LineString(ring).simplify(tolerance).coords)


class SituationSource(Source):
    """Live situation of the province: what the board shows, computed in one place."""

    source_type: ClassVar[str] = "situation"

    ticker_size = param.Integer(default=40, bounds=(1, 500), doc="Events kept in the ticker.")
    max_incidents = param.Integer(default=3, bounds=(0, 12), doc="Incidents detailed in panels.")
    nearest_k = param.Integer(default=3, bounds=(1, 20), doc="Nearest resources of each kind.")
    max_age = param.Number(
        default=10.0, bounds=(0, None),
        doc="Seconds a part of the situation is shared by every page when no event of its "
            "topics arrives (time moves on: 24-hour windows, expiry).")
    rate_window_s = param.Number(default=60.0, bounds=(1, None),
                                 doc="Window of the readings-per-second figure.")
    outline_tolerance = param.Number(default=0.004, bounds=(0, None),
                                     doc="Simplification of county outlines (degrees).")
    point_layer = param.Callable(
        default=None, allow_None=True,
        doc="Returns the risk map's shared point layer (None: build one from risk_points).")

    def __init__(self, **params):
        super().__init__(**params)
        self._lock = threading.Lock()
        self._cache: dict[str, Any] = {}
        self._parts: dict[str, tuple] = {}  # part -> (read at, kpis, data)
        self._parts_rejected = 0
        self._events = None  # the source's own hub subscription (opened on first use)
        self._snapshot: tuple[dict, dict] | None = None  # (feed figures, situation)
        self.reads: Counter[str] = Counter()  # reads of each part (how often the store is asked)

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def now_ms() -> int:
        return int(time.time() * 1000)

    def _df(self, sql: str, params: dict | None = None) -> pd.DataFrame:
        return self.store.df(sql, params or {})

    def _static(self, name: str, factory):
        """Registry-derived data computed once per source (the registries do not change live)."""
        if name not in self._cache:
            self._cache[name] = factory()
        return self._cache[name]

    # ------------------------------------------------------------------ KPIs
    def kpis(self, now_ms: int | None = None, statuses: list[dict] | None = None) -> dict:
        """Every KPI as ``{key: {"value": now, "before": 24 h ago}}``.

        Keys: ``warnings.<level>``, ``warnings``, ``alarms.<level>``, ``alarms``,
        ``alarms.unacked``, ``incidents``, ``hotspots``, ``quakes``, ``rate``,
        ``feeds`` (connected feeds; ``total`` says of how many), ``rejected``
        (quarantined messages in 24 h).
        """
        now = self.now_ms() if now_ms is None else int(now_ms)
        return {**self._warning_kpis(now, self.active_warnings(now)), **self._alarm_kpis(now),
                **self._incident_kpis(now, self.active_incidents(now)),
                **self._window_kpis("hotspots", now), **self._window_kpis("quakes", now),
                **self._feed_kpis(now, statuses), **self._rejected_kpis(now)}

    def _warning_kpis(self, now: int, active: pd.DataFrame) -> dict:
        """Warnings in force by level, now (``active``: :meth:`active_warnings`) and 24 h ago."""
        w_now = active.level.value_counts().to_dict() if len(active) else {}
        w_before = self._past("warnings", now - DAY_MS, lambda t: self._warning_levels(t, t))
        out = {f"warnings.{lvl}": {"value": w_now.get(lvl, 0), "before": w_before.get(lvl, 0)}
               for lvl in LEVELS}
        out["warnings"] = {"value": sum(w_now.values()), "before": sum(w_before.values())}
        return out

    def _alarm_kpis(self, now: int) -> dict:
        """Open alarms by level, unacknowledged and escalated ones, now and 24 h ago."""
        a = self._df(
            """
            SELECT level,
              count(*) FILTER (WHERE state <> 'closed') AS open_now,
              count(*) FILTER (WHERE state = 'raised') AS unacked_now,
              count(*) FILTER (WHERE state = 'raised' AND escalated_at IS NOT NULL)
                 AS escalated_now,
              count(*) FILTER (WHERE epoch_ms(raised_at) <= $b
                 AND (closed_at IS NULL OR epoch_ms(closed_at) > $b)
                 AND (acked_at IS NULL OR epoch_ms(acked_at) > $b)
                 AND epoch_ms(escalated_at) <= $b) AS escalated_before,
              count(*) FILTER (WHERE epoch_ms(raised_at) <= $b
                 AND (closed_at IS NULL OR epoch_ms(closed_at) > $b)) AS open_before,
              count(*) FILTER (WHERE epoch_ms(raised_at) <= $b
                 AND (closed_at IS NULL OR epoch_ms(closed_at) > $b)
                 AND (acked_at IS NULL OR epoch_ms(acked_at) > $b)) AS unacked_before
            FROM alarms
            WHERE state <> 'closed' OR closed_at IS NULL OR epoch_ms(closed_at) > $b
            GROUP BY level
            """, {"b": now - DAY_MS}).set_index("level")
        out = {}
        for lvl in ("red", "orange", "yellow"):
            row = a.loc[lvl] if lvl in a.index else None
            out[f"alarms.{lvl}"] = {"value": int(row.open_now) if row is not None else 0,
                                    "before": int(row.open_before) if row is not None else 0}
        out["alarms"] = {"value": int(a.open_now.sum()), "before": int(a.open_before.sum())}
        out["alarms.unacked"] = {"value": int(a.unacked_now.sum()),
                                 "before": int(a.unacked_before.sum())}
        # red alarms unacknowledged past the escalation time: flagged on the wall
        out["alarms.escalated"] = {"value": int(a.escalated_now.sum()),
                                   "before": int(a.escalated_before.sum())}
        return out

    def _incident_kpis(self, now: int, active: pd.DataFrame) -> dict:
        """Active incidents now (``active``: :meth:`active_incidents`) and 24 h ago."""
        before = self._past("incidents", now - DAY_MS, lambda t: len(self.active_incidents(t, t)))
        return {"incidents": {"value": len(active), "before": before}}

    def _window_kpis(self, table: str, now: int) -> dict:
        """Rows of ``hotspots`` or ``quakes`` in the last 24 h and in the 24 h before."""
        counts = self.store.arrow(
            f"SELECT count(*) FILTER (WHERE epoch_ms(ts) > $n - {DAY_MS}) AS now_n, "
            f"count(*) FILTER (WHERE epoch_ms(ts) > $n - {2 * DAY_MS} "
            f"AND epoch_ms(ts) <= $n - {DAY_MS}) AS before_n "
            f"FROM {table} WHERE epoch_ms(ts) > $n - {2 * DAY_MS}", {"n": now}).to_pylist()[0]
        return {table: {"value": int(counts["now_n"]), "before": int(counts["before_n"])}}

    def _feed_kpis(self, now: int, statuses: list[dict] | None) -> dict:
        """Readings per second (the feeds' own rates, else counted in the store) and feeds."""
        window = int(self.rate_window_s * 1000)
        rate_now = None
        if statuses:
            rates = [s.get("rate_per_s") for s in statuses if s.get("rate_per_s") is not None]
            rate_now = float(sum(rates)) if rates else None
        if rate_now is None:
            rate_now = self._readings_between(now - window, now) / self.rate_window_s
        statuses = statuses or []
        return {"rate": {"value": round(rate_now, 1),
                         "before": round(self._rate_before(now - DAY_MS, window), 1)},
                "feeds": {"value": sum(1 for s in statuses if s.get("connected")),
                          "before": None, "total": len(statuses)}}

    def _rejected_kpis(self, now: int) -> dict:
        """Messages quarantined in the last 24 h and in the 24 h before."""
        rej = self.store.arrow(
            f"SELECT count(*) FILTER (WHERE epoch_ms(received_at) > $n - {DAY_MS}) AS now_n, "
            f"count(*) FILTER (WHERE epoch_ms(received_at) <= $n - {DAY_MS}) AS before_n "
            f"FROM quarantine WHERE epoch_ms(received_at) > $n - {2 * DAY_MS}",
            {"n": now}).to_pylist()[0]
        return {"rejected": {"value": int(rej["now_n"]), "before": int(rej["before_n"])}}

    def _past(self, name: str, before_ms: int, read):
        """A figure of 24 h ago, ``read(t)`` at the 10 s step ``t`` of ``before_ms``, read at most
        once per step: that past does not change, while the events of today re-read the parts
        that show it (an alarm re-reads the incident panels, with their 24-hours-ago count)."""
        step = before_ms - before_ms % 10_000
        cached = self._cache.get(("past", name))
        if cached is None or cached[0] != step:
            cached = (step, read(step))
            self._cache[("past", name)] = cached
        return cached[1]

    def _rate_before(self, before_ms: int, window_ms: int) -> float:
        """Readings per second in the window ending at ``before_ms`` (24 h ago)."""
        return self._past(f"rate.{window_ms}", before_ms, lambda end: (
            self._readings_between(end - window_ms, end) / (window_ms / 1000)))

    def _readings_between(self, start_ms: int, end_ms: int) -> int:
        return int(self.store.scalar(
            "SELECT count(*) FROM readings WHERE ts > to_timestamp($s / 1000.0) "
            "AND ts <= to_timestamp($e / 1000.0)", {"s": start_ms, "e": end_ms}) or 0)

    def _warning_levels(self, at_ms: int, created_upto: int | None) -> dict[str, int]:
        df = self._current_warnings(at_ms, created_upto, columns="level")
        return df.level.value_counts().to_dict() if len(df) else {}

    def _current_warnings(self, at_ms: int, created_upto: int | None = None,
                          columns: str = "*") -> pd.DataFrame:
        """Warnings in force at ``at_ms``: latest version not a Cancel and not expired."""
        return self._df(
            f"""
            WITH cur AS (  -- latest version of each (arg_max, not a window: LATEST_NOTE)
              SELECT unnest(arg_max(w, w.version)) FROM warnings w
              WHERE $u::BIGINT IS NULL OR epoch_ms(w.created_at) <= $u::BIGINT
              GROUP BY w.warning_id)
            SELECT {columns} FROM cur
            WHERE msg_type <> 'Cancel' AND epoch_ms(expires) > $t
            """, {"t": at_ms, "u": created_upto})

    # ------------------------------------------------------------------ layers
    def active_warnings(self, now_ms: int | None = None) -> pd.DataFrame:
        """Warnings in force now, most severe first."""
        now = self.now_ms() if now_ms is None else now_ms
        return self._current_warnings(
            now, None,
            columns="warning_id, version, event, level, headline, area_codes, area_geojson, "
                    "epoch_ms(effective) AS effective_ms, epoch_ms(expires) AS expires_ms, "
                    "epoch_ms(created_at) AS created_ms")

    def warning_shapes(self, now_ms: int | None = None,
                       active: pd.DataFrame | None = None) -> dict[str, list]:
        """Patches of the warnings in force (``xs, ys, level, headline``), red drawn last.

        ``active``: the warnings in force when already read (:meth:`active_warnings`)."""
        warnings = self.active_warnings(now_ms) if active is None else active
        county = self.county_rings()
        out: dict[str, list] = {"xs": [], "ys": [], "level": [], "headline": [], "event": []}
        order = {lvl: i for i, lvl in enumerate(reversed(LEVELS))}
        warnings = warnings.assign(_o=warnings.level.map(order).fillna(-1)).sort_values("_o")
        for w in warnings.itertuples():
            rings = _rings(w.area_geojson)
            codes = w.area_codes if isinstance(w.area_codes, list | np.ndarray) else []
            for code in ([] if rings else codes):
                rings.extend(county.get(code, []))
            for ring in rings:
                out["xs"].append([p[0] for p in ring])
                out["ys"].append([p[1] for p in ring])
                out["level"].append(w.level)
                out["headline"].append(w.headline)
                out["event"].append(w.event)
        return out

    def places(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Installations (``name, lon, lat`` by id) and sensors (``lon, lat`` by id): the
        registries the live tables point into, read once (they do not change live)."""
        return self._static("places", lambda: (
            self._df("SELECT installation_id, name, lon, lat FROM installations")
            .set_index("installation_id"),
            self._df("SELECT sensor_id, lon, lat FROM sensors").set_index("sensor_id")))

    def _place_alarms(self, a: pd.DataFrame) -> pd.DataFrame:
        """Add ``lon, lat, name`` to alarms: their installation's, else their sensor's."""
        inst, sens = self.places()
        iid = a.installation_id
        at_inst = iid.notna() & iid.isin(inst.index)
        ilon = inst.lon.reindex(iid).to_numpy()
        ilat = inst.lat.reindex(iid).to_numpy()
        slon = sens.lon.reindex(a.sensor_id).to_numpy()
        slat = sens.lat.reindex(a.sensor_id).to_numpy()
        a = a.assign(lon=np.where(at_inst, ilon, slon), lat=np.where(at_inst, ilat, slat),
                     name=np.where(at_inst, inst.name.reindex(iid).to_numpy(dtype=object),
                                   a.sensor_id.to_numpy(dtype=object)))
        return a

    def open_alarms(self) -> pd.DataFrame:
        """Open alarms at their installations (sensor position when no installation)."""
        a = self._df(
            """
            SELECT alarm_id, level, state, kind, sensor_id, installation_id,
                   state = 'raised' AS unacked, escalated_at IS NOT NULL AS escalated,
                   epoch_ms(raised_at) AS raised_ms
            FROM alarms
            WHERE state <> 'closed'
            ORDER BY raised_at DESC
            LIMIT 5000
            """)
        return self._place_alarms(a).drop(columns="installation_id")

    def hotspots(self, now_ms: int | None = None, hours: float = 24) -> pd.DataFrame:
        now = self.now_ms() if now_ms is None else now_ms
        return self._df(
            "SELECT hotspot_id, lon, lat, confidence, epoch_ms(ts) AS ts_ms FROM hotspots "
            "WHERE epoch_ms(ts) > $s ORDER BY ts DESC LIMIT 20000",
            {"s": int(now - hours * HOUR_MS)})

    def quakes(self, now_ms: int | None = None, days: float = 7) -> pd.DataFrame:
        now = self.now_ms() if now_ms is None else now_ms
        return self._df(
            "SELECT quake_id, lon, lat, depth_km, magnitude, epoch_ms(ts) AS ts_ms FROM quakes "
            "WHERE epoch_ms(ts) > $s ORDER BY ts DESC LIMIT 5000",
            {"s": int(now - days * DAY_MS)})

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
            SELECT incident_id, kind, lon, lat, title, level, status, county_code,
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
                    installation_id AS inst
             FROM alarms ORDER BY raised_at DESC LIMIT {n})
            UNION ALL
            (SELECT epoch_ms(created_at), 'warning', level, headline, msg_type,
                    'w' || warning_id || ':' || version, NULL
             FROM warnings ORDER BY created_at DESC LIMIT {n})
            UNION ALL
            (SELECT epoch_ms(ts), 'incident', level, title, status,
                    'i' || incident_id || ':' || seq, NULL
             FROM incidents ORDER BY ts DESC LIMIT {n})
            UNION ALL
            (SELECT epoch_ms(ts), 'quake',
                    CASE WHEN magnitude >= 6 THEN 'red' WHEN magnitude >= 5 THEN 'orange'
                         WHEN magnitude >= 4 THEN 'yellow' ELSE 'blue' END,
                    quake_id, printf('%.1f', magnitude), 'q' || quake_id, NULL
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

    def incident_details(self, incidents: pd.DataFrame) -> list[dict]:
        """Timeline and nearest resources of the first ``max_incidents`` incidents."""
        out = []
        for inc in incidents.head(self.max_incidents).itertuples():
            key = ("near", inc.incident_id, round(inc.lon, 5), round(inc.lat, 5), inc.kind)
            near = self._cache.get(key)
            if near is None:  # resources do not move: keep per incident position (bounded)
                near = self.nearest_resources(inc.lon, inc.lat, inc.kind)
                stale = [k for k in self._cache if isinstance(k, tuple) and k[0] == "near"]
                for old in stale[: max(0, len(stale) - 32)]:
                    self._cache.pop(old, None)
                self._cache[key] = near
            out.append({"incident": inc._asdict(), "timeline": self.incident_timeline(inc.incident_id),
                        "nearest": near})
        return out

    # ------------------------------------------------------------------ static layers
    def counties(self) -> pd.DataFrame:
        return self._static("counties", lambda: self._df(
            "SELECT county_code, name, lon, lat FROM counties ORDER BY county_code"))

    def county_rings(self) -> dict[str, list]:
        """County code -> simplified exterior rings (from ``boundaries``)."""
        def build():
            df = self._df("SELECT code, geojson FROM boundaries WHERE level = 'county'")
            return {r.code: [_simplify(ring, self.outline_tolerance) for ring in _rings(r.geojson)]
                    for r in df.itertuples()}
        return self._static("county_rings", build)

    def outlines(self, level: str = "county") -> dict[str, list]:
        """``xs, ys, name`` of the outlines of one level (for a multi_line glyph)."""
        def build():
            df = self._df("SELECT code, name, geojson FROM boundaries WHERE level = $l ORDER BY code",
                          {"l": level})
            out: dict[str, list] = {"xs": [], "ys": [], "name": []}
            for r in df.itertuples():
                for ring in _rings(r.geojson):
                    ring = _simplify(ring, self.outline_tolerance)
                    out["xs"].append([p[0] for p in ring])
                    out["ys"].append([p[1] for p in ring])
                    out["name"].append(r.name)
            return out
        return self._static(f"outlines.{level}", build)

    def bounds(self) -> tuple[float, float, float, float]:
        """(lon0, lat0, lon1, lat1) of the province, with a small margin."""
        def build():
            xs = [x for ring in self.outlines("county")["xs"] for x in ring]
            ys = [y for ring in self.outlines("county")["ys"] for y in ring]
            if not xs:
                c = self.counties()
                xs, ys = list(c.lon.dropna()) or [114.0, 123.0], list(c.lat.dropna()) or [34.0, 38.5]
            x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
            mx, my = max((x1 - x0) * 0.03, 0.05), max((y1 - y0) * 0.03, 0.05)
            return (x0 - mx, y0 - my, x1 + mx, y1 + my)
        return self._static("bounds", build)

    def resources(self) -> dict[str, pd.DataFrame]:
        """Rescue teams, warehouses and shelters (positions and names)."""
        return self._static("resources", lambda: {
            "teams": self._df("SELECT name, kind, members, lon, lat FROM rescue_teams"),
            "warehouses": self._df("SELECT name, level, lon, lat FROM warehouses"),
            "shelters": self._df("SELECT name, kind, capacity, lon, lat FROM shelters"),
        })

    def risk_density(self, width: int = 640, height: int = 480) -> dict:
        """Risk-point density shaded once: ``image`` (uint32 RGBA, rows bottom-up) and bounds.

        Renders from the risk map's shared in-memory point layer (``point_layer``) when one
        is given, else builds a layer of its own from ``risk_points``; datashader is the
        fallback when the point layer's module is missing.
        """
        def build():
            x0, y0, x1, y1 = self.bounds()
            layer = self.point_layer() if callable(self.point_layer) else None
            layer = getattr(layer, "points", layer)  # a RiskLayer holds its PointLayer
            if layer is None:
                try:
                    from sources.risk.pointlayer import GRADES, PointLayer
                except ImportError:
                    return self._datashader_density(width, height)
                pts = self.store.arrow(
                    "SELECT lon::FLOAT AS x, lat::FLOAT AS y, CASE risk_level "
                    + " ".join(f"WHEN '{g}' THEN {i}" for i, g in enumerate(GRADES))
                    + " ELSE 3 END::UTINYINT AS cat FROM risk_points")
                cols = {n: pts.column(n).to_numpy() for n in ("x", "y", "cat")}
                layer = PointLayer.from_arrays(cols["x"], cols["y"], cols["cat"], grid=128,
                                               extent=(x0, x1, y0, y1))
            frame = layer.frame((x0, x1, y0, y1), width, height, spread=1)
            return {"image": np.asarray(frame.image, dtype=np.uint32), "x": x0, "y": y0,
                    "dw": x1 - x0, "dh": y1 - y0, "points": int(frame.total)}
        return self._static(f"risk_density.{width}x{height}", build)

    def _datashader_density(self, width: int, height: int) -> dict:
        import datashader as ds
        import datashader.transfer_functions as tf

        x0, y0, x1, y1 = self.bounds()
        pts = self._df("SELECT lon::FLOAT AS lon, lat::FLOAT AS lat FROM risk_points")
        canvas = ds.Canvas(plot_width=width, plot_height=height, x_range=(x0, x1),
                           y_range=(y0, y1))
        img = tf.shade(canvas.points(pts, "lon", "lat", agg=ds.count()),
                       cmap=["#2f6fd6", "#f5c542", "#ff2d2d"], how="eq_hist", min_alpha=60)
        return {"image": np.asarray(img.data, dtype=np.uint32), "x": x0, "y": y0,
                "dw": x1 - x0, "dh": y1 - y0, "points": len(pts)}

    # ------------------------------------------------------------------ shared snapshot
    def _read_part(self, name: str, now: int):
        """One part of the situation (see ``PARTS``): ``(kpis, data)``."""
        if name == "warnings":
            active = self.active_warnings(now)
            return self._warning_kpis(now, active), self.warning_shapes(now, active)
        if name == "alarms":
            return self._alarm_kpis(now), self.open_alarms()
        if name == "hotspots":
            return self._window_kpis("hotspots", now), self.hotspots(now)
        if name == "quakes":
            return self._window_kpis("quakes", now), self.quakes(now)
        if name == "ticker":
            return {}, self.ticker()
        if name == "incidents":
            active = self.active_incidents(now)
            return self._incident_kpis(now, active), (active, self.incident_details(active))
        if name == "rejected":
            return self._rejected_kpis(now), None
        raise KeyError(name)

    def situation(self, statuses: list[dict] | None = None, *, force: bool = False,
                  newer_than: float | dict[str, float] | None = None) -> dict:
        """Everything a board shows, shared by every page and read again part by part.

        A part (``PARTS``) is read again when an event of one of its topics was published
        after it was last read, or when it is older than ``max_age``; the feeds' own
        figures (readings per second, feeds connected) come from ``statuses`` at each call.
        ``newer_than`` says which events a page has seen: ``{topic: time.monotonic() of the
        newest}``, or one time for every topic (a page that missed events). ``force`` reads
        everything again.

        Keys: ``now_ms, kpis, ticker, warnings (patch data), alarms, hotspots, quakes,
        incidents, details`` (timeline and nearest resources of the first incidents).
        """
        if newer_than is None:
            seen: dict[str, float] = {}
        elif isinstance(newer_than, dict):
            seen = dict(newer_than)
        else:
            seen = dict.fromkeys(TOPICS, float(newer_than))
        with self._lock:
            # every event published since the last call, whether or not a page saw it (a page
            # opened after an alarm must not be shown parts read before it)
            if self.hub is not None:
                if self._events is None:
                    self._events = self.hub.subscribe(TOPICS, maxsize=64)
                    seen = dict.fromkeys(TOPICS, time.monotonic())  # nothing heard before
                messages, missed = self._events.drain()
                for m in messages:
                    seen[m.topic] = max(seen.get(m.topic, m.at), m.at)
                if missed:
                    seen = dict.fromkeys(TOPICS, time.monotonic())
            # quarantined messages show in the feeds' counters first: a new count is an event
            rejected = sum(int(s.get("rejected") or 0) for s in statuses or [])
            if statuses is not None and rejected != self._parts_rejected:
                self._parts_rejected = rejected
                seen["rejected"] = time.monotonic()
            clock = time.monotonic()
            stale = [name for name, topics in PARTS.items()
                     if force or name not in self._parts
                     or clock - self._parts[name][0] >= self.max_age
                     or any(seen.get(t, -math.inf) >= self._parts[name][0] for t in topics)]
            now = self.now_ms()
            for name in stale:
                started = time.monotonic()
                self._parts[name] = (started, *self._read_part(name, now))
                self.reads[name] += 1
            feeds = self._feed_kpis(now, statuses)
            snap = self._snapshot
            if snap is not None and not stale and snap[0] == feeds:
                return snap[1]
            parts = self._parts
            kpis = {}
            for name in ("warnings", "alarms", "incidents", "hotspots", "quakes"):
                kpis.update(parts[name][1])
            kpis.update(feeds)
            kpis.update(parts["rejected"][1])
            incidents, details = parts["incidents"][2]
            data = {
                "now_ms": now,
                "kpis": kpis,
                "ticker": parts["ticker"][2],
                "warnings": parts["warnings"][2],
                "alarms": parts["alarms"][2],
                "hotspots": parts["hotspots"][2],
                "quakes": parts["quakes"][2],
                "incidents": incidents,
                "details": details,
            }
            self._snapshot = (feeds, data)
            return data

    def read_at(self, name: str) -> float | None:
        """When part ``name`` of the shared situation was last read (``time.monotonic()``)."""
        part = self._parts.get(name)
        return None if part is None else part[0]

    def invalidate(self) -> None:
        """Drop the shared situation: the next call reads every part again."""
        with self._lock:
            self._parts.clear()
            self._snapshot = None


def freshness(statuses: list[dict], now_s: float | None = None) -> dict:
    """Liveness of the feeds: ``last_message_at`` (epoch s or None), ``connected``, ``total``.

    Accepts ``last_message_at`` as epoch seconds, epoch milliseconds or an ISO string.
    """
    last = None
    for s in statuses:
        v = _epoch_s(s.get("last_message_at"))
        if v is not None and (last is None or v > last):
            last = v
    return {"last_message_at": last,
            "connected": sum(1 for s in statuses if s.get("connected")),
            "total": len(statuses),
            "age_s": None if last is None else max(0.0, (now_s or time.time()) - last)}


def _epoch_s(value) -> float | None:
    if value is None:
        return None
    if isinstance(value, int | float):
        if not math.isfinite(value):
            return None
        return value / 1000.0 if value > 1e11 else float(value)
    if hasattr(value, "timestamp"):
        return float(value.timestamp())
    try:
        return pd.Timestamp(str(value)).timestamp()
    except (ValueError, TypeError):
        return None
