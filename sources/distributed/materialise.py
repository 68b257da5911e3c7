"""The materialiser: a process's own DuckDB as a view of the event log.

:class:`Materialiser` is a console service. It reads its centre's view stream from the
position stored in the view (the snapshot it started from carries it), and applies each
event in one transaction with the new position (:meth:`ViewStore.applying`), by calling the
same store-writing code the embedded console calls:

==================  ==========================================================================
event kind          applied with
==================  ==========================================================================
``feed``            :meth:`FeedWriter._write` (exactly once by feed and seq)
``alarms``          :func:`sources.alarms.engine.write_changes` (the engine's own write)
``escalate``        :meth:`AlarmSource.escalate_overdue` at the event's time
``call``            the named method of a source (:data:`REPLICATED`), with the event's
                    arguments and time: alarm steps, dispatch steps, incidents, teams, tasks
``warning``         :meth:`WarningSource._append` with the version the officer published
==================  ==========================================================================

Every process applies the same events in the same order from the same snapshot, so every
view holds the same rows; an event the code refuses (the officer who lost a race by a
hair, a dispatch short of stock) is refused identically everywhere and changes nothing.
The pages hear of each applied event through the hub, after the commit.
"""
from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import param

from sources.alarms.desk import AlarmActionError, AlarmSource
from sources.alarms.engine import write_changes
from sources.geo import CountyGeometry
from sources.hub import Hub
from sources.ingest.messages import Batch
from sources.ingest.writer import FeedWriter
from sources.inventory.common import InventoryError
from sources.service import Service
from sources.warnings.warnings import WarningInputError, WarningSource

from .log import EventLog, LogMessage, LogUnavailable, decode
from .viewstore import ViewStore

log = logging.getLogger("console.distributed")

#: ``source -> methods`` an event of kind ``call`` may name (anything else is refused).
REPLICATED: dict[str, tuple[str, ...]] = {
    "alarms": ("acknowledge", "dispose", "close"),
    "materials": ("request_dispatch", "approve", "reject", "ship", "receive", "adjust"),
    "experts": ("draw", "redraw", "rate", "record_fee"),
    "command": ("open_incident", "take_over", "open_from_alarm", "correct", "set_grade",
                "launch_response", "tick_item", "add_note", "close_incident", "open_shelter",
                "request_materials", "draw_experts", "submit_report", "revise_report",
                "assign_team", "advance_task"),
    "drills": ("record_start", "record_stop", "purge_rows"),
}
#: Subjects of high-volume events whose last sequence nobody waits for.
UNTRACKED = (".up.feed", ".up.alarms", ".up.escalate")
#: Msg ids of applied events remembered (for an officer waiting on the one they saw last).
RECENT = 20_000
#: Refusals the source code raises on purpose: the same on every replica.
REFUSALS = (AlarmActionError, InventoryError, WarningInputError, KeyError)


class Targets(param.Parameterized):
    """What events are applied to: the store, the hub and the sources of one process."""

    store = param.ClassSelector(class_=ViewStore, doc="The view store.")
    hub = param.ClassSelector(class_=Hub, doc="The process's hub (pages listen to it).")
    alarms = param.ClassSelector(class_=AlarmSource, default=None, allow_None=True,
                                 doc="The alarm desk.")
    warnings = param.ClassSelector(class_=WarningSource, default=None, allow_None=True,
                                   doc="Warnings (None: warning events are not applied).")
    materials = param.Parameter(default=None, doc="The material inventory (MaterialSource).")
    experts = param.Parameter(default=None, doc="The expert registry (ExpertSource).")
    drills = param.Parameter(default=None, doc="Exercises (DrillSource).")
    command = param.Parameter(default=None, doc="Incident command (CommandSource).")
    geography = param.ClassSelector(class_=CountyGeometry, default=None, allow_None=True,
                                    doc="Counties (the feed writers' warning checks).")
    feed_listeners = param.List(default=[], doc="``fn(topic, table)`` after each feed batch "
                                "(the ingest node's alarm engine).")

    def __init__(self, **params):
        super().__init__(**params)
        self._writers: dict[str, FeedWriter] = {}

    @classmethod
    def of_console(cls, console) -> Targets:
        return cls(store=console.store, hub=console.hub, alarms=console.alarms,
                   warnings=console.warnings, materials=console.materials,
                   experts=console.experts, drills=console.drills, command=console.command, geography=console.geography)

    def writer(self, url: str) -> FeedWriter:
        """The feed writer of one feed (its stored seqs read once)."""
        w = self._writers.get(url)
        if w is None:
            geo = self.geography or CountyGeometry(self.store)
            w = FeedWriter(url, self.store, hub=self.hub, geography=geo)
            w.load()
            for fn in self.feed_listeners:
                w.add_listener(fn)
            self._writers[url] = w
        return w

    def forget_writers(self) -> None:
        """After a failed event: read the stored seqs again (memory may be ahead)."""
        self._writers.clear()


# ---------------------------------------------------------------------- appliers
def batch_of(p: dict) -> Batch:
    """A feed batch from its event payload."""
    b = Batch()
    b.seq, b.ts_us, b.sensor_id, b.value = p["seq"], p["ts_us"], p["sensor_id"], p["value"]
    b.events = [(k, rec) for k, rec in p["events"]]
    b.rejects = [(reason, raw) for reason, raw in p["rejects"]]
    b.received_at = p["received_at"]
    b.drills = {int(k): v for k, v in (p.get("drills") or {}).items()}
    b.newest_ts_us = p.get("newest_ts_us")
    return b


def payload_of(url: str, batch: Batch) -> dict:
    """The event payload of a feed batch."""
    return {"url": url, "seq": batch.seq, "ts_us": batch.ts_us, "sensor_id": batch.sensor_id,
            "value": batch.value, "events": [[k, rec] for k, rec in batch.events],
            "rejects": [[r, raw] for r, raw in batch.rejects],
            "received_at": batch.received_at, "drills": batch.drills,
            "newest_ts_us": batch.newest_ts_us}


def _feed(t: Targets, p: dict) -> Any:
    t.writer(p["url"])._write(batch_of(p))


def _alarms(t: Targets, p: dict) -> Any:
    return write_changes(t.store, t.hub, p["raised"], p["updates"], p["actions"])


def _escalate(t: Targets, p: dict) -> Any:
    if t.alarms is not None:
        return AlarmSource.escalate_overdue(t.alarms, now=p["at"])


def _call(t: Targets, p: dict) -> Any:
    name, method = p["source"], p["method"]
    if method not in REPLICATED.get(name, ()):
        raise PermissionError(f"{name}.{method} is not an event this console applies")
    source = getattr(t, name)
    if source is None:
        return None
    return getattr(type(source), method)(source, *p.get("args", ()), **p.get("kwargs", {}))


def _warning(t: Targets, p: dict) -> Any:
    if t.warnings is not None:
        return WarningSource._append(t.warnings, p["row"], p.get("token"))


APPLIERS = {"feed": _feed, "alarms": _alarms, "escalate": _escalate, "call": _call,
            "warning": _warning}


# ---------------------------------------------------------------------- the service
class Materialiser(Service):
    """Applies a view stream of the event log to this process's store (module docstring)."""

    run_at_start = True

    log = param.ClassSelector(class_=EventLog, doc="The process's connection to the log.")
    stream = param.String(doc="The stream applied (VIEW_<centre>, or EV_<centre>).")
    targets = param.ClassSelector(class_=Targets, doc="What events are applied to.")
    kinds = param.List(default=None, allow_None=True, item_type=str,
                       doc="Event kinds applied (None: all); others only move the position.")
    batch = param.Integer(default=512, bounds=(1, None), doc="Events read at once.")
    wait_s = param.Number(default=0.5, bounds=(0.01, None),
                          doc="Seconds a read waits for the next event.")
    interval_s = param.Number(default=0.001, doc="Pause between reads.")
    snapshot_bucket = param.String(default=None, allow_None=True,
                                   doc="Publish a snapshot of the view to this bucket.")
    snapshot_every_s = param.Number(default=300.0, bounds=(1, None),
                                    doc="Seconds between published snapshots.")

    def __init__(self, **params):
        super().__init__(**params)
        self.position = 0
        self.subjects: dict[str, str] = {}  # subject -> msg id of its last applied event
        self.recent: OrderedDict[str, None] = OrderedDict()  # msg ids applied lately
        self.applied = 0
        self.refused = 0
        self.unavailable = 0
        self.caught_up_at: float | None = None
        self._cv = threading.Condition()
        self._waiting: dict[str, tuple | None] = {}
        self._last_snapshot = time.monotonic()

    @property
    def service_name(self) -> str:
        return "Materialiser"

    @property
    def store(self) -> ViewStore:
        return self.targets.store

    def on_start(self) -> None:
        self.position = self.store.position(self.stream)
        self.subjects = self.store.subjects()

    # ------------------------------------------------------------------ reading
    def run_once(self) -> None:
        try:
            msgs = self.log.fetch(self.stream, self.position, batch=self.batch, wait=self.wait_s)
        except LogUnavailable:
            self.unavailable += 1
            self._stop.wait(0.25)
            return
        for m in msgs:
            if self.stopping:
                return
            self.apply(m)
        if not msgs:
            self.caught_up_at = time.time()
        if self.snapshot_bucket and time.monotonic() - self._last_snapshot > self.snapshot_every_s:
            self._last_snapshot = time.monotonic()
            self.publish_snapshot()

    def catch_up(self, timeout: float = 60.0) -> int:
        """Apply in the caller's thread until the stream's end as it is now (before start)."""
        end = self.log.last_seq(self.stream)
        deadline = time.monotonic() + timeout
        self.on_start()
        while self.position < end:
            if time.monotonic() > deadline:
                raise LogUnavailable(f"{self.stream}: still at {self.position} of {end}")
            try:
                msgs = self.log.fetch(self.stream, self.position, batch=self.batch, wait=0.5)
            except LogUnavailable:
                time.sleep(0.25)
                continue
            for m in msgs:
                self.apply(m)
        return self.position

    # ------------------------------------------------------------------ applying
    def apply(self, m: LogMessage) -> None:
        """Apply one event with its position, in one transaction."""
        fn = APPLIERS.get(m.kind or "")
        wanted = fn is not None and (self.kinds is None or m.kind in self.kinds)
        result = error = None
        tracked = not m.subject.endswith(UNTRACKED)
        try:
            payload = decode(m.data) if wanted else None
            with self.store.applying() as cur:
                if wanted:
                    result = fn(self.targets, payload)
                self._record(cur, m, tracked)
        except Exception as exc:  # noqa: BLE001 - refused everywhere alike; never stuck
            error = exc
            self.refused += 1
            self.targets.forget_writers()
            if not isinstance(exc, REFUSALS):
                log.exception("event %s (%s, %s) not applied", m.seq, m.kind, m.subject)
            with self.store.applying() as cur:
                self._record(cur, m, tracked)
        else:
            self.applied += 1
        with self._cv:
            self.position = m.seq
            if tracked:
                self.subjects[m.subject] = m.msg_id
                self.recent[m.msg_id] = None
                if len(self.recent) > RECENT:
                    self.recent.popitem(last=False)
            if m.msg_id in self._waiting:
                self._waiting[m.msg_id] = (result, error)
            self._cv.notify_all()

    def _record(self, cur, m: LogMessage, tracked: bool) -> None:
        cur.execute("INSERT OR REPLACE INTO log_positions VALUES (?, ?)", [self.stream, m.seq])
        if tracked:
            cur.execute("INSERT OR REPLACE INTO log_subjects VALUES (?, ?, ?)",
                        [m.subject, m.msg_id, m.seq])

    # ------------------------------------------------------------------ waiting
    def expect(self, msg_id: str) -> None:
        """Keep the outcome of the event ``msg_id`` when it is applied (:meth:`outcome`)."""
        with self._cv:
            self._waiting[msg_id] = None

    def outcome(self, msg_id: str, timeout: float) -> tuple[Any, BaseException | None]:
        """``(result, error)`` of applying the event ``msg_id`` here (waits for it)."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while self._waiting.get(msg_id) is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    self._waiting.pop(msg_id, None)
                    raise LogUnavailable("the action is on the log but not yet shown here")
                self._cv.wait(left)
            return self._waiting.pop(msg_id)

    def wait_applied(self, subj: str, msg_id: str | None, timeout: float) -> bool:
        """Wait until the event ``msg_id`` on ``subj`` has been applied here (the last event
        on an object the officer acts on: the action is checked against the view after it)."""
        if msg_id is None:
            return True
        deadline = time.monotonic() + timeout
        with self._cv:
            while self.subjects.get(subj) != msg_id and msg_id not in self.recent:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cv.wait(left)
        return True

    def forget(self, msg_id: str) -> None:
        """Stop waiting for ``msg_id`` (its publish was refused)."""
        with self._cv:
            self._waiting.pop(msg_id, None)

    # ------------------------------------------------------------------ snapshots
    def publish_snapshot(self) -> None:
        """Copy the view (with its position) and publish it for new serving processes."""
        tmp = Path(tempfile.mkdtemp(prefix="view-snapshot-"))
        try:
            target = tmp / "view.duckdb"
            with self.store._write_lock:  # between two events: a consistent file
                self.store.checkpoint()
                shutil.copy2(self.store.path, target)
            self.log.put_snapshot(self.snapshot_bucket, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def status(self) -> dict:
        out = super().status()
        out.update(stream=self.stream, position=self.position, applied=self.applied,
                   refused=self.refused, unavailable=self.unavailable,
                   caught_up_at=self.caught_up_at)
        return out
