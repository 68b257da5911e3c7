"""The warning expiry service: publishes ``warning`` messages when warnings take effect or
expire, so open pages drop an expired warning by themselves. The console owns one."""
from __future__ import annotations

import param

from sources.service import Service
from sources.warnings.warnings import WarningSource, utcnow


class WarningExpiry(Service):
    """Publishes ``warning`` messages when warnings take effect or expire.

    It sleeps until the next effective/expiry time (at most ``interval_s``), or until a
    ``warning`` message on the hub wakes it, and publishes each status change as
    ``{"warning_id", "status"}``.
    """

    source = param.ClassSelector(class_=WarningSource, doc="Warnings to watch.")
    interval_s = param.Number(default=30.0, bounds=(0.01, None),
                              doc="Longest sleep between two checks.")

    def __init__(self, **params):
        super().__init__(**params)
        self._last: dict[str, str] = {}
        self._sub = None

    def on_start(self) -> None:
        hub = self.source.hub
        if hub is not None:
            self._sub = hub.subscribe(["warning"], maxsize=10, notify=self.wake)
        self._last = self._statuses()

    def on_stop(self) -> None:
        if self._sub is not None and self.source.hub is not None:
            self.source.hub.unsubscribe(self._sub)
            self._sub = None

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

    def run_once(self) -> None:
        if self._sub is not None:
            self._sub.drain()  # what woke us is in the store; the queue only wakes
        self.check()

    def next_wait(self) -> float:
        nxt = self.source.next_transition()
        if nxt is None:
            return self.interval_s
        return min(self.interval_s, max(0.0, (nxt - utcnow()).total_seconds()) + 0.02)
