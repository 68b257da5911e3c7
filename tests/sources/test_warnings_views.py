"""The warnings views without a browser: form messages, double publish, update / cancel,
escaping, the log's CSV, the map's layers and hydrograph (hand-made store)."""
from __future__ import annotations

import datetime as dt

import pytest

from sources.hub import Hub
from sources.levels import COLORS
from sources.warnings.monitoring import MonitoringSource
from sources.warnings.warnings import WarningSource
from tests.conftest import rendered
from views.county_risk import CountyRisk
from views.monitoring_map import MonitoringMap
from views.warning_form import WarningForm
from views.warning_log import ActiveWarnings, WarningLog

from .warnings_store import add_readings, hourly, make_store


@pytest.fixture
def hub():
    return Hub()


@pytest.fixture
def wstore(tmp_path):
    s = make_store(tmp_path / "v.duckdb")
    add_readings(s, [*hourly("rain-R1", [3.0] * 24), *hourly("lvl-H1", [9.0, 11.0], step_s=600)])
    yield s
    s.close()


@pytest.fixture
def form(wstore, hub):
    return WarningForm(source=WarningSource(store=wstore, hub=hub), lang="zh")


def fill(form, **kw):
    form._headline.value = kw.get("headline", "暴雨黄色预警")
    form._counties.value = kw.get("counties", ["370101"])


def test_form_refuses_bad_input_with_a_message(form):
    fill(form, counties=[])
    assert form.publish() is None
    assert form._message.alert_type == "danger" and "未选择预警区域" in form._message.object
    fill(form)
    form._expires.value = form._effective.value - dt.timedelta(hours=1)
    assert form.publish() is None and "失效时间必须晚于生效时间" in form._message.object
    assert form.source.store.scalar("SELECT count(*) FROM warnings") == 0


def test_form_publishes_once_then_updates_and_cancels(form):
    fill(form)
    first = form.publish()
    assert first["created"] and "已发布预警" in form._message.object
    again = form.publish()  # the double click
    assert not again["created"] and again["warning_id"] == first["warning_id"]
    assert "未重复发布" in form._message.object
    assert form.source.store.scalar("SELECT count(*) FROM warnings") == 1

    form._refresh_updatable()
    form._update_of.value = first["warning_id"]
    assert form._headline.value == "暴雨黄色预警" and form._cancel_btn.visible
    form._level.value = "red"
    updated = form.publish()
    assert updated["msg_type"] == "Update" and updated["version"] == 2
    form._update_of.value = first["warning_id"]
    cancelled = form.cancel()
    assert cancelled["msg_type"] == "Cancel" and "已解除预警" in form._message.object
    assert form.source.active().empty


def test_form_preview_and_map_picking(form):
    fill(form, counties=[])
    form._on_tap([1])  # tap the second county: picked
    assert form._counties.value == ["370102"]
    form._on_tap([1])  # tap it again: unpicked
    assert form._counties.value == []
    form._on_draw({"xs": [[117.05, 117.45, 117.45]], "ys": [[36.05, 36.05, 36.45]]})
    assert len(form.polygon) == 3
    pv = form.preview()
    assert pv["totals"]["counties"] == 1 and "甲区" in form._preview.object
    assert "甲区" in rendered(form)["text"]


def test_active_list_escapes_and_log_exports(wstore, hub):
    src = WarningSource(store=wstore, hub=hub)
    now = dt.datetime.now(dt.UTC)
    src.issue(event="gale", level="orange", headline="<script>x</script>", counties=["370104"],
              expires=now + dt.timedelta(hours=1))
    active = ActiveWarnings(source=src, lang="en")
    html = active._pane.object
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "&lt;b&gt;丁县&lt;/b&gt;" in html and "Active warnings (1)" in html
    log = WarningLog(source=src, lang="en")
    log.level = "red"
    assert len(log._table.value) == 0
    log.level = ""
    assert len(log._table.value) == 1
    csv = log._csv().read().decode("utf-8-sig")
    assert csv.splitlines()[0].startswith("warning_id,") and "370104" in csv


def test_monitoring_map_layers_and_hydrograph(wstore, hub):
    mon = MonitoringSource(store=wstore, hub=hub)
    warn = WarningSource(store=wstore, hub=hub, geography=mon.geo)
    view = MonitoringMap(source=mon, warnings=warn, lang="zh")
    assert len(view.sources["rain"].data["lon"]) == 2
    assert view.sources["water"].data["state"] == ["超警戒水位", "无数据"]
    water = list(view.data["water"]["station_id"])
    view._on_tap("indices", [], [water.index("H1")])
    assert view.station == "H1" and view._hydro_source.data["value"] == [9.0, 11.0]
    assert view._spans["warning_level"].location == 10.0
    # explicit ranges (no "could not set initial ranges" in the browser), fitted to the station
    fig, ts = view.hydrograph_figure, view._hydro_source.data["ts"]
    assert fig.y_range.start < 9.0 and fig.y_range.end > 11.0
    assert fig.x_range.start <= min(ts) and fig.x_range.end >= max(ts)
    assert (fig.y_range.reset_start, fig.y_range.reset_end) == (fig.y_range.start, fig.y_range.end)
    view.layers = ["rain"]
    assert not view.renderers["landslide"].visible and view.renderers["rain"].visible
    view.window = "1h"
    assert view.sources["rain"].data["rain_mm"][0] == pytest.approx(3.0)
    warn.issue(event="gale", level="red", headline="x", counties=["370101"],
               expires=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
    view.refresh_warnings()
    assert view.sources["warnings"].data["color"] == [COLORS["red"]]
    risk = CountyRisk(source=mon, lang="en")
    risk.hazard = "flood"
    assert COLORS["orange"] in risk._counties.data["color"]  # the river above its warning level
    assert rendered(view)["figures"] >= 2  # the map and the hydrograph
    assert rendered(risk)["rows"] >= len(mon.geo.codes)  # every county coloured


def test_form_names_the_field_holding_a_control_character(form):
    fill(form, headline="暴雨\u0001黄色预警")
    assert form.publish() is None
    assert form._message.alert_type == "danger"
    assert "标题" in form._message.object and "U+0001" in form._message.object
    assert form.source.store.scalar("SELECT count(*) FROM warnings") == 0


def test_active_list_links_encode_the_warning_id(wstore, hub):
    from .cap_references import feed_ingest

    now = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    feed_ingest(wstore, [{"type": "warning", "seq": 1, "ts": now, "id": "GD/2026 #1",
                          "msg_type": "Alert", "event": "gale", "level": "blue",
                          "headline": "大风蓝色预警", "area": ["370101"], "effective": now,
                          "expires": now + 3_600_000}])
    view = ActiveWarnings(source=WarningSource(store=wstore, hub=hub), lang="zh")
    html_text = view._pane.object
    assert 'href="./cap/GD%2F2026%20%231.xml"' in html_text
    assert 'href="./cap/GD%2F2026%20%231/counties.txt"' in html_text
