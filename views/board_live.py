"""The wall's picture, read once per burst of events for every open wall page.

Every wall page shows the same situation. Before, each page drained its own hub queue, read
the situation and rendered it — work per page per event, with pages out of phase so that
each of them re-read what an event before had changed (ten walls under a storm: twenty
reads a second, and every warning or incident refreshed every page at once). Now one
:class:`BoardLive` per console does it for all of them:

* it subscribes to the board's topics once; an event wakes it (``notify``: the publisher's
  thread only schedules, on the server's loop);
* it reads the situation at most once per ``refresh_s`` (a burst of events, warnings and
  incidents included, becomes one read at the end of the period; an event after a quiet
  period is read at once), and at least every ``idle_s`` (24-hour windows move on);
* the read and the shared rendering (``warm``: the KPI and ticker markup per language, the
  map's columns, the incident cards) run in a worker thread, off the loop that serves every
  page and ``/health``;
* then it tells each page there is a new frame; a page applies the *newest* frame on its
  next tick, however many it missed (a page that fell behind catches up in one step and
  never reloads), and sends its browser only what changed.

Nothing here imports Panel: the board view (:mod:`views.board`) registers its pages.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

#: Topics that change what a wall shows.
EVENTS = ("alarm", "warning", "incident", "quake", "hotspot", "feed_status", "command", "drill")
#: Hub messages the producer holds between two wakes; more mean it fell behind, and it reads
#: everything again (it needs the fact of new events, not the messages themselves).
QUEUE_SIZE = 64
#: Seconds between two log lines saying the producer fell behind.
BEHIND_LOG_S = 60.0


@dataclass(frozen=True)
class Frame:
    """One situation snapshot as every wall page shows it."""

    version: int
    situation: dict
    read_at: float  # the producer's clock when the read began (events before it are in)


class BoardLive:
    """Reads and renders the wall's situation once for every page (see the module docstring).

    Parameters
    ----------
    source : SituationSource
        The console's shared situation.
    statuses : callable
        The feeds' statuses now (readings per second, feeds connected), on the loop.
    loop : tornado IOLoop (or the same few methods)
        The server's loop: ``add_callback`` (thread-safe), ``call_later``,
        ``remove_timeout``, ``run_in_executor`` and ``add_future``.
    refresh_s : float
        Shortest time between two reads (a burst becomes one read per period).
    idle_s : float
        Longest time between two reads without events.
    clock : callable
        Monotonic seconds (tests give their own).
    """

    def __init__(self, source, statuses: Callable[[], list[dict]], *, loop,
                 refresh_s: float = 0.5, idle_s: float = 15.0,
                 clock: Callable[[], float] = time.monotonic):
        self.source, self.statuses, self.loop = source, statuses, loop
        self.refresh_s, self.idle_s, self.clock = float(refresh_s), float(idle_s), clock
        self.frame: Frame | None = None
        self.reads = 0  # situation reads made (what a test counts)
        self.closed = False
        self._listeners: list[Callable[[], None]] = []
        self._warm: dict[Hashable, tuple[Callable[[dict], Any], int]] = {}
        self._busy = False
        self._dirty = False
        self._woken = False
        self._timer = None
        self._idle_timer = None
        self._last_read = -float("inf")
        self._last_reading_s: float | None = None
        self._behind_logged = -float("inf")
        self.fell_behind = 0  # wakes that found the queue overflowed (events coalesced)
        hub = source.hub
        self._events = hub.subscribe(EVENTS, maxsize=QUEUE_SIZE, notify=self._notify)
        self._readings = hub.subscribe(("reading",), maxsize=1)

    # ------------------------------------------------------------------ pages
    def add(self, listener: Callable[[], None],
            warm: tuple[Hashable, Callable[[dict], Any]] | None = None) -> None:
        """Call ``listener()`` (on the loop) after each new frame; ``warm`` = (key, fn):
        ``fn(situation)`` renders what pages of that key share, in the worker, once per
        frame whatever the number of pages with that key."""
        self._listeners.append(listener)
        if warm is not None:
            key, fn = warm
            _, n = self._warm.get(key, (fn, 0))
            self._warm[key] = (fn, n + 1)

    def remove(self, listener: Callable[[], None],
               warm_key: Hashable | None = None) -> None:
        """A page closed; the last one to go closes the producer."""
        if listener in self._listeners:
            self._listeners.remove(listener)
        if warm_key is not None and warm_key in self._warm:
            fn, n = self._warm[warm_key]
            if n <= 1:
                del self._warm[warm_key]
            else:
                self._warm[warm_key] = (fn, n - 1)
        if not self._listeners:
            self.close()

    @property
    def pages(self) -> int:
        return len(self._listeners)

    def current(self) -> Frame:
        """The newest frame for a page that opens (read now, on the loop, if there is none
        or it is older than ``idle_s``: the first wall of a quiet console)."""
        frame = self.frame
        if frame is None or self.clock() - frame.read_at >= self.idle_s:
            self._publish(self._read_now(self.statuses()), self.clock())
            self._arm_idle()
        return self.frame

    def last_reading_s(self) -> float | None:
        """Epoch seconds of the newest reading the hub published (the data is alive)."""
        messages, _ = self._readings.drain()
        if messages:
            self._last_reading_s = time.time()
        return self._last_reading_s

    # ------------------------------------------------------------------ events
    def _notify(self) -> None:  # in the publisher's thread: schedule, never read here
        if not self._woken:
            self._woken = True
            self.loop.add_callback(self._wake)

    def _wake(self) -> None:
        self._woken = False
        if self.closed:
            return
        messages, missed = self._events.drain()
        if missed:
            self.fell_behind += 1
            now = self.clock()
            if now - self._behind_logged >= BEHIND_LOG_S:
                self._behind_logged = now
                log.info("the wall fell behind a burst of events (%d messages dropped so far): "
                         "one read of the whole situation instead", self._events.dropped)
        if messages or missed:
            # whatever the events were, or if some were dropped, the next read gets them
            # all: the situation re-reads the parts their topics change
            self._dirty = True
            self._schedule()

    def _schedule(self) -> None:
        if self._busy or self._timer is not None or self.closed:
            return  # a read is running (it looks again when done) or is already due
        wait = self.refresh_s - (self.clock() - self._last_read)
        if wait <= 0:
            self._start()
        else:
            self._timer = self.loop.call_later(wait, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self._dirty and not self.closed:
            self._start()

    def _on_idle(self) -> None:
        self._idle_timer = None
        if not self.closed:
            self._dirty = True
            self._schedule()

    def _arm_idle(self) -> None:
        if self._idle_timer is not None:
            self.loop.remove_timeout(self._idle_timer)
        self._idle_timer = None if self.closed else self.loop.call_later(self.idle_s,
                                                                         self._on_idle)

    # ------------------------------------------------------------------ reading
    def _start(self) -> None:
        self._busy, self._dirty = True, False
        started = self._last_read = self.clock()
        statuses = self.statuses()
        future = self.loop.run_in_executor(None, self._read_now, statuses)
        self.loop.add_future(future, lambda f: self._done(f, started))

    def _read_now(self, statuses: Sequence[dict]) -> dict:
        """Read the situation and render what pages share (in the worker thread)."""
        sit = self.source.situation(list(statuses))
        self.reads += 1
        for fn, _ in list(self._warm.values()):
            try:
                fn(sit)
            except Exception:  # noqa: BLE001 - a page renders it itself then
                log.exception("rendering the wall's shared picture failed")
        return sit

    def _done(self, future, started: float) -> None:
        self._busy = False
        try:
            sit = future.result()
        except Exception:  # noqa: BLE001 - a failed read keeps the last picture
            log.exception("reading the wall's situation failed")
            sit = None
        if self.closed:
            return
        if sit is not None:
            self._publish(sit, started)
        self._arm_idle()
        if self._dirty:  # events arrived during the read: once more, a period after it
            self._schedule()

    def _publish(self, sit: dict, read_at: float) -> None:
        frame = self.frame
        if frame is not None and sit is frame.situation:
            self.frame = Frame(frame.version, sit, read_at)  # nothing changed: no page woken
            return
        self.frame = Frame(0 if frame is None else frame.version + 1, sit, read_at)
        for listener in list(self._listeners):
            try:
                listener()
            except Exception:  # noqa: BLE001 - a closing page must not stop the others
                log.exception("a wall page could not be told of a new frame")

    def close(self) -> None:
        """Stop listening and reading (no page left)."""
        if self.closed:
            return
        self.closed = True
        hub = self.source.hub
        hub.unsubscribe(self._events)
        hub.unsubscribe(self._readings)
        for timer in (self._timer, self._idle_timer):
            if timer is not None:
                self.loop.remove_timeout(timer)
        self._timer = self._idle_timer = None
        with _LOCK:
            for key, live in list(_LIVE.items()):
                if live is self:
                    del _LIVE[key]


_LIVE: dict[tuple, BoardLive] = {}
_LOCK = threading.Lock()


def live_for(source, ingests: Sequence, *, refresh_s: float = 0.5,
             idle_s: float = 15.0, loop=None) -> BoardLive:
    """The producer shared by the wall pages of one console (made by its first page)."""
    if loop is None:
        from tornado.ioloop import IOLoop

        loop = IOLoop.current()
    key = (id(source), tuple(id(i) for i in ingests), float(refresh_s), float(idle_s),
           id(loop))
    with _LOCK:
        live = _LIVE.get(key)
        if live is None or live.closed:
            live = _LIVE[key] = BoardLive(source, lambda: statuses_of(ingests), loop=loop,
                                          refresh_s=refresh_s, idle_s=idle_s)
        return live


def statuses_of(ingests: Sequence) -> list[dict]:
    """Each feed's status; a broken ingest reads as a disconnected feed."""
    out = []
    for ingest in ingests:
        try:
            out.append(ingest.status())
        except Exception:  # noqa: BLE001
            out.append({"connected": False})
    return out
