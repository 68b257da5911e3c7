"""The CAP endpoints of a served console (serve.py in a subprocess, tiny store), read the way
CAP consumers read them: the Atom feed with feedparser, every linked alert validated against
the official CAP 1.2 schema and parsed by capparselib, ids that need URL encoding."""
from __future__ import annotations

import datetime as dt
import urllib.request
from urllib.parse import quote, urlsplit

import feedparser
import pytest

from sources.store.store import Store
from sources.warnings.warnings import WarningSource, utcnow

from .cap_references import (
    assert_valid_atom,
    assert_valid_cap,
    capparselib_alert,
    feed_ingest,
    parse_strict,
    text,
)

ODD_ID = "GD/2026 001,a&b?#%"


@pytest.mark.slow
def test_cap_endpoints(serve, tiny_db):
    store = Store(tiny_db)
    src = WarningSource(store=store)
    codes = src.geo.codes[:2]
    now = utcnow()
    w = src.issue(event="rainstorm", level="red", headline="暴雨红色预警", counties=codes,
                  description="测试", effective=now, expires=now + dt.timedelta(hours=2),
                  sender="duty1")
    src.update(w["warning_id"], level="orange", headline="暴雨橙色预警", sender="duty2")
    gone = src.issue(event="gale", level="blue", headline="大风蓝色预警", counties=codes[:1],
                     effective=now, expires=now + dt.timedelta(hours=2))
    src.cancel(gone["warning_id"])
    ms = int(now.timestamp() * 1000)
    feed_ingest(store, [{
        "type": "warning", "seq": 1, "ts": ms, "id": ODD_ID, "msg_type": "Alert",
        "event": "gale", "level": "yellow", "headline": "大风\u0001黄色预警", "area": codes[1:2],
        "effective": ms, "expires": ms + 3_600_000, "exercise": True}])
    store.close()

    console = serve("--no-demo-feed")
    status, body, headers = console.get("/cap/feed.atom")
    assert status == 200 and headers["Content-Type"].startswith("application/atom+xml")
    assert_valid_atom(body)
    feed = feedparser.parse(body)
    assert not feed.bozo, feed.bozo_exception
    assert [lk.href for lk in feed.feed.links if lk.rel == "self"] == [
        f"{console.url}/cap/feed.atom"]
    assert len(feed.entries) == 2
    identifiers = {}
    for entry in feed.entries:
        href = next(lk.href for lk in entry.links if lk.type == "application/cap+xml")
        assert href.startswith(console.url + "/cap/")
        with urllib.request.urlopen(href, timeout=30) as r:  # the link as a consumer follows it
            assert r.status == 200
            assert r.headers["Content-Type"].startswith("application/cap+xml")
            doc = r.read()
        root = assert_valid_cap(doc)
        parsed = capparselib_alert(doc)
        assert str(parsed["cap_id"]) == text(root, "cap:identifier")
        identifiers[text(root, "cap:identifier")] = (entry.title, text(root, "cap:status"))
        assert entry.title == text(root, "cap:info/cap:headline")
    assert sorted(identifiers.values()) == [("大风黄色预警", "Exercise"), ("暴雨橙色预警", "Actual")]

    # the old index: out of the CAP namespace, same identifiers, encoded links
    status, body, headers = console.get("/cap/index.xml")
    assert status == 200 and "xml" in headers["Content-Type"]
    index = parse_strict(body)
    assert index.tag == "index"
    assert {e.findtext("identifier") for e in index.findall("entry")} == set(identifiers)
    for link in (e.findtext("link") for e in index.findall("entry")):
        status, _, _ = console.get(urlsplit(link).path)
        assert status == 200, link

    # latest version of the official warning; the encoded odd id; SMS counties
    status, body, headers = console.get(f"/cap/{w['warning_id']}.xml")
    assert status == 200 and headers["Content-Type"].startswith("application/cap+xml")
    alert = assert_valid_cap(body)
    assert text(alert, "cap:msgType") == "Update"
    assert text(alert, "cap:info/cap:severity") == "Severe"
    assert [g.findtext("{*}value") for g in alert.findall("{*}info/{*}area/{*}geocode")] == sorted(codes)
    polygon = text(alert, "cap:info/cap:area/cap:polygon")
    first, *_, last = polygon.split()
    assert first == last and 34 < float(first.split(",")[0]) < 39  # lat first, Shandong

    quoted = quote(ODD_ID, safe="")
    status, body, _ = console.get(f"/cap/{quoted}.xml")
    assert status == 200 and text(assert_valid_cap(body), "cap:status") == "Exercise"
    status, body, _ = console.get(f"/cap/{quoted}/v1.xml")
    assert status == 200
    status, body, _ = console.get(f"/cap/{quoted}/counties.txt")
    assert status == 200 and body.decode().split() == []  # an exercise never reaches SMS
    status, body, _ = console.get(f"/cap/{w['warning_id']}/counties.txt")
    assert status == 200 and body.decode().split() == sorted(codes)

    status, body, _ = console.get("/cap/no-such-warning.xml")
    assert status == 404 and b"no-such-warning" in body
    status, body, _ = console.get("/cap/no-such-warning/counties.txt")
    assert status == 404
    status, body, _ = console.get(f"/cap/{w['warning_id']}/v9.xml")
    assert status == 404
