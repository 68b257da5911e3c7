"""The CAP endpoints of a served console (serve.py in a subprocess, tiny store)."""
from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET

import pytest

from sources.store.store import Store
from sources.warnings.cap import CAP_NS
from sources.warnings.warnings import WarningSource, utcnow

NS = {"cap": CAP_NS}


@pytest.mark.slow
def test_cap_endpoints(serve, tiny_db):
    store = Store(tiny_db)
    src = WarningSource(store=store)
    codes = src.geo.codes[:2]
    now = utcnow()
    w = src.issue(event="rainstorm", level="red", headline="暴雨红色预警", counties=codes,
                  description="测试", effective=now, expires=now + dt.timedelta(hours=2),
                  sender="duty1")
    gone = src.issue(event="gale", level="blue", headline="大风蓝色预警", counties=codes[:1],
                     effective=now, expires=now + dt.timedelta(hours=2))
    src.cancel(gone["warning_id"])
    store.close()

    console = serve("--no-demo-feed")
    status, body, headers = console.get("/cap/index.xml")
    assert status == 200 and "xml" in headers["Content-Type"]
    index = ET.fromstring(body)
    ids = [e.findtext("cap:identifier", namespaces=NS) for e in index.findall("cap:entry", NS)]
    assert ids == [w["warning_id"]]

    status, body, headers = console.get(f"/cap/{w['warning_id']}.xml")
    assert status == 200 and headers["Content-Type"].startswith("application/cap+xml")
    alert = ET.fromstring(body)
    assert alert.tag == f"{{{CAP_NS}}}alert"
    assert alert.findtext("cap:identifier", namespaces=NS) == w["warning_id"]
    assert alert.findtext("cap:info/cap:severity", namespaces=NS) == "Extreme"
    geocodes = [g.findtext("cap:value", namespaces=NS)
                for g in alert.findall("cap:info/cap:area/cap:geocode", NS)]
    assert geocodes == sorted(codes)
    polygon = alert.findtext("cap:info/cap:area/cap:polygon", namespaces=NS)
    first, *_, last = polygon.split()
    assert first == last and 34 < float(first.split(",")[0]) < 39  # lat first, Shandong

    status, body, _ = console.get(f"/cap/{w['warning_id']}/counties.txt")
    assert status == 200 and body.decode().split() == sorted(codes)

    status, body, _ = console.get("/cap/no-such-warning.xml")
    assert status == 404 and b"no-such-warning" in body
    status, body, _ = console.get("/cap/no-such-warning/counties.txt")
    assert status == 404
