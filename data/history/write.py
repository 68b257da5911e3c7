"""Writing the history into the store as the ingest would have: one feed
(:data:`~data.history.base.FEED`) whose seqs follow time across readings and events,
warnings versioned per id, officers' warnings without feed or seq."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from .base import FEED, FeedLog
from .readings import Chunk

TS = pa.timestamp("us", tz="UTC")
EVENT_TABLES = ("hotspots", "quakes", "incidents", "warnings")
NUMBERS = {"lon", "lat", "confidence", "depth_km", "magnitude"}


def _ts(seconds) -> pa.Array:
    return pa.array(np.round(np.asarray(seconds, dtype=float) * 1e6).astype(np.int64)).cast(TS)


def _strings(column: pd.Series) -> list[str | None]:
    return [None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)
            for v in column]


def _feed(n: int) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)), pa.array([FEED]))


def write(store, chunks: list[Chunk], log: FeedLog, sensor_ids: np.ndarray,
          rng: np.random.Generator) -> dict[str, int]:
    """Insert readings and events with seqs in time order; returns rows per table."""
    events = []  # (ts_us, table, row index) of every feed event
    for table in EVENT_TABLES:
        for k, row in enumerate(log.rows[table]):
            if row.get("source", "feed") == "feed":
                events.append((int(round(row["ts"] * 1e6)), EVENT_TABLES.index(table), k))
    events.sort()
    ev_ts = np.array([e[0] for e in events], dtype=np.int64)
    # the rank of an event among readings and events, events first at equal times
    before = np.zeros(len(ev_ts), dtype=np.int64)
    for c in chunks:
        before += np.searchsorted(c.ts_us, ev_ts, side="left")
    ev_seq = np.arange(len(ev_ts)) + before
    seqs: dict[str, dict[int, int]] = {t: {} for t in EVENT_TABLES}
    for (_, table, k), seq in zip(events, ev_seq.tolist(), strict=True):
        seqs[EVENT_TABLES[table]][k] = seq

    counts = {"readings": 0}
    names = pa.array(list(sensor_ids), pa.string())
    offset = 0
    for c in chunks:
        if not len(c):
            continue
        seq = offset + np.arange(len(c)) + np.searchsorted(ev_ts, c.ts_us, side="right")
        offset += len(c)
        store.insert("readings", pa.table({
            "feed": _feed(len(c)), "seq": pa.array(seq.astype(np.int64)),
            "ts": pa.array(c.ts_us).cast(TS),
            "sensor_id": pa.DictionaryArray.from_arrays(pa.array(c.sensor), names),
            "value": pa.array(c.value),
        }))
        counts["readings"] += len(c)

    for table in ("hotspots", "quakes", "incidents"):
        rows = pd.DataFrame(log.rows[table])
        if rows.empty:
            counts[table] = 0
            continue
        rows["seq"] = [seqs[table][k] for k in range(len(rows))]
        cols = {"feed": _feed(len(rows)), "seq": pa.array(rows["seq"], pa.int64()),
                "ts": _ts(rows["ts"])}
        for name in rows.columns.difference(["ts", "seq"], sort=False):
            typ = pa.float64() if name in NUMBERS else pa.string()
            cols[name] = pa.array(rows[name].tolist() if name in NUMBERS else
                                  _strings(rows[name]), typ)
        store.insert(table, pa.table(cols))
        counts[table] = len(rows)
    counts["warnings"] = _warnings(store, log.rows["warnings"], seqs["warnings"], rng)
    return counts


def _warnings(store, rows: list[dict], seqs: dict[int, int], rng) -> int:
    if not rows:
        return 0
    out = []
    version: dict[str, int] = {}
    order = sorted(range(len(rows)), key=lambda k: (rows[k]["ts"], k))
    for k in order:
        r = rows[k]
        version[r["warning_id"]] = version.get(r["warning_id"], 0) + 1
        feed = r["source"] == "feed"
        out.append({
            "warning_id": r["warning_id"], "version": version[r["warning_id"]],
            "msg_type": r["msg_type"], "event": r["event"], "level": r["level"],
            "headline": r["headline"], "description": r["description"],
            "area_codes": list(r["area_codes"]), "area_geojson": None,
            "effective": r["effective"], "expires": r["expires"], "source": r["source"],
            "sender": FEED if feed else r["sender"],
            # the ingest stamps a feed's warning when it stores it, a moment after it was sent
            "created_at": r["ts"] + (float(rng.uniform(0.2, 2.0)) if feed else 0.0),
            "feed": FEED if feed else None, "seq": seqs.get(k) if feed else None,
            "extra": r["extra"],
        })
    df = pd.DataFrame(out)
    table = pa.table({
        **{c: pa.array(_strings(df[c]), pa.string())
           for c in ("warning_id", "msg_type", "event", "level", "headline", "description",
                     "area_geojson", "source", "sender", "feed", "extra")},
        "version": pa.array(df["version"], pa.int32()),
        "area_codes": pa.array(df["area_codes"].tolist(), pa.list_(pa.string())),
        "effective": _ts(df["effective"]), "expires": _ts(df["expires"]),
        "created_at": _ts(df["created_at"]),
        "seq": pa.array([None if s is None or pd.isna(s) else int(s) for s in df["seq"]],
                        pa.int64()),
    })
    store.insert("warnings", table)
    return len(df)
