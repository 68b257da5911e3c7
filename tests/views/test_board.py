"""The board's views without a browser: they render the situation and update in place."""
from __future__ import annotations

import html

import pandas as pd
import panel as pn
import pytest

from dashboards.board import BoardDashboard
from sources.hub import Hub
from sources.situation.source import SituationSource
from sources.store.store import Store
from tests.conftest import rendered
from tests.sources.test_situation import NOW, fill, ts
from views.board import SituationBoard
from views.board_map import BoardMap
from views.clock import ClockPane, WallRotation
from views.i18n import t
from views.incident_panel import IncidentPanel
from views.kpi_strip import KpiStrip
from views.ticker import Ticker


@pytest.fixture
def source(tmp_path):
    store = Store(tmp_path / "board.duckdb")
    fill(store)
    src = SituationSource(store=store, hub=Hub())
    yield src
    store.close()


def test_kpi_strip_numbers_and_changes(source):
    strip = KpiStrip(source=source, lang="en")
    assert "Loading" in strip._pane.object
    strip.kpis = source.kpis(NOW, statuses=[{"connected": True, "rate_per_s": 250.0}])
    html = strip._pane.object
    assert 'data-kpi="warnings"' in html and 'data-kpi="feeds"' in html
    assert "vs 24 h ago" in html and "250" in html
    assert '<span class="up">▲ 1</span>' in html  # one more active incident than yesterday...
    before = strip._pane.object
    strip.kpis = dict(strip.kpis)  # same numbers: nothing re-sent
    assert strip._pane.object is before
    strip.kpis = {**strip.kpis, "feeds": {"value": 0, "before": None, "total": 1}}
    assert 'class="kpi  bad"' in strip._pane.object or "kpi bad" in strip._pane.object
    # an escalated red alarm (unacknowledged past the limit) is flagged on the wall
    assert '<span class="escalated">⚠ 1 escalated</span>' in strip._pane.object
    strip.kpis = {**strip.kpis, "alarms.escalated": {"value": 0, "before": 1}}
    assert 'class="escalated"' not in strip._pane.object


def test_ticker_escapes_and_flashes_new_events(source):
    ticker = Ticker(source=source, lang="zh")
    events = source.ticker()
    ticker.events = events
    html = ticker._pane.object
    assert "&lt;b&gt;滑坡&lt;/b&gt;" in html and "<b>滑坡" not in html
    assert 'class="new"' not in html  # the first picture does not flash
    assert html.index("报警") < html.index("地震")  # the alarm (1 min ago) before the quake
    newer = pd.concat([pd.DataFrame([{"ts_ms": NOW, "kind": "quake", "level": "red",
                                      "title": "甲县", "detail": "6.1", "key": "qNEW"}]), events])
    ticker.events = newer
    assert ticker._pane.object.count('class="new"') == 1
    assert "M6.1" in ticker._pane.object
    assert len(ticker._seen) <= ticker.max_rows


def test_board_map_layers_update_in_place(source):
    m = BoardMap(source=source, lang="en", kiosk=True)
    sit = source.situation()
    m.update(sit)
    assert len(m.alarm_source.data["x"]) == 2
    assert len(m.pulse_source.data["x"]) == 1  # the red unacknowledged alarm pulses
    assert len(m.incident_source.data["x"]) == 2
    # a warning over counties fills them (the orange one over 甲县); one with a polygon of
    # its own is drawn as its own patch (the red landslide)
    assert [m.outline_source.data["code"][i] for i in m.warning_filters["orange"].indices] \
        == ["370101"]
    assert not m.warning_filters["yellow"].indices and not m.warning_filters["red"].indices
    assert len(m.warning_source.data["xs"]) == 1
    assert m.warning_source.data["color"][-1] == "#ff3b3b"
    data = m.alarm_source.data
    m.update(sit)
    assert m.alarm_source.data is data  # unchanged: not re-sent
    alpha = m.pulse.glyph.fill_alpha
    m.pulse_tick()
    assert m.pulse.glyph.fill_alpha != alpha
    m.layers = ["alarms"]
    assert m._renderers["alarms"][0].visible and not m._renderers["quakes"][0].visible
    assert "off" in m._legend.object
    assert m._switch is None  # kiosk: no controls
    desk = BoardMap(source=source, lang="en")
    assert desk._switch is not None and "Risk density" in desk._switch.options


def test_incident_panel_shows_and_clears(source):
    sit = source.situation()
    panel = IncidentPanel(source=source, lang="zh", index=0)
    panel.update(sit["details"][0], sit["now_ms"])
    html = panel._info.object
    assert "储罐泄漏扩大" in html and "危化品泄漏" in html
    assert "近队" in html and "km" in html and "防化服" in html
    marks = panel.marks.data
    assert marks["marker"].count("star") == 1 and marks["marker"][-1] == "star"  # on top
    assert len(marks["x"]) > 1 and set(marks["size"][:-1]) == {11}  # and the resources
    x = panel.window.data["x"]
    assert x[1] - x[0] < 1.0  # zoomed on the incident
    panel.update(None)
    assert "暂无" in panel._info.object and not len(panel.marks.data["x"])


def test_clock_and_rotation_parameters():
    for lang in ("zh", "en"):
        labels = ClockPane.labels_for(lang)
        assert len(labels["weekday"]) == 7 and "{n}" in labels["live"]
    rot = WallRotation(period_s=5, pages=["./board", "./risk"])
    assert rot.period_s == 5


def test_situation_board_composes_every_layout(source):
    for layout, has_kpis, has_incidents in (("full", True, True), ("map", False, False),
                                            ("kpi", True, False), ("incidents", False, True)):
        board = SituationBoard(source=source, lang="en", kiosk=True, layout=layout)
        assert (board.kpis.kpis != {}) is True  # filled at build
        root = pn.panel(board).get_root()
        names = str([m.css_classes for m in root.select({"type": object}) if hasattr(m, "css_classes")])
        assert ("board-kpi-row" in names) == has_kpis, layout
        assert ("board-incidents" in names) == has_incidents, layout
    assert board.clock.feeds_total == 0  # no feed: the clock says so
    # not served (a notebook): no console server to wait for, no /health polling
    assert board.clock.health_url == ""


def test_new_events_reach_the_board(source):
    board = SituationBoard(source=source, lang="zh", rotate_s=3)
    assert board.kpis.kpis["quakes"]["value"] == 1
    source.store.insert("quakes", pd.DataFrame({
        "feed": ["f"], "seq": [99], "ts": [ts(-5)], "quake_id": ["q9"], "lon": [117.1],
        "lat": [36.1], "depth_km": [8.0], "magnitude": [5.5]}))
    source.hub.publish("quake", [{"quake_id": "q9"}])  # after the commit, as the ingest does
    board.refresh()  # a notebook's board reads on demand (a served one: tests/views/test_board_live.py)
    assert board.kpis.kpis["quakes"]["value"] == 2
    assert len(board.map.quake_source.data["x"]) == 3


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_dashboard_builds_on_the_consoles_shared_situation(console, lang):
    page = rendered(BoardDashboard(console=console, lang=lang).layout())
    assert t("board.title", lang) in page["text"] and page["figures"] >= 1
    assert console.situation.reads["alarms"] == 1  # read for this page, on the shared source
    BoardDashboard(console=console, lang=lang).layout()
    assert console.situation.reads["alarms"] == 1  # a second page reads nothing again


@pytest.mark.parametrize("query, shown", [
    ("rotate=inf", "rotate=inf"), ("rotate=1e308", "using 86400"), ("rotate=nan", "rotate=nan"),
    ("rotate=0.001", "using 5"), ("stale=nan", "stale=nan"), ("stale=-5", "using 3"),
    ("layout=<script>", "layout=&lt;script&gt;"), ("layers=bogus", "layers=bogus"),
])
def test_bad_url_arguments_are_clamped_and_said(console, query, shown):
    """A wall's URL typed by hand: a value the page cannot honour never raises or reloads
    the page in a loop; it is replaced (clamped or its default) and the page says so."""
    import panel as pn

    name, value = query.split("=", 1)
    pn.state._session_args = None
    from unittest import mock

    with mock.patch.object(type(pn.state), "session_args", new_callable=mock.PropertyMock,
                           return_value={name: [value.encode()]}):
        dash = BoardDashboard(console=console, lang="en")
        layout = dash.layout()
    page = rendered(layout)
    assert shown in html.unescape(page["text"]) or shown in page["text"], page["text"][:500]
    board = dash.board
    assert 5 <= board.rotate_s <= 86_400 or board.rotate_s == 0
    assert 3 <= board.stale_after_s <= 3_600


def test_a_wall_page_holds_one_filter_and_one_selection_policy_a_figure(source):
    """Every model a page holds is built, walked and sent when it opens (50 walls at once):
    the layers of a figure share their stateless "all rows" filter and selection policy."""
    from bokeh.models import AllIndices, ColumnDataSource, GlyphRenderer, Plot, UnionRenderers

    board = SituationBoard(source=source, lang="zh", kiosk=True)
    root = pn.panel(board).get_root()
    models = list(root.references())
    plots = [m for m in models if isinstance(m, Plot)]
    renderers = [m for m in models if isinstance(m, GlyphRenderer)]
    assert len(plots) == 4 and len(renderers) >= 20  # the map and three incident maps
    for plot in plots:
        filters = {id(r.view.filter) for r in plot.renderers if isinstance(r.view.filter, AllIndices)}
        policies = {id(r.data_source.selection_policy) for r in plot.renderers}
        assert len(filters) == 1 and len(policies) <= 2, plot.name  # 2: outlines are shared
    assert sum(isinstance(m, AllIndices) for m in models) == len(plots)
    assert sum(isinstance(m, UnionRenderers) for m in models) == len(plots)
    assert sum(isinstance(m, ColumnDataSource) for m in models) >= 15
    assert all(p.title is None for p in plots)
    assert len(models) <= 185, len(models)  # 237 before the layers shared them
