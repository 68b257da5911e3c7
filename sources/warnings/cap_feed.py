"""The current alerts as CAP consumers read them: an Atom feed of CAP entries, and the links.

CAP has no list format of its own. Aggregators (Google Public Alerts, the WMO register of
alerting authorities; OASIS "CAP Feeds" example practices) poll an Atom feed whose entries
each link to one CAP message with ``rel="alternate" type="application/cap+xml"``. Here one
entry is one message version: its ``id`` and its link are the URL of that version's
document (``/cap/<id>/v<N>.xml``), so what an entry says and the document it links to never
disagree even while the warning is being updated; ``updated`` is the message's ``sent``.

The older plain index (``/cap/index.xml``) is kept for the pollers that read it, in no
namespace: it is not a CAP element.

Ids are URL-encoded as one path segment in every link (an id may hold ``/``, ``?``, ``#``,
``%``, spaces); the routes decode them.
"""
from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

from .cap import CAP_NS, CATEGORY, SEVERITY, cap_identifier, cap_time, xml_text

ATOM_NS = "http://www.w3.org/2005/Atom"
CAP_MIME = "application/cap+xml"
ATOM_MIME = "application/atom+xml"
_SCHEME = CAP_NS + "#"  # category schemes name the CAP element a term comes from


def alert_path(warning_id: Any, version: int | None = None, *, base: str = "/cap") -> str:
    """The URL path of a warning's CAP document: latest, or one version."""
    segment = quote(str(warning_id), safe="")
    if version is None:
        return f"{base}/{segment}.xml"
    return f"{base}/{segment}/v{int(version)}.xml"


def counties_path(warning_id: Any, *, base: str = "/cap") -> str:
    """The URL path of a warning's county list (regional SMS)."""
    return f"{base}/{quote(str(warning_id), safe='')}/counties.txt"


def _atom(parent: ET.Element, tag: str, text: Any = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, tag)  # plain tags: the root declares the Atom namespace
    for key, value in attrs.items():
        el.set(key, xml_text(value))
    if text is not None:
        el.text = xml_text(text)
    return el


def atom_feed(
    entries: Iterable[Mapping[str, Any]],
    *,
    base_url: str,
    title: str,
    author: str,
    updated: dt.datetime,
    language: str = "zh-CN",
) -> ET.Element:
    """An Atom feed of the current alerts, each entry linking to its CAP document.

    Parameters
    ----------
    entries : iterable of mappings
        One per message version: ``warning_id``, ``version``, ``headline``, ``description``,
        ``created_at`` (the CAP ``sent``), ``level``, ``event``, ``msg_type``, and the CAP
        ``status`` and ``sender_name`` as the document says them.
    base_url : str
        Absolute URL of the CAP routes (``http://host:port/cap``): Atom ids are absolute.
    """
    feed = ET.Element("feed", xmlns=ATOM_NS)
    feed.set("{http://www.w3.org/XML/1998/namespace}lang", language)
    _atom(feed, "id", f"{base_url}/feed.atom")
    _atom(feed, "title", title)
    _atom(feed, "updated", cap_time(updated))
    _atom(_atom(feed, "author"), "name", author)
    _atom(feed, "link", rel="self", type=ATOM_MIME, href=f"{base_url}/feed.atom")
    _atom(feed, "generator", "emergency-console")
    for e in entries:
        href = alert_path(e["warning_id"], e["version"], base=base_url)
        entry = _atom(feed, "entry")
        _atom(entry, "id", href)
        _atom(entry, "title", e.get("headline") or "")
        _atom(entry, "updated", cap_time(e.get("created_at")))
        _atom(_atom(entry, "author"), "name", e.get("sender_name") or author)
        _atom(entry, "summary", e.get("description") or e.get("headline") or "")
        level, event = str(e.get("level")), str(e.get("event"))
        for element, term in (("severity", SEVERITY.get(level, "Unknown")),
                              ("status", e.get("status") or "Actual"),
                              ("msgType", e.get("msg_type") or "Alert"),
                              ("category", CATEGORY.get(event, "Other"))):
            _atom(entry, "category", term=term, scheme=_SCHEME + element)
        _atom(entry, "link", rel="alternate", type=CAP_MIME, href=href)
    return feed


def index_element(entries: Iterable[Mapping[str, Any]], *, base_url: str = "/cap") -> ET.Element:
    """The plain index of the current alerts (no namespace: it is not a CAP element).

    Each ``<entry>`` names the message's CAP ``identifier`` (the same as in its document),
    the ``warning_id`` and ``version``, and links to that version's document.
    """
    root = ET.Element("index")
    for e in entries:
        entry = ET.SubElement(root, "entry")
        for tag, value in (
            ("identifier", cap_identifier(e["warning_id"], e.get("version"))),
            ("warning_id", e["warning_id"]), ("version", int(e.get("version") or 1)),
            ("msgType", e.get("msg_type", "Alert")), ("status", e.get("status", "Actual")),
            ("event", e.get("event", "")),
            ("severity", SEVERITY.get(str(e.get("level")), "Unknown")),
            ("level", e.get("level", "")), ("headline", e.get("headline", "")),
            ("sent", cap_time(e.get("created_at"))),
            ("effective", cap_time(e.get("effective"))),
            ("expires", cap_time(e.get("expires"))),
            ("link", alert_path(e["warning_id"], e.get("version"), base=base_url)),
        ):
            ET.SubElement(entry, tag).text = xml_text(value)
    return root
