"""Benchmark (not a test): distributed mode's latencies on loopback.

``python bench/centres.py [--samples 30]``

Three centres (county 370102 → city 370100 → province 370000), each with its own
``nats-server`` (Debian's), linked as leaf nodes; the county's ingest node on a websocket
feed; one console per centre plus a second county console, each on its own DuckDB view of a
tiny store. Measures, medians and p95 over ``--samples``:

* **action → other process**: an officer acknowledges an alarm on county console A; time
  until county console B's hub delivers it (B's pages hear of it then). Baseline, same run:
  the same acknowledgement on an embedded console (one store, its own hub).
* **feed → county, feed → province**: a breaching reading leaves the feed; time until the
  alarm is published on the county console's hub, and on the province console's hub.

Prints a table; the last line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))] if xs else None


def acknowledged_and_heard(actor, listener, alarm_ids) -> list[float]:
    """Milliseconds from acknowledging each alarm on ``actor`` to its news on ``listener``'s
    hub (the same console: the embedded baseline)."""
    out = []
    for alarm_id in alarm_ids:
        heard = threading.Event()
        sub = listener.hub.subscribe(["alarm"], notify=heard.set)
        t0 = time.perf_counter()
        actor.alarms.acknowledge(alarm_id, "bench")
        heard.wait(10)
        out.append((time.perf_counter() - t0) * 1e3)
        listener.hub.unsubscribe(sub)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=30)
    args = ap.parse_args()
    from alarm_latency import BenchFeed

    from data.generate import build
    from sources.console import Console
    from sources.distributed.ingest import CentreIngest, prepare_registry
    from sources.distributed.local import LogServers, free_port
    from sources.distributed.log import EventLog
    from sources.distributed.serving import distributed_console
    from sources.distributed.topology import Topology
    from sources.store.store import Store

    tmp = Path(tempfile.mkdtemp(prefix="bench-distributed-"))
    servers, admins, consoles, node, feed = [], [], [], None, None
    try:
        build(tmp / "tiny.duckdb", scale="tiny", seed=7, progress=False, history=False)
        registry = prepare_registry(tmp / "tiny.duckdb", tmp / "registry.duckdb")
        p_leaf, c_leaf = free_port(), free_port()
        prov = LogServers(tmp, "370000", leaf_port=p_leaf).start()
        city = LogServers(tmp, "370100", leaf_port=c_leaf,
                          parent=f"nats-leaf://127.0.0.1:{p_leaf}").start()
        county = LogServers(tmp, "370102", parent=f"nats-leaf://127.0.0.1:{c_leaf}").start()
        servers = [prov, city, county]
        centres = tmp / "centres.json"
        centres.write_text(json.dumps({"centres": {
            "370000": {"level": "province", "servers": prov.urls},
            "370100": {"level": "city", "parent": "370000", "servers": city.urls},
            "370102": {"level": "county", "parent": "370100", "servers": county.urls}}}))
        topo = Topology.load(centres)
        for code in ("370102", "370100", "370000"):
            admin = EventLog(servers=list(topo[code].servers)).start()
            admin.ensure_streams(topo, code)
            admin.put_snapshot(topo[code].snapshots, registry)
            admins.append(admin)
        feed = BenchFeed()
        node = CentreIngest(topology=topo, code="370102", db=str(tmp / "ingest.duckdb"),
                            registry=str(registry), feeds=[feed.url]).start()
        params = dict(load_layers=False, snapshot_interval_s=0, malloc_trim_s=0)
        a = distributed_console(centres, "370102", tmp / "a.duckdb", **params).start()
        b = distributed_console(centres, "370102", tmp / "b.duckdb", **params).start()
        p = distributed_console(centres, "370000", tmp / "p.duckdb", **params).start()
        shutil.copy2(tmp / "tiny.duckdb", tmp / "embedded.duckdb")
        emb = Console(store=Store(tmp / "embedded.duckdb"), **params).start()
        consoles = [a, b, p, emb]

        sensors = a.store.arrow("SELECT sensor_id, hi_hi FROM sensors WHERE hi_hi IS NOT NULL "
                                "ORDER BY sensor_id LIMIT ?", [args.samples]).to_pylist()
        to_county, to_province = [], []
        for r in sensors:  # one breach at a time: feed -> county hub, -> province hub
            got = {}
            subs = []
            for name, c in (("county", a), ("province", p)):
                ev = threading.Event()

                def note(name=name, ev=ev, got=got):
                    got.setdefault(name, time.perf_counter())
                    ev.set()
                subs.append((c, c.hub.subscribe(["alarm"], notify=note), ev))
            t0 = time.perf_counter()
            feed.send([{"type": "reading", "seq": feed.next_seqs(1)[0],
                        "ts": int(time.time() * 1000), "sensor_id": r["sensor_id"],
                        "value": r["hi_hi"] + 1.0}])
            for c, sub, ev in subs:
                ev.wait(10)
                c.hub.unsubscribe(sub)
            to_county.append((got["county"] - t0) * 1e3)
            to_province.append((got["province"] - t0) * 1e3)
        time.sleep(0.5)
        ids = a.store.arrow("SELECT alarm_id FROM alarms WHERE state = 'raised' AND alarm_id > "
                            "1e9 ORDER BY 1").column(0).to_pylist()[:args.samples]
        a_to_b = acknowledged_and_heard(a, b, ids)
        # baseline: the same action on an embedded console, heard on its own hub
        emb_ids = []
        for r in sensors:
            emb.alarm_engine.evaluate(pa.table({
                "ts": pa.array([int(time.time() * 1e6)]).cast(pa.timestamp("us", tz="UTC")),
                "sensor_id": [r["sensor_id"]], "value": [r["hi_hi"] + 1.0]}))
        emb_ids = emb.store.arrow("SELECT alarm_id FROM alarms WHERE state = 'raised' "
                                  "ORDER BY 1").column(0).to_pylist()[:args.samples]
        embedded = acknowledged_and_heard(emb, emb, emb_ids)
    finally:
        for c in consoles:
            c.stop()
        if node is not None:
            node.stop()
        for admin in admins:
            admin.stop()
        if feed is not None:
            feed._stop.set()
        for s in servers:
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    rows = [("acknowledge, embedded console (baseline)", embedded),
            ("acknowledge on A -> B's hub", a_to_b),
            ("feed -> county console's hub", to_county),
            ("feed -> province console's hub", to_province)]
    print(f"{'what':42} {'n':>4} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    for name, xs in rows:
        print(f"{name:42} {len(xs):4d} {pct(xs, .5):8.1f} {pct(xs, .95):8.1f} {max(xs):8.1f}")
    print(json.dumps({
        "embedded_ack_p50_ms": round(pct(embedded, .5), 1),
        "a_to_b_p50_ms": round(pct(a_to_b, .5), 1), "a_to_b_p95_ms": round(pct(a_to_b, .95), 1),
        "feed_to_county_p50_ms": round(pct(to_county, .5), 1),
        "feed_to_province_p50_ms": round(pct(to_province, .5), 1),
        "feed_to_province_p95_ms": round(pct(to_province, .95), 1),
        "samples": args.samples}))


if __name__ == "__main__":
    main()
