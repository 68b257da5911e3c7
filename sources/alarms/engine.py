"""The alarm engine: every reading against its sensor's thresholds, vectorised per batch.

Levels (the colours the duty officers know):

============  =======  =====================================================
kind          level    condition
============  =======  =====================================================
``hi_hi``     red      value >= ``hi_hi``
``lo_lo``     red      value <= ``lo_lo``
``hi``        orange   value >= ``hi``
``lo``        orange   value <= ``lo``
``stale``     yellow   no reading for ``stale_periods`` x ``period_s``
============  =======  =====================================================

Rules
-----
- One open threshold alarm per sensor. A breach of the next limit in the same direction
  (``hi`` -> ``hi_hi``) **upgrades** the open alarm (kind, level; action ``upgrade``): the
  duty officer keeps one row per incident, with its original start. It never downgrades.
- The alarm clears by itself (``cleared_at``, action ``clear``) when the value has stayed back
  within limits *minus the deadband* (``v < hi - deadband`` / ``v > lo + deadband``) for
  ``hold_s`` seconds of event time; ``cleared_at`` is when it came back. A value wobbling
  between ``hi - deadband`` and ``hi`` neither raises nor starts the hold: no flapping.
- A breach in the opposite direction clears the open alarm and raises a new one.
- ``stale``: a sensor that has reported since the engine started and then stays silent for
  ``stale_periods`` x ``period_s`` of wall-clock time (checked by :meth:`tick`); it clears
  at the first reading that returns. Sensors never heard are not flagged (a registry entry
  without a feed is not an outage of that feed).
- A cleared alarm stays in the duty officers' queue until they close it (lifecycle in
  :mod:`sources.alarms.desk`); a new breach after a clear raises a new alarm.

Alarms are written in one transaction per batch (``alarms``, ``alarm_actions`` with actor
``system``) and published on the hub topic ``alarm`` as a list of dicts, each with
``alarm_id``, ``change`` (raise / upgrade / peak / clear) and the columns that changed.
On start the engine reloads the open alarms from the store.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import param
import pyarrow as pa

from sources.hub import Hub
from sources.store.store import Store

log = logging.getLogger("console.alarms")
SYSTEM = "system"
KIND_OF_CODE = {2: "hi_hi", 1: "hi", -1: "lo", -2: "lo_lo"}
CODE_OF_KIND = {v: k for k, v in KIND_OF_CODE.items()}
LEVEL_OF_KIND = {"hi_hi": "red", "lo_lo": "red", "hi": "orange", "lo": "orange",
                 "stale": "yellow"}

ALARM_SCHEMA = pa.schema([
    ("alarm_id", pa.int64()), ("sensor_id", pa.string()), ("installation_id", pa.int32()),
    ("enterprise_id", pa.int32()), ("county_code", pa.string()), ("kind", pa.string()),
    ("level", pa.string()), ("raised_at", pa.timestamp("us", tz="UTC")),
    ("trigger_value", pa.float64()), ("peak_value", pa.float64()),
    ("peak_at", pa.timestamp("us", tz="UTC")), ("state", pa.string()),
    ("drill_id", pa.string()),
])
UPDATE_SCHEMA = pa.schema([
    ("alarm_id", pa.int64()), ("kind", pa.string()), ("level", pa.string()),
    ("peak_value", pa.float64()), ("peak_at", pa.timestamp("us", tz="UTC")),
    ("cleared_at", pa.timestamp("us", tz="UTC")),
])
ACTION_SCHEMA = pa.schema([
    ("alarm_id", pa.int64()), ("action", pa.string()), ("actor", pa.string()),
    ("acted_at", pa.timestamp("us", tz="UTC")), ("note", pa.string()),
])


def utc(seconds: float | None) -> datetime | None:
    """Epoch seconds -> aware UTC datetime (None stays None)."""
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return None
    return datetime.fromtimestamp(seconds, UTC)


def epoch_seconds(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """An Arrow timestamp column as float64 epoch seconds (any unit, any zone)."""
    unit = column.type.unit
    scale = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}[unit]
    return column.cast(pa.int64()).to_numpy().astype(np.float64) / scale


class _Open:
    """An open (not yet cleared) alarm of one sensor, as the engine tracks it."""

    __slots__ = ("alarm_id", "code", "raised_at", "peak_value", "peak_at", "clear_since")

    def __init__(self, alarm_id, code, raised_at, peak_value, peak_at):
        self.alarm_id, self.code, self.raised_at = alarm_id, code, raised_at
        self.peak_value, self.peak_at = peak_value, peak_at
        self.clear_since = math.nan


class AlarmEngine(param.Parameterized):
    """Threshold, deadband, hold-time and stale alarms of every sensor of the registry.

    Feed it with :meth:`on_batch` (the ingest listener signature ``fn(topic, table)``) and
    call :meth:`tick` every second or so for stale sensors. Thread-safe: several ingests
    and the timer may call it at once.
    """

    store = param.ClassSelector(class_=Store, doc="Store holding sensors and alarms.")
    hub = param.ClassSelector(class_=Hub, allow_None=True, default=None,
                              doc="Hub on which alarm changes are published (topic 'alarm').")
    hold_s = param.Number(default=60.0, bounds=(0, None),
                          doc="Seconds (event time) a value must stay back within limits "
                              "minus deadband before the alarm clears by itself.")
    stale_periods = param.Number(default=5.0, bounds=(1, None),
                                 doc="A sensor silent for this many reporting periods is stale.")
    stale_min_s = param.Number(default=10.0, bounds=(0, None),
                               doc="Never call a sensor stale before this many seconds.")

    def __init__(self, **params):
        super().__init__(**params)
        self._lock = threading.RLock()
        self.evaluated = 0  # readings evaluated, for the benchmarks
        self._load_registry()
        self._load_open()

    # ------------------------------------------------------------------ loading
    def _load_registry(self) -> None:
        s = self.store.df(
            "SELECT sensor_id, installation_id, enterprise_id, county_code, period_s, "
            "lo_lo, lo, hi, hi_hi, deadband FROM sensors ORDER BY sensor_id"
        )
        self.sensor_ids = s["sensor_id"].to_numpy(dtype=object)
        self._index = pd.Index(self.sensor_ids)
        n = len(s)

        def col(name):
            return s[name].astype("float64").to_numpy()

        self.lo_lo, self.lo, self.hi, self.hi_hi = col("lo_lo"), col("lo"), col("hi"), col("hi_hi")
        self.deadband = np.nan_to_num(col("deadband"), nan=0.0)
        # the limit an alarm must come back under: hi (or hi_hi where a sensor has no hi)
        self.clear_hi = np.where(np.isnan(self.hi), self.hi_hi, self.hi)
        self.clear_lo = np.where(np.isnan(self.lo), self.lo_lo, self.lo)
        self.period_s = np.nan_to_num(col("period_s"), nan=np.inf)
        self._installation = s["installation_id"].astype("Int64").to_numpy(dtype=object,
                                                                           na_value=None)
        self._enterprise = s["enterprise_id"].astype("Int64").to_numpy(dtype=object,
                                                                       na_value=None)
        self._county = s["county_code"].to_numpy(dtype=object)
        self.open_code = np.zeros(n, dtype=np.int8)   # 0: no open threshold alarm
        self._open: dict[int, _Open] = {}
        self.last_seen = np.full(n, np.nan)           # wall clock of the last reading
        self.stale_open = np.zeros(n, dtype=bool)
        self._stale_id: dict[int, int] = {}

    def _load_open(self) -> None:
        """Reload the open alarms (not cleared, not closed) so a restart continues them."""
        rows = self.store.df(
            "SELECT alarm_id, sensor_id, kind, epoch_us(raised_at) / 1e6 AS raised, "
            "peak_value, epoch_us(peak_at) / 1e6 AS peak FROM alarms "
            "WHERE cleared_at IS NULL AND state <> 'closed' ORDER BY alarm_id"
        )
        self._next_id = int(self.store.scalar("SELECT coalesce(max(alarm_id), 0) FROM alarms")) + 1
        self._peaks: dict[int, dict] = {}  # new peaks not yet written nor published
        now = time.time()
        positions = self._index.get_indexer(rows["sensor_id"].to_numpy(dtype=object))
        for pos, row in zip(positions, rows.itertuples(index=False), strict=True):
            if pos < 0:
                continue
            if row.kind == "stale":
                self.stale_open[pos] = True
                self._stale_id[pos] = int(row.alarm_id)
                self.last_seen[pos] = now
            else:
                code = CODE_OF_KIND[row.kind]
                self._open[pos] = _Open(int(row.alarm_id), code, row.raised,
                                        row.peak_value, row.peak)
                self.open_code[pos] = code

    # ------------------------------------------------------------------ evaluation
    def open_alarms(self) -> dict[str, int]:
        """``{sensor_id: alarm_id}`` of the open threshold and stale alarms (for tests)."""
        with self._lock:
            out = {self.sensor_ids[p]: a.alarm_id for p, a in self._open.items()}
            out.update({f"{self.sensor_ids[p]}:stale": i for p, i in self._stale_id.items()})
            return out

    def on_batch(self, topic: str, table: pa.Table) -> None:
        """Ingest listener: evaluate a committed batch of readings (other topics ignored)."""
        if topic != "reading" or table is None or table.num_rows == 0:
            return
        self.evaluate(table)

    def evaluate(self, table: pa.Table, *, now: float | None = None) -> list[dict]:
        """Evaluate readings (columns ``ts, sensor_id, value``); persist and publish changes.

        Returns the published change dicts.
        """
        now = time.time() if now is None else now
        pos = self._index.get_indexer(table.column("sensor_id").to_numpy(zero_copy_only=False))
        value = table.column("value").to_numpy(zero_copy_only=False).astype(np.float64)
        ts = epoch_seconds(table.column("ts"))
        drill = None  # the drill of each exercise reading (an alarm it raises is a drill's)
        if "drill_id" in table.column_names and table.column("drill_id").null_count < len(table):
            drill = table.column("drill_id").to_numpy(zero_copy_only=False)
        known = pos >= 0
        if not known.all():
            pos, value, ts = pos[known], value[known], ts[known]
            drill = None if drill is None else drill[known]
        changes = _Changes()
        with self._lock:
            self.evaluated += len(pos)
            self.last_seen[pos] = now
            back = np.unique(pos[self.stale_open[pos]])
            for p in back:
                self._clear_stale(int(p), now, changes)
            # vectorised zone of every reading: +2 hi_hi, +1 hi, -1 lo, -2 lo_lo, 0 within
            zone = np.zeros(len(pos), dtype=np.int8)
            zone[value >= self.hi[pos]] = 1
            zone[value >= self.hi_hi[pos]] = 2
            zone[value <= self.lo[pos]] = -1
            zone[value <= self.lo_lo[pos]] = -2
            # only readings of a sensor in alarm, or that breaches in this batch, matter
            breach = zone != 0
            hot = self.open_code != 0
            if breach.any():
                hot = hot.copy()
                hot[pos[breach]] = True
            busy = np.flatnonzero(hot[pos])
            if len(busy):
                order = busy[np.lexsort((ts[busy], pos[busy]))]
                self._step(pos[order], value[order], ts[order], zone[order], changes,
                           None if drill is None else drill[order])
        return self._commit(changes)

    def _step(self, pos, value, ts, zone, changes: _Changes, drills=None) -> None:
        """The per-sensor state machine over the few readings that matter (sorted)."""
        hold = self.hold_s
        drills = [None] * len(pos) if drills is None else drills.tolist()
        for p, v, t, z, d in zip(pos.tolist(), value.tolist(), ts.tolist(), zone.tolist(),
                                 drills, strict=True):
            a = self._open.get(p)
            if a is None:
                if z != 0:
                    self._raise(p, z, v, t, changes, d)
                continue
            up = a.code > 0
            if z != 0 and (z > 0) != up:  # breach on the other side: a new incident
                self._clear(p, a, t, changes)
                self._raise(p, z, v, t, changes, d)
                continue
            if z != 0:
                a.clear_since = math.nan
                if abs(z) > abs(a.code):
                    a.code = z
                    self.open_code[p] = z
                    changes.update(a, kind=KIND_OF_CODE[z], level=LEVEL_OF_KIND[KIND_OF_CODE[z]])
                    changes.action(a.alarm_id, "upgrade", t, f"{KIND_OF_CODE[z]} {v:g}")
                if (v > a.peak_value) if up else (v < a.peak_value):
                    a.peak_value, a.peak_at = v, t
                    changes.peak(a)
                continue
            db = self.deadband[p]
            within = (v < self.clear_hi[p] - db) if up else (v > self.clear_lo[p] + db)
            if not within:  # inside the deadband: hold still
                a.clear_since = math.nan
                continue
            if math.isnan(a.clear_since):
                a.clear_since = t
            if t - a.clear_since >= hold:
                self._clear(p, a, a.clear_since, changes)

    def _raise(self, p: int, code: int, v: float, t: float, changes: _Changes,
               drill: str | None = None) -> None:
        a = _Open(self._new_id(), code, t, v, t)
        self._open[p] = a
        self.open_code[p] = code
        kind = KIND_OF_CODE[code]
        changes.raise_(self._row(p, a.alarm_id, kind, t, v, v, t, drill))
        changes.action(a.alarm_id, "raise", t, f"{kind} {v:g}")

    def _clear(self, p: int, a: _Open, at: float, changes: _Changes) -> None:
        del self._open[p]
        self.open_code[p] = 0
        changes.update(a, cleared_at=utc(at))
        changes.action(a.alarm_id, "clear", at, None)

    def _clear_stale(self, p: int, now: float, changes: _Changes) -> None:
        alarm_id = self._stale_id.pop(p)
        self.stale_open[p] = False
        changes.updates.setdefault(alarm_id, {"alarm_id": alarm_id})
        changes.updates[alarm_id]["cleared_at"] = utc(now)
        changes.action(alarm_id, "clear", now, None)

    def tick(self, now: float | None = None) -> list[dict]:
        """Raise ``stale`` alarms for silent sensors (call every second or so)."""
        now = time.time() if now is None else now
        changes = _Changes()
        with self._lock:
            limit = np.maximum(self.stale_periods * self.period_s, self.stale_min_s)
            with np.errstate(invalid="ignore"):
                due = np.flatnonzero(~self.stale_open & (now - self.last_seen > limit))
            changes.flush = True  # peaks of the last second go out now
            for p in due.tolist():
                alarm_id = self._new_id()
                self.stale_open[p] = True
                self._stale_id[p] = alarm_id
                changes.raise_(self._row(p, alarm_id, "stale", now, None, None, None))
                changes.action(alarm_id, "raise", now, "stale")
        return self._commit(changes)

    # ------------------------------------------------------------------ helpers
    def forget(self, alarm_ids: set[int]) -> None:
        """Stop tracking alarms an officer closed before they cleared (a new breach re-raises)."""
        with self._lock:
            for p, a in list(self._open.items()):
                if a.alarm_id in alarm_ids:
                    del self._open[p]
                    self.open_code[p] = 0
            for p, i in list(self._stale_id.items()):
                if i in alarm_ids:
                    del self._stale_id[p]
                    self.stale_open[p] = False
                    self.last_seen[p] = np.nan  # only a new reading re-arms stale

    def _new_id(self) -> int:
        i = self._next_id
        self._next_id += 1
        return i

    def _row(self, p, alarm_id, kind, raised, trigger, peak, peak_at,
             drill: str | None = None) -> dict[str, Any]:
        return {
            "drill_id": drill,
            "alarm_id": alarm_id, "sensor_id": self.sensor_ids[p],
            "installation_id": self._installation[p], "enterprise_id": self._enterprise[p],
            "county_code": self._county[p], "kind": kind, "level": LEVEL_OF_KIND[kind],
            "raised_at": utc(raised), "trigger_value": trigger, "peak_value": peak,
            "peak_at": utc(peak_at), "state": "raised",
        }

    def _commit(self, changes: _Changes) -> list[dict]:
        """Persist one batch of changes in one transaction, then publish them.

        A new peak alone is not worth a transaction: peaks wait (at most until the next
        :meth:`tick`, about a second) and go out with the next raise, clear or upgrade.
        """
        merged = self._merge(changes)
        if merged is None:
            return []
        return self.write_changes(*merged)

    def _merge(self, changes: _Changes) -> tuple[list[dict], list[dict], list[dict]] | None:
        """The rows one batch of changes writes: new alarms, updates, actions (None: none)."""
        for alarm_id, u in changes.peaks.items():
            self._peaks[alarm_id] = u
        if not (changes.raised or changes.updates or changes.actions) and not (
                changes.flush and self._peaks):
            return None
        peaks, self._peaks = self._peaks, {}
        for alarm_id, u in peaks.items():  # the later peak wins (peaks only grow)
            known = changes.updates.setdefault(alarm_id, {"alarm_id": alarm_id})
            if known.get("peak_at") is None or u["peak_at"] >= known["peak_at"]:
                known.update(peak_value=u["peak_value"], peak_at=u["peak_at"])
        raised = {r["alarm_id"]: r for r in changes.raised}
        updates = []
        for alarm_id, u in changes.updates.items():
            if alarm_id in raised:  # raised and changed in the same batch: one insert
                raised[alarm_id].update({k: v for k, v in u.items() if k != "cleared_at"})
                if "cleared_at" in u:
                    updates.append(u)
            else:
                updates.append(u)
        return list(raised.values()), updates, changes.actions

    def write_changes(self, raised: list[dict], updates: list[dict],
                      actions: list[dict]) -> list[dict]:
        """Write merged changes in one transaction and publish them (:func:`write_changes`)."""
        return write_changes(self.store, self.hub, raised, updates, actions)


class _Changes:
    """What one batch changed: new alarms, column updates per alarm, actions."""

    def __init__(self):
        self.raised: list[dict] = []
        self.updates: dict[int, dict] = {}
        self.peaks: dict[int, dict] = {}
        self.actions: list[dict] = []
        self.flush = False

    def raise_(self, row: dict) -> None:
        self.raised.append(row)

    def peak(self, a: _Open) -> None:
        self.peaks[a.alarm_id] = {"alarm_id": a.alarm_id, "peak_value": a.peak_value,
                                  "peak_at": utc(a.peak_at)}

    def update(self, a: _Open, **fields) -> None:
        u = self.updates.setdefault(a.alarm_id, {"alarm_id": a.alarm_id})
        u["peak_value"], u["peak_at"] = a.peak_value, utc(a.peak_at)
        u.update(fields)

    def action(self, alarm_id: int, action: str, at: float, note: str | None) -> None:
        self.actions.append({"alarm_id": alarm_id, "action": action, "actor": SYSTEM,
                             "acted_at": utc(at), "note": note})


def write_changes(store: Store, hub: Hub | None, raised: list[dict], updates: list[dict],
                  actions: list[dict]) -> list[dict]:
    """Write merged changes in one transaction and publish them on the hub (``alarm``).

    The one store-writing path of alarm changes: the engine's own, and the distributed
    mode's replicas applying the engine's changes from the event log.
    """
    with store.transaction() as cur:
        if raised:
            store.insert("alarms", pa.Table.from_pylist(raised, schema=ALARM_SCHEMA),
                              cur=cur)
        if updates:
            full = [{k: u.get(k) for k in UPDATE_SCHEMA.names} for u in updates]
            cur.register("__alarm_updates", pa.Table.from_pylist(full, schema=UPDATE_SCHEMA))
            try:
                cur.execute(
                    "UPDATE alarms SET kind = coalesce(u.kind, alarms.kind), "
                    "level = coalesce(u.level, alarms.level), "
                    "peak_value = coalesce(u.peak_value, alarms.peak_value), "
                    "peak_at = coalesce(u.peak_at, alarms.peak_at), "
                    "cleared_at = coalesce(u.cleared_at, alarms.cleared_at) "
                    "FROM __alarm_updates u WHERE alarms.alarm_id = u.alarm_id"
                )
            finally:
                cur.unregister("__alarm_updates")
        store.insert("alarm_actions",
                          pa.Table.from_pylist(actions, schema=ACTION_SCHEMA), cur=cur)
    published = [{**r, "change": "raise"} for r in raised]
    published += [{**u, "change": "clear" if "cleared_at" in u else
                   ("upgrade" if "kind" in u else "peak")} for u in updates]
    if hub is not None and published:
        hub.publish("alarm", published)
    if raised:  # one line per batch; names the first sensors (the latency bench reads it)
        log.info("alarms raised: %d (%s)", len(raised),
                 " ".join(r["sensor_id"] for r in raised[:5]))
    return published
