"""The warning expiry timer: publishes ``warning`` messages when warnings take effect or
expire, so open pages drop an expired warning by themselves. ``dashboards.warnings``
starts one per process (``start_services``)."""
from __future__ import annotations

import threading

import param

from sources.warnings.warnings import WarningSource, utcnow


class WarningExpiry(param.Parameterized):
    """A thread that publishes ``warning`` messages when warnings take effect or expire.

    It sleeps until the next effective/expiry time (or a ``warning`` message on the hub) and
    publishes each status change as ``{"warning_id", "status", "version"}``.
    """

    source = param.ClassSelector(class_=WarningSource, doc="Warnings to watch.")
    max_sleep_s = param.Number(default=30.0, doc="Longest sleep between two checks.")

    def __init__(self, **params):
        super().__init__(**params)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last: dict[str, str] = {}
        self._sub = None

    def start(self) -> WarningExpiry:
        if self._thread is None:
            hub = self.source.hub
            if hub is not None:
                self._sub = hub.subscribe(["warning"], maxsize=10, notify=self._wake.set)
            self._last = self._statuses()
            self._thread = threading.Thread(target=self._run, name="warning-expiry", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._sub is not None and self.source.hub is not None:
            self.source.hub.unsubscribe(self._sub)
        if self._thread is not None:
            self._thread.join(5)

    def _statuses(self) -> dict[str, str]:
        df = self.source.current()
        return dict(zip(df["warning_id"], df["status"], strict=True))

    def check(self) -> list[dict]:
        """Compare statuses with the last check; publish and return the changes."""
        now = self._statuses()
        changes = [{"warning_id": w, "status": s} for w, s in now.items()
                   if self._last.get(w) != s and s in ("expired", "active")
                   and self._last.get(w) is not None]
        self._last = now
        if changes and self.source.hub is not None:
            self.source.hub.publish("warning", changes)
        return changes

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self._sub is not None:
                    self._sub.drain()
                self.check()
                nxt = self.source.next_transition()
            except Exception as exc:  # the store may be closing; keep the thread alive
                self.param.warning(f"warning expiry check failed: {exc!r}")
                nxt = None
            delay = self.max_sleep_s
            if nxt is not None:
                delay = min(delay, max(0.0, (nxt - utcnow()).total_seconds()) + 0.02)
            self._wake.wait(delay)
            self._wake.clear()
