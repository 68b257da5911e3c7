"""Persistence side of the feed ingest: exactly-once batches into the store, in one thread.

:class:`FeedWriter` owns the writer thread of one feed: the receiving thread hands it
validated batches through a bounded queue (:meth:`FeedWriter.submit`, back-pressure when
the store is slow); it writes each batch (readings, events, quarantine) in one transaction,
updates the stored seqs only after the commit (memory and disk never disagree), then
publishes the new rows on the hub and calls its listeners (the alarm engine) — all in its
own thread. A failed write stops further writes until :meth:`FeedWriter.resume` (the next
connection replays from the last persisted seq), so a failure never leaves a hole.

Threading contract: :meth:`submit`, :meth:`drain`, :meth:`resume` and :meth:`stop` are
called by the receiving thread; everything else runs in the writer thread, which is the
single writer of the counters that :meth:`FeedWriter.status` reads.
"""
from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa

from sources.geo import CountyGeometry
from sources.hub import Hub
from sources.ingest.messages import Batch
from sources.ingest.seqs import SeqIntervals, load_intervals, stored_in_db
from sources.warnings.screening import FeedWarningCheck

log = logging.getLogger(__name__)

TS = pa.timestamp("us", tz="UTC")
TOPIC_TABLE = {"reading": "readings", "hotspot": "hotspots", "quake": "quakes",
               "warning": "warnings", "incident": "incidents", "quarantine": "quarantine"}
EVENT_COLUMNS: dict[str, list[tuple[str, pa.DataType]]] = {
    "hotspot": [("hotspot_id", pa.string()), ("lon", pa.float64()), ("lat", pa.float64()),
                ("confidence", pa.float64()), ("satellite", pa.string()), ("extra", pa.string()),
                ("drill_id", pa.string())],
    "quake": [("quake_id", pa.string()), ("lon", pa.float64()), ("lat", pa.float64()),
              ("depth_km", pa.float64()), ("magnitude", pa.float64()), ("extra", pa.string()),
              ("drill_id", pa.string())],
    "incident": [("incident_id", pa.string()), ("kind", pa.string()), ("lon", pa.float64()),
                 ("lat", pa.float64()), ("title", pa.string()), ("level", pa.string()),
                 ("status", pa.string()), ("county_code", pa.string()), ("extra", pa.string()),
                 ("drill_id", pa.string())],
}


class FeedWriter:
    """Writes the batches of one feed in its own thread (see the module docstring).

    Parameters
    ----------
    url : str
        The feed URL (the ``feed`` column of every row it writes).
    store : Store
        The store.
    hub : Hub, optional
        Where the rows of each committed batch are published (topic per message type, and
        ``quarantine`` for rejected messages).
    geography : CountyGeometry, optional
        Counties of incident positions and drawn warning areas.
    on_failure : callable, optional
        ``on_failure(message)`` after a batch could not be written (the ingest reconnects
        to replay it); called in the writer thread.
    """

    def __init__(self, url: str, store, *, hub: Hub | None = None,
                 geography: CountyGeometry | None = None,
                 on_failure: Callable[[str], None] | None = None, queue_size: int = 8):
        self.url, self.store, self.hub = url, store, hub
        self.counties = geography if geography is not None else CountyGeometry(store)
        self.on_failure = on_failure
        self.sensors: frozenset[str] = frozenset()
        self.intervals = SeqIntervals()
        self.stored = 0
        self.stored_readings = 0
        self.duplicates = 0
        self.write_errors = 0
        self.listener_errors = 0
        self.last_error: str | None = None
        self._listeners: list[Callable[[str, pa.Table], None]] = []
        self._failed = False
        self._rate: deque[tuple[float, int]] = deque(maxlen=256)
        self._last_checkpoint = time.monotonic()
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._thread: threading.Thread | None = None
        self.warning_check = FeedWarningCheck(self.counties)  # the form's area checks

    # ------------------------------------------------------------------ lifecycle
    def load(self) -> None:
        """Read the sensor registry and the seqs already stored (before :meth:`start`)."""
        self.sensors = frozenset(
            self.store.arrow("SELECT sensor_id FROM sensors").column(0).to_pylist())
        self.intervals = load_intervals(self.store, self.url)

    def start(self) -> FeedWriter:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name=f"feed-writer {self.url}",
                                            daemon=True)
            self._thread.start()
        return self

    def submit(self, batch: Batch, *, block: bool = True) -> bool:
        """Queue a batch for writing; False when the queue is full and ``block`` is False."""
        try:
            self._queue.put(batch, block=block)
        except queue.Full:
            return False
        return True

    def drain(self) -> None:
        """Wait until every submitted batch is written (or refused)."""
        self._queue.join()

    def resume(self) -> None:
        """Writing may go on: a new connection replays from the persisted seq.

        Call only when drained (:meth:`drain`): the writer thread is then idle.
        """
        self._failed = False

    def stop(self, timeout: float = 10.0) -> None:
        """Write what is queued, then end the thread (at most ``timeout`` s)."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None

    def add_listener(self, fn: Callable[[str, pa.Table], None]) -> None:
        """Call ``fn(topic, table)`` after each committed batch (in the writer thread).

        A listener's exception is logged and counted; it never stops the ingest.
        """
        self._listeners = [*self._listeners, fn]

    def remove_listener(self, fn: Callable[[str, pa.Table], None]) -> None:
        self._listeners = [f for f in self._listeners if f is not fn]

    def _loop(self) -> None:
        while True:
            batch = self._queue.get()
            try:
                if batch is None:
                    return
                self.write(batch)
            finally:
                self._queue.task_done()

    def rate(self, window: float = 5.0) -> float:
        """Readings stored per second over the last ``window`` seconds."""
        now = time.monotonic()
        recent = [(t, n) for t, n in list(self._rate) if now - t <= window]
        if not recent:
            return 0.0
        span = max(now - recent[0][0], 1.0)
        return sum(n for _, n in recent) / span

    # ------------------------------------------------------------------ one batch
    def write(self, batch: Batch) -> None:
        """Write one batch now (in the writer thread; tests call it directly)."""
        if self._failed:  # replayed after the reconnect: never leave a hole below since
            return
        try:
            self._write(batch)
        except Exception as exc:  # noqa: BLE001 - the feed is replayed, never skipped
            self._failed = True
            self.write_errors += 1
            self.last_error = f"write failed: {exc!r}"
            log.exception("feed %s: batch not written; reconnecting to replay it", self.url)
            if self.on_failure is not None:
                self.on_failure(self.last_error)

    def _write(self, batch: Batch) -> None:
        nr = len(batch.seq)
        r_seq = np.fromiter(batch.seq, dtype=np.int64, count=nr)
        e_seq = np.fromiter((rec["seq"] for _, rec in batch.events), dtype=np.int64,
                            count=len(batch.events))
        seqs = np.concatenate([r_seq, e_seq]) if len(e_seq) else r_seq
        keep = self._fresh(seqs)
        r_keep = keep[:nr]
        tables: dict[str, pa.Table] = {}
        n_read = int(r_keep.sum())
        if n_read:
            tables["reading"] = self._readings(batch, r_seq, r_keep, n_read)
        by_kind: dict[str, list[dict]] = {}
        for (kind, rec), k in zip(batch.events, keep[nr:], strict=True):
            if k:
                by_kind.setdefault(kind, []).append(rec)
        for kind, recs in by_kind.items():
            if kind != "warning":
                tables[kind] = self._events(kind, recs)
        if "warning" in by_kind:  # refused ones join batch.rejects, quarantined below
            by_kind["warning"] = self.warning_check.screen(by_kind["warning"], batch)
            if not by_kind["warning"]:
                del by_kind["warning"]
        if batch.rejects:
            tables["quarantine"] = self._quarantine(batch)
        drills = self._drills(batch, r_keep, by_kind)
        now = datetime.now(UTC)
        with self.store.transaction() as cur:
            if "warning" in by_kind:
                tables["warning"] = self._warnings(cur, by_kind["warning"], now)
            for topic, table in tables.items():
                _insert(cur, TOPIC_TABLE[topic], table)
            if drills is not None:
                _upsert_drills(cur, drills)
        kept = seqs[keep]
        self.intervals.add(kept)
        self.stored += len(kept)
        self.stored_readings += n_read
        self.duplicates += len(seqs) - len(kept)
        self._rate.append((time.monotonic(), n_read))
        for topic, table in tables.items():
            self._after_commit(topic, table)
        if drills is not None:
            self._after_commit("drill", drills)
        if time.monotonic() - self._last_checkpoint > 10:
            self._last_checkpoint = time.monotonic()
            try:  # keeps the WAL short: a restart after kill -9 replays little
                self.store.checkpoint()
            except Exception:  # noqa: BLE001 - a busy checkpoint is retried later
                pass

    def _drills(self, batch: Batch, r_keep, by_kind: dict[str, list[dict]]) -> pa.Table | None:
        """The drills this batch's exercise messages belong to, first and last time each
        (None: no exercise message, the usual case)."""
        seen: dict[str, list] = {}  # drill -> [first us, last us, scenario]

        def note(drill, ts_us, scenario=None):
            d = seen.setdefault(drill, [ts_us, ts_us, scenario])
            d[0], d[1] = min(d[0], ts_us), max(d[1], ts_us)
            d[2] = d[2] or scenario

        for i, drill in batch.drills.items():
            if r_keep[i]:
                note(drill, batch.ts_us[i])
        for recs in by_kind.values():
            for rec in recs:
                if rec.get("drill_id"):
                    note(rec["drill_id"], rec["ts_us"], _scenario(rec.get("extra")))
        if not seen:
            return None
        return pa.table({
            "drill_id": pa.array(list(seen), pa.string()),
            "scenario": pa.array([v[2] for v in seen.values()], pa.string()),
            "started_at": pa.array([v[0] for v in seen.values()], pa.int64()).cast(TS),
            "started_by": pa.array([f"feed:{self.url}"] * len(seen), pa.string()),
            "last_seen_at": pa.array([v[1] for v in seen.values()], pa.int64()).cast(TS),
        })

    def _after_commit(self, topic: str, table: pa.Table) -> None:
        if self.hub is not None:
            self.hub.publish(topic, table)
        for fn in self._listeners:
            try:
                fn(topic, table)
            except Exception:  # noqa: BLE001 - a listener's bug never stops the ingest
                self.listener_errors += 1
                log.exception("feed %s: listener %r failed", self.url, fn)

    def _fresh(self, seqs: np.ndarray) -> np.ndarray:
        """Which seqs to store: not stored before, first occurrence within the batch."""
        n = len(seqs)
        if n == 0:
            return np.zeros(0, dtype=bool)
        top = self.intervals.max
        if (top is None or seqs[0] > top) and (n == 1 or bool((np.diff(seqs) > 0).all())):
            return np.ones(n, dtype=bool)  # the usual case: strictly increasing, all new
        order = np.argsort(seqs, kind="stable")
        s = seqs[order]
        dup_sorted = np.zeros(n, dtype=bool)
        dup_sorted[1:] = s[1:] == s[:-1]
        dup = np.empty(n, dtype=bool)
        dup[order] = dup_sorted
        keep = ~dup & ~self.intervals.contains(seqs)
        late = keep & self.intervals.unknown(seqs)
        if late.any():  # below what memory tracks: ask the store (only this writer adds them)
            cur = self.store.cursor()
            try:
                keep[late] = ~stored_in_db(cur, self.url, seqs[late])
            finally:
                cur.close()
        return keep

    def _feed_column(self, n: int) -> pa.Array:
        return pa.array([self.url] * n, pa.string())

    def _readings(self, batch: Batch, r_seq, keep, n: int) -> pa.Table:
        ts = np.fromiter(batch.ts_us, dtype=np.int64, count=len(batch.ts_us))
        value = np.fromiter(batch.value, dtype=np.float64, count=len(batch.value))
        sensor = pa.array(batch.sensor_id, pa.string())
        if batch.drills:  # exercise readings: their drill, real ones none (sparse)
            drill = pa.array([batch.drills.get(i) for i in range(len(r_seq))], pa.string())
        else:
            drill = pa.nulls(len(r_seq), pa.string())
        if n != len(r_seq):
            mask = pa.array(keep)
            sensor, drill = sensor.filter(mask), drill.filter(mask)
            r_seq, ts, value = r_seq[keep], ts[keep], value[keep]
        return pa.table({
            "feed": self._feed_column(n),
            "seq": pa.array(r_seq),
            "ts": pa.array(ts).cast(TS),
            "sensor_id": sensor,
            "value": pa.array(value),
            "drill_id": drill,
        })

    def _events(self, kind: str, recs: list[dict]) -> pa.Table:
        if kind == "incident":
            for rec in recs:
                rec["county_code"] = self.counties.county_of(rec["lon"], rec["lat"])
        cols = {
            "feed": self._feed_column(len(recs)),
            "seq": pa.array([r["seq"] for r in recs], pa.int64()),
            "ts": pa.array([r["ts_us"] for r in recs], pa.int64()).cast(TS),
        }
        for name, typ in EVENT_COLUMNS[kind]:
            cols[name] = pa.array([r[name] for r in recs], typ)
        return pa.table(cols)

    def _warnings(self, cur, recs: list[dict], now: datetime) -> pa.Table:
        """Warnings are append-only: each message is the next version of its warning."""
        ids = sorted({r["warning_id"] for r in recs})
        rows = cur.execute(
            "SELECT warning_id, max(version) FROM warnings "
            "WHERE warning_id IN (SELECT unnest(?::VARCHAR[])) GROUP BY 1", [ids]).fetchall()
        version = {wid: int(v) for wid, v in rows}
        out = []
        for r in sorted(recs, key=lambda r: r["seq"]):
            v = version.get(r["warning_id"], 0) + 1
            version[r["warning_id"]] = v
            codes = r["area_codes"]
            if codes is None and r["area_geojson"]:
                codes = self.counties.counties_in(r["area_geojson"])
            out.append({
                "warning_id": r["warning_id"], "version": v, "msg_type": r["msg_type"],
                "event": r["event"], "level": r["level"], "headline": r["headline"],
                "description": r["description"], "area_codes": codes,
                "area_geojson": r["area_geojson"], "effective": r["effective_us"],
                "expires": r["expires_us"], "source": "feed", "sender": self.url,
                "created_at": int(now.timestamp() * 1e6), "feed": self.url,
                "seq": r["seq"], "extra": r["extra"], "ts": r["ts_us"],
                "drill_id": r.get("drill_id"),
            })
        schema = pa.schema([
            ("warning_id", pa.string()), ("version", pa.int32()), ("msg_type", pa.string()),
            ("event", pa.string()), ("level", pa.string()), ("headline", pa.string()),
            ("description", pa.string()), ("area_codes", pa.list_(pa.string())),
            ("area_geojson", pa.string()), ("effective", pa.int64()), ("expires", pa.int64()),
            ("source", pa.string()), ("sender", pa.string()), ("created_at", pa.int64()),
            ("feed", pa.string()), ("seq", pa.int64()), ("extra", pa.string()),
            ("ts", pa.int64()), ("drill_id", pa.string()),
        ])
        table = pa.Table.from_pylist(out, schema=schema)
        for name in ("effective", "expires", "created_at"):
            i = table.schema.get_field_index(name)
            table = table.set_column(i, name, table.column(name).cast(TS))
        # ts is not a warnings column: it only tells listeners the message time
        return table.drop_columns(["ts"])

    def _quarantine(self, batch: Batch) -> pa.Table:
        rejects = batch.rejects
        return pa.table({
            "feed": self._feed_column(len(rejects)),
            "received_at": pa.array(batch.received_at, pa.int64()).cast(TS),
            "reason": pa.array([r[0] for r in rejects], pa.string()),
            "raw": pa.array([r[1] for r in rejects], pa.string()),
        })


def _scenario(extra: str | None) -> str | None:
    """The ``scenario`` named in a message's extra fields, if any."""
    if not extra or '"scenario"' not in extra:
        return None
    try:
        value = json.loads(extra).get("scenario")
    except (ValueError, AttributeError):
        return None
    return value[:128] if isinstance(value, str) else None


def _upsert_drills(cur, drills: pa.Table) -> None:
    """Record the drills seen (first message, last message, scenario), in the batch's
    transaction: a drill started from the console keeps its officer as ``started_by``."""
    cur.register("__drills", drills)
    try:
        cur.execute(
            "INSERT INTO drills (drill_id, scenario, started_at, started_by, last_seen_at) "
            "SELECT drill_id, scenario, started_at, started_by, last_seen_at FROM __drills "
            "ON CONFLICT (drill_id) DO UPDATE SET "
            "last_seen_at = greatest(coalesce(drills.last_seen_at, excluded.last_seen_at), "
            "excluded.last_seen_at), scenario = coalesce(drills.scenario, excluded.scenario)")
    finally:
        cur.unregister("__drills")


def _insert(cur, table: str, rows: pa.Table) -> None:
    columns = ", ".join(f'"{c}"' for c in rows.column_names)
    cur.register("__feed_batch", rows)
    try:
        cur.execute(f'INSERT INTO "{table}" ({columns}) SELECT {columns} FROM __feed_batch')
    finally:
        cur.unregister("__feed_batch")
