"""The alarm timer: the alarm engine's periodic work, as a console service.

Every ``interval_s`` it raises ``stale`` alarms for silent sensors (:meth:`AlarmEngine.tick`),
forgets alarms officers closed before they cleared (so a new breach raises a new one), and
every ``escalate_every`` rounds escalates red alarms left unacknowledged
(:meth:`AlarmSource.escalate_overdue`). The console owns one, whatever pages are served.
"""
from __future__ import annotations

import param

from sources.alarms.desk import AlarmSource
from sources.alarms.engine import AlarmEngine
from sources.service import Service


class AlarmTimer(Service):
    """Stale sensors, escalation of unacknowledged red alarms, forgetting closed alarms."""

    run_at_start = False

    engine = param.ClassSelector(class_=AlarmEngine, doc="The alarm engine.")
    desk = param.ClassSelector(class_=AlarmSource, doc="The desk (escalation).")
    interval_s = param.Number(default=1.0, bounds=(0.01, None),
                              doc="Seconds between timer rounds.")
    escalate_every = param.Integer(default=10, bounds=(1, None),
                                   doc="Check escalation every this many rounds.")

    def __init__(self, **params):
        super().__init__(**params)
        self._ticks = 0
        self._closed = None  # hub subscription to alarm changes (closed by officers)

    def on_start(self) -> None:
        if self.desk.hub is not None:
            self._closed = self.desk.hub.subscribe(["alarm"], maxsize=100_000)

    def on_stop(self) -> None:
        if self._closed is not None:
            self.desk.hub.unsubscribe(self._closed)
            self._closed = None

    def tick(self, now: float | None = None) -> None:
        """One round: forget closed alarms, raise stale ones, escalate overdue red ones."""
        if self._closed is not None:
            messages, _ = self._closed.drain()
            closed = {d["alarm_id"] for m in messages for d in m.payload
                      if d.get("state") == "closed"}
            if closed:
                self.engine.forget(closed)
        self.engine.tick(now)
        self._ticks += 1
        if self._ticks % self.escalate_every == 0:  # minutes-scale: no need every second
            self.desk.escalate_overdue()

    def run_once(self) -> None:
        self.tick()
