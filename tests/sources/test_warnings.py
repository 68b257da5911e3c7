"""WarningSource: issue / update / cancel / expire, history, bad input, idempotency, preview."""
from __future__ import annotations

import datetime as dt
import threading

import pytest

from sources.hub import Hub
from sources.warnings.expiry import WarningExpiry
from sources.warnings.warnings import WarningInputError, WarningSource, utcnow
from tests.conftest import wait_until

from .warnings_store import make_store


@pytest.fixture
def wstore(tmp_path):
    s = make_store(tmp_path / "w.duckdb")
    yield s
    s.close()


@pytest.fixture
def src(wstore):
    return WarningSource(store=wstore, hub=Hub())


def draft(**kw):
    now = utcnow()
    base = dict(event="rainstorm", level="orange", headline="暴雨橙色预警",
                description="未来3小时将出现50毫米以上降水", counties=["370101", "370102"],
                effective=now, expires=now + dt.timedelta(hours=6), sender="duty1")
    return {**base, **kw}


def test_issue_update_cancel_keeps_history(src):
    sub = src.hub.subscribe(["warning"])
    w = src.issue(**draft(), token="t1")
    assert w["created"] and w["version"] == 1 and w["msg_type"] == "Alert"
    assert w["warning_id"].startswith("W")
    active = src.active()
    assert list(active["warning_id"]) == [w["warning_id"]]
    assert active.iloc[0]["status"] == "active" and len(active.iloc[0]["xs"]) == 2

    u = src.update(w["warning_id"], level="red", headline="暴雨红色预警", sender="duty2")
    assert u["version"] == 2 and u["msg_type"] == "Update"
    assert src.active().iloc[0]["level"] == "red"

    c = src.cancel(w["warning_id"], sender="duty2", reason="雨停")
    assert c["version"] == 3 and c["msg_type"] == "Cancel"
    assert src.active().empty
    hist = src.history(w["warning_id"])
    assert list(hist["msg_type"]) == ["Alert", "Update", "Cancel"]
    assert list(hist["sender"]) == ["duty1", "duty2", "duty2"]
    assert list(hist["level"]) == ["orange", "red", "red"]
    messages, _ = sub.drain()
    assert [m.payload[0]["msg_type"] for m in messages] == ["Alert", "Update", "Cancel"]
    assert messages[-1].payload[0]["status"] == "cancelled"
    with pytest.raises(WarningInputError) as err:
        src.update(w["warning_id"], level="blue")
    assert err.value.key == "warnings.err.closed"


@pytest.mark.parametrize("change, key", [
    (dict(counties=[]), "warnings.err.no_area"),
    (dict(counties=["379999"]), "warnings.err.unknown_county"),
    (dict(expires=utcnow() - dt.timedelta(hours=1)), "warnings.err.expiry"),
    (dict(level="purple"), "warnings.err.level"),
    (dict(headline="  "), "warnings.err.headline"),
    (dict(counties=[], polygon=[[120, 40], [121, 40], [121, 41]]), "warnings.err.outside"),
])
def test_bad_input_is_refused_and_nothing_is_published(src, change, key):
    sub = src.hub.subscribe(["warning"])
    with pytest.raises(WarningInputError) as err:
        src.issue(**draft(**change))
    assert err.value.key == key
    assert src.store.scalar("SELECT count(*) FROM warnings") == 0
    assert sub.drain() == ([], False)


def test_double_publish_with_one_token_publishes_once(src):
    sub = src.hub.subscribe(["warning"])
    results = []
    d = draft()
    threads = [threading.Thread(target=lambda: results.append(src.issue(**d, token="draft-9")))
               for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert src.store.scalar("SELECT count(*) FROM warnings") == 1
    assert sorted(r["created"] for r in results) == [False, False, False, True]
    assert len({r["warning_id"] for r in results}) == 1
    assert len(sub.drain()[0]) == 1


def test_drawn_polygon_area_counties_and_preview(src):
    # a box over the south-west county and a strip of the south-east one
    box = {"type": "Polygon", "coordinates": [[[117.05, 36.05], [117.6, 36.05],
                                               [117.6, 36.4], [117.05, 36.4], [117.05, 36.05]]]}
    w = src.issue(**draft(counties=[], polygon=box))
    assert list(w["area_codes"]) == ["370101", "370102"]
    assert src.sms_counties(w["warning_id"]) == ["370101", "370102"]
    rings = src.rings(w)
    assert len(rings) == 1 and rings[0][0] == (117.05, 36.05)
    pv = src.preview(polygon=box)
    assert pv["totals"]["counties"] == 2
    assert list(pv["enterprises"]["enterprise_id"]) == [1]  # 117.6,36.1 is outside the box
    assert list(pv["landslide_points"]["point_id"]) == [1]
    assert list(pv["shelters"]["shelter_id"]) == [1]
    pv = src.preview(counties=["370104"])
    assert pv["totals"] == {"counties": 1, "population": 100_003, "enterprises": 1,
                            "major_hazard": 0, "landslide_points": 1, "threatened_people": 200,
                            "shelters": 1, "capacity": 4000}


def test_expiry_leaves_active_list_and_is_published(src):
    expiry = WarningExpiry(source=src).start()
    try:
        sub = src.hub.subscribe(["warning"])
        now = utcnow()
        w = src.issue(**draft(effective=now, expires=now + dt.timedelta(seconds=1.0)))
        assert not src.active().empty
        wait_until(lambda: src.active().empty, timeout=3)
        msgs = wait_until(lambda: [m for m in sub.drain()[0]
                                   if m.payload[0].get("status") == "expired"], timeout=3)
        assert msgs[0].payload[0]["warning_id"] == w["warning_id"]
        assert src.current().iloc[0]["status"] == "expired"
    finally:
        expiry.stop()


def test_pending_then_active(src):
    now = utcnow()
    src.issue(**draft(effective=now + dt.timedelta(hours=1), expires=now + dt.timedelta(hours=2)))
    assert src.active().iloc[0]["status"] == "pending"
    assert src.active(include_pending=False).empty
    nxt = src.next_transition()  # it takes effect in an hour: the expiry wakes up then
    assert abs((nxt - (now + dt.timedelta(hours=1))).total_seconds()) < 1


def test_feed_warnings_show_the_same_way(src):
    import pandas as pd

    now = utcnow()
    row = pd.DataFrame([{
        "warning_id": "feed-1", "version": 1, "msg_type": "Alert", "event": "gale",
        "level": "yellow", "headline": "大风黄色预警", "description": None,
        "area_codes": ["370104"], "area_geojson": None, "effective": now,
        "expires": now + dt.timedelta(hours=1), "source": "feed", "sender": "ws://gw/feed",
        "created_at": now, "feed": "ws://gw/feed", "seq": 5, "extra": None}])
    src.store.insert("warnings", row)
    active = src.active()
    assert list(active["warning_id"]) == ["feed-1"] and active.iloc[0]["source"] == "feed"
    log = src.log(source="feed")
    assert list(log["warning_id"]) == ["feed-1"]


def test_log_filters_and_csv(src):
    src.issue(**draft())
    src.issue(**draft(event="gale", level="blue", headline="大风蓝色预警"))
    assert len(src.log()) == 2
    assert list(src.log(event="gale")["level"]) == ["blue"]
    assert len(src.log(text="暴雨")) == 1
    assert src.log(level="red").empty
    text = src.log_csv(event="rainstorm")
    lines = text.strip().splitlines()
    assert lines[0].startswith("warning_id,version,msg_type")
    assert len(lines) == 2 and "370101;370102" in lines[1] and "+08:00" in lines[1]


def test_latest_versions_are_read_once_per_change(wstore):
    """Every page shares the console's one source: the latest versions are read once, and
    again only after a warning is published on the hub."""
    hub = Hub()
    src = WarningSource(store=wstore, hub=hub)
    assert src.active().empty and src.current().empty
    assert src.reads["_latest"] == 1
    w = src.issue(**draft())
    assert list(src.active()["warning_id"]) == [w["warning_id"]]  # stale after the publish
    src.active()
    assert src.reads["_latest"] == 2
    other = WarningSource(store=wstore, hub=hub)  # a second source sees it as well
    assert list(other.active()["warning_id"]) == [w["warning_id"]]
