"""Persistence side of the feed ingest: exactly-once batches into the store.

:class:`SeqIntervals` holds the seqs already stored for one feed as sorted, disjoint
intervals; a batch is checked against them with ``numpy.searchsorted``, so the check costs
the same with a thousand stored rows or hundreds of millions. :class:`FeedWriter` writes one
batch (readings, events, quarantine) in one transaction and updates the intervals only after
the commit, so memory and disk never disagree.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from sources.warnings.screening import FeedWarningCheck

if TYPE_CHECKING:  # pragma: no cover
    from sources.ingest.feed import FeedIngest, Pending

log = logging.getLogger(__name__)

MESSAGE_TABLES = ("readings", "hotspots", "quakes", "incidents", "warnings")
TS = pa.timestamp("us", tz="UTC")
TOPIC_TABLE = {"reading": "readings", "hotspot": "hotspots", "quake": "quakes",
               "warning": "warnings", "incident": "incidents"}
EVENT_COLUMNS: dict[str, list[tuple[str, pa.DataType]]] = {
    "hotspot": [("hotspot_id", pa.string()), ("lon", pa.float64()), ("lat", pa.float64()),
                ("confidence", pa.float64()), ("satellite", pa.string()), ("extra", pa.string())],
    "quake": [("quake_id", pa.string()), ("lon", pa.float64()), ("lat", pa.float64()),
              ("depth_km", pa.float64()), ("magnitude", pa.float64()), ("extra", pa.string())],
    "incident": [("incident_id", pa.string()), ("kind", pa.string()), ("lon", pa.float64()),
                 ("lat", pa.float64()), ("title", pa.string()), ("level", pa.string()),
                 ("status", pa.string()), ("county_code", pa.string()), ("extra", pa.string())],
}


class SeqIntervals:
    """Stored seqs of one feed as sorted, disjoint, non-adjacent closed intervals.

    A feed whose seqs are contiguous needs one interval whatever its size. One with gaps
    (seqs need only increase) needs one per run, so memory is capped: beyond
    ``max_intervals`` the lowest ones are forgotten and ``floor`` rises; a seq below
    ``floor`` (a very late one) is then looked up in the store instead.
    """

    def __init__(self, starts=(), ends=(), *, floor: int | None = None,
                 max_intervals: int = 200_000):
        self.starts = np.array(starts, dtype=np.int64)
        self.ends = np.array(ends, dtype=np.int64)
        self.floor = floor
        self.max_intervals = max_intervals
        self._normalise()

    def __len__(self) -> int:
        return len(self.starts)

    def __repr__(self) -> str:
        pairs = ", ".join(f"[{a}, {b}]" for a, b in zip(self.starts[:5], self.ends[:5], strict=True))
        return f"SeqIntervals({pairs}{', ...' if len(self) > 5 else ''}, floor={self.floor})"

    @property
    def max(self) -> int | None:
        """Highest stored seq (None when nothing is stored)."""
        return int(self.ends[-1]) if len(self.ends) else None

    @property
    def count(self) -> int:
        return int((self.ends - self.starts + 1).sum())

    def contains(self, seqs: np.ndarray) -> np.ndarray:
        """Boolean mask: which of ``seqs`` are known to be stored (see :meth:`unknown`)."""
        if not len(self.starts) or not len(seqs):
            return np.zeros(len(seqs), dtype=bool)
        idx = np.searchsorted(self.starts, seqs, side="right") - 1
        inside = idx >= 0
        return inside & (seqs <= self.ends[np.maximum(idx, 0)])

    def unknown(self, seqs: np.ndarray) -> np.ndarray:
        """Boolean mask: seqs below ``floor``, which only the store can tell about."""
        if self.floor is None:
            return np.zeros(len(seqs), dtype=bool)
        return seqs < self.floor

    def add(self, seqs: np.ndarray) -> None:
        """Record newly stored seqs."""
        if not len(seqs):
            return
        s = np.asarray(seqs, dtype=np.int64)
        if len(s) > 1 and not (s[1:] > s[:-1]).all():  # sorting is rarely needed
            s = np.unique(s)
        if len(self.starts) and s[0] == self.ends[-1] + 1 and s[-1] - s[0] == len(s) - 1:
            self.ends[-1] = s[-1]  # the usual case: the batch continues the last interval
            return
        breaks = np.flatnonzero(np.diff(s) != 1)
        starts = np.concatenate([s[:1], s[breaks + 1]])
        ends = np.concatenate([s[breaks], s[-1:]])
        self.starts = np.concatenate([self.starts, starts])
        self.ends = np.concatenate([self.ends, ends])
        self._normalise()

    def _normalise(self) -> None:
        if len(self.starts) >= 2:
            order = np.argsort(self.starts, kind="stable")
            starts, ends = self.starts[order], self.ends[order]
            reach = np.maximum.accumulate(ends)
            new = np.ones(len(starts), dtype=bool)
            new[1:] = starts[1:] > reach[:-1] + 1
            self.starts = starts[new]
            self.ends = np.maximum.reduceat(ends, np.flatnonzero(new))
        if len(self.starts) > self.max_intervals:  # forget the oldest half
            keep = self.max_intervals // 2
            self.starts, self.ends = self.starts[-keep:].copy(), self.ends[-keep:].copy()
            self.floor = int(self.starts[0])


def _union(tables=MESSAGE_TABLES) -> str:
    return " UNION ALL ".join(
        f"SELECT seq FROM {t} WHERE feed = $feed AND seq IS NOT NULL" for t in tables)


def load_intervals(store, feed: str, *, max_rows: int = 2_000_000) -> SeqIntervals:
    """Stored seqs of ``feed`` over every message table.

    Contiguous seqs (the usual case) cost one aggregate; otherwise the islands of the
    ``max_rows`` highest seqs are loaded and lower ones are left to :meth:`stored_in_db`.
    """
    union = _union()
    n, lo, hi = store.arrow(
        f"SELECT count(*)::BIGINT, min(seq), max(seq) FROM ({union})", {"feed": feed}
    ).to_pylist()[0].values()
    if not n:
        return SeqIntervals()
    if hi - lo + 1 == n:  # no gap (the writer never stores a seq twice): one interval
        return SeqIntervals([lo], [hi])
    islands = store.arrow(
        f"WITH top AS (SELECT seq FROM ({union}) ORDER BY seq DESC LIMIT {int(max_rows)}) "
        f"SELECT min(seq) AS lo, max(seq) AS hi FROM ("
        f"  SELECT seq, seq - row_number() OVER (ORDER BY seq) AS grp FROM top"
        f") GROUP BY grp ORDER BY lo", {"feed": feed})
    starts, ends = islands.column("lo").to_numpy(), islands.column("hi").to_numpy()
    floor = int(starts[0]) if n > max_rows else None
    return SeqIntervals(starts, ends, floor=floor)


def stored_in_db(cur, feed: str, seqs: np.ndarray) -> np.ndarray:
    """Boolean mask: which of ``seqs`` the store holds for ``feed`` (for very late seqs)."""
    if not len(seqs):
        return np.zeros(0, dtype=bool)
    rows = cur.execute(
        f"SELECT DISTINCT seq FROM ({_union()}) WHERE seq IN (SELECT unnest($seqs::BIGINT[]))",
        {"feed": feed, "seqs": [int(x) for x in seqs]}).fetchall()
    return np.isin(seqs, np.array([r[0] for r in rows], dtype=np.int64))


class CountyLookup:
    """County of a point / counties of a polygon, from the ``boundaries`` table (lazy)."""

    def __init__(self, store):
        self._store = store
        self._tree = None
        self._codes: list[str] = []

    def _load(self):
        if self._tree is None:
            import shapely

            rows = self._store.arrow(
                "SELECT code, geojson FROM boundaries WHERE level = 'county' ORDER BY code")
            self._codes = rows.column("code").to_pylist()
            geoms = [shapely.from_geojson(g) for g in rows.column("geojson").to_pylist()]
            self._tree = shapely.STRtree(geoms)
        return self._tree

    def county_of(self, lon: float, lat: float) -> str | None:
        try:
            import shapely

            hits = self._load().query(shapely.Point(lon, lat), predicate="intersects")
        except Exception:  # noqa: BLE001 - no boundaries: the county stays unknown
            return None
        return self._codes[int(min(hits))] if len(hits) else None

    def counties_in(self, geojson: str) -> list[str] | None:
        try:
            import shapely

            hits = self._load().query(shapely.from_geojson(geojson), predicate="intersects")
        except Exception:  # noqa: BLE001
            return None
        return sorted(self._codes[int(i)] for i in hits)


class FeedWriter:
    """Writes the batches of one :class:`~sources.ingest.feed.FeedIngest` (its writer thread)."""

    def __init__(self, ingest: FeedIngest):
        self.ingest = ingest
        self.sensors: frozenset[str] = frozenset()
        self.intervals = SeqIntervals()
        self.stored = 0
        self.stored_readings = 0
        self.duplicates = 0
        self.write_errors = 0
        self.listener_errors = 0
        self._failed = False
        self._lock = threading.Lock()
        self._rate: deque[tuple[float, int]] = deque(maxlen=256)
        self._last_checkpoint = time.monotonic()
        self.counties = CountyLookup(ingest.store)
        self.warning_check = FeedWarningCheck(ingest.store)  # the form's area checks

    def load(self) -> None:
        store = self.ingest.store
        self.sensors = frozenset(store.arrow("SELECT sensor_id FROM sensors").column(0).to_pylist())
        self.intervals = load_intervals(store, self.ingest.url)

    def resume_writes(self) -> None:
        """A new connection replays from the persisted seq: writing may go on."""
        self._failed = False

    def rate(self, window: float = 5.0) -> float:
        now = time.monotonic()
        recent = [(t, n) for t, n in list(self._rate) if now - t <= window]
        if not recent:
            return 0.0
        span = max(now - recent[0][0], 1.0)
        return sum(n for _, n in recent) / span

    # ------------------------------------------------------------------ one batch
    def write(self, batch: Pending) -> None:
        if self._failed:  # replayed after the reconnect: never leave a hole below since
            return
        try:
            self._write(batch)
        except Exception as exc:
            self._failed = True
            self.write_errors += 1
            self.ingest.last_error = f"write failed: {exc!r}"
            log.exception("feed %s: batch not written; reconnecting to replay it", self.ingest.url)
            self.ingest._force_reconnect()

    def _write(self, batch: Pending) -> None:
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
        quarantine = self._quarantine(batch) if batch.rejects else None
        now = datetime.now(UTC)
        with self.ingest.store.transaction() as cur:
            if "warning" in by_kind:
                tables["warning"] = self._warnings(cur, by_kind["warning"], now)
            for topic, table in tables.items():
                _insert(cur, TOPIC_TABLE[topic], table)
            if quarantine is not None:
                _insert(cur, "quarantine", quarantine)
        kept = seqs[keep]
        self.intervals.add(kept)
        self.stored += len(kept)
        self.stored_readings += n_read
        self.duplicates += len(seqs) - len(kept)
        self._rate.append((time.monotonic(), n_read))
        for topic, table in tables.items():
            self.ingest._after_commit(topic, table)
        if time.monotonic() - self._last_checkpoint > 10:
            self._last_checkpoint = time.monotonic()
            try:  # keeps the WAL short: a restart after kill -9 replays little
                self.ingest.store.checkpoint()
            except Exception:  # noqa: BLE001 - a busy checkpoint is retried later
                pass

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
            cur = self.ingest.store.cursor()
            try:
                keep[late] = ~stored_in_db(cur, self.ingest.url, seqs[late])
            finally:
                cur.close()
        return keep

    def _feed_column(self, n: int) -> pa.Array:
        return pa.array([self.ingest.url] * n, pa.string())

    def _readings(self, batch: Pending, r_seq, keep, n: int) -> pa.Table:
        ts = np.fromiter(batch.ts_us, dtype=np.int64, count=len(batch.ts_us))
        value = np.fromiter(batch.value, dtype=np.float64, count=len(batch.value))
        sensor = pa.array(batch.sensor_id, pa.string())
        if n != len(r_seq):
            sensor = sensor.filter(pa.array(keep))
            r_seq, ts, value = r_seq[keep], ts[keep], value[keep]
        return pa.table({
            "feed": self._feed_column(n),
            "seq": pa.array(r_seq),
            "ts": pa.array(ts).cast(TS),
            "sensor_id": sensor,
            "value": pa.array(value),
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
                "expires": r["expires_us"], "source": "feed", "sender": self.ingest.url,
                "created_at": int(now.timestamp() * 1e6), "feed": self.ingest.url,
                "seq": r["seq"], "extra": r["extra"], "ts": r["ts_us"],
            })
        schema = pa.schema([
            ("warning_id", pa.string()), ("version", pa.int32()), ("msg_type", pa.string()),
            ("event", pa.string()), ("level", pa.string()), ("headline", pa.string()),
            ("description", pa.string()), ("area_codes", pa.list_(pa.string())),
            ("area_geojson", pa.string()), ("effective", pa.int64()), ("expires", pa.int64()),
            ("source", pa.string()), ("sender", pa.string()), ("created_at", pa.int64()),
            ("feed", pa.string()), ("seq", pa.int64()), ("extra", pa.string()),
            ("ts", pa.int64()),
        ])
        table = pa.Table.from_pylist(out, schema=schema)
        for name in ("effective", "expires", "created_at"):
            i = table.schema.get_field_index(name)
            table = table.set_column(i, name, table.column(name).cast(TS))
        # ts is not a warnings column: it only tells listeners the message time
        return table.drop_columns(["ts"])

    def _quarantine(self, batch: Pending) -> pa.Table:
        rejects = batch.rejects
        return pa.table({
            "feed": self._feed_column(len(rejects)),
            "received_at": pa.array(batch.received_at, pa.int64()).cast(TS),
            "reason": pa.array([r[0] for r in rejects], pa.string()),
            "raw": pa.array([r[1] for r in rejects], pa.string()),
        })


def _insert(cur, table: str, rows: pa.Table) -> None:
    columns = ", ".join(f'"{c}"' for c in rows.column_names)
    cur.register("__feed_batch", rows)
    try:
        cur.execute(f'INSERT INTO "{table}" ({columns}) SELECT {columns} FROM __feed_batch')
    finally:
        cur.unregister("__feed_batch")
