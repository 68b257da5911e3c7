"""The one base of every background job of the console (retention, expiry, snapshots, ...).

A :class:`Service` is a thread with an owner: the :class:`~sources.console.Console` builds
it, starts it and stops it, in a declared order. Subclasses implement :meth:`Service.run_once`
(one round of work) and, where the period is not fixed, :meth:`Service.next_wait`. The base
does the rest, once: the thread and its name, the loop, waking up early (:meth:`Service.wake`,
e.g. from a hub notification), errors logged and counted without killing the thread, a stop
that is bounded in time and interrupts a long round (:meth:`Service.interrupt`), and a
:meth:`Service.status` that ``/health`` shows.

Threading contract: ``run_once`` runs only in the service's own thread; the counters in
:meth:`status` are written by that thread alone (single writer) and read by others.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import ClassVar

import param

log = logging.getLogger(__name__)


class Service(param.Parameterized):
    """A periodic (or one-shot) background job owned by the console.

    ``interval_s = None`` runs :meth:`run_once` a single time and ends (a warm-up).
    """

    #: Run a first round as soon as the thread starts (else after the first wait).
    run_at_start: ClassVar[bool] = True

    interval_s = param.Number(default=60.0, allow_None=True, bounds=(0.001, None),
                              doc="Seconds between two rounds (None: run once).")
    stop_timeout_s = param.Number(default=10.0, bounds=(0, None),
                                  doc="Seconds :meth:`stop` waits for the thread to end.")

    def __init__(self, **params):
        super().__init__(**params)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.runs = 0
        self.errors = 0
        self.last_error: str | None = None
        self.last_run_s: float | None = None  # how long the last round took
        self.last_run_at: float | None = None  # epoch seconds of its end

    # ------------------------------------------------------------------ to implement
    @property
    def service_name(self) -> str:
        """The thread's name and the key in ``/health``."""
        return type(self).__name__

    def run_once(self) -> None:
        """One round of work (in the service's thread)."""
        raise NotImplementedError

    def next_wait(self) -> float | None:
        """Seconds until the next round (default ``interval_s``; None: no more rounds)."""
        return self.interval_s

    def on_start(self) -> None:
        """Before the thread starts (subscribe, load state). Errors abort the start."""

    def on_stop(self) -> None:
        """After the thread ended (unsubscribe, release)."""

    def interrupt(self) -> None:
        """Break a long round in progress (called by :meth:`stop` before it waits)."""

    # ------------------------------------------------------------------ lifecycle
    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` was called: long rounds check it to end early."""
        return self._stop.is_set()

    def start(self) -> Service:
        """Start the thread (once)."""
        if self._thread is None:
            self.on_start()
            self._thread = threading.Thread(target=self._loop, name=self.service_name,
                                            daemon=True)
            self._thread.start()
        return self

    def wake(self) -> None:
        """Run the next round now instead of at the end of the wait (thread-safe)."""
        self._wake.set()

    def stop(self, timeout: float | None = None) -> bool:
        """Stop the thread and wait for it; True if it ended within the timeout."""
        self._stop.set()
        self._wake.set()
        ended = True
        if self._thread is not None:
            try:
                self.interrupt()
            except Exception:  # noqa: BLE001 - the round may have finished meanwhile
                log.debug("interrupting %s", self.service_name, exc_info=True)
            self._thread.join(self.stop_timeout_s if timeout is None else timeout)
            ended = not self._thread.is_alive()
            if not ended:
                log.error("%s did not stop within %.0f s", self.service_name,
                          self.stop_timeout_s if timeout is None else timeout)
        try:
            self.on_stop()
        except Exception:  # noqa: BLE001 - keep stopping the rest of the console
            log.exception("stopping %s", self.service_name)
        return ended

    def run_now(self) -> None:
        """One round in the caller's thread, errors counted and logged (tests, warm-up)."""
        self._round()

    def _round(self) -> None:
        started = time.perf_counter()
        try:
            self.run_once()
        except Exception as exc:  # noqa: BLE001 - a bad round never kills the service
            if self.stopping:
                return
            self.errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.exception("%s failed", self.service_name)
        else:
            self.runs += 1
            self.last_error = None
        self.last_run_s = time.perf_counter() - started
        self.last_run_at = time.time()

    def _loop(self) -> None:
        wait = 0.0 if self.run_at_start else self._next_wait()
        while wait is not None and not self._stop.is_set():
            if wait > 0:
                self._wake.wait(wait)
                self._wake.clear()
                if self._stop.is_set():
                    return
            self._round()
            if self.interval_s is None:
                return
            wait = self._next_wait()

    def _next_wait(self) -> float | None:
        try:
            return self.next_wait()
        except Exception:  # noqa: BLE001 - e.g. the store closing: try again later
            log.exception("%s: next wait", self.service_name)
            return self.interval_s or 1.0

    def status(self) -> dict:
        """What ``/health`` shows of this service."""
        return {"running": self.running, "runs": self.runs, "errors": self.errors,
                "last_error": self.last_error,
                "last_run_s": None if self.last_run_s is None else round(self.last_run_s, 3),
                "last_run_at": self.last_run_at}
