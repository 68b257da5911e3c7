"""CAP 1.2 (Common Alerting Protocol, OASIS) XML for warnings: one alert, and the index.

Only the standard library (``xml.etree``). Times are written with an explicit offset in
China time (CAP forbids ``Z``); polygons are ``"lat,lon lat,lon ..."`` closed rings.
"""
from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
CHINA_TZ = dt.timezone(dt.timedelta(hours=8))

#: warning level -> CAP severity
SEVERITY = {"blue": "Minor", "yellow": "Moderate", "orange": "Severe", "red": "Extreme"}

#: event key -> CAP category (hydrology counts as Met in CAP practice)
CATEGORY = {
    "rainstorm": "Met", "flood": "Met", "gale": "Met", "heat": "Met", "freezing": "Met",
    "cold_wave": "Met", "blizzard": "Met", "drought": "Met", "fog": "Met", "hail": "Met",
    "thunderstorm": "Met", "typhoon": "Met", "landslide": "Geo", "debris_flow": "Geo",
    "earthquake": "Geo", "forest_fire": "Fire",
}

ET.register_namespace("", CAP_NS)


def cap_time(value: Any) -> str:
    """A CAP date-time: ``2026-11-28T08:00:00+08:00`` (no fractions, explicit offset)."""
    if value is None:
        return ""
    if hasattr(value, "to_pydatetime"):
        value = value.to_pydatetime()
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(CHINA_TZ).replace(microsecond=0).isoformat()


def cap_polygon(ring: Sequence[Sequence[float]]) -> str:
    """A CAP polygon from a ring of ``(lon, lat)``: ``"lat,lon ..."``, closed, ≥ 4 points."""
    points = [(float(lon), float(lat)) for lon, lat in ring]
    if points and points[0] != points[-1]:
        points.append(points[0])
    return " ".join(f"{lat:.5f},{lon:.5f}" for lon, lat in points)


def _sub(parent: ET.Element, tag: str, text: Any = None) -> ET.Element:
    el = ET.SubElement(parent, f"{{{CAP_NS}}}{tag}")
    if text is not None:
        el.text = str(text)
    return el


def alert_element(
    warning: Mapping[str, Any],
    *,
    counties: Iterable[Mapping[str, Any]] = (),
    rings: Iterable[Sequence[Sequence[float]]] = (),
    references: Sequence[Mapping[str, Any]] = (),
    sender: str | None = None,
    language: str = "zh-CN",
    now: dt.datetime | None = None,
) -> ET.Element:
    """Build the ``<alert>`` element of one warning version.

    Parameters
    ----------
    warning : mapping
        A row of ``warnings`` (warning_id, version, msg_type, event, level, headline,
        description, effective, expires, sender, created_at, ...); ``event_label`` is used
        as the CAP event text when present.
    counties : iterable of mappings
        ``county_code`` and ``name`` of each county of the area (geocodes, areaDesc).
    rings : iterable of rings
        Outer rings ``[(lon, lat), ...]`` of the area (drawn polygon or county outlines).
    references : sequence of mappings
        Earlier versions of the same warning (for Update / Cancel).
    sender : str, optional
        Overrides the stored sender (CAP wants an address-like id).
    """
    now = now or dt.datetime.now(dt.UTC)
    version = int(warning.get("version") or 1)
    wid = str(warning["warning_id"])
    identifier = wid if version == 1 else f"{wid}.v{version}"
    sender = sender or str(warning.get("sender") or "console")
    level = str(warning.get("level"))
    event = str(warning.get("event"))

    alert = ET.Element(f"{{{CAP_NS}}}alert")
    _sub(alert, "identifier", identifier)
    _sub(alert, "sender", sender)
    _sub(alert, "sent", cap_time(warning.get("created_at") or now))
    _sub(alert, "status", "Actual")
    _sub(alert, "msgType", warning.get("msg_type") or "Alert")
    _sub(alert, "source", warning.get("source") or "officer")
    _sub(alert, "scope", "Public")
    if references:
        _sub(alert, "references", " ".join(
            f"{r.get('sender') or sender},"
            f"{r['warning_id'] if int(r.get('version') or 1) == 1 else str(r['warning_id']) + '.v' + str(r['version'])},"
            f"{cap_time(r.get('created_at'))}"
            for r in references))

    info = _sub(alert, "info")
    _sub(info, "language", language)
    _sub(info, "category", CATEGORY.get(event, "Other"))
    _sub(info, "event", warning.get("event_label") or event)
    effective = warning.get("effective")
    eff = effective.to_pydatetime() if hasattr(effective, "to_pydatetime") else effective
    if warning.get("msg_type") == "Cancel":
        urgency = "Past"
    elif eff is not None and eff <= now + dt.timedelta(hours=1):
        urgency = "Immediate"
    else:
        urgency = "Expected"
    _sub(info, "urgency", urgency)
    _sub(info, "severity", SEVERITY.get(level, "Unknown"))
    _sub(info, "certainty", "Observed" if warning.get("source") == "feed" else "Likely")
    _sub(info, "senderName", warning.get("sender") or sender)
    _sub(info, "effective", cap_time(effective))
    _sub(info, "expires", cap_time(warning.get("expires")))
    _sub(info, "headline", warning.get("headline") or "")
    _sub(info, "description", warning.get("description") or warning.get("headline") or "")
    param_el = _sub(info, "parameter")
    _sub(param_el, "valueName", "level")
    _sub(param_el, "value", level)

    area = _sub(info, "area")
    counties = list(counties)
    names = [str(c.get("name") or c.get("county_code")) for c in counties]
    _sub(area, "areaDesc", "、".join(names) if names else (warning.get("area_desc") or "drawn area"))
    for ring in rings:
        if len(ring) >= 3:
            _sub(area, "polygon", cap_polygon(ring))
    for c in counties:
        geo = _sub(area, "geocode")
        _sub(geo, "valueName", "GB/T 2260")
        _sub(geo, "value", c["county_code"])
    return alert


def to_xml(element: ET.Element) -> bytes:
    """Serialise an element as UTF-8 XML with a declaration."""
    ET.indent(element)
    return ET.tostring(element, encoding="utf-8", xml_declaration=True)


def index_element(entries: Iterable[Mapping[str, Any]], *, base_url: str = "/cap") -> ET.Element:
    """An index of the active warnings: ``<index>`` of ``<entry>`` (id, level, link...).

    Not a CAP element itself (CAP has no feed format); kept in the CAP namespace so a poller
    reads both with one parser. Each entry links to its ``<id>.xml``.
    """
    root = ET.Element(f"{{{CAP_NS}}}index")
    for e in entries:
        entry = _sub(root, "entry")
        _sub(entry, "identifier", e["warning_id"])
        _sub(entry, "version", e.get("version", 1))
        _sub(entry, "msgType", e.get("msg_type", "Alert"))
        _sub(entry, "event", e.get("event", ""))
        _sub(entry, "severity", SEVERITY.get(str(e.get("level")), "Unknown"))
        _sub(entry, "level", e.get("level", ""))
        _sub(entry, "headline", e.get("headline", ""))
        _sub(entry, "effective", cap_time(e.get("effective")))
        _sub(entry, "expires", cap_time(e.get("expires")))
        _sub(entry, "link", f"{base_url}/{e['warning_id']}.xml")
    return root
