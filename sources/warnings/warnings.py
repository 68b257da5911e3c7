"""Warnings: issue, update, cancel, expire; history, log, preview of the area; CAP XML.

The ``warnings`` table is append-only: every Alert / Update / Cancel is a row with a
``version``; the current state of a warning is its latest version. A warning's *status* at a
time ``at`` is ``cancelled`` (latest is a Cancel), ``expired`` (``expires <= at``),
``pending`` (``effective > at``) or ``active``. Officers' warnings and the feed's warnings
(``source='feed'``) are handled alike.

Every change is published on the hub topic ``warning`` as a list of dicts (the new row with
its ``status``); :class:`sources.warnings.expiry.WarningExpiry` publishes ``{"warning_id", "status": "expired"}``
when a warning's time runs out, so pages only have to reload :meth:`WarningSource.active`.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import param
import pyarrow as pa
import shapely

from sources.base import Source, query
from sources.drills import marked
from sources.geo import CountyGeometry, clip_to, polygonal, shape_rings
from sources.levels import LEVELS

from . import cap, cap_documents

EVENTS = ("rainstorm", "flood", "gale", "heat", "freezing", "blizzard", "drought",
          "landslide", "forest_fire", "earthquake", "fog", "thunderstorm")

# latest version of each warning; arg_max, not a window function (see LATEST_NOTE in
# sources/situation/source.py: DuckDB's window operator grows the heap when repeated)
_LATEST = """
    SELECT * FROM (SELECT unnest(arg_max(w, w.version)) FROM warnings w GROUP BY w.warning_id)
"""


class WarningInputError(ValueError):
    """Bad input at the form: ``key`` is a label of ``views.i18n`` and ``fmt`` its values."""

    def __init__(self, key: str, message: str, **fmt):
        super().__init__(message)
        self.key, self.fmt = key, fmt


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _as_utc(value: Any) -> dt.datetime | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if isinstance(value, int | float):
        return dt.datetime.fromtimestamp(value / 1000, dt.UTC)
    if hasattr(value, "to_pydatetime"):
        value = value.to_pydatetime()
    if value.tzinfo is None:  # naive: China time, as the officers enter it
        value = value.replace(tzinfo=cap.CHINA_TZ)
    return value.astimezone(dt.UTC)


def status_at(msg_type: str, effective, expires, at: dt.datetime) -> str:
    """The status of a warning's latest version at ``at`` (see the module docstring)."""
    if msg_type == "Cancel":
        return "cancelled"
    if _as_utc(expires) <= at:
        return "expired"
    if _as_utc(effective) > at:
        return "pending"
    return "active"


class WarningSource(Source):
    """Warnings of the store: the officers' and the feeds', current state and history."""

    source_type: ClassVar[str] = "warnings"

    geography = param.ClassSelector(
        class_=CountyGeometry, default=None, allow_None=True,
        doc="County outlines (parsed once per process); built from the store when None.")
    sender_id = param.String(default="yjgl@console.local",
                             doc="CAP sender of the officers' warnings (and the feed's author).")

    # ------------------------------------------------------------------ geography
    @property
    def geo(self) -> CountyGeometry:
        if self.geography is None:
            self.geography = CountyGeometry(self.store)
        return self.geography

    def _polygon(self, polygon: Any) -> shapely.Geometry:
        """A valid shapely polygon from GeoJSON (dict or str) or a ring of (lon, lat)."""
        try:
            if isinstance(polygon, str):
                polygon = json.loads(polygon)
            if isinstance(polygon, dict):
                shape = shapely.geometry.shape(polygon)
            else:
                shape = shapely.Polygon([(float(x), float(y)) for x, y in polygon])
        except Exception as exc:
            raise WarningInputError("warnings.err.polygon", f"bad polygon: {exc}") from exc
        if not shape.is_valid:  # first: a self-crossing ring's signed area may be 0
            shape = polygonal(shapely.make_valid(shape))
        if shape.is_empty or shape.area <= 0:
            raise WarningInputError("warnings.err.polygon", "the polygon has no area")
        return shape

    def area_counties(self, codes: Iterable[str] | None, polygon: Any = None) -> list[str]:
        """County codes of an area: the codes given, or the counties a polygon touches."""
        if polygon is not None and not (isinstance(polygon, float) and np.isnan(polygon)):
            return self.geo.intersecting(self._polygon(polygon))
        return [str(c) for c in (codes if codes is not None else [])]

    # ------------------------------------------------------------------ validation
    def validate(
        self, *, event: str, level: str, headline: str, counties: Sequence[str] = (),
        polygon: Any = None, effective: Any = None, expires: Any = None, now=None,
        description: str = "",
    ) -> dict:
        """Check a draft; return the normalised fields or raise :class:`WarningInputError`.

        A drawn area is clipped to the province (what is published, previewed and sent by
        SMS is the same clipped area); text with a control character is refused (it cannot
        go into a CAP document, and it is invisible on the form).
        """
        now = now or utcnow()
        for field, value in (("headline", headline), ("description", description),
                             ("event", event)):
            char = cap.first_illegal(value if isinstance(value, str) else None)
            if char is not None:
                raise WarningInputError(
                    "warnings.err.control_char",
                    f"the {field} holds a control character (U+{ord(char):04X})",
                    field=field, char=f"U+{ord(char):04X}")
        if not event:
            raise WarningInputError("warnings.err.event", "no event")
        if level not in LEVELS:
            raise WarningInputError("warnings.err.level", f"unknown level {level!r}")
        if not (headline or "").strip():
            raise WarningInputError("warnings.err.headline", "no headline")
        counties = [str(c) for c in (counties or [])]
        has_polygon = polygon is not None and polygon != [] and polygon != ""
        if not counties and not has_polygon:
            raise WarningInputError("warnings.err.no_area", "no area: pick counties or draw one")
        unknown = [c for c in counties if c not in self.geo.names]
        if unknown:
            raise WarningInputError("warnings.err.unknown_county",
                                    f"unknown county: {', '.join(unknown)}",
                                    codes=", ".join(unknown))
        geojson = None
        if has_polygon:
            shape = clip_to(self._polygon(polygon), self.geo.province)
            touched = self.geo.intersecting(shape) if not shape.is_empty else []
            if not touched:
                raise WarningInputError("warnings.err.outside", "the area is outside the province")
            counties = sorted(set(counties) | set(touched))
            geojson = json.dumps(shapely.geometry.mapping(shape))
        effective = _as_utc(effective) or now
        expires = _as_utc(expires)
        if expires is None:
            raise WarningInputError("warnings.err.no_expiry", "no expiry time")
        if expires <= effective:
            raise WarningInputError("warnings.err.expiry", "expiry is not after effective time")
        if expires <= now:
            raise WarningInputError("warnings.err.expired", "expiry is in the past")
        return dict(event=event, level=level, headline=headline.strip(), area_codes=counties,
                    area_geojson=geojson, effective=effective, expires=expires)

    # ------------------------------------------------------------------ writing
    def _append(self, row: dict, token: str | None) -> dict:
        """Append one version in a transaction (once per ``token``) and publish it."""
        row = {"created_at": utcnow(), **row}  # a replica applying the log keeps the time
        extra = json.loads(row.pop("extra", None) or "{}")
        if token:
            extra["token"] = token
        with self.store.transaction() as cur:
            if token:
                hit = cur.execute(
                    "SELECT warning_id, version FROM warnings "
                    "WHERE json_extract_string(extra, '$.token') = ?", [token]).fetchall()
                if hit:
                    hit = hit[0]
                    return {**self.version(hit[0], hit[1]), "created": False}
            if row.get("warning_id") is None:
                day = row["created_at"].astimezone(cap.CHINA_TZ).strftime("%Y%m%d")
                n = cur.execute("SELECT count(DISTINCT warning_id) FROM warnings "
                                "WHERE warning_id LIKE ?", [f"W{day}-%"]).fetchall()[0][0]
                row["warning_id"] = f"W{day}-{n + 1:04d}"
                row["version"] = 1
            else:
                row["version"] = 1 + (cur.execute(
                    "SELECT max(version) FROM warnings WHERE warning_id = ?",
                    [row["warning_id"]]).fetchall()[0][0] or 0)
            row["extra"] = json.dumps(extra, ensure_ascii=False) if extra else None
            self.store.insert("warnings", _rows_table([row]), cur=cur)
        row["status"] = status_at(row["msg_type"], row["effective"], row["expires"], utcnow())
        if self.hub is not None:
            self.hub.publish("warning", [_plain(row)])
        return {**row, "created": True}

    def issue(self, *, event: str, level: str, headline: str, description: str = "",
              counties: Sequence[str] = (), polygon: Any = None, effective: Any = None,
              expires: Any = None, sender: str = "anonymous", token: str | None = None,
              drill_id: str | None = None) -> dict:
        """Validate and publish a new warning (msgType Alert); returns its row.

        ``token`` is the draft's idempotency key: publishing the same draft twice (a double
        click) returns the first warning with ``created=False`` and publishes nothing.
        ``drill_id``: a warning issued for that drill (an exercise: CAP status Exercise, no
        SMS, its headline marked 【演练】, purged with the drill).
        """
        if drill_id:
            headline = marked(headline)
        fields = self.validate(event=event, level=level, headline=headline, counties=counties,
                               polygon=polygon, effective=effective, expires=expires,
                               description=description)
        return self._append({**fields, "warning_id": None, "msg_type": "Alert",
                             "description": description or "", "source": "officer",
                             "sender": sender or "anonymous", "feed": None, "seq": None,
                             "drill_id": drill_id or None}, token)

    def update(self, warning_id: str, *, sender: str = "anonymous", token: str | None = None,
               **changes) -> dict:
        """Publish a new version (msgType Update) with ``changes`` over the latest one."""
        latest = self.latest(warning_id)
        if latest["status"] in ("cancelled", "expired"):
            raise WarningInputError("warnings.err.closed", f"{warning_id} is {latest['status']}",
                                    status=latest["status"])
        merged = {k: changes.get(k, latest[k]) for k in
                  ("event", "level", "headline", "effective", "expires")}
        polygon = changes.get("polygon", latest["area_geojson"])
        counties = changes.get("counties", [] if polygon else latest["area_codes"])
        description = changes.get("description", latest["description"])
        fields = self.validate(**merged, counties=counties, polygon=polygon,
                               description=description or "")
        return self._append({**fields, "warning_id": warning_id, "msg_type": "Update",
                             "description": description, "source": "officer",
                             "sender": sender or "anonymous", "feed": None, "seq": None,
                             "extra": _carried(latest), "drill_id": _drill(latest)}, token)

    def cancel(self, warning_id: str, *, sender: str = "anonymous", reason: str = "",
               token: str | None = None) -> dict:
        """Publish a Cancel version; the warning leaves the active list at once."""
        latest = self.latest(warning_id)
        if latest["status"] == "cancelled":
            raise WarningInputError("warnings.err.closed", f"{warning_id} is cancelled",
                                    status="cancelled")
        row = {k: latest[k] for k in ("warning_id", "event", "level", "headline", "description",
                                      "area_codes", "area_geojson", "effective", "expires")}
        row["effective"], row["expires"] = _as_utc(row["effective"]), _as_utc(row["expires"])
        return self._append({**row, "msg_type": "Cancel", "source": "officer",
                             "sender": sender or "anonymous", "feed": None, "seq": None,
                             "extra": _carried(latest, reason=reason or None),
                             "drill_id": _drill(latest)}, token)

    # ------------------------------------------------------------------ reading
    def _with_status(self, df: pd.DataFrame, at: dt.datetime) -> pd.DataFrame:
        df["status"] = [status_at(m, e, x, at) for m, e, x in
                        zip(df["msg_type"], df["effective"], df["expires"], strict=True)]
        return df

    @query(topics=("warning",), table=False)
    def _latest(self) -> pd.DataFrame:
        # read once per change for every page: the hub's ``warning`` topic makes it stale
        return self.store.df(_LATEST + " ORDER BY created_at DESC")

    def current(self, at: dt.datetime | None = None) -> pd.DataFrame:
        """The latest version of every warning with its status at ``at`` (default now)."""
        return self._with_status(self._latest(), at or utcnow())

    def active(self, at: dt.datetime | None = None, *, geometry: bool = True,
               include_pending: bool = True) -> pd.DataFrame:
        """Warnings in force at ``at`` (and pending ones), most severe first.

        With ``geometry`` the frame has ``xs``/``ys`` (lists of rings, lon/lat) of the area:
        the drawn polygon, else the outlines of its counties; ready for ``hv.Polygons``.
        """
        df = self.current(at)
        keep = ["active", "pending"] if include_pending else ["active"]
        df = df[df["status"].isin(keep)].copy()
        df["rank"] = df["level"].map({lv: i for i, lv in enumerate(LEVELS)}).fillna(-1)
        df = df.sort_values(["rank", "effective"], ascending=[False, False]).drop(columns="rank")
        df = df.reset_index(drop=True)
        if geometry:
            rings = [self.rings(r) for r in df.itertuples()]
            df["xs"] = [[np.asarray([p[0] for p in ring]) for ring in rr] for rr in rings]
            df["ys"] = [[np.asarray([p[1] for p in ring]) for ring in rr] for rr in rings]
        return df

    def latest(self, warning_id: str) -> dict:
        """The latest version of one warning as a dict with ``status``; KeyError if unknown."""
        df = self.store.df("SELECT * FROM warnings WHERE warning_id = ? "
                           "ORDER BY version DESC LIMIT 1", [warning_id])
        if df.empty:
            raise KeyError(warning_id)
        return _clean(self._with_status(df, utcnow()).iloc[0].to_dict())

    def version(self, warning_id: str, version: int) -> dict:
        df = self.store.df("SELECT * FROM warnings WHERE warning_id = ? AND version = ?",
                           [warning_id, version])
        return _clean(self._with_status(df, utcnow()).iloc[0].to_dict())

    def history(self, warning_id: str) -> pd.DataFrame:
        """Every version of one warning, oldest first."""
        return self.store.df("SELECT * FROM warnings WHERE warning_id = ? ORDER BY version",
                             [warning_id])

    def versions(self, warning_id: str) -> list[dict]:
        """Every version of one warning as plain dicts, oldest first; KeyError if unknown."""
        hist = self.history(warning_id)
        if hist.empty:
            raise KeyError(warning_id)
        return [_clean(r) for r in hist.to_dict("records")]

    def log(self, *, source: str | None = None, event: str | None = None,
            level: str | None = None, since: Any = None, until: Any = None,
            text: str | None = None, limit: int = 5000) -> pd.DataFrame:
        """Every version issued or received, newest first, filtered (None: no filter)."""
        where, params = ["TRUE"], []
        for col, value in (("source", source), ("event", event), ("level", level)):
            if value:
                where.append(f"{col} = ?")
                params.append(value)
        if since is not None:
            where.append("created_at >= ?")
            params.append(_as_utc(since))
        if until is not None:
            where.append("created_at <= ?")
            params.append(_as_utc(until))
        if text:
            where.append("(headline ILIKE ? OR warning_id ILIKE ? OR description ILIKE ?)")
            params += [f"%{text}%"] * 3
        params.append(int(limit))
        return self.store.df(
            "SELECT warning_id, version, msg_type, event, level, headline, description, "
            "area_codes, effective, expires, source, sender, created_at FROM warnings "
            f"WHERE {' AND '.join(where)} ORDER BY created_at DESC, version DESC LIMIT ?", params)

    def log_csv(self, **filters) -> str:
        """The filtered log as CSV text (UTF-8; times in China time; counties joined by ';')."""
        df = self.log(**filters)
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(list(df.columns))
        for row in df.itertuples(index=False):
            writer.writerow([
                ";".join(v) if isinstance(v, list | np.ndarray) else
                cap.cap_time(v) if isinstance(v, pd.Timestamp | dt.datetime) else
                ("" if v is None else v) for v in row])
        return out.getvalue()

    # ------------------------------------------------------------------ area
    def rings(self, warning: Any) -> list[list[tuple[float, float]]]:
        """Outer rings (lon, lat) of a warning's area: its polygon, else its counties."""
        get = warning.get if isinstance(warning, dict) else lambda k: getattr(warning, k, None)
        geojson = get("area_geojson")
        if isinstance(geojson, str) and geojson:
            return shape_rings(self._polygon(geojson))
        rings = []
        for code in get("area_codes") if get("area_codes") is not None else []:
            rings += self.geo.rings.get(str(code), [])
        return rings

    def preview(self, counties: Sequence[str] = (), polygon: Any = None) -> dict:
        """What lies inside an area: counties, enterprises, landslide points, shelters.

        Returns a dict of DataFrames (``counties``, ``enterprises``, ``landslide_points``,
        ``shelters``) and ``totals`` (counts, population, threatened people, capacity).
        """
        shape = self._polygon(polygon) if polygon is not None else None
        codes = self.area_counties(counties, polygon) if shape is not None else list(counties)
        out = {"counties": self.store.df(
            "SELECT county_code, name, city, population FROM counties "
            "WHERE list_contains(?, county_code) ORDER BY county_code", [codes])}
        queries = {
            "enterprises": "SELECT enterprise_id, name, industry, risk_level, is_major_hazard, "
                           "county_code, lon, lat FROM enterprises",
            "landslide_points": "SELECT point_id, name, kind, scale, threatened_people, "
                                "county_code, lon, lat FROM landslide_points",
            "shelters": "SELECT shelter_id, name, kind, capacity, county_code, lon, lat "
                        "FROM shelters",
        }
        for name, sql in queries.items():
            if shape is not None:
                x0, y0, x1, y1 = shape.bounds
                df = self.store.df(sql + " WHERE lon BETWEEN ? AND ? AND lat BETWEEN ? AND ?",
                                   [x0, x1, y0, y1])
                df = df[shapely.contains_xy(shape, df["lon"].to_numpy(), df["lat"].to_numpy())]
            else:
                df = self.store.df(sql + " WHERE list_contains(?, county_code)", [codes])
            out[name] = df.reset_index(drop=True)
        out["totals"] = {
            "counties": len(out["counties"]),
            "population": int(out["counties"]["population"].fillna(0).sum()),
            "enterprises": len(out["enterprises"]),
            "major_hazard": int(out["enterprises"]["is_major_hazard"].fillna(False).sum()),
            "landslide_points": len(out["landslide_points"]),
            "threatened_people": int(out["landslide_points"]["threatened_people"].sum()),
            "shelters": len(out["shelters"]),
            "capacity": int(out["shelters"]["capacity"].sum()),
        }
        return out

    # ------------------------------------------------------------------ CAP
    def cap_xml(self, warning_id: str, version: int | None = None) -> bytes:
        """One version (default: the latest) of a warning as a CAP 1.2 alert; KeyError if
        unknown. See :mod:`sources.warnings.cap` for what the document holds."""
        return cap_documents.alert_xml(self, warning_id, version)

    def cap_atom(self, base_url: str) -> bytes:
        """The current warnings as an Atom feed of CAP entries (``base_url``: the absolute
        URL of the ``/cap`` routes, as the client reached them)."""
        return cap_documents.atom_xml(self, base_url)

    def cap_index_xml(self, base_url: str = "/cap") -> bytes:
        """The current warnings as the plain index (no namespace) linking their alerts."""
        return cap_documents.index_xml(self, base_url)

    def sms_counties(self, warning_id: str) -> list[str]:
        """County codes a regional SMS of this warning goes to (known counties only); none
        for an exercise: a drill never reaches the public."""
        latest = self.latest(warning_id)
        if cap.is_exercise(latest):
            return []
        codes = self.area_counties(latest["area_codes"], latest["area_geojson"] or None)
        return [c for c in codes if c in self.geo.names]

    def next_transition(self, at: dt.datetime | None = None) -> dt.datetime | None:
        """The next time a warning becomes effective or expires after ``at`` (None: none)."""
        at = at or utcnow()
        value = self.store.scalar(
            f"SELECT min(t) FROM (SELECT effective AS t FROM ({_LATEST}) WHERE msg_type <> "
            f"'Cancel' UNION ALL SELECT expires FROM ({_LATEST}) WHERE msg_type <> 'Cancel') "
            "WHERE t > ?", [at])
        return _as_utc(value) if value is not None else None


# ---------------------------------------------------------------------- helpers
_SCHEMA = pa.schema([
    ("warning_id", pa.string()), ("version", pa.int32()), ("msg_type", pa.string()),
    ("event", pa.string()), ("level", pa.string()), ("headline", pa.string()),
    ("description", pa.string()), ("area_codes", pa.list_(pa.string())),
    ("area_geojson", pa.string()), ("effective", pa.timestamp("us", tz="UTC")),
    ("expires", pa.timestamp("us", tz="UTC")), ("source", pa.string()),
    ("sender", pa.string()), ("created_at", pa.timestamp("us", tz="UTC")),
    ("feed", pa.string()), ("seq", pa.int64()), ("extra", pa.string()),
    ("drill_id", pa.string()),
])


def _rows_table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(
        [{k: (list(v) if k == "area_codes" and v is not None else v)
          for k, v in r.items() if k in _SCHEMA.names} for r in rows], schema=_SCHEMA)


def _carried(latest: dict, **extra) -> str | None:
    """``extra`` of a new version: what must outlive a version (a drill stays a drill)."""
    if cap.is_exercise(latest):
        extra["exercise"] = True
    extra = {k: v for k, v in extra.items() if v is not None}
    return json.dumps(extra, ensure_ascii=False) if extra else None


def _drill(latest: dict) -> str | None:
    """The drill of a warning's next version: a drill's warning stays the drill's."""
    drill = latest.get("drill_id")
    return drill if isinstance(drill, str) and drill else None


def _clean(row: dict) -> dict:
    """A DataFrame row as plain values: NaN/NaT -> None, arrays -> lists."""
    out = {}
    for k, v in row.items():
        if isinstance(v, np.ndarray):
            v = v.tolist()
        elif not isinstance(v, list | str) and v is not None and pd.isna(v):
            v = None
        out[k] = v
    return out


def _plain(row: dict) -> dict:
    """A row with JSON-friendly values (ISO times, lists) for the hub."""
    out = {}
    for k, v in row.items():
        if isinstance(v, dt.datetime):
            v = v.isoformat()
        elif isinstance(v, np.ndarray):
            v = v.tolist()
        out[k] = v
    return out
