"""``/alarms``: the duty officer's alarm desk: queue, report, feed status and quarantine.

``start_services(runtime)`` (called once by ``serve.py``) builds the alarm engine, hands it
every ingest's committed reading batches, and runs a timer thread for stale sensors,
escalation of unacknowledged red alarms, and forgetting alarms officers closed.
"""
from __future__ import annotations

import logging
import threading
from typing import ClassVar

import panel as pn
import param

from sources.alarms.desk import AlarmSource
from sources.alarms.engine import AlarmEngine
from sources.runtime import Runtime
from views.alarm_queue import AlarmQueue
from views.alarm_report import AlarmReport
from views.feed_status import FeedStatus

from .base import Dashboard
from .theme import page

log = logging.getLogger("console.alarms")


class AlarmServices(param.Parameterized):
    """The server-wide alarm services: engine + timer (stale, escalation, closed alarms)."""

    engine = param.ClassSelector(class_=AlarmEngine, doc="The alarm engine.")
    desk = param.ClassSelector(class_=AlarmSource, doc="The desk (escalation).")
    period_s = param.Number(default=1.0, bounds=(0.05, None), doc="Seconds between timer ticks.")
    escalate_every = param.Integer(default=10, bounds=(1, None),
                                   doc="Check escalation every this many ticks.")

    def __init__(self, **params):
        super().__init__(**params)
        self._stop = threading.Event()
        self._ticks = 0
        self._closed = self.desk.hub.subscribe(["alarm"], maxsize=100_000)
        self._thread = threading.Thread(target=self._run, name="alarm-timer", daemon=True)

    def start(self) -> AlarmServices:
        self._thread.start()
        return self

    def tick(self, now: float | None = None) -> None:
        """One round: forget closed alarms, raise stale ones, escalate overdue red ones."""
        messages, _ = self._closed.drain()
        closed = {d["alarm_id"] for m in messages for d in m.payload
                  if d.get("state") == "closed"}
        if closed:
            self.engine.forget(closed)
        self.engine.tick(now)
        self._ticks += 1
        if self._ticks % self.escalate_every == 0:  # minutes-scale: no need every second
            self.desk.escalate_overdue()

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - the timer must outlive one bad round
                log.exception("alarm timer")

    def stop(self) -> None:
        self._stop.set()
        self.desk.hub.unsubscribe(self._closed)
        if self._thread.is_alive():
            self._thread.join(5)


def start_services(runtime: Runtime) -> AlarmServices:
    """Build the alarm engine once, attach it to every ingest, start the timer."""

    def build():
        engine = AlarmEngine(store=runtime.store, hub=runtime.hub)
        desk = AlarmSource(store=runtime.store, hub=runtime.hub)
        for ingest in runtime.ingests:
            ingest.add_listener(engine.on_batch)
        services = AlarmServices(engine=engine, desk=desk).start()
        runtime.on_stop(services.stop)
        return services

    return runtime.shared("alarm_services", build)


class AlarmDesk(Dashboard):
    """The duty officer's alarm desk."""

    route: ClassVar[str] = "alarms"
    title_key: ClassVar[str] = "app.alarms"
    description_key: ClassVar[str] = "app.alarms.desc"
    order: ClassVar[int] = 50

    def layout(self):
        rt = self.runtime
        source = AlarmSource(store=rt.store, hub=rt.hub)
        queue = AlarmQueue(source=source, lang=self.lang, height=520)
        report = AlarmReport(source=source, lang=self.lang)
        feeds = FeedStatus(source=source, ingests=list(rt.ingests), lang=self.lang)
        tabs = pn.Tabs(
            (self.t("alarm.tab.queue"), queue),
            (self.t("alarm.tab.report"), report),
            (self.t("alarm.tab.feeds"), feeds),
            dynamic=False, sizing_mode="stretch_width",
        )
        main = pn.Column(tabs, sizing_mode="stretch_both", margin=(8, 16))
        return page(self.t("app.alarms"), main, lang=self.lang, route=self.route)

