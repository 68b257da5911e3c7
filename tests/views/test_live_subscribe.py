"""``View.subscribe(immediate=True)`` on a served page: a publication is handled on the
page's next tick, not after the polling period; the page's own thread runs the handler."""
from __future__ import annotations

import gc
import threading
import time
import urllib.request

import panel as pn
import param
import pytest

from sources.base import Source
from sources.hub import Hub
from tests.conftest import free_port, wait_until
from views.base import View

# Panel's threaded server leaves its shutdown coroutine to the garbage collector; it is
# collected (and its warning raised) here, not in whichever test happens to run next
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


class _HubSource(Source):
    hub = param.Parameter(default=None)


class _Probe(View):
    immediate = param.Boolean(default=True)

    def __init__(self, seen: list, **params):
        super().__init__(**params)
        self._seen = seen
        self.subscribe(["warning"], self._on, period_ms=30_000, immediate=self.immediate)

    def _on(self, messages, missed):
        if any(m.payload == "boom" for m in messages):
            self._seen.append(("boom", missed))
            raise RuntimeError("the store closed under the page")
        for m in messages:
            self._seen.append((m.payload, time.monotonic() - m.at, pn.state.curdoc is not None,
                               threading.current_thread().name))

    def __panel__(self):
        return pn.pane.Str("probe")


def _serve(hub, seen, immediate):
    port = free_port()
    server = pn.serve({"/": lambda: _Probe(seen, source=_HubSource(hub=hub),
                                           immediate=immediate)},
                      port=port, address="127.0.0.1", show=False, threaded=True, start=True)
    def get():  # an HTTP GET makes the server session (the document and its callbacks)
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30).read()
        except OSError:
            return None

    wait_until(get, timeout=30, interval=0.1, message="the test server never answered")
    wait_until(lambda: hub.subscribers >= 1, timeout=10, message="the page never subscribed")
    return server


def _stop(server) -> None:
    server.stop()
    server.join(timeout=10)
    gc.collect()


def test_immediate_subscription_handles_a_publication_on_the_next_tick():
    hub, seen = Hub(), []
    server = _serve(hub, seen, immediate=True)
    try:
        publisher = threading.Thread(target=hub.publish, args=("warning", "w1"))
        publisher.start()  # from another thread, as the feed ingest does
        publisher.join()
        wait_until(lambda: seen, timeout=5,
                   message="not handled within 5 s (the periodic drain is every 30 s)")
        payload, delay, in_doc, thread = seen[0]
        assert payload == "w1" and delay < 2.0 and in_doc
        assert thread != publisher.name  # the page's code never runs in the publisher
        hub.publish("warning", "w2")
        hub.publish("warning", "w3")
        wait_until(lambda: len(seen) == 3, timeout=5, message="later publications lost")
        assert [s[0] for s in seen] == ["w1", "w2", "w3"]
    finally:
        _stop(server)


def test_polled_subscription_waits_for_its_period():
    """The control: without ``immediate`` nothing happens before the 30 s period."""
    hub, seen = Hub(), []
    server = _serve(hub, seen, immediate=False)
    try:
        hub.publish("warning", "w1")
        time.sleep(1.5)
        assert seen == []
    finally:
        _stop(server)


def test_a_failing_update_is_logged_once_and_the_next_one_reloads(caplog):
    """A handler that raises (the store closing under a page) neither ends the page's updates
    nor escapes into Panel's callback task: it is logged once, and the next drain says
    ``missed`` so the page reloads from the store."""
    hub, seen = Hub(), []
    server = _serve(hub, seen, immediate=True)
    try:
        with caplog.at_level("ERROR", logger="views.base"):
            hub.publish("warning", "boom")
            wait_until(lambda: seen, timeout=5, message="the first publication was not handled")
            hub.publish("warning", "boom")
            wait_until(lambda: len(seen) == 2, timeout=5, message="updates stopped after a failure")
            assert seen == [("boom", False), ("boom", True)]  # the second drain reloads
            hub.publish("warning", "w1")
            wait_until(lambda: len(seen) == 3, timeout=5, message="updates stopped")
            assert seen[2][0] == "w1"
        failures = [r for r in caplog.records if "live update failed" in r.getMessage()]
        assert len(failures) == 1 and "_Probe" in failures[0].getMessage()
    finally:
        _stop(server)


def test_refreshes_stop_quietly_once_the_store_is_closed(caplog):
    """At shutdown the store closes under pages still open: their periodic refreshes stop
    instead of failing (and logging) every period; before that, a failure is logged."""
    from types import SimpleNamespace

    class _StoreSource(Source):
        store = param.Parameter(default=None)

    store = SimpleNamespace(closed=False)
    view = _Probe.__new__(_Probe)
    View.__init__(view, source=_StoreSource(store=store))
    stopped = []
    callback = SimpleNamespace(stop=lambda: stopped.append(True))

    def refresh():
        raise RuntimeError("Connection already closed")

    run = view._guarded(refresh, callbacks=[callback])
    with caplog.at_level("ERROR", logger="views.base"):
        run()  # the store is open: a real failure, logged, the callback keeps running
        assert stopped == [] and len(caplog.records) == 1
        store.closed = True
        run()
        assert stopped == [True] and len(caplog.records) == 1
