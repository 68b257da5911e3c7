"""/warnings in a real browser: the layers render; a warning published in one tab shows in
another tab (and on /board) within 1 s; an expired warning leaves the list by itself."""
from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import start_console, wait_until
from tests.ui.deep import DEEP_JS as BASE_DEEP_JS

pytestmark = [pytest.mark.ui, pytest.mark.slow]
SHOTS = Path(tempfile.gettempdir()) / "warnings-ui"
SHOTS.mkdir(exist_ok=True)

# A watcher of one text (its own: it notes one time, present or gone), on the shared search.
DEEP_JS = BASE_DEEP_JS + """
window.__watch = (sel, text, present, host) => {
  // with ``host``, poll only that element's shadow root (cheap); else search everything
  window.__seen = null;
  const root = host ? window.__deep(host).shadowRoot : null;
  const tick = () => {
    const found = root ? (root.textContent || '').includes(text) : !!window.__deep(sel, text);
    if (found === present) { window.__seen = Date.now(); return; }
    setTimeout(tick, root ? 10 : 100);
  };
  tick();
};
"""


@pytest.fixture(scope="module")
def console(tiny_db_template, tmp_path_factory):
    """One console for the module, on a tiny store with a few hand-made observations."""
    from sources.store.store import Store
    from tests.sources.warnings_store import add_readings

    db = tmp_path_factory.mktemp("warnings-ui") / "console.duckdb"
    shutil.copy2(tiny_db_template, db)
    store = Store(db)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    rain = store.df("SELECT sensor_id FROM sensors WHERE kind = 'rain' ORDER BY 1 LIMIT 5")
    river = store.df("SELECT s.sensor_id, st.warning_level FROM sensors s JOIN stations st "
                     "USING (station_id) WHERE s.kind = 'river_level' ORDER BY 1 LIMIT 1")
    rows = [(now - dt.timedelta(minutes=10 * i), sid, 20.0)
            for sid in rain["sensor_id"] for i in range(30)]
    rows.append((now, river["sensor_id"][0], float(river["warning_level"][0]) + 0.5))
    add_readings(store, rows)
    store.insert("quakes", __import__("pandas").DataFrame([{
        "feed": "test", "seq": 1, "ts": now - dt.timedelta(hours=1), "quake_id": "q1",
        "lon": 118.0, "lat": 36.0, "depth_km": 10.0, "magnitude": 4.2, "extra": None}]))
    store.insert("hotspots", __import__("pandas").DataFrame([{
        "feed": "test", "seq": 2, "ts": now - dt.timedelta(hours=2), "hotspot_id": "h1",
        "lon": 117.5, "lat": 36.3, "confidence": 80.0, "satellite": "FY-3D", "extra": None}]))
    store.close()
    c = start_console(db, "--no-demo-feed")
    yield c
    c.stop()


def budget() -> float:
    """The issue's figure: 1 s, checked on the median of three publications (one slow frame
    of a machine shared by three browser tabs, the server and the test must not fail it);
    each single one must arrive within 3 s. On a machine running several times more work than
    it has cores only the arrival (15 s) is checked (see README, Benchmarks, and
    ``bench/warning_push.py`` for the measured figures)."""
    return 1.0 if os.getloadavg()[0] <= 2 * (os.cpu_count() or 1) else 15.0


def open_warnings(page, console):
    page.goto(f"{console.url}/warnings")
    page.add_script_tag(content=DEEP_JS)
    wait_until(lambda: page.evaluate("!!window.__deep('.mm-at')"), timeout=60,
               message="the monitoring map never rendered")


def publish(page, headline: str, county: str, minutes: float | None = None) -> float:
    """Fill the form in ``page`` and click publish; return the click time (epoch s)."""
    page.locator(".bk-tab", has_text="预警发布").click()
    page.locator(".wf-new button").click()
    page.locator(".wf-headline input").fill(headline)
    page.locator(".wf-headline input").press("Enter")
    if minutes is not None:
        page.locator(".wf-duration input").fill(str(minutes))
        page.locator(".wf-duration input").press("Enter")
    choice = page.locator(".wf-counties input.choices__input--cloned")
    choice.click()
    choice.type(county)
    page.keyboard.press("Enter")
    wait_until(lambda: page.locator(".wf-counties .choices__item--selectable").count() >= 1,
               timeout=10, message="county not picked")
    page.keyboard.press("Escape")  # close the drop-down that covers the buttons
    page.locator(".wf-headline input").click()
    page.wait_for_timeout(300)  # let the last widget change reach the server
    t0 = time.time()
    page.locator(".wf-publish button").click()
    return t0


def test_layers_render(page, console):
    open_warnings(page, console)
    status = page.evaluate("window.__text('.mm-status')")
    assert "雨量站" in status and "超限水位站 1 个" in status, status
    assert "地震 1 次" in status and "火点 1 个" in status, status
    n = page.evaluate("""(() => {
        const doc = Bokeh.documents.find(d => d.get_model_by_name('monitoring-map'));
        const fig = doc.get_model_by_name('monitoring-map');
        return fig.renderers.filter(r => r.visible).length;
    })()""")
    assert n >= 8
    wait_until(lambda: page.locator("canvas").count() >= 2, timeout=20,
               message="no map canvas was drawn")
    page.screenshot(path=str(SHOTS / "warnings-map.png"))
    page.locator(".bk-tab", has_text="县区风险评估").click()
    wait_until(lambda: page.locator(".cr-table .tabulator-row").count() > 10, timeout=20,
               message="the county risk table stayed empty")
    page.screenshot(path=str(SHOTS / "warnings-risk.png"))
    assert not page.requests_log.foreign(console.url)


def test_published_warning_reaches_other_tabs_and_the_board_promptly(browser, page, console):
    other = browser.new_context(viewport={"width": 1600, "height": 1000}).new_page()
    board = None
    try:
        open_warnings(page, console)
        open_warnings(other, console)
        has_board = console.get("/board")[0] == 200
        if has_board:
            board = browser.new_context(viewport={"width": 1600, "height": 900}).new_page()
            board.goto(f"{console.url}/board")
            board.add_script_tag(content=DEEP_JS)
            board.wait_for_timeout(3000)  # let the wall settle
        second, wall = [], []
        for i, code in enumerate(("370102", "370103", "370104")):
            headline = f"暴雨红色预警 {i}-{time.time():.0f}"
            other.evaluate(f"window.__watch('.wl-item', {headline!r}, true, '.active-warnings')")
            if board is not None:
                # the ticker's own shadow root: a deep scan of the whole wall every 100 ms
                # would itself take the CPU the measurement needs
                board.evaluate(f"window.__watch('.board-ticker', {headline!r}, true, "
                               "'.board-ticker')")
            t0 = publish(page, headline, code)
            seen = wait_until(lambda: other.evaluate("window.__seen"), timeout=15,
                              message="the warning never reached the second tab")
            second.append(seen / 1000 - t0)
            refreshed = float(other.evaluate(
                "window.__deep('.active-warnings').shadowRoot.querySelector('.wl')"
                ".getAttribute('data-refreshed')"))
            print(f"\nsecond tab saw warning {i} {second[-1] * 1000:.0f} ms after the click "  # noqa: T201
                  f"(server rebuilt its list at {(refreshed - t0) * 1000:.0f} ms; load "
                  f"average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
            wait_until(lambda: "已发布预警" in page.evaluate("window.__text('.wf-message')"),
                       timeout=10, message="the officer was not told the warning is out")
            if board is not None:
                seen = wait_until(lambda: board.evaluate("window.__seen"), timeout=15,
                                  message="the warning never reached /board")
                wall.append(seen / 1000 - t0)
                print(f"/board showed warning {i} {wall[-1] * 1000:.0f} ms after the click")  # noqa: T201
        page.screenshot(path=str(SHOTS / "warnings-form.png"))
        other.screenshot(path=str(SHOTS / "warnings-second-tab.png"))
        limit = budget()
        for times in (second, wall):
            assert all(t < max(3.0, limit) for t in times), times
            if times:
                assert sorted(times)[len(times) // 2] < limit, times
        # a double click on publish publishes once
        page.locator(".wf-publish button").click()
        wait_until(lambda: "未重复发布" in page.evaluate(
            "window.__text('.wf-message')"), timeout=5)
        status, body, _ = console.get("/cap/index.xml")
        assert body.count(headline.encode()) == 1
    finally:
        other.context.close()
        if board is not None:
            board.context.close()


def test_expired_warning_leaves_the_list(page, console):
    open_warnings(page, console)
    headline = f"大风蓝色预警 {time.time():.0f}"
    t0 = publish(page, headline, "370103", minutes=0.1)  # 6 s
    wait_until(lambda: page.evaluate(f"!!window.__deep('.wl-item', {headline!r})"), timeout=5,
               message="the warning never showed")
    page.evaluate(f"window.__watch('.wl-item', {headline!r}, false, '.active-warnings')")
    gone = wait_until(lambda: page.evaluate("window.__seen"), timeout=15,
                      message="the expired warning stayed in the list")
    print(f"\nexpired warning left the list {gone / 1000 - t0:.2f} s after publishing "  # noqa: T201
          "(expiry 6 s after the form's effective time)")
    assert "已过期" not in page.evaluate("window.__text('.active-warnings')")
