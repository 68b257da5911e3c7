"""Benchmark of the monitoring and warning queries on a copy of a store with 72 h of synthetic
station readings (every rain gauge, river, reservoir and weather sensor, every 10 minutes).

    .venv/bin/python bench/warning_monitoring.py --db var/demo.duckdb [--repeat 3]

Prints the median time of each operation and its ratio to a baseline measured in the same
run (a full scan of the readings: ``SELECT count(*), sum(value) FROM readings``).
"""
from __future__ import annotations

import argparse
import datetime as dt
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sources.hub import Hub  # noqa: E402
from sources.store.store import Store  # noqa: E402
from sources.warnings.monitoring import MonitoringSource  # noqa: E402
from sources.warnings.warnings import LatestCache, WarningSource  # noqa: E402

KINDS = ("rain", "river_level", "reservoir_level", "air_temperature", "humidity", "wind_speed")


def synthetic_readings(store: Store, hours: int = 72, step_min: int = 10) -> int:
    sensors = store.df("SELECT sensor_id, kind, coalesce(normal, 0) AS normal, hi FROM sensors "
                       "WHERE list_contains(?, kind)", [list(KINDS)])
    rng = np.random.default_rng(1)
    end = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    times = [end - dt.timedelta(minutes=step_min * i) for i in range(hours * 60 // step_min)]
    n = len(sensors) * len(times)
    base = {"rain": 0.0, "air_temperature": 12.0, "humidity": 55.0, "wind_speed": 4.0}
    values = np.empty(n)
    for i, row in enumerate(sensors.itertuples()):
        sl = slice(i * len(times), (i + 1) * len(times))
        if row.kind == "rain":
            values[sl] = np.clip(rng.gamma(0.6, 6.0, len(times)) - 2.0, 0, None)
        elif row.kind in base:
            values[sl] = base[row.kind] + rng.normal(0, 3, len(times))
        else:
            values[sl] = row.normal + rng.normal(0, 0.3, len(times))
    table = pa.table({
        "feed": pa.array(["bench"] * n), "seq": pa.array(np.arange(n), pa.int64()),
        "ts": pa.array(times * len(sensors), pa.timestamp("us", tz="UTC")),
        "sensor_id": pa.array(np.repeat(sensors["sensor_id"].to_numpy(), len(times))),
        "value": pa.array(values, pa.float64())})
    store.insert("readings", table)
    return n


def timed(fn, repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t)
    return statistics.median(runs)


def main(argv=None) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--db", default=str(ROOT / "var" / "demo.duckdb"))
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="bench-warnings-")) / "bench.duckdb"
    shutil.copy2(args.db, tmp)
    store = Store(tmp)
    try:
        n = synthetic_readings(store)
        hub = Hub()
        mon = MonitoringSource(store=store, hub=hub)
        warn = WarningSource(store=store, hub=hub, geography=mon.geo, cache=LatestCache(hub))
        codes = mon.geo.codes
        now = dt.datetime.now(dt.UTC)
        for i in range(50):
            warn.issue(event="rainstorm", level=("blue", "yellow", "orange", "red")[i % 4],
                       headline=f"bench {i}", counties=codes[i % len(codes):][:3],
                       expires=now + dt.timedelta(hours=6))
        wid = warn.active(geometry=False)["warning_id"].iloc[0]
        counts = {k: store.scalar(f"SELECT count(*) FROM {k}")
                  for k in ("landslide_points", "counties", "sensors")}
        print(f"store: {args.db}; {n:,} synthetic readings; {counts}")
        baseline = timed(lambda: store.scalar("SELECT count(*), sum(value) FROM readings"),
                         args.repeat)
        ops = {
            "rainfall 24 h (gauges)": lambda: mon.rainfall("24h"),
            "rain surface 120x90 IDW": lambda: mon.rain_surface("24h"),
            "water levels": mon.water_levels,
            "landslide risk (all points)": mon.landslide_risk,
            "fire danger (counties)": mon.fire_danger,
            "county risk (5 hazards)": mon.county_risk,
            "active warnings (cached)": lambda: warn.active(geometry=False),
            "active warnings + areas": warn.active,
            "issue one warning": lambda: warn.issue(
                event="gale", level="blue", headline="b", counties=codes[:2],
                expires=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)),
            "CAP alert XML": lambda: warn.cap_xml(wid),
            "CAP index XML": warn.cap_index_xml,
        }
        from sources.console import Console

        console = Console(store=store, hub=hub, load_layers=False)

        def page():
            import panel as pn

            from dashboards.warnings import WarningsDashboard

            pn.panel(WarningsDashboard(console=console, lang="zh").layout()).get_root()

        ops["/warnings page (build + models)"] = page
        print(f"{'operation':34s} {'median s':>9s} {'x baseline':>10s}")
        print(f"{'baseline: scan readings':34s} {baseline:9.4f} {1.0:10.1f}")
        for name, fn in ops.items():
            t = timed(fn, args.repeat)
            print(f"{name:34s} {t:9.4f} {t / baseline:10.1f}")
    finally:
        store.close()
        shutil.rmtree(tmp.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
