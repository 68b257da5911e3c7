"""CAP 1.2 (Common Alerting Protocol, OASIS) documents of warnings: one ``<alert>``.

Only the standard library (``xml.etree``). What the official schema and the standard ask,
and how it is met here:

* the children of ``<alert>`` and ``<info>`` come in the schema's order; optional elements
  with no value are left out (an empty ``<effective/>`` is not a date-time);
* times have an explicit offset, in China time (CAP forbids ``Z``), and no fractions;
* ``identifier`` and ``sender`` hold no spaces, commas, ``<`` or ``&``: :func:`cap_token`
  writes those (and ``%``, and anything unprintable) as ``%XX``;
* one identifier per message version, ``<token of the warning id>.v<version>``: every
  identifier ends in ``.vN``, so splitting at the last ``.v`` is unambiguous whatever a
  feed's ids look like;
* ``references`` lists each earlier version as ``sender,identifier,sent`` exactly as that
  version's own document says them, space-separated;
* polygons are ``"lat,lon lat,lon ..."`` closed rings of at least 4 points;
* ``status`` is ``Exercise`` for a drill (the warning's ``exercise`` flag, or ``extra``),
  else ``Actual``;
* characters that XML 1.0 cannot carry (C0 controls but tab, new line and CR; lone
  surrogates; U+FFFE, U+FFFF) are left out of every document, whatever text was stored.
"""
from __future__ import annotations

import datetime as dt
import json
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sources.levels import CAP_SEVERITY

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
CHINA_TZ = dt.timezone(dt.timedelta(hours=8))

#: warning level -> CAP severity
SEVERITY = CAP_SEVERITY  # warning level -> <severity> (sources.levels)

#: event key -> CAP category (hydrology counts as Met in CAP practice)
CATEGORY = {
    "rainstorm": "Met", "flood": "Met", "gale": "Met", "heat": "Met", "freezing": "Met",
    "cold_wave": "Met", "blizzard": "Met", "drought": "Met", "fog": "Met", "hail": "Met",
    "thunderstorm": "Met", "typhoon": "Met", "landslide": "Geo", "debris_flow": "Geo",
    "earthquake": "Geo", "forest_fire": "Fire",
}

#: characters outside XML 1.0's ``Char`` production
XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_TOKEN_ESCAPE = frozenset("%,&<")


def xml_text(value: Any) -> str:
    """``value`` as text an XML document can carry (illegal characters left out)."""
    return XML_ILLEGAL.sub("", str(value))


def first_illegal(text: str | None) -> str | None:
    """The first character of ``text`` no XML document can carry, or None."""
    found = XML_ILLEGAL.search(text or "")
    return found.group() if found else None


def cap_token(text: Any) -> str:
    """A CAP identifier/sender token: spaces, commas, ``<``, ``&``, ``%`` and anything
    unprintable written as ``%XX`` (UTF-8), so any stored id makes a valid token."""
    out = []
    for c in str(text):
        if c in _TOKEN_ESCAPE or c.isspace() or not c.isprintable() or XML_ILLEGAL.match(c):
            out.append("".join(f"%{b:02X}" for b in c.encode("utf-8", "surrogatepass")))
        else:
            out.append(c)
    return "".join(out) or "-"


def cap_identifier(warning_id: Any, version: Any) -> str:
    """The identifier of one message version: ``<token of the warning id>.v<version>``."""
    return f"{cap_token(warning_id)}.v{int(version or 1)}"


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
    points = [(float(lon), float(lat)) for lon, lat, *_ in ring]
    if points and points[0] != points[-1]:
        points.append(points[0])
    return " ".join(f"{lat:.5f},{lon:.5f}" for lon, lat in points)


def _extra(warning: Mapping[str, Any]) -> dict:
    raw = warning.get("extra")
    if isinstance(raw, dict):
        return raw
    try:
        value = json.loads(raw) if isinstance(raw, str) and raw else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _flag(value: Any) -> bool:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "exercise")
    return bool(value)


def is_exercise(warning: Mapping[str, Any]) -> bool:
    """True for a drill: the row's ``drill_id`` or ``exercise`` flag, or
    ``exercise``/``status`` in extra."""
    extra = _extra(warning)
    drill = warning.get("drill_id")
    return (isinstance(drill, str) and bool(drill)) or _flag(warning.get("exercise")) \
        or _flag(extra.get("exercise")) or str(extra.get("status", "")).lower() == "exercise"


def cap_status(warning: Mapping[str, Any]) -> str:
    """``Exercise`` for a drill, else ``Actual``."""
    return "Exercise" if is_exercise(warning) else "Actual"


def sender_name(warning: Mapping[str, Any]) -> str:
    """Who issued it, for people: a feed's ``sender_name``, else the stored sender."""
    return str(_extra(warning).get("sender_name") or warning.get("sender") or "console")


def reference(warning: Mapping[str, Any], sender: str) -> str:
    """``sender,identifier,sent`` of one message version, as its own document says them."""
    return (f"{sender},{cap_identifier(warning['warning_id'], warning.get('version'))},"
            f"{cap_time(warning.get('created_at'))}")


def _sub(parent: ET.Element, tag: str, text: Any = None) -> ET.Element:
    # plain tags under a root that declares the namespace: a default-namespace document
    # without ElementTree's process-wide register_namespace (which Atom would also want)
    el = ET.SubElement(parent, tag)
    if text is not None:
        el.text = xml_text(text)
    return el


def _opt(parent: ET.Element, tag: str, text: Any) -> None:
    if text is not None and str(text) != "":
        _sub(parent, tag, text)


def alert_element(
    warning: Mapping[str, Any],
    *,
    sender: str,
    counties: Iterable[Mapping[str, Any]] = (),
    rings: Iterable[Sequence[Sequence[float]]] = (),
    references: Sequence[str] = (),
    language: str = "zh-CN",
    now: dt.datetime | None = None,
) -> ET.Element:
    """Build the ``<alert>`` element of one warning version.

    Parameters
    ----------
    warning : mapping
        A row of ``warnings`` (warning_id, version, msg_type, event, level, headline,
        description, effective, expires, sender, created_at, extra, ...); ``event_label``
        is used as the CAP event text when present.
    sender : str
        The CAP sender of this version (a token: see :func:`cap_token`).
    counties : iterable of mappings
        ``county_code`` and ``name`` of each county of the area (geocodes, areaDesc).
    rings : iterable of rings
        Outer rings ``[(lon, lat), ...]`` of the area (drawn polygon or county outlines).
    references : sequence of str
        ``sender,identifier,sent`` of each earlier version (see :func:`reference`).
    """
    now = now or dt.datetime.now(dt.UTC)
    level = str(warning.get("level"))
    event = str(warning.get("event"))
    msg_type = warning.get("msg_type") or "Alert"

    alert = ET.Element("alert", xmlns=CAP_NS)
    _sub(alert, "identifier", cap_identifier(warning["warning_id"], warning.get("version")))
    _sub(alert, "sender", sender)
    _sub(alert, "sent", cap_time(warning.get("created_at") or now))
    _sub(alert, "status", cap_status(warning))
    _sub(alert, "msgType", msg_type)
    _opt(alert, "source", warning.get("source"))
    _sub(alert, "scope", "Public")
    if references:
        _sub(alert, "references", " ".join(references))

    info = _sub(alert, "info")
    _sub(info, "language", language)
    _sub(info, "category", CATEGORY.get(event, "Other"))
    _sub(info, "event", warning.get("event_label") or event)
    effective = warning.get("effective")
    eff = effective.to_pydatetime() if hasattr(effective, "to_pydatetime") else effective
    if msg_type == "Cancel":
        urgency = "Past"
    elif eff is not None and eff <= now + dt.timedelta(hours=1):
        urgency = "Immediate"
    else:
        urgency = "Expected"
    _sub(info, "urgency", urgency)
    _sub(info, "severity", SEVERITY.get(level, "Unknown"))
    _sub(info, "certainty", "Observed" if warning.get("source") == "feed" else "Likely")
    _opt(info, "effective", cap_time(effective))
    _opt(info, "expires", cap_time(warning.get("expires")))
    _opt(info, "senderName", xml_text(sender_name(warning)))
    _opt(info, "headline", xml_text(warning.get("headline") or ""))
    _opt(info, "description",
         xml_text(warning.get("description") or warning.get("headline") or ""))
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
