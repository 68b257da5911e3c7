"""The list of current alerts as CAP consumers read it: an Atom feed whose entries link to
their CAP documents (application/cap+xml), read with feedparser and validated against an
Atom 1.0 schema; the old index, out of the CAP namespace, naming the same identifiers."""
from __future__ import annotations

import calendar
import datetime as dt
from urllib.parse import unquote, urlsplit

import feedparser
import pytest

from sources.hub import Hub
from sources.warnings.warnings import WarningSource, utcnow

from .cap_references import (
    CAP_NS,
    assert_valid_atom,
    assert_valid_cap,
    feed_ingest,
    parse_strict,
    text,
)
from .warnings_store import make_store

BASE = "http://console.test:5006/cap"
ODD_ID = "GD/2026 001,a&b?#%"


@pytest.fixture
def src(tmp_path):
    store = make_store(tmp_path / "feed.duckdb")
    yield WarningSource(store=store, hub=Hub(), sender_id="yjgl@sd.console.local")
    store.close()


def _ms(t: dt.datetime) -> int:
    return int(t.timestamp() * 1000)


def issue(src, **kw):
    now = utcnow()
    args = dict(event="rainstorm", level="orange", headline="暴雨橙色预警", counties=["370101"],
                effective=now, expires=now + dt.timedelta(hours=3), sender="duty1")
    return src.issue(**{**args, **kw})


def feed_message(wid, seq, **kw):
    now = utcnow()
    return {"type": "warning", "seq": seq, "ts": _ms(now), "id": wid, "msg_type": "Alert",
            "event": "gale", "level": "yellow", "headline": "大风黄色预警", "area": ["370104"],
            "effective": _ms(now), "expires": _ms(now + dt.timedelta(hours=2)), **kw}


def current_alerts(src):
    """An updated officer warning, a cancelled one, a feed warning with an id that needs
    encoding, an exercise and a feed headline with control characters."""
    a = issue(src)
    src.update(a["warning_id"], level="red", headline="暴雨红色预警")
    gone = issue(src, level="blue")
    src.cancel(gone["warning_id"])
    feed_ingest(src.store, [feed_message(ODD_ID, 1),
                            feed_message("F-drill", 2, exercise=True),
                            feed_message("F-ctl", 3, headline="大风\u0001黄色\u0008预警")])
    return {a["warning_id"]: 2, ODD_ID: 1, "F-drill": 1, "F-ctl": 1}


def document_of(href: str) -> tuple[str, int]:
    """(warning id, version) of a link ``.../cap/<encoded id>/v<N>.xml``."""
    path = urlsplit(href).path
    assert path.startswith("/cap/") and path.endswith(".xml")
    quoted, version = path[len("/cap/"):-len(".xml")].rsplit("/v", 1)
    assert "/" not in quoted  # the id is one path segment, whatever it holds
    return unquote(quoted), int(version)


def test_atom_feed_of_current_alerts_links_each_cap_document(src):
    expected = current_alerts(src)
    body = src.cap_atom(base_url=BASE)
    assert_valid_atom(body)
    feed = feedparser.parse(body)
    assert not feed.bozo, feed.bozo_exception
    assert feed.version == "atom10"
    assert feed.feed.id and feed.feed.updated_parsed and feed.feed.title
    assert [lk.href for lk in feed.feed.links if lk.rel == "self"] == [f"{BASE}/feed.atom"]
    assert len({e.id for e in feed.entries}) == len(feed.entries) == len(expected)
    seen = {}
    for entry in feed.entries:
        caps = [lk for lk in entry.links if lk.type == "application/cap+xml"]
        assert len(caps) == 1 and caps[0].rel == "alternate"
        href = caps[0].href
        assert href.startswith(BASE + "/")
        wid, version = document_of(href)
        seen[wid] = version
        doc = assert_valid_cap(src.cap_xml(wid, version=version))
        # the entry describes that very message
        assert entry.title == text(doc, "cap:info/cap:headline")
        assert entry.summary == text(doc, "cap:info/cap:description")
        sent = dt.datetime.fromisoformat(text(doc, "cap:sent"))
        assert calendar.timegm(entry.updated_parsed) == int(sent.timestamp())
        assert entry.id == href  # one entry per message version, named by its document
        terms = {t.term for t in entry.tags}
        assert text(doc, "cap:info/cap:severity") in terms
        assert text(doc, "cap:status") in terms
    assert seen == expected
    assert {e.link for e in feed.entries} >= {f"{BASE}/GD%2F2026%20001%2Ca%26b%3F%23%25/v1.xml"}
    drill = next(e for e in feed.entries if document_of(e.link)[0] == "F-drill")
    assert "Exercise" in {t.term for t in drill.tags}
    ctl = next(e for e in feed.entries if document_of(e.link)[0] == "F-ctl")
    assert ctl.title == "大风黄色预警"


def test_atom_feed_without_alerts_is_still_a_valid_feed(src):
    body = src.cap_atom(base_url=BASE)
    assert_valid_atom(body)
    feed = feedparser.parse(body)
    assert not feed.bozo and feed.version == "atom10" and feed.entries == []
    assert feed.feed.updated_parsed and feed.feed.author


def test_index_names_the_same_identifiers_outside_the_cap_namespace(src):
    expected = current_alerts(src)
    root = parse_strict(src.cap_index_xml(base_url=BASE))
    assert root.tag == "index" and CAP_NS not in (root.nsmap or {}).values()
    entries = root.findall("entry")
    assert len(entries) == len(expected)
    for entry in entries:
        wid, version = document_of(entry.findtext("link"))
        assert expected[wid] == version
        doc = assert_valid_cap(src.cap_xml(wid, version=version))
        assert entry.findtext("identifier") == text(doc, "cap:identifier")
        assert entry.findtext("warning_id") == wid
        assert int(entry.findtext("version")) == version
