"""CAP documents of the stored warnings: one message version, the Atom feed, the old index.

:class:`~sources.warnings.warnings.WarningSource` answers ``/cap/...`` through these; they
read it only through its public methods (``versions``, ``active``, ``current``, ``geo``,
``area_counties``), so this module does not import it.

The area published is what the console can vouch for: counties it knows (a code outside
the registry is left out of geocodes, names and the SMS list) and polygons clipped to the
province (a feed's polygon reaching outside is cut at the border; an officer's is already
clipped when issued).
"""
from __future__ import annotations

import datetime as dt
from typing import Any

import shapely

from sources.geo import clip_to, polygonal, shape_rings

from . import cap, cap_feed

FEED_TITLE = "预警信息 (CAP 1.2)"


# ---------------------------------------------------------------------- one alert
def cap_sender(source, row: dict) -> str:
    """The CAP sender of a version: the console's for officers', the feed's for feeds'."""
    if row.get("source") == "officer":
        return cap.cap_token(source.sender_id)
    return cap.cap_token(row.get("sender") or "feed")


def area_of(source, row: dict) -> tuple[list[dict], list[list[tuple[float, float]]]]:
    """(known counties with names, outer rings clipped to the province) of a version."""
    geo = source.geo
    geojson = row.get("area_geojson") or None
    codes = [c for c in source.area_counties(row.get("area_codes"), geojson) if c in geo.names]
    counties = [{"county_code": c, "name": geo.names.get(c, c)} for c in codes]
    if geojson:
        shape = shapely.from_geojson(geojson)
        if not shape.is_valid:  # a feed's polygon is stored as sent
            shape = polygonal(shapely.make_valid(shape))
        rings = shape_rings(clip_to(shape, geo.province))
    else:
        rings = [ring for c in codes for ring in geo.rings.get(c, [])]
    return counties, rings


def alert_xml(source, warning_id: str, version: int | None = None) -> bytes:
    """One version (default: the latest) of a warning as a CAP 1.2 alert.

    Raises
    ------
    KeyError
        When the warning, or that version of it, is not stored.
    """
    rows = source.versions(warning_id)
    at = len(rows) - 1
    if version is not None:
        found = [i for i, r in enumerate(rows) if int(r["version"]) == int(version)]
        if not found:
            raise KeyError(f"{warning_id} v{version}")
        at = found[0]
    row = rows[at]
    counties, rings = area_of(source, row)
    references = [cap.reference(r, cap_sender(source, r)) for r in rows[:at]]
    el = cap.alert_element(row, sender=cap_sender(source, row), counties=counties,
                           rings=rings, references=references)
    return cap.to_xml(el)


# ---------------------------------------------------------------------- lists
def _entries(source) -> list[dict[str, Any]]:
    df = source.active(geometry=False)
    rows = df.astype(object).where(df.notna(), None).to_dict("records")  # NaN: no value
    return [{**r, "status": cap.cap_status(r), "sender_name": cap.sender_name(r)}
            for r in rows]


def _feed_updated(source, now: dt.datetime) -> dt.datetime:
    """When the list last changed: a new version, or a warning taking effect or expiring."""
    df = source.current(now)
    times = [t for col in ("created_at", "effective", "expires") if col in df
             for t in df[col].dropna()]
    times = [t.to_pydatetime() if hasattr(t, "to_pydatetime") else t for t in times]
    times = [t for t in times if t <= now]
    return max(times, default=now)


def atom_xml(source, base_url: str, *, title: str = FEED_TITLE,
             now: dt.datetime | None = None) -> bytes:
    """The current alerts (in force or pending) as an Atom feed of CAP entries."""
    now = now or dt.datetime.now(dt.UTC)
    feed = cap_feed.atom_feed(_entries(source), base_url=base_url.rstrip("/"), title=title,
                              author=source.sender_id, updated=_feed_updated(source, now))
    return cap.to_xml(feed)


def index_xml(source, base_url: str = "/cap") -> bytes:
    """The current alerts as the plain index (no namespace), each linking to its version."""
    return cap.to_xml(cap_feed.index_element(_entries(source), base_url=base_url.rstrip("/")))
