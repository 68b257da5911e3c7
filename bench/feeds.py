"""Benchmark of the feed ingest (not a test): ``python bench/feeds.py [--quick]``.

Measured in one run, against a websocket server in a subprocess (so it has its own core):

* raw: the websockets client alone receiving the frames (the ceiling);
* ingest: :class:`sources.ingest.feed.FeedIngest` receiving, validating and persisting them into a
  fresh DuckDB store, exactly once (time until every message is committed);
* ingest + alarms: the same with ``sources.alarms.engine.AlarmEngine`` registered as a listener
  (when that module exists).

Values are realistic: within the sensors' limits, with one reading in 5,000 beyond hi (an
alarm raised, then cleared), over 1,000 sensors.

Each for single-reading frames and frames of 100 readings, as readings per wall second and
per CPU second of the console process (every thread; the feed server is another process).
On a shared machine the wall rates follow the load; the per-CPU-second figures and the
ratios to the raw client measured in the same run are the ones to compare. Prints a table;
the last line is one JSON object with the headline figures.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

N_SENSORS = 1000

SERVER = r'''
import asyncio, sys
from urllib.parse import parse_qs, urlsplit
from websockets.asyncio.server import serve

TOTAL, PER_FRAME, FIRST = int(sys.argv[1]), int(sys.argv[2]), 1_000_000
TS = 1795860000000

def value(s):  # within limits (hi 80), but one reading in 5000 breaches and then clears
    return 85 if s % 5000 == 0 else 40 + s % 20

def frame(first, n):
    msgs = [b'{"type":"reading","seq":%d,"ts":%d,"sensor_id":"S%04d","value":%d.25}'
            % (s, TS + (s % 100000), s % 1000, value(s)) for s in range(first, first + n)]
    return msgs[0] if n == 1 else b"[" + b",".join(msgs) + b"]"

async def handler(ws):
    since = int(parse_qs(urlsplit(ws.request.path).query).get("since", ["-1"])[0])
    s = max(since + 1, FIRST)
    end = FIRST + TOTAL
    while s < end:
        n = min(PER_FRAME, end - s)
        await ws.send(frame(s, n), text=True)
        s += n
    await asyncio.Future()  # stay open: the client decides when it has seen enough

async def main():
    async with serve(handler, "127.0.0.1", 0, compression=None, max_size=2**24,
                     write_limit=2**20) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()

asyncio.run(main())
'''


class Server:
    """The feed server subprocess: sends TOTAL readings in frames of PER_FRAME."""

    def __init__(self, total: int, per_frame: int):
        self.proc = subprocess.Popen([sys.executable, "-c", SERVER, str(total), str(per_frame)],
                                     stdout=subprocess.PIPE, text=True)
        self.url = f"ws://127.0.0.1:{int(self.proc.stdout.readline())}/feed"

    def close(self):
        self.proc.terminate()
        self.proc.wait(10)


def raw_rate(total: int, per_frame: int) -> tuple[float, float]:
    """Readings the websockets client alone receives per wall second and per CPU second."""
    from websockets.asyncio.client import connect

    server = Server(total, per_frame)

    async def run():
        # the very settings the ingest connects with (sources/ingest/feed.py), nothing else
        async with connect(server.url + "?since=-1", max_size=2**24, compression=None,
                           proxy=None, ping_interval=20, ping_timeout=20, max_queue=64) as ws:
            n, t0, c0 = 0, None, None
            async for _frame in ws:
                if t0 is None:
                    t0, c0 = time.perf_counter(), time.process_time()
                n += per_frame
                if n >= total:
                    n -= per_frame
                    return n / (time.perf_counter() - t0), n / (time.process_time() - c0)
    try:
        return asyncio.run(run())
    finally:
        server.close()


def make_store(directory: Path):
    import numpy as np
    import pandas as pd

    from sources.store.store import Store

    store = Store(directory / "bench.duckdb")
    n = N_SENSORS
    store.insert("sensors", pd.DataFrame({
        "sensor_id": [f"S{i:04d}" for i in range(n)], "kind": "temperature", "unit": "°C",
        "lon": 117.0, "lat": 36.6, "county_code": "370102",
        "installation_id": np.arange(n, dtype="int32"), "enterprise_id": np.arange(n) // 5,
        "station_id": None, "period_s": 1.0, "normal": 50.0, "lo_lo": 5.0, "lo": 10.0,
        "hi": 80.0, "hi_hi": 90.0, "deadband": 1.0,
    }))
    return store


def ingest_rate(total: int, per_frame: int, alarms: bool) -> tuple[float, float]:
    """Readings received, validated and committed (alarms evaluated if asked) per wall
    second and per CPU second of this process (all its threads; the server is another)."""
    from sources.hub import Hub
    from sources.ingest.feed import FeedIngest

    with tempfile.TemporaryDirectory(prefix="bench-feeds-") as tmp:
        store = make_store(Path(tmp))
        server = Server(total, per_frame)
        hub = Hub()
        ingest = FeedIngest(url=server.url, store=store, hub=hub)
        engine = None
        if alarms:
            from sources.alarms.engine import AlarmEngine

            engine = AlarmEngine(store=store, hub=hub)
            ingest.add_listener(engine.on_batch)
        try:
            ingest.start()
            while ingest.received == 0:
                time.sleep(0.001)
            t0, c0 = time.perf_counter(), time.process_time()
            first = ingest.received
            while ingest.stored < total:
                time.sleep(0.005)
                if time.perf_counter() - t0 > 300:
                    raise RuntimeError(f"stalled: {ingest.status()}")
            dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        finally:
            ingest.stop()
            server.close()
        stored = store.scalar("SELECT count(*) FROM readings")
        distinct = store.scalar("SELECT count(DISTINCT seq) FROM readings")
        store.close()
        assert stored == distinct == total, (stored, distinct, total)
        if engine is not None:
            assert engine.evaluated == total
        return (total - first) / dt, (total - first) / cpu


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--single", type=int, default=150_000, help="readings sent one per frame")
    p.add_argument("--batched", type=int, default=1_500_000, help="readings sent 100 per frame")
    p.add_argument("--quick", action="store_true", help="a tenth of the messages")
    p.add_argument("--repeat", type=int, default=2,
                   help="runs of each measurement; the best counts (the machine is shared)")
    args = p.parse_args()
    if args.quick:
        args.single //= 10
        args.batched //= 10
    has_alarms = (ROOT / "sources" / "alarms.py").exists()
    try:
        from sources.alarms.engine import AlarmEngine  # noqa: F401
    except ImportError:
        has_alarms = False
    rows = []
    results: dict[str, float] = {}

    def best(fn, *a):
        runs = [fn(*a) for _ in range(args.repeat)]
        return max(r[0] for r in runs), max(r[1] for r in runs)

    for label, total, per_frame in (("single", args.single, 1), ("batch100", args.batched, 100)):
        raw, raw_cpu = best(raw_rate, total, per_frame)
        rows.append((label, "websockets client alone", raw, 1.0, raw_cpu, 1.0))
        results[f"raw_{label}_per_s"] = round(raw)
        kinds = [("ingest", "ingest + persist", False)]
        if has_alarms:
            kinds.append(("alarms", "ingest + persist + alarms", True))
        for key, what, alarms in kinds:
            rate, cpu = best(ingest_rate, total, per_frame, alarms)
            rows.append((label, what, rate, rate / raw, cpu, cpu / raw_cpu))
            results[f"{key}_{label}_per_s"] = round(rate)
            results[f"ratio_{key}_{label}"] = round(rate / raw, 3)
            results[f"{key}_{label}_per_cpu_s"] = round(cpu)
    print(f"\n{'frames':<10} {'what':<27} {'readings/s':>11} {'vs raw':>7} "
          f"{'per CPU-s':>11} {'vs raw':>7}")
    for label, what, rate, ratio, cpu, cpu_ratio in rows:
        print(f"{label:<10} {what:<27} {rate:>11,.0f} {ratio:>7.2f} {cpu:>11,.0f} {cpu_ratio:>7.2f}")
    results["target_single_met"] = results["ingest_single_per_s"] >= 25_000
    results["target_batch100_met"] = results["ingest_batch100_per_s"] >= 100_000
    results["cpus"] = os.cpu_count()
    results["load_avg_1m"] = round(os.getloadavg()[0], 2)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
