"""Benchmark of the analysts' side: the query console and the snapshots for notebooks.

    .venv/bin/python bench/console.py [--db var/demo.duckdb] [--repeat 5]

Works on a private copy of the store (snapshots need the writer's connection). Prints the
median of each step and its ratio to a trivial query through the store measured in the same
run; the last line is one JSON object (``*_ms`` medians, ``*_mb`` sizes). Not a pass/fail test.

Queries run in sandbox processes (``sources.analysis.sandbox``): ``*_store_ms`` is the same
query run in the console process directly (what the in-process runner cost), ``*_runner_ms``
through the sandbox. ``paced`` steps leave 0.3 s between queries, as a person does (the
sandbox opens the next query's locked instance meanwhile); the others run back to back.
``rss_*_mb`` is how much the console process grew over an attack (largest of 10 ms samples).
"""
from __future__ import annotations

import argparse
import gc
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sources.analysis.query_console import QueryRunner, check_read_only  # noqa: E402
from sources.analysis.sandbox import Sandbox  # noqa: E402
from sources.store.snapshot import open_read_only, write_snapshot  # noqa: E402
from sources.store.store import Store  # noqa: E402

DEMO = ROOT / "var" / "demo.duckdb"
SLOW = "SELECT count(*) FROM range(100000000000) a, range(10) b"
BY_CITY = ("SELECT c.city, r.risk_level, count(*) AS n FROM risk_points r "
           "JOIN counties c USING (county_code) GROUP BY ALL")
POINTS = "SELECT lon, lat, risk_level FROM risk_points"


def timed(fn, repeat: int, pause: float = 0.0) -> float:
    """Median wall time of ``fn()`` in ms, after one warm-up call (``pause`` s untimed
    before each call)."""
    fn()
    samples = []
    for _ in range(repeat):
        time.sleep(pause)
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples)


def rss_growth_mb(fn) -> float:
    """How much the process grew while ``fn()`` ran (largest 10 ms sample), in MB."""
    gc.collect()
    proc = psutil.Process()
    before = peak = proc.memory_info().rss
    done = threading.Event()

    def sample():
        nonlocal peak
        while not done.is_set():
            peak = max(peak, proc.memory_info().rss)
            done.wait(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        fn()
    finally:
        done.set()
        sampler.join()
    return (peak - before) / 2**20


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--db", default=str(DEMO))
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-console-"))
    db = work / "console.duckdb"
    shutil.copy2(args.db, db)
    store = Store(db)
    n_points = store.scalar("SELECT count(*) FROM risk_points")
    sandbox = Sandbox(workers=2)
    runner = QueryRunner(store=store, row_limit=10_000, time_limit_s=60, sandbox=sandbox,
                         max_age_s=1e9)
    big = QueryRunner(store=store, row_limit=5_000_000, byte_limit=2**30, time_limit_s=60,
                      sandbox=sandbox, max_age_s=1e9)
    r = {}
    r["baseline_select1_ms"] = timed(lambda: store.arrow("SELECT 1"), args.repeat * 4)
    parser = store.cursor()  # a fresh connection costs ~100 ms
    r["guard_check_ms"] = timed(lambda: check_read_only(BY_CITY, parser), args.repeat * 4)
    # the first query of a runner on a live store writes the snapshot it reads
    t0 = time.perf_counter()
    runner.run("SELECT 1")
    r["first_query_with_snapshot_ms"] = (time.perf_counter() - t0) * 1000
    t0 = time.perf_counter()
    Sandbox(workers=1).run({"sql": "SELECT 1", "db": str(runner.database()[0]),
                            "row_limit": 1, "guard": True}, time_limit_s=60,
                           byte_limit=2**20)
    r["sandbox_start_ms"] = (time.perf_counter() - t0) * 1000
    r["runner_select1_ms"] = timed(lambda: runner.run("SELECT 1"), args.repeat * 4)
    r["runner_select1_paced_ms"] = timed(lambda: runner.run("SELECT 1"), args.repeat * 4, 0.3)
    r["refuse_delete_ms"] = timed(lambda: runner.run("DELETE FROM risk_points"), args.repeat)
    r["by_city_store_ms"] = timed(lambda: store.arrow(BY_CITY), args.repeat)
    r["by_city_runner_ms"] = timed(lambda: runner.run(BY_CITY), args.repeat)
    r["by_city_runner_paced_ms"] = timed(lambda: runner.run(BY_CITY), args.repeat, 0.3)
    r["points_10k_store_ms"] = timed(lambda: store.arrow(POINTS + " LIMIT 10000"), args.repeat)
    r["points_10k_ms"] = timed(lambda: runner.run(POINTS), args.repeat)
    r["points_all_store_ms"] = timed(lambda: store.arrow(POINTS), args.repeat)
    r["points_all_ms"] = timed(lambda: big.run(POINTS), args.repeat)
    held = []
    r["rss_string_10mb_mb"] = rss_growth_mb(
        lambda: held.append(runner.run("SELECT repeat('x', 10000000) AS s")))
    r["rss_100_strings_10mb_mb"] = rss_growth_mb(
        lambda: held.append(runner.run("SELECT repeat('x', 10000000) AS s FROM range(100)")))
    r["attack_100_strings_status"] = f"{held[-1].status}/{held[-1].code or held[-1].cut}"
    held.clear()

    # time limit and cancel: how long past the limit / the click the query stops
    limited = QueryRunner(store=store, time_limit_s=0.5, sandbox=sandbox, max_age_s=1e9)
    t0 = time.perf_counter()
    res = limited.run(SLOW)
    r["timeout_0.5s_stops_after_ms"] = (time.perf_counter() - t0) * 1000
    assert res.status == "timeout", res
    out = {}
    worker = threading.Thread(target=lambda: out.setdefault("r", runner.run(SLOW)))
    worker.start()
    time.sleep(0.5)
    t0 = time.perf_counter()
    runner.cancel()
    worker.join()
    r["cancel_latency_ms"] = (time.perf_counter() - t0) * 1000
    assert out["r"].status == "cancelled", out["r"]

    # the map of every point, rendered to a Bokeh model (datashader)
    import panel as pn

    from views.query_console import chart_element, chart_spec

    table = big.run(POINTS).table
    df = table.to_pandas()

    def render():
        el = chart_element(df, chart_spec(table.schema), runner.outlines())
        pn.panel(el).get_root()

    r["map_all_points_render_ms"] = timed(render, max(2, args.repeat // 2))

    # snapshots for notebooks
    t0 = time.perf_counter()
    snap = write_snapshot(store)
    r["snapshot_write_ms"] = (time.perf_counter() - t0) * 1000
    r["snapshot_mb"] = snap.stat().st_size / 1e6
    r["store_mb"] = db.stat().st_size / 1e6
    sandbox.stop()
    t0 = time.perf_counter()
    reader = open_read_only(db)  # held by this process: falls back to the snapshot
    r["open_snapshot_ms"] = (time.perf_counter() - t0) * 1000
    assert reader.scalar("SELECT count(*) FROM risk_points") == n_points
    reader.close()
    store.close()
    shutil.rmtree(work, ignore_errors=True)

    base = r["baseline_select1_ms"]
    print(f"store {args.db}: {n_points:,} risk points")
    print(f"{'step':34s} {'median':>12s} {'x SELECT 1':>11s}")
    for key, value in r.items():
        if key.endswith("_ms"):
            print(f"{key:34s} {value:10.2f}ms {value / base:11.1f}")
        elif isinstance(value, str):
            print(f"{key:34s} {value:>12s}")
        else:
            print(f"{key:34s} {value:12.1f}")
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()}
                     | {"risk_points": n_points}))


if __name__ == "__main__":
    main()
