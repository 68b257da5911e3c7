"""Retention of raw sensor readings: a console that runs for weeks must not fill its disk.

At the demo feed's pace (every sensor every 5–10 s) the store takes ≈ 290 million readings a
day. Views need at most 72 h of them (hydrographs, the rainfall replay, sparklines), so
readings older than ``keep_days`` are deleted periodically, in small slices so that the
ingest never waits long for the write lock. Alarms, warnings, incidents, quakes and hotspots
are kept: they are few and the reports need them.
"""
from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import param

from sources.service import Service
from sources.store.store import Store

log = logging.getLogger(__name__)


class ReadingRetention(Service):
    """Deletes readings older than ``keep_days``, every ``interval_s``, in time slices."""

    store = param.ClassSelector(class_=Store, doc="The console's read-write store.")
    keep_days = param.Number(default=7.0, bounds=(0, None),
                             doc="Days of raw readings kept (0: keep everything).")
    interval_s = param.Number(default=3600.0, bounds=(1, None),
                              doc="Seconds between two clean-ups.")
    slice_hours = param.Number(default=1.0, bounds=(0.01, None),
                               doc="Hours of readings deleted per transaction.")
    stop_timeout_s = param.Number(default=30.0, bounds=(0, None),
                                  doc="Seconds a stop waits for the slice being deleted.")
    deleted = param.Integer(default=0, doc="Readings deleted since start.")
    audit = param.Parameter(default=None, doc="The audit log (sources.access.audit.AuditLog) "
                            "whose entries older than ``keep_audit_days`` go, with an anchor.")
    keep_audit_days = param.Number(default=365.0, bounds=(180, None),
                                   doc="Days of audit log kept (at least 180: the law's "
                                       "minimum for network logs).")

    def purge(self, now: datetime | None = None) -> int:
        """Delete the readings older than the cut-off now; return how many went."""
        if not self.keep_days:
            return 0
        cutoff = (now or datetime.now(UTC)) - timedelta(days=self.keep_days)
        oldest = self.store.scalar("SELECT min(ts) FROM readings WHERE ts < ?", [cutoff])
        total = 0
        step = timedelta(hours=self.slice_hours)
        start = oldest
        while start is not None and start < cutoff and not self.stopping:
            end = min(start + step, cutoff)
            with self.store.transaction() as cur:
                n = cur.execute("DELETE FROM readings WHERE ts < ?", [end]).fetchone()[0]
            total += n
            start = end
        self.deleted += total
        if total:
            log.info("retention: %d readings older than %s deleted", total, cutoff)
        return total

    def run_once(self) -> None:
        self.purge()
        if self.audit is not None:
            self.audit.prune(datetime.now(UTC) - timedelta(days=self.keep_audit_days),
                             actor=None)

    def start(self) -> ReadingRetention:
        if self.keep_days or self.audit is not None:  # keeping everything needs no thread
            super().start()
        return self
