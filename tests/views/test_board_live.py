"""The wall's one producer (views.board_live): a burst of events is one read per period for
every page, urgent ones included; a page that falls behind applies the newest frame once;
what pages share is rendered once whatever their number.

The producer runs on a loop of our own here (a clock the test moves), so what happens when
is exact: no timing in these tests.
"""
from __future__ import annotations

import heapq
import itertools
from concurrent.futures import Future

import pandas as pd
import pytest

from sources.hub import Hub
from sources.situation.source import SituationSource
from sources.store.store import Store
from tests.sources.test_situation import fill, ts
from views import board_map, incident_panel, kpi_strip, ticker
from views.board import SituationBoard
from views.board_live import BoardLive


class FakeLoop:
    """The few IOLoop methods the producer uses, on a clock the test moves."""

    def __init__(self):
        self.now = 100.0
        self.ready: list = []
        self.timers: list = []
        self._n = itertools.count()
        self.executor_calls = 0

    def clock(self) -> float:
        return self.now

    def add_callback(self, fn, *args):
        self.ready.append((fn, args))

    def call_later(self, delay, fn, *args):
        handle = [self.now + delay, next(self._n), fn, args, True]
        heapq.heappush(self.timers, handle)
        return handle

    def remove_timeout(self, handle):
        handle[4] = False

    def run_in_executor(self, _executor, fn, *args):
        self.executor_calls += 1
        f = Future()
        f.set_result(fn(*args))  # a worker thread in the server; here, at once
        return f

    def add_future(self, future, cb):
        self.ready.append((cb, (future,)))

    def run(self, until: float | None = None) -> None:
        """Run what is ready, then timers due up to ``until`` (moving the clock)."""
        while True:
            while self.ready:
                fn, args = self.ready.pop(0)
                fn(*args)
            live = [t for t in self.timers if t[4]]
            due = [t for t in live if until is not None and t[0] <= until]
            if not due:
                if until is not None:
                    self.now = max(self.now, until)
                return
            t = min(due, key=lambda t: (t[0], t[1]))
            t[4] = False
            self.now = max(self.now, t[0])
            t[2](*t[3])


@pytest.fixture
def source(tmp_path):
    store = Store(tmp_path / "live.duckdb")
    fill(store)
    yield SituationSource(store=store, hub=Hub())
    store.close()


@pytest.fixture
def loop():
    return FakeLoop()


@pytest.fixture
def live(source, loop):
    p = BoardLive(source, lambda: [{"connected": True, "rate_per_s": 5.0}], loop=loop,
                  refresh_s=0.5, idle_s=15.0, clock=loop.clock)
    yield p
    p.close()


def quake(source, seq: int, lon: float = 117.1) -> None:
    source.store.insert("quakes", pd.DataFrame({
        "feed": ["f"], "seq": [seq], "ts": [ts(-5)], "quake_id": [f"q{seq}"], "lon": [lon],
        "lat": [36.1], "depth_km": [8.0], "magnitude": [4.0]}))
    source.hub.publish("quake", [{"quake_id": f"q{seq}"}])  # after the commit


def warning(source, n: int) -> None:
    source.store.insert("warnings", pd.DataFrame({
        "warning_id": [f"wb{n}"], "version": [1], "msg_type": ["Alert"], "event": ["gale"],
        "level": ["blue"], "headline": [f"大风{n}"], "area_codes": [["370102"]],
        "area_geojson": [None], "effective": [ts(-1000)], "expires": [ts(3_600_000)],
        "source": ["feed"], "sender": ["f"], "created_at": [ts(-10)]}))
    source.hub.publish("warning", [{"warning_id": f"wb{n}"}])


def test_an_event_after_a_quiet_spell_is_read_at_once(live, loop, source):
    frames = []
    live.add(lambda: frames.append(live.frame.version))
    first = live.current()  # the first page reads now
    assert live.reads == 1 and first.version == 0
    loop.run(until=loop.now + 5)  # quiet
    quake(source, 100)
    loop.run()  # no time passes: the event is read at once
    assert live.reads == 2 and frames == [0, 1]  # the first frame, then the event's
    assert live.frame.situation["kpis"]["quakes"]["value"] == 2


def test_a_burst_is_one_read_per_period_urgent_events_included(live, loop, source):
    live.add(lambda: None)
    live.current()
    loop.run(until=loop.now + 5)
    start = loop.now
    quake(source, 100)
    loop.run()  # the first event of the burst: read at once
    assert live.reads == 2
    # 40 events in the next 0.4 s, warnings (urgent) among them: nothing read meanwhile
    for i in range(40):
        loop.run(until=start + 0.01 * (i + 1))
        if i % 3 == 0:
            warning(source, i)  # urgent: acted on by the whole room
        else:
            quake(source, 200 + i)
        loop.run()
        assert live.reads == 2, f"read again {loop.now - start:.2f} s into the burst"
    loop.run(until=start + 0.49)
    assert live.reads == 2
    loop.run(until=start + 0.51)  # the period ends: one read holds the whole burst
    assert live.reads == 3
    sit = live.frame.situation
    assert sit["kpis"]["quakes"]["value"] == 2 + 26  # every quake of the burst is in
    assert sit["kpis"]["warnings.blue"]["value"] == 14  # and every warning
    loop.run(until=start + 5)
    assert live.reads == 3  # nothing more to read


def test_an_urgent_event_right_after_a_read_waits_at_most_one_period(live, loop, source):
    live.add(lambda: None)
    live.current()
    loop.run(until=loop.now + 5)
    quake(source, 100)
    loop.run()
    read_at = loop.now
    loop.run(until=read_at + 0.1)
    warning(source, 1)
    loop.run(until=read_at + 0.45)
    assert live.reads == 2  # held back...
    loop.run(until=read_at + 0.5)
    assert live.reads == 3  # ...to the end of the period, not later
    assert live.frame.situation["kpis"]["warnings.blue"]["value"] == 1


def test_a_full_queue_is_one_read_of_everything(live, loop, source):
    live.add(lambda: None)
    live.current()
    loop.run(until=loop.now + 5)
    for i in range(200):  # far more than the producer's queue holds, before it wakes
        source.hub.publish("alarm", [{"alarm_id": i}])
    quake(source, 300)
    assert live._events.missed or len(live._events.queue) == live._events.maxsize
    loop.run()
    assert live.reads == 2
    assert live.frame.situation["kpis"]["quakes"]["value"] == 2


def test_idle_reads_and_the_last_page_closes_the_producer(live, loop, source):
    page = lambda: None  # noqa: E731
    live.add(page)
    live.current()
    subs = source.hub.subscribers  # the producer's two and the source's own
    loop.run(until=loop.now + 31)
    assert live.reads == 3  # at least every idle_s (time windows move on)
    live.remove(page)
    assert live.closed and source.hub.subscribers == subs - 2
    quake(source, 100)
    loop.run(until=loop.now + 60)
    assert live.reads == 3


class StubDoc:
    """A served page's document, as far as the board uses it."""

    session_context = object()

    def __init__(self):
        self.callbacks = []

    def add_next_tick_callback(self, fn):
        self.callbacks.append(fn)


def test_a_page_that_falls_behind_applies_the_newest_frame_once(source, live, loop):
    board = SituationBoard(source=source, lang="zh")  # built unserved, then attached
    board._doc, board._live = StubDoc(), live
    live.add(board._on_frame)
    live.current()
    shown = []
    real = board.show
    board.show = lambda sit: (shown.append(sit), real(sit))
    loop.run(until=loop.now + 5)
    for i in range(5):  # five frames while the page is busy elsewhere
        quake(source, 100 + i, lon=117.1 + i / 100)
        loop.run(until=loop.now + 0.6)
    assert live.reads == 6 and len(board._doc.callbacks) == 1  # one apply scheduled
    board._apply()  # the page's next tick
    assert len(shown) == 1 and shown[0] is live.frame.situation
    assert board.kpis.kpis["quakes"]["value"] == 6
    assert len(board.map.quake_source.data["x"]) == 7
    board._apply()
    assert len(shown) == 1  # nothing new: nothing shown again


def test_n_pages_share_one_rendering(source):
    """Ten pages of one language showing a new snapshot: the KPI and ticker markup, the
    map's columns and each incident card are made once, not ten times."""
    boards = [SituationBoard(source=source, lang="en", kiosk=True) for _ in range(10)]
    quake(source, 100)
    sit = source.situation()
    caches = {"kpi": kpi_strip.SHARED_HTML, "ticker": ticker.SHARED_ROWS,
              "layers": board_map.SHARED_LAYERS, "incident": incident_panel.SHARED_TEXT}
    before = {k: c.computed for k, c in caches.items()}
    for b in boards:
        b.show(sit)
    made = {k: c.computed - before[k] for k, c in caches.items()}
    assert made["kpi"] == 1 and made["ticker"] == 1
    assert made["incident"] == len(sit["details"]) == 2
    assert made["layers"] <= 6  # the parts that changed, at most every layer once
    # and every page shows the same objects (nothing recomputed per page)
    assert all(b.map._shown["quakes"] is boards[0].map._shown["quakes"] for b in boards)
    assert len(boards[0].map._shown["quakes"]["x"]) == 3
    texts = {b.kpis._pane.object for b in boards}
    assert len(texts) == 1 and 'data-kpi="quakes"' in next(iter(texts))
    rows = {b.ticker._pane.object for b in boards}
    assert len(rows) == 1
    # another language is its own rendering, once
    before = kpi_strip.SHARED_HTML.computed
    zh = [SituationBoard(source=source, lang="zh", kiosk=True) for _ in range(3)]
    for b in zh:
        b.show(sit)
    assert kpi_strip.SHARED_HTML.computed - before == 1
