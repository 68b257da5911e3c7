"""CAP 1.2 output parses with xml.etree and carries every required field."""
from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET

import pytest

from sources.hub import Hub
from sources.warnings.cap import CAP_NS, SEVERITY, cap_polygon, cap_time
from sources.warnings.warnings import WarningSource, utcnow

from .warnings_store import make_store

NS = {"cap": CAP_NS}


@pytest.fixture
def src(tmp_path):
    store = make_store(tmp_path / "cap.duckdb")
    yield WarningSource(store=store, hub=Hub())
    store.close()


def issue(src, level="orange", **kw):
    now = utcnow()
    args = dict(event="rainstorm", level=level, headline="暴雨预警 <测试> & 1",
                description="描述", counties=["370101", "370104"], effective=now,
                expires=now + dt.timedelta(hours=3), sender="duty1")
    return src.issue(**{**args, **kw})


def test_alert_carries_every_field(src):
    w = issue(src)
    root = ET.fromstring(src.cap_xml(w["warning_id"]))
    assert root.tag == f"{{{CAP_NS}}}alert"
    get = lambda path: root.findtext(path, namespaces=NS)  # noqa: E731
    assert get("cap:identifier") == f"{w['warning_id']}.v1"  # one identifier per version
    assert get("cap:sender") == "yjgl@console.local"
    assert get("cap:status") == "Actual" and get("cap:msgType") == "Alert"
    assert get("cap:scope") == "Public"
    assert get("cap:sent").endswith("+08:00")
    info = root.find("cap:info", NS)
    fields = {c.tag.split("}")[1]: c.text for c in info}
    for name in ("category", "event", "urgency", "severity", "certainty", "effective",
                 "expires", "headline", "description"):
        assert fields.get(name), name
    assert fields["category"] == "Met" and fields["severity"] == "Severe"
    assert fields["urgency"] == "Immediate"
    assert fields["headline"] == "暴雨预警 <测试> & 1"  # escaped in XML, intact when parsed
    sent = dt.datetime.fromisoformat(fields["expires"])
    assert abs((sent - w["expires"]).total_seconds()) < 1
    area = info.find("cap:area", NS)
    assert area.findtext("cap:areaDesc", namespaces=NS) == "甲区、<b>丁县</b>"
    polygons = [p.text for p in area.findall("cap:polygon", NS)]
    assert len(polygons) == 2
    pts = polygons[0].split()
    assert pts[0] == pts[-1] and len(pts) >= 4
    lat, lon = map(float, pts[0].split(","))
    assert 36 <= lat <= 37 and 117 <= lon <= 118  # lat first
    codes = [g.findtext("cap:value", namespaces=NS) for g in area.findall("cap:geocode", NS)]
    assert codes == ["370101", "370104"]


@pytest.mark.parametrize("level", list(SEVERITY))
def test_severity_mapping(src, level):
    w = issue(src, level=level)
    root = ET.fromstring(src.cap_xml(w["warning_id"]))
    expected = {"blue": "Minor", "yellow": "Moderate", "orange": "Severe", "red": "Extreme"}
    assert root.findtext("cap:info/cap:severity", namespaces=NS) == expected[level]


def test_update_and_cancel_reference_earlier_versions(src):
    w = issue(src)
    src.update(w["warning_id"], level="red")
    root = ET.fromstring(src.cap_xml(w["warning_id"]))
    assert root.findtext("cap:msgType", namespaces=NS) == "Update"
    assert root.findtext("cap:identifier", namespaces=NS) == f"{w['warning_id']}.v2"
    assert f"{w['warning_id']}.v1" in root.findtext("cap:references", namespaces=NS)
    src.cancel(w["warning_id"])
    root = ET.fromstring(src.cap_xml(w["warning_id"]))
    assert root.findtext("cap:msgType", namespaces=NS) == "Cancel"
    assert len(root.findtext("cap:references", namespaces=NS).split()) == 2


def test_drawn_polygon_goes_out_as_is(src):
    ring = [[117.1, 36.1], [117.4, 36.1], [117.4, 36.4], [117.1, 36.1]]
    w = issue(src, counties=[], polygon=ring)
    root = ET.fromstring(src.cap_xml(w["warning_id"]))
    polys = root.findall("cap:info/cap:area/cap:polygon", NS)
    assert [p.text for p in polys] == [cap_polygon(ring)]
    assert polys[0].text.startswith("36.10000,117.10000 ")


def test_index_lists_active_only(src):
    a = issue(src)
    b = issue(src, level="blue")
    src.cancel(b["warning_id"])
    root = ET.fromstring(src.cap_index_xml())
    assert root.tag == "index"  # not a CAP element: no CAP namespace
    ids = [e.findtext("identifier") for e in root.findall("entry")]
    assert ids == [f"{a['warning_id']}.v1"]
    assert root.find("entry/link").text == f"/cap/{a['warning_id']}/v1.xml"


def test_unknown_warning_raises(src):
    with pytest.raises(KeyError):
        src.cap_xml("nope")


def test_time_format():
    t = dt.datetime(2026, 11, 28, 0, 0, 0, 123456, tzinfo=dt.UTC)
    assert cap_time(t) == "2026-11-28T08:00:00+08:00"
