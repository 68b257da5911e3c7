"""Every kind of CAP document the console emits is valid against the official OASIS CAP 1.2
schema and reads back the same through an independent CAP parser (capparselib).

Kinds: officer Alert / Update / Cancel, feed warnings (county list and polygon), drawn
polygons (one reaching outside the province), several counties, Chinese text, markup
characters, control characters, exercises.
"""
from __future__ import annotations

import datetime as dt
import json

import pytest
import shapely

from sources.hub import Hub
from sources.warnings.warnings import WarningSource, utcnow

from .cap_references import assert_valid_cap, capparselib_alert, feed_ingest, text
from .warnings_store import SQUARES, make_store

SENDER = "yjgl@sd.console.local"


@pytest.fixture
def src(tmp_path):
    store = make_store(tmp_path / "cap.duckdb")
    yield WarningSource(store=store, hub=Hub(), sender_id=SENDER)
    store.close()


def _ms(t: dt.datetime) -> int:
    return int(t.timestamp() * 1000)


def issue(src, **kw):
    now = utcnow()
    args = dict(event="rainstorm", level="orange", headline="暴雨橙色预警",
                description="未来3小时将出现50毫米以上降水", counties=["370101"],
                effective=now, expires=now + dt.timedelta(hours=3), sender="duty1")
    return src.issue(**{**args, **kw})


def feed_warning(wid="GD/2026 001,a&b", seq=1, **kw) -> dict:
    now = utcnow()
    return {"type": "warning", "seq": seq, "ts": _ms(now), "id": wid, "msg_type": "Alert",
            "event": "gale", "level": "yellow", "headline": "大风黄色预警",
            "area": ["370102", "370104"], "effective": _ms(now),
            "expires": _ms(now + dt.timedelta(hours=2)), "sender_name": "山东省气象台", **kw}


# ---------------------------------------------------------------------- the kinds
def officer_alert(src):
    return issue(src)["warning_id"]


def officer_update(src):
    wid = issue(src)["warning_id"]
    src.update(wid, level="red", headline="暴雨红色预警", sender="duty2")
    return wid


def officer_cancel(src):
    wid = officer_update(src)
    src.cancel(wid, sender="duty3", reason="雨停")
    return wid


def feed_counties(src):
    feed_ingest(src.store, [feed_warning()])
    return "GD/2026 001,a&b"


def feed_polygon(src):
    ring = [[117.2, 36.2], [117.8, 36.2], [117.8, 36.3], [117.2, 36.3], [117.2, 36.2]]
    feed_ingest(src.store, [feed_warning("F-poly", area={"type": "Polygon",
                                                          "coordinates": [ring]})])
    return "F-poly"


def feed_bowtie(src):
    """A self-crossing polygon from a feed: stored as sent, published as valid polygons."""
    bowtie = [[117.1, 36.1], [117.4, 36.4], [117.4, 36.1], [117.1, 36.4], [117.1, 36.1]]
    feed_ingest(src.store, [feed_warning("F-bowtie", area={"type": "Polygon",
                                                            "coordinates": [bowtie]})])
    return "F-bowtie"


def feed_update_cancel(src):
    first = feed_warning("F-uc", seq=1)
    feed_ingest(src.store, [first, {**first, "seq": 2, "msg_type": "Update", "level": "red"},
                            {**first, "seq": 3, "msg_type": "Cancel"}])
    return "F-uc"


def drawn_polygon(src):
    return issue(src, counties=[], polygon=[[117.1, 36.1], [117.4, 36.1], [117.4, 36.4]])[
        "warning_id"]


def drawn_polygon_outside(src):
    ring = [[117.6, 36.6], [118.9, 36.6], [118.9, 37.9], [117.6, 37.9], [117.6, 36.6]]
    return issue(src, counties=[], polygon=ring)["warning_id"]


def multi_county(src):
    return issue(src, counties=["370101", "370102", "370103"])["warning_id"]


def markup_text(src):
    return issue(src, headline='暴雨<红色>预警 & "紧急" \'注意\' ]]> <!-- x -->',
                 description="<script>alert(1)</script> & &amp; 中文 \t换行\n第二行")[
        "warning_id"]


def control_characters(src):
    feed_ingest(src.store, [feed_warning(
        "F-ctl\u0001", headline="大风\u0001黄色\u001f预警\u0000", event="gale\u0007",
        description="说明\u000b\u000c\ufffe\uffff结束 🌀")])
    return "F-ctl\u0001"


def exercise(src):
    feed_ingest(src.store, [feed_warning("F-drill", exercise=True)])
    return "F-drill"


KINDS = [officer_alert, officer_update, officer_cancel, feed_counties, feed_polygon,
         feed_bowtie, feed_update_cancel, drawn_polygon, drawn_polygon_outside, multi_county, markup_text,
         control_characters, exercise]


@pytest.mark.parametrize("kind", KINDS, ids=[k.__name__ for k in KINDS])
def test_every_version_is_valid_cap_and_reads_back(src, kind):
    wid = kind(src)
    versions = src.history(wid)["version"].tolist()
    assert versions, "nothing stored"
    for version in versions:
        body = src.cap_xml(wid, version=version)
        root = assert_valid_cap(body)
        parsed = capparselib_alert(body)
        assert str(parsed["cap_id"]) == text(root, "cap:identifier")
        assert str(parsed["cap_sender"]) == text(root, "cap:sender")
        assert str(parsed["cap_sent"]) == text(root, "cap:sent")
        info = parsed["cap_info"][0]
        assert str(info["cap_severity"]) == text(root, "cap:info/cap:severity")
        area = info["cap_area"][0]
        assert str(area["area_description"]) == text(root, "cap:info/cap:area/cap:areaDesc")
        polygons = root.findall("{*}info/{*}area/{*}polygon")
        assert [str(p) for p in area.get("polygons", [])] == [p.text for p in polygons]
        assert [str(g["value"]) for g in area.get("geocodes", [])] == [
            g.findtext("{*}value") for g in root.findall("{*}info/{*}area/{*}geocode")]
    # the latest version is what /cap/<id>.xml serves
    assert src.cap_xml(wid) == src.cap_xml(wid, version=versions[-1])


def test_identifier_is_one_per_version_and_references_name_each_earlier_message(src):
    wid = officer_cancel(src)
    docs = [assert_valid_cap(src.cap_xml(wid, version=v)) for v in (1, 2, 3)]
    ids = [text(d, "cap:identifier") for d in docs]
    assert len(set(ids)) == 3
    triples = [f"{text(d, 'cap:sender')},{text(d, 'cap:identifier')},{text(d, 'cap:sent')}"
               for d in docs]
    assert {text(d, "cap:sender") for d in docs} == {SENDER}  # never the officer's name
    assert text(docs[0], "cap:references") is None
    assert text(docs[1], "cap:references").split() == triples[:1]
    assert text(docs[2], "cap:references").split() == triples[:2]
    assert [text(d, "cap:msgType") for d in docs] == ["Alert", "Update", "Cancel"]
    parsed = capparselib_alert(src.cap_xml(wid))
    assert str(parsed["cap_references"]).split() == triples[:2]


def test_feed_warning_references_use_the_feeds_own_sender(src):
    wid = feed_update_cancel(src)
    docs = [assert_valid_cap(src.cap_xml(wid, version=v)) for v in (1, 2, 3)]
    senders = {text(d, "cap:sender") for d in docs}
    assert len(senders) == 1 and " " not in senders.pop()
    triples = [",".join(text(d, f"cap:{k}") for k in ("sender", "identifier", "sent"))
               for d in docs]
    assert text(docs[2], "cap:references").split() == triples[:2]
    assert text(docs[0], "cap:info/cap:senderName") == "山东省气象台"


def test_drawn_polygon_reaching_outside_is_clipped_to_the_province(src):
    wid = drawn_polygon_outside(src)
    root = assert_valid_cap(src.cap_xml(wid))
    polygons = [p.text for p in root.findall("{*}info/{*}area/{*}polygon")]
    assert len(polygons) == 1
    points = [tuple(map(float, p.split(","))) for p in polygons[0].split()]
    assert points[0] == points[-1] and len(points) >= 4  # closed ring
    lats, lons = [p[0] for p in points], [p[1] for p in points]
    assert 36.6 - 1e-9 <= min(lats) and max(lats) <= 37.0 + 1e-9  # lat first, clipped
    assert 117.6 - 1e-9 <= min(lons) and max(lons) <= 118.0 + 1e-9
    area = shapely.Polygon([(lon, lat) for lat, lon in points]).area
    assert area == pytest.approx(0.4 * 0.4, rel=1e-3)
    # the stored area is the clipped one too: map, preview, SMS and CAP agree
    stored = shapely.from_geojson(src.latest(wid)["area_geojson"])
    assert stored.area == pytest.approx(0.16, rel=1e-3)
    assert src.sms_counties(wid) == ["370104"]


def test_several_counties_are_one_area_with_each_outline_and_code(src):
    wid = multi_county(src)
    root = assert_valid_cap(src.cap_xml(wid))
    area = root.find("{*}info/{*}area")
    assert area.findtext("{*}areaDesc") == "甲区、乙县、丙县"
    assert [g.findtext("{*}value") for g in area.findall("{*}geocode")] == [
        "370101", "370102", "370103"]
    rings = [[tuple(map(float, pt.split(","))) for pt in p.text.split()]
             for p in area.findall("{*}polygon")]
    assert len(rings) == 3
    for ring, code in zip(rings, ["370101", "370102", "370103"], strict=True):
        x0, y0 = SQUARES[code]
        assert ring[0] == ring[-1]
        assert {(round(lon, 5), round(lat, 5)) for lat, lon in ring} == {
            (x0, y0), (x0 + 0.5, y0), (x0 + 0.5, y0 + 0.5), (x0, y0 + 0.5)}


def test_markup_and_chinese_text_survive_intact(src):
    wid = markup_text(src)
    parsed = capparselib_alert(src.cap_xml(wid))
    info = parsed["cap_info"][0]
    assert info["cap_headline"] == '暴雨<红色>预警 & "紧急" \'注意\' ]]> <!-- x -->'
    assert str(info["cap_description"]) == (
        "<script>alert(1)</script> & &amp; 中文 \t换行\n第二行")


def test_control_characters_are_left_out_of_every_document(src):
    wid = control_characters(src)
    body = src.cap_xml(wid)
    root = assert_valid_cap(body)
    assert text(root, "cap:info/cap:headline") == "大风黄色预警"
    assert text(root, "cap:info/cap:description") == "说明结束 🌀"
    assert text(root, "cap:info/cap:event") == "gale"
    assert "\u0001" not in text(root, "cap:identifier")


def test_exercise_status_comes_from_the_warning(src):
    wid = exercise(src)
    assert text(assert_valid_cap(src.cap_xml(wid)), "cap:status") == "Exercise"
    # an officer's update of an exercise is still an exercise
    src.update(wid, level="orange", sender="duty1")
    assert text(assert_valid_cap(src.cap_xml(wid)), "cap:status") == "Exercise"
    real = officer_alert(src)
    assert text(assert_valid_cap(src.cap_xml(real)), "cap:status") == "Actual"
    # a stored row that says exercise (the drills' flag, in ``extra``) is one too
    src.store.execute("UPDATE warnings SET extra = ? WHERE warning_id = ?",
                      [json.dumps({"exercise": True}), real])
    assert text(assert_valid_cap(src.cap_xml(real)), "cap:status") == "Exercise"
