"""Walls under a burst of events (issue #18): no page reloads, and each ends showing what the
store holds.

A feed of our own sends a burst of quakes, hotspots, warnings and incidents in many small
frames; the console's wall producer is given a queue of two messages (``QUEUE_SIZE``), so
the burst overflows it many times over (the server's log says so). Two kiosk walls are
open meanwhile. Neither navigates (a window marker, the Navigation Timing entries and
Playwright's navigation events), and at the end each wall's KPIs and map hold the counts
the store holds (read with DuckDB after the console stopped), its ticker the rows a page
opened afterwards shows.
"""
from __future__ import annotations

import shutil
import time

import duckdb
import pytest

from tests.conftest import start_console, wait_until
from tests.ui.deep import DEEP_JS
from tests.ui.feeds import ScriptedFeed

pytestmark = [pytest.mark.ui, pytest.mark.slow]


SHOWN_JS = """() => {
  const kpi = (key) => {
    const card = window.__deep(`[data-kpi="${key}"]`);
    if (!card) return 0;
    return [...card.querySelectorAll('.num')].map(
      (n) => Number(n.textContent.replace(/[^0-9]/g, '')) || 0).reduce((a, b) => a + b, 0);
  };
  const doc = window.Bokeh && Bokeh.documents && Bokeh.documents[0];
  const fig = doc && doc.get_model_by_name('board-map');
  const ticker = window.__deep('.board-ticker');
  if (!fig || !ticker || !ticker.shadowRoot) return null;  // still loading
  const map = {};
  for (const r of fig.renderers) {
    const g = r.glyph;
    const marker = g.marker && (g.marker.value ?? g.marker);
    const radius = g.radius && g.radius.field;
    if (g.type === 'Scatter' && marker === 'triangle') map.hotspots = r.data_source.data.x.length;
    if (g.type === 'Circle' && radius === 'radius') map.quakes = r.data_source.data.x.length;
    if (g.type === 'Scatter' && marker === 'star') map.incidents = r.data_source.data.x.length;
  }
  const titles = [...ticker.shadowRoot.querySelectorAll('li .x')].map((e) => e.textContent);
  return {kpis: {warnings: kpi('warnings'), incidents: kpi('incidents'),
                 hotspots: kpi('hotspots'), quakes: kpi('quakes')}, map, titles,
          marker: window.__mark === 1,
          navigations: performance.getEntriesByType('navigation').map((e) => e.type)};
}"""

COUNTIES = ("370102", "370103", "370104", "370105", "370112")


def burst(feed: ScriptedFeed, rounds: int = 40) -> None:
    """Events in many small frames (the ingest publishes per batch: many publications)."""
    now = int(time.time() * 1000)
    for i in range(rounds):
        lon, lat = 116.8 + i * 0.011, 36.4 + (i % 7) * 0.03
        feed.send(type="quake", id=f"EQ-B{i}", lon=lon, lat=lat, depth_km=8.0,
                  magnitude=3.0 + (i % 20) / 10)
        feed.send(type="hotspot", id=f"HS-B{i}", lon=lon + 0.005, lat=lat + 0.004,
                  confidence=80.0, satellite="FY-3D")
        if i % 2 == 0:
            feed.send(type="warning", id=f"W-B{i}", msg_type="Alert", event="gale",
                      level=("blue", "yellow", "orange", "red")[i % 4],
                      headline=f"大风预警 B{i}", area=[COUNTIES[i % len(COUNTIES)]],
                      effective=now, expires=now + 3_600_000, sender_name="测试台")
        else:
            feed.incident(f"INC-B{i}", "open", lon=lon, lat=lat,
                          level=("red", "orange", "yellow")[i % 3])
        time.sleep(0.03)


def store_counts(db) -> dict:
    """What the store holds (our own SQL, not the console's)."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        q = lambda sql: con.execute(sql).fetchall()[0][0]  # noqa: E731
        open_incidents = q("""
            SELECT count(*) FROM (SELECT incident_id, arg_max(status, seq) AS status
                                  FROM incidents GROUP BY incident_id) WHERE status = 'open'""")
        return {
            "kpis": {
                "quakes": q("SELECT count(*) FROM quakes WHERE ts > now() - INTERVAL 24 HOUR"),
                "hotspots": q("SELECT count(*) FROM hotspots "
                              "WHERE ts > now() - INTERVAL 24 HOUR"),
                "incidents": open_incidents,
                "warnings": q("""
                    SELECT count(*) FROM (SELECT warning_id, arg_max(msg_type, version) AS m,
                                                 arg_max(expires, version) AS e
                                          FROM warnings GROUP BY warning_id)
                    WHERE m <> 'Cancel' AND e > now()""")},
            "map": {"quakes": q("SELECT count(*) FROM quakes WHERE ts > now() - INTERVAL 7 DAY"),
                    "hotspots": q("SELECT count(*) FROM hotspots "
                                  "WHERE ts > now() - INTERVAL 24 HOUR"),
                    "incidents": open_incidents},
        }
    finally:
        con.close()


def test_a_burst_that_overflows_the_queue_reloads_no_wall(browser, tiny_db_template, tmp_path):
    db = tmp_path / "storm.duckdb"
    shutil.copy2(tiny_db_template, db)
    feed = ScriptedFeed().start()
    console = start_console(db, "--feed", feed.url,
                            prelude="import views.board_live as live\nlive.QUEUE_SIZE = 2")
    walls, navigations = [], {}
    try:
        for i in range(2):
            page = browser.new_context(viewport={"width": 1600, "height": 900}).new_page()
            page.goto(f"{console.url}/board?kiosk=1")
            page.add_script_tag(content=DEEP_JS)
            wait_until(lambda p=page: p.evaluate(
                "() => { const t = window.__deep('.board-ticker');"
                " return !!t && !!t.shadowRoot.querySelector('li, .empty'); }"),
                timeout=60, message="the wall never showed its ticker")
            page.evaluate("() => { window.__mark = 1 }")
            navigations[i] = 0
            page.on("framenavigated", lambda f, p=page, i=i: f == p.main_frame and
                    navigations.__setitem__(i, navigations[i] + 1))
            walls.append(page)
        burst(feed)
        wait_until(lambda: "fell behind a burst of events" in console.log.read_text(),
                   timeout=30, message="the burst did not overflow the wall's queue")
        expected_incidents = 20  # every other round opens one

        def settled():
            shown = [w.evaluate(SHOWN_JS) for w in walls]
            return all(s and s["map"]["quakes"] >= 40 and s["map"]["hotspots"] >= 40
                       and s["map"]["incidents"] >= expected_incidents for s in shown) and shown

        wait_until(settled, timeout=30, interval=0.5,
                   message="the walls never showed the whole burst")
        time.sleep(2)  # anything still in flight lands
        shown = [w.evaluate(SHOWN_JS) for w in walls]
        fresh = browser.new_context(viewport={"width": 1600, "height": 900}).new_page()
        fresh.goto(f"{console.url}/board?kiosk=1")
        fresh.add_script_tag(content=DEEP_JS)
        wait_until(lambda: (fresh.evaluate(SHOWN_JS) or {"map": {}})["map"].get("quakes", 0)
                   >= 40, timeout=60,
                   message="a page opened after the burst did not show it")
        truth_titles = fresh.evaluate(SHOWN_JS)["titles"]
    finally:
        console.stop()
        feed.stop()
    store = store_counts(db)
    assert store["map"]["quakes"] == 40 and store["kpis"]["warnings"] == 20
    for i, s in enumerate(shown):
        assert s["marker"] and s["navigations"] == ["navigate"] and navigations[i] == 0, \
            f"wall {i} reloaded: {s['navigations']}, {navigations[i]} navigations"
        assert s["kpis"] == store["kpis"], (i, s["kpis"], store["kpis"])
        assert s["map"] == store["map"], (i, s["map"], store["map"])
        assert s["titles"] == truth_titles and any("B39" in t for t in s["titles"])
