"""The situation board in a real browser: wall sizes, kiosk, rotation, staleness, restart.

A small websocket feed of our own (real socket, FEED-PROTOCOL messages) keeps the board live
and can be paused, so the tests decide when the data stops.
"""
from __future__ import annotations

import asyncio
import json
import re
import shutil
import threading
import time

import duckdb
import pytest

from tests.conftest import start_console, wait_until

pytestmark = pytest.mark.ui

# one incident is open (the feed's INC-T1): one panel; the other two give their room away
PARTS = (".board-top", ".board-kpis", ".board-map-figure", ".board-ticker",
         ".board-incident-0")


class LiveFeed:
    """A feed server sending a reading every 0.2 s (and one incident) until paused."""

    def __init__(self, sensor: str, value: float):
        self.sensor, self.value = sensor, value
        self.running = threading.Event()
        self.running.set()
        self.seq = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/feed"

    def start(self) -> LiveFeed:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        from websockets.asyncio.server import serve

        self._stop = asyncio.Event()
        async with serve(self._handler, "127.0.0.1", 0, compression=None) as server:
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            await self._stop.wait()

    async def _handler(self, ws) -> None:
        try:
            now = int(time.time() * 1000)
            self.seq += 1
            await ws.send(json.dumps({
                "type": "incident", "seq": self.seq, "ts": now, "id": "INC-T1", "kind": "fire",
                "lon": 117.0, "lat": 36.6, "title": "测试<b>火灾</b>", "level": "red",
                "status": "open"}))
            while True:
                if self.running.is_set():
                    self.seq += 1
                    await ws.send(json.dumps({
                        "type": "reading", "seq": self.seq, "ts": int(time.time() * 1000),
                        "sensor_id": self.sensor, "value": self.value}))
                await asyncio.sleep(0.2)
        except Exception:  # noqa: BLE001 - the console went away
            pass


@pytest.fixture(scope="module")
def board_db(tiny_db_template, tmp_path_factory):
    path = tmp_path_factory.mktemp("board") / "console.duckdb"
    shutil.copy2(tiny_db_template, path)
    return path


@pytest.fixture(scope="module")
def feed(board_db):
    con = duckdb.connect(str(board_db), read_only=True)
    sensor, value = con.sql(
        "SELECT sensor_id, coalesce(normal, 1.0) FROM sensors ORDER BY sensor_id LIMIT 1"
    ).fetchall()[0]
    con.close()
    f = LiveFeed(sensor, float(value)).start()
    yield f
    f.stop()


@pytest.fixture(scope="module")
def console(board_db, feed):
    c = start_console(board_db, "--feed", feed.url)
    yield c
    c.stop()


def open_board(page, console, query: str, live: bool = True):
    page.goto(f"{console.url}/board?{query}")
    if live:
        wait_until(lambda: fresh_state(page) == "live", timeout=60,
                   message="the board never showed live data")


def fresh_state(page) -> str | None:
    """The freshness indicator's state (live / stale / lost ...); None while (re)loading."""
    from playwright.sync_api import Error

    try:
        loc = page.locator("[data-board=freshness]")
        return loc.first.get_attribute("data-state", timeout=1000) if loc.count() else None
    except Error:  # the page is navigating (the watchdog reloaded it)
        return None


def reloaded(page) -> bool:
    from playwright.sync_api import Error

    try:
        return page.evaluate("() => window.__boardMark === undefined")
    except Error:
        return False


def boxes(page, selectors) -> dict:
    out = {}
    for sel in selectors:
        loc = page.locator(sel)
        assert loc.count() >= 1, f"{sel} is missing"
        out[sel] = loc.first.bounding_box()
        assert out[sel] is not None and loc.first.is_visible(), f"{sel} is not visible"
    return out


def overlap(a, b) -> bool:
    return not (a["x"] + a["width"] <= b["x"] + 1 or b["x"] + b["width"] <= a["x"] + 1
                or a["y"] + a["height"] <= b["y"] + 1 or b["y"] + b["height"] <= a["y"] + 1)


def assert_fits(page, w: int, h: int, selectors) -> dict:
    scroll = page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.scrollHeight,"
        " document.body.scrollWidth, document.body.scrollHeight]")
    assert max(scroll[0], scroll[2]) <= w and max(scroll[1], scroll[3]) <= h, scroll
    found = boxes(page, selectors)
    for sel, b in found.items():
        assert b["width"] > 20 and b["height"] > 20, (sel, b)
        assert b["x"] >= -1 and b["y"] >= -1, (sel, b)
        assert b["x"] + b["width"] <= w + 1 and b["y"] + b["height"] <= h + 1, (sel, b)
    names = list(found)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not overlap(found[a], found[b]), f"{a} overlaps {b}: {found[a]} {found[b]}"
    return found


@pytest.mark.parametrize("size", [(1920, 1080), (3840, 2160)])
def test_wall_fills_the_screen(browser, console, size):
    w, h = size
    context = browser.new_context(viewport={"width": w, "height": h})
    page = context.new_page()
    urls = []
    page.on("request", lambda r: urls.append(r.url))
    try:
        open_board(page, console, "kiosk=1")
        wait_until(lambda: page.locator(".board-incident-0 .inc .head").count() == 1,
                   timeout=30, message="the incident panel never showed the incident")
        # names holding HTML are shown as text, never as markup
        assert page.locator(".board-incident-0 .head b").first.inner_text() == "测试<b>火灾</b>"
        assert page.locator(".board-incident-0 .head b b").count() == 0
        assert_fits(page, w, h, PARTS)
        assert page.locator(".board-incident-1").first.is_hidden()
        assert page.locator(".board-incident-2").first.is_hidden()
        clock = page.locator(".board-clock").first.bounding_box()
        assert clock["y"] + clock["height"] <= h * 0.1
        # a KPI update replaces the number's element: a detached one has no computed style
        # (NaN), so measure one that is still in the page
        num = page.locator(".kpi .num").first
        font = wait_until(lambda: num.evaluate(
            "e => e.isConnected ? parseFloat(getComputedStyle(e).fontSize) || 0 : 0"),
            timeout=10, message="no KPI number stayed in the page long enough to measure")
        assert font >= 0.05 * h, f"KPI numbers are {font}px on a {h}px screen"
        local = (console.url, "ws://127.0.0.1", "data:", "about:", "blob:")
        foreign = [u for u in urls if not u.startswith(local)]
        assert not foreign, foreign
    finally:
        context.close()


@pytest.mark.parametrize("layout,present,absent", [
    ("map", (".board-map-figure", ".board-clock"), (".board-kpis", ".board-ticker",
                                                    ".board-incident-0")),
    ("kpi", (".board-map-figure", ".board-kpis", ".board-ticker"), (".board-incident-0",)),
    ("incidents", (".board-map-figure", ".board-incident-0"),
     (".board-kpis", ".board-ticker")),
])
def test_split_layouts(browser, console, layout, present, absent):
    context = browser.new_context(viewport={"width": 1920, "height": 1080})
    page = context.new_page()
    try:
        open_board(page, console, f"kiosk=1&layout={layout}")
        assert_fits(page, 1920, 1080, present)
        for sel in absent:
            assert page.locator(sel).count() == 0, f"{sel} shown in layout={layout}"
    finally:
        context.close()


def test_kiosk_hides_every_control(page, console):
    open_board(page, console, "kiosk=1&lang=en")
    for sel in ("button", "input", "select", "a", ".bk-toolbar", ".bk-Toolbar",
                ".console-header"):
        visible = [e for e in page.locator(sel).all() if e.is_visible()]
        assert not visible, f"kiosk shows {sel}"
    assert "Live" in page.locator("[data-board=freshness]").inner_text()
    # /health counts the open page (an operator's "is the wall connected?")
    wait_until(lambda: console.health()["memory"]["sessions"] >= 1, timeout=10,
               message="/health does not count the open board")
    # the desk view (no kiosk) has the layer switches and the console's navigation
    open_board(page, console, "lang=en")
    assert page.locator(".console-header").count() == 1
    assert page.get_by_role("button", name="Risk density").count() == 1
    assert_fits(page, 1600, 1000, PARTS)  # the desk view fits its window too


def test_rotation_cycles_the_pages(page, console):
    open_board(page, console, "kiosk=1&rotate=5", live=False)
    seen = []

    def step():
        current = page.evaluate("() => document.body.dataset.rotationPage || ''")
        if current and (not seen or seen[-1] != current):
            seen.append(current)
        return len(seen) >= 4

    wait_until(step, timeout=45, interval=0.2, message="the rotation did not move")
    assert [s.split("?")[0] for s in seen[:4]] == ["./board", "./warnings", "./risk",
                                                   "./inventory"], seen
    assert all("kiosk=1" in s for s in seen)
    frame = page.locator("[data-board=rotation]")
    assert frame.count() == 1


def test_stale_feed_turns_red(page, console, feed):
    open_board(page, console, "kiosk=1&stale=4")
    feed.running.clear()
    try:
        began = time.monotonic()
        wait_until(lambda: fresh_state(page) == "stale", timeout=30,
                   message="stopped feed not shown as stale")
        assert time.monotonic() - began < 30
        color = page.locator("[data-board=freshness]").evaluate(
            "e => getComputedStyle(e).backgroundColor")
        r, g, b = (int(x) for x in re.findall(r"\d+", color)[:3])
        assert r > 100 and g < 60 and b < 60, color  # red (it blinks between two reds)
        assert page.locator("[data-board=stale-frame]").first.is_visible()
    finally:
        feed.running.set()
    wait_until(lambda: fresh_state(page) == "live", timeout=30, message="never live again")


@pytest.mark.slow
def test_board_recovers_after_a_server_restart(browser, board_db, feed, tmp_path):
    db = tmp_path / "restart.duckdb"
    shutil.copy2(board_db, db)
    first = start_console(db, "--feed", feed.url)
    second = None
    context = browser.new_context(viewport={"width": 1920, "height": 1080})
    page = context.new_page()
    try:
        open_board(page, first, "kiosk=1")
        page.evaluate("() => { window.__boardMark = 1 }")
        first.stop()
        wait_until(lambda: fresh_state(page) in ("lost", "stale"), timeout=30,
                   message="a dead server was not shown")
        second = start_console(db, "--feed", feed.url, port=first.port)
        back = time.monotonic()
        wait_until(lambda: reloaded(page) and fresh_state(page) == "live", timeout=30,
                   interval=0.25,
                   message="the board did not come back live within 30 s")
        assert time.monotonic() - back < 30
    finally:
        context.close()
        if second is not None:
            second.stop()
        first.stop()
