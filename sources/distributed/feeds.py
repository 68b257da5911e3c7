"""The feeds' liveness in distributed mode: the ingest node announces it, the walls show it.

A serving process has no feed of its own (the centre's ingest node reads them and publishes
every batch on the log), so without this its wall would say "no feed" while data flows. The
ingest node's :class:`FeedBeacon` announces, every second, the status of each of its feeds on
``status.<centre>.feeds`` (plain NATS: a state the next announcement replaces, not an event
kept in the log). Each serving process's :class:`CentreFeeds` keeps the newest announcement
and stands in the console's ``ingests`` for the pages: one "feed", the centre's ingest node,
connected while its announcements arrive and every one of its feeds is connected, with the
counters summed over its feeds. An ingest node that goes silent reads as disconnected after
``silent_s``; the wall's freshness then counts from the last reading it stored.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any

import param

from sources.hub import Hub
from sources.service import Service

from .log import EventLog, LogUnavailable

log = logging.getLogger("console.distributed")

#: Counters summed over the ingest node's feeds.
SUMMED = ("received", "rejected", "duplicates", "stored", "stored_readings", "rate_per_s",
          "reconnects", "listener_errors", "write_errors")


def status_subject(code: str) -> str:
    """Where the ingest node of centre ``code`` announces its feeds."""
    return f"status.{code}.feeds"


class FeedBeacon(Service):
    """The ingest node's announcement of its feeds' statuses (module docstring)."""

    log = param.ClassSelector(class_=EventLog, doc="The centre's log.")
    code = param.String(doc="The centre.")
    ingests = param.List(default=[], doc="The node's feed ingests.")
    interval_s = param.Number(default=1.0, bounds=(0.05, None), doc="Seconds between two.")

    @property
    def service_name(self) -> str:
        return "FeedBeacon"

    def run_once(self) -> None:
        try:
            self.log.announce(status_subject(self.code), {
                "code": self.code, "at": time.time(),
                "feeds": [i.status() for i in self.ingests]})
        except LogUnavailable:  # the next one, once the log is back
            pass


class CentreFeeds(param.Parameterized):
    """The centre's feeds as a serving process sees them (module docstring).

    Has what the pages ask of a feed ingest: :meth:`status`, and :meth:`start`,
    :meth:`stop`, :meth:`add_listener` for the console (the batches themselves come from the
    log, applied by the materialiser; the alarm engine runs at the ingest node).
    """

    log = param.ClassSelector(class_=EventLog, doc="The process's connection to the log.")
    code = param.String(doc="The centre.")
    hub = param.ClassSelector(class_=Hub, default=None, allow_None=True,
                              doc="Told ``feed_status`` at each announcement (the walls).")
    silent_s = param.Number(default=5.0, bounds=(0.1, None),
                            doc="Seconds without an announcement before the node reads as "
                                "disconnected.")

    def __init__(self, **params):
        super().__init__(**params)
        self._lock = threading.Lock()
        self._last: dict | None = None
        self._heard_at: float | None = None
        self.heard = 0

    @property
    def url(self) -> str:
        return f"ingest node {self.code}"

    def start(self) -> CentreFeeds:
        self.log.listen(status_subject(self.code), self._heard)
        return self

    def stop(self) -> None:
        """Nothing of its own: the subscription ends with the log's connection."""

    def add_listener(self, fn) -> None:
        """Batches are applied from the log here, not received: nothing to listen to."""

    def _heard(self, payload: dict) -> None:
        if payload.get("code") != self.code or not isinstance(payload.get("feeds"), list):
            return
        with self._lock:
            self._last, self._heard_at = payload, time.time()
            self.heard += 1
        if self.hub is not None:
            self.hub.publish("feed_status", self.status())

    def status(self) -> dict[str, Any]:
        """One status for the centre's ingest node, shaped like a feed ingest's."""
        with self._lock:
            last, heard_at = self._last, self._heard_at
        feeds = [f for f in (last or {}).get("feeds", []) if isinstance(f, dict)]
        alive = heard_at is not None and time.time() - heard_at <= self.silent_s
        out: dict[str, Any] = {"url": f"{self.url} ({len(feeds)} feeds)",
                               "connected": bool(alive and feeds and
                                                 all(f.get("connected") for f in feeds))}
        for key in SUMMED:
            values = [f.get(key) for f in feeds if isinstance(f.get(key), int | float)]
            out[key] = round(sum(values), 1) if key == "rate_per_s" else int(sum(values))
        stamps = [f.get("last_message_at") for f in feeds
                  if isinstance(f.get("last_message_at"), int | float)]
        lags = [f.get("lag_s") for f in feeds if isinstance(f.get("lag_s"), int | float)]
        reasons: dict[str, int] = {}
        for f in feeds:
            for reason, n in (f.get("rejected_by_reason") or {}).items():
                if isinstance(n, int):
                    reasons[str(reason)] = reasons.get(str(reason), 0) + n
        errors = [str(f["last_error"]) for f in feeds if f.get("last_error")]
        out.update(last_message_at=max(stamps) if stamps else None,
                   lag_s=max(lags) if lags else None, rejected_by_reason=reasons,
                   last_error=(errors[0] if errors else
                               None if alive or heard_at is None else
                               f"no status from the ingest node for "
                               f"{time.time() - heard_at:.0f} s"),
                   announced_at=heard_at)
        return out
