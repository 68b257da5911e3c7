"""``dashboards.pacing``: pages are built one at a time and the server answers other requests
between two pages (a real Panel server on loopback; pages that take 0.3 s each to build)."""
from __future__ import annotations

import asyncio
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import panel as pn
import pytest
import tornado.web

from dashboards.pacing import pace_pages
from tests.conftest import free_port, wait_until

BUILD_S = 0.3
PAGES = 6


class Ping(tornado.web.RequestHandler):
    def get(self):
        self.write("pong")


def slow_page():
    time.sleep(BUILD_S)  # building a page holds the server's one thread
    return pn.pane.Markdown("a page")


@pytest.fixture(params=[True, False], ids=["paced", "unpaced"])
def server(request):
    """A Panel server on its own loop in a thread (not the test thread's loop: other tests
    may have left theirs current)."""
    port, box = free_port(), {}

    def run():
        try:
            asyncio.set_event_loop(asyncio.new_event_loop())
            srv = pn.serve({"page": slow_page}, port=port, address="127.0.0.1", show=False,
                           start=False, websocket_origin=[f"127.0.0.1:{port}"],
                           extra_patterns=[(r"/ping", Ping)])
            if request.param:
                box["changed"] = (pace_pages(srv), pace_pages(srv))  # once: (1, 0)
            # stopped here, on its own loop: not by pn.state's clean-up after the test
            for key, entry in list(pn.state._servers.items()):
                if entry[0] is srv:
                    del pn.state._servers[key]
            box["server"] = srv
            srv.start()
            srv.io_loop.start()
        except BaseException as exc:  # reported by the waiting fixture
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True, name="pacing-server")
    thread.start()
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: "server" in box or "error" in box, timeout=30)
    if "error" in box:
        raise box["error"]
    if request.param:
        assert box["changed"] == (1, 0)  # the one page route, paced once
    wait_until(lambda: _answers(url + "/ping"), timeout=20, message="the server never answered")
    yield request.param, url
    srv = box["server"]

    def halt():
        try:
            srv.stop()
        finally:
            srv.io_loop.stop()

    srv.io_loop.add_callback(halt)
    thread.join(10)


def _answers(url: str) -> bool:
    try:
        return urllib.request.urlopen(url, timeout=2).status == 200
    except OSError:
        return False


def timed(url: str, t0: float) -> float:
    with urllib.request.urlopen(url, timeout=60) as r:
        assert r.status == 200 and r.read()
    return time.monotonic() - t0


def test_other_requests_are_answered_between_pages(server):
    paced, url = server
    with ThreadPoolExecutor(PAGES + 1) as pool:
        t0 = time.monotonic()
        pages = [pool.submit(timed, url + "/page", t0) for _ in range(PAGES)]
        time.sleep(0.1)  # the pages' requests are in; the first is being built
        ping = pool.submit(timed, url + "/ping", t0)
        done = sorted(p.result() for p in pages)
        pinged = ping.result()
    assert done[-1] >= PAGES * BUILD_S * 0.9  # one thread built them, one after the other
    if paced:  # answered after at most a page or two, long before the last page
        assert pinged < done[-1] - 2 * BUILD_S, (pinged, done)
    else:  # Panel as shipped: the ping waits behind the pages that came before it
        assert pinged >= 3 * BUILD_S, (pinged, done)
