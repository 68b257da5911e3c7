"""``dashboards.pacing``: pages are built one at a time and the server answers other requests
between two pages (a real Panel server on loopback; pages that take 0.3 s each to build)."""
from __future__ import annotations

import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import panel as pn
import pytest
import tornado.web

from dashboards.pacing import pace_pages
from tests.conftest import free_port

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
    port = free_port()
    srv = pn.serve({"page": slow_page}, port=port, address="127.0.0.1", show=False,
                   start=False, websocket_origin=[f"127.0.0.1:{port}"],
                   extra_patterns=[(r"/ping", Ping)])
    if request.param:
        assert pace_pages(srv) == 1  # the one page route
        assert pace_pages(srv) == 0  # once
    thread = threading.Thread(target=lambda: (srv.start(), srv.io_loop.start()), daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "/ping", timeout=2).read()
            break
        except OSError:
            time.sleep(0.1)
    yield request.param, url
    srv.io_loop.add_callback(srv.stop)
    srv.io_loop.add_callback(srv.io_loop.stop)
    thread.join(10)


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
