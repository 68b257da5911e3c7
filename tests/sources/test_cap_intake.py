"""What may become a published warning: feed warnings held to the form's area checks
(unknown counties and areas outside the province quarantined with a reason), control
characters refused at the form, and no unknown county ever handed to the SMS list."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from sources.hub import Hub
from sources.warnings.warnings import WarningInputError, WarningSource, utcnow
from views.i18n import LABELS

from .cap_references import assert_valid_cap, feed_ingest
from .warnings_store import make_store


@pytest.fixture
def src(tmp_path):
    store = make_store(tmp_path / "intake.duckdb")
    yield WarningSource(store=store, hub=Hub())
    store.close()


def _ms(t: dt.datetime) -> int:
    return int(t.timestamp() * 1000)


def message(wid, seq, **kw):
    now = utcnow()
    return {"type": "warning", "seq": seq, "ts": _ms(now), "id": wid, "msg_type": "Alert",
            "event": "gale", "level": "yellow", "headline": "大风黄色预警", "area": ["370104"],
            "effective": _ms(now), "expires": _ms(now + dt.timedelta(hours=2)), **kw}


def quarantined(store) -> list[tuple[str, dict]]:
    rows = store.df("SELECT reason, raw FROM quarantine ORDER BY reason")
    return [(r.reason, json.loads(r.raw)) for r in rows.itertuples()]


def test_feed_warnings_get_the_forms_area_checks(src):
    far = [[120.0, 40.0], [121.0, 40.0], [121.0, 41.0], [120.0, 41.0], [120.0, 40.0]]
    ingest = feed_ingest(src.store, [
        message("ok", 1, area=["370101", "370102"]),
        message("bad-code", 2, area=["370101", "999999"]),
        message("far-away", 3, area={"type": "Polygon", "coordinates": [far]}),
        message("ok-poly", 4, area={"type": "Polygon", "coordinates": [
            [[117.1, 36.1], [117.3, 36.1], [117.3, 36.3], [117.1, 36.1]]]}),
    ])
    stored = src.store.df("SELECT DISTINCT warning_id FROM warnings ORDER BY 1")
    assert stored["warning_id"].tolist() == ["ok", "ok-poly"]
    q = quarantined(src.store)
    assert [reason for reason, _ in q] == ["outside_province: area", "unknown_county: 999999"]
    assert [raw["id"] for _, raw in q] == ["far-away", "bad-code"]
    assert q[1][1]["area"] == ["370101", "999999"] and q[1][1]["type"] == "warning"
    assert ingest.writer.warning_check.rejected == {"unknown_county": 1, "outside_province": 1}
    assert src.sms_counties("ok") == ["370101", "370102"]
    assert src.sms_counties("ok-poly") == ["370101"]
    with pytest.raises(KeyError):
        src.sms_counties("bad-code")


def test_an_unknown_county_stored_earlier_never_reaches_the_sms_list_or_the_cap(src):
    """Rows stored before the feed check existed (or by any other path)."""
    w = src.issue(event="rainstorm", level="red", headline="暴雨红色预警", counties=["370101"],
                  effective=utcnow(), expires=utcnow() + dt.timedelta(hours=1))
    src.store.execute("UPDATE warnings SET area_codes = ['370101', '999999'] "
                      "WHERE warning_id = ?", [w["warning_id"]])
    assert src.sms_counties(w["warning_id"]) == ["370101"]
    root = assert_valid_cap(src.cap_xml(w["warning_id"]))
    assert [g.findtext("{*}value") for g in root.findall("{*}info/{*}area/{*}geocode")] == [
        "370101"]


@pytest.mark.parametrize("field", ["headline", "description"])
@pytest.mark.parametrize("char", ["\u0001", "\u0000", "\u001b", "\ufffe", "\ud800"])
def test_the_form_refuses_control_characters(src, field, char):
    now = utcnow()
    draft = dict(event="rainstorm", level="red", headline="暴雨红色预警", description="说明",
                 counties=["370101"], effective=now, expires=now + dt.timedelta(hours=1))
    draft[field] = f"暴雨{char}预警"
    with pytest.raises(WarningInputError) as err:
        src.issue(**draft)
    assert err.value.key == "warnings.err.control_char"
    assert err.value.fmt["field"] == field and err.value.fmt["char"] == f"U+{ord(char):04X}"
    assert "warnings.err.control_char" in LABELS
    assert src.store.scalar("SELECT count(*) FROM warnings") == 0
    ok = src.issue(**{**draft, field: "暴雨\t红色\n预警"})  # tab and new line are text
    with pytest.raises(WarningInputError) as err:
        src.update(ok["warning_id"], **{field: f"更新{char}"})
    assert err.value.key == "warnings.err.control_char"
