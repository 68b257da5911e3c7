"""Benchmark of the risk layer partitioned over Dask workers (a benchmark, not a test).

    .venv/bin/python bench/riskmap_dask.py [--sizes 1e7 1e8] [--runs 5] [--workers 2]
                                           [--partition-points 1e6] [--baseline-max 1e8]
                                           [--no-stock]

Synthetic clustered points over a national extent (6,000 towns, Pareto-sized; 2 % red,
8 % orange, 30 % yellow, 60 % blue), generated in chunks of 5M ON the workers. For each N,
in one run, on one ``LocalCluster`` of single-threaded worker processes:

1. ours, partitioned: :class:`PartitionedPointLayer` (build time, memory per partition and
   per worker, client RSS), frames (aggregate + shade, 1920×1080) of the whole country, a
   province and a city, medians of ``--runs``, and the bytes each frame brought back;
2. stock datashader on a ``dask.dataframe`` of the same points, persisted on the same
   workers (``Canvas.points`` + ``count_cat`` + ``shade``): the reference nobody here wrote;
3. the baseline: one in-process :class:`PointLayer` of the same points (up to
   ``--baseline-max``), and whether its counts equal the partitioned ones, pixel for pixel.

The last line is one JSON object.
"""
from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
# a bench script named like a package would shadow it (here and in the workers, which
# inherit sys.path): import from the repository root instead of from bench/
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from sources.risk.partitioned import PartitionedPointLayer  # noqa: E402
from sources.risk.pointlayer import GRADE_COLORS, GRADES, PointLayer  # noqa: E402

W, H = 1920, 1080
NATIONAL = (73.5, 135.0, 18.0, 53.5)
SHANDONG = (114.8, 122.7, 34.4, 38.4)
CHUNK = 5_000_000
SEED = 1


# ---------------------------------------------------------------------- the points
def towns(seed: int = SEED):
    """Centres, cumulative weights and spreads of the towns (the same for every chunk)."""
    rng = np.random.default_rng(seed)
    x0, x1, y0, y1 = NATIONAL
    k = 6000
    cx, cy = rng.uniform(x0 + 0.5, x1 - 0.5, k), rng.uniform(y0 + 0.5, y1 - 0.5, k)
    weight = rng.pareto(1.2, k) + 0.05
    return cx, cy, np.cumsum(weight / weight.sum()), rng.uniform(0.01, 0.25, k)


def chunk_points(i: int, n: int, seed: int = SEED):
    """Chunk ``i``: ``n`` points (x, y float32, grade, enterprise index), its own stream."""
    cx, cy, cdf, scale = towns(seed)
    rng = np.random.default_rng([seed, i])
    idx = np.minimum(np.searchsorted(cdf, rng.random(n) * cdf[-1]), len(cx) - 1)
    s = scale[idx].astype(np.float32)
    x = cx[idx].astype(np.float32) + rng.standard_normal(n, np.float32) * s
    y = cy[idx].astype(np.float32) + rng.standard_normal(n, np.float32) * s * np.float32(0.8)
    x0, x1, y0, y1 = NATIONAL
    np.clip(x, x0, x1 - 1e-3, out=x)
    np.clip(y, y0, y1 - 1e-3, out=y)
    u = rng.random(n, np.float32)
    cat = ((u >= 0.02).astype(np.uint8) + (u >= 0.10) + (u >= 0.40)).astype(np.uint8)
    ent = rng.integers(0, 2_000_000, n, dtype=np.int32)
    return x, y, cat, ent


def chunk_frame(i: int, n: int):
    """Chunk ``i`` as the DataFrame a datashader user would hold (float32, categorical)."""
    import pandas as pd

    x, y, cat, _ = chunk_points(i, n)
    return pd.DataFrame({"x": x, "y": y, "grade": pd.Categorical.from_codes(cat, GRADES)})


def chunk_sizes(n: int) -> list[int]:
    return [min(CHUNK, n - s) for s in range(0, n, CHUNK)]


def views() -> dict[str, tuple[float, float, float, float]]:
    cx, cy, cdf, _ = towns()
    big = int(np.argmax(np.diff(np.r_[0.0, cdf])))  # the heaviest town: a city view
    return {"full": NATIONAL, "province": SHANDONG,
            "city": (float(cx[big]) - 0.4, float(cx[big]) + 0.4, float(cy[big]) - 0.25,
                     float(cy[big]) + 0.25)}


# ---------------------------------------------------------------------- measuring
def median_ms(fn, runs: int) -> float:
    fn()  # warm
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def trim() -> None:
    gc.collect()
    try:  # hand freed arrays back to the OS before the next RSS reading
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:  # pragma: no cover - not glibc
        pass


def worker_rss_mb(client) -> dict[str, float]:
    def rss():
        import psutil

        return psutil.Process().memory_info().rss / 2**20

    return client.run(rss)


def frame_fn(layer, bounds):
    spread = 0 if bounds == NATIONAL else None

    def fn():
        counts, _ = layer.aggregate(bounds, W, H)
        layer.shade_index(counts, spread=spread)
    return fn


def partitioned(client, n: int, args) -> tuple[dict, dict]:
    """Build, frame and measure the partitioned layer; its counts per view (to compare)."""
    chunks = [partial(chunk_points, i, k) for i, k in enumerate(chunk_sizes(n))]
    rss0, wrss0 = rss_mb(), worker_rss_mb(client)
    t = time.perf_counter()
    layer = PartitionedPointLayer.build(chunks, extent=NATIONAL,
                                        partition_points=int(args.partition_points),
                                        client=client, frame_timeout=600)
    build = time.perf_counter() - t
    out = {"build_s": round(build, 2), "partitions": len(layer.meta)}
    sizes = np.array([m["nbytes"] for m in layer.meta]) / 2**20
    out.update(part_mb_min=round(float(sizes.min()), 1),
               part_mb_median=round(float(np.median(sizes)), 1),
               part_mb_max=round(float(sizes.max()), 1),
               layer_mb=round(layer.nbytes / 2**20, 1))
    for name, b in views().items():
        out[f"{name}_ms"] = round(median_ms(frame_fn(layer, b), args.runs), 1)
        out[f"{name}_partitions"] = layer.last_frame["partitions"]
        out[f"{name}_mb_moved"] = round(layer.last_frame["bytes"] / 2**20, 2)
    wrss = worker_rss_mb(client)
    out["worker_rss_mb"] = [round(v) for v in wrss.values()]
    out["worker_rss_delta_mb"] = [round(wrss[k] - wrss0.get(k, 0)) for k in wrss]
    out["client_rss_mb"] = round(rss_mb())
    out["client_rss_delta_mb"] = round(rss_mb() - rss0)
    saved = {name: layer.aggregate(b, W, H) for name, b in views().items()}  # to compare
    layer.close()
    return out, saved


def stock(client, n: int, runs: int) -> dict:
    """Stock datashader on a dask.dataframe of the same points, persisted on the workers."""
    import dask.dataframe as dd
    import datashader as ds
    import datashader.transfer_functions as tf
    import pandas as pd
    from distributed import wait

    meta = pd.DataFrame({"x": np.zeros(0, np.float32), "y": np.zeros(0, np.float32),
                         "grade": pd.Categorical.from_codes([], GRADES)})
    t = time.perf_counter()
    ddf = dd.from_map(chunk_frame, list(range(len(chunk_sizes(n)))), chunk_sizes(n),
                      meta=meta).persist()
    wait(ddf)
    out = {"load_s": round(time.perf_counter() - t, 2)}
    for name, b in views().items():
        if name == "city":
            continue  # it reads every point whatever the view: the province says as much
        cvs = ds.Canvas(plot_width=W, plot_height=H, x_range=b[:2], y_range=b[2:])

        def frame(cvs=cvs):
            agg = cvs.points(ddf, "x", "y", ds.count_cat("grade"))
            return tf.shade(agg, color_key=GRADE_COLORS), agg

        out[f"{name}_ms"] = round(median_ms(frame, max(3, runs // 2)), 1)
        out[f"{name}_points"] = int(frame()[1].sum())
    return out  # the persisted frame leaves the workers with the last reference


def baseline(n: int, runs: int, saved: dict) -> dict:
    """One in-process PointLayer of the same points; equal counts to the partitioned ones?"""
    rss0 = rss_mb()
    cols = [np.empty(n, np.float32), np.empty(n, np.float32), np.empty(n, np.uint8),
            np.empty(n, np.int32)]
    at = 0
    for i, k in enumerate(chunk_sizes(n)):
        for col, part in zip(cols, chunk_points(i, k), strict=True):
            col[at:at + k] = part
        at += k
    t = time.perf_counter()
    layer = PointLayer.from_arrays(*cols, extent=NATIONAL, grid=512)
    out = {"build_s": round(time.perf_counter() - t, 2)}
    del cols
    trim()
    out["rss_delta_mb"] = round(rss_mb() - rss0)
    out["layer_mb"] = round(layer.nbytes / 2**20, 1)
    equal = True
    for name, b in views().items():
        out[f"{name}_ms"] = round(median_ms(frame_fn(layer, b), runs), 1)
        if name == "full":
            out["full_2thr_ms"] = round(median_ms(
                lambda b=b: layer.shade_index(layer.aggregate(b, W, H, threads=2)[0], spread=0,
                                              threads=2), runs), 1)
        counts, totals = layer.aggregate(b, W, H)
        same = bool(np.array_equal(counts, saved[name][0]) and totals == saved[name][1])
        out[f"{name}_equal"] = same
        equal &= same
    out["equal"] = equal
    return out


# ---------------------------------------------------------------------- main
def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", nargs="+", type=float, default=[1e7, 1e8])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--partition-points", type=float, default=1e6,
                   help="most points a partition holds (quadtree leaves)")
    p.add_argument("--baseline-max", type=float, default=1e8,
                   help="largest N for the in-process baseline (it holds every point)")
    p.add_argument("--no-stock", action="store_true", help="skip stock datashader on dask")
    args = p.parse_args(argv)

    import distributed

    sizes = [int(s) for s in args.sizes]
    print(f"# {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start; "
          f"{args.workers} worker processes × 1 thread; partitions of at most "
          f"{int(args.partition_points):,} points; frames {W}x{H}; views {views()}")
    result: dict = {"workers": args.workers, "partition_points": int(args.partition_points),
                    "runs": args.runs}
    with distributed.LocalCluster(n_workers=args.workers, threads_per_worker=1,
                                  host="127.0.0.1", dashboard_address=None,
                                  scheduler_kwargs={"dashboard_address": "127.0.0.1:0"}) \
            as cluster, distributed.Client(cluster) as client:
        saved, rows = {}, {}
        # partitioned first, for every N: the client process has never held a point yet
        for n in sizes:
            rows[n], saved[n] = partitioned(client, n, args)
            trim()
            print(f"partitioned {n:,}: {json.dumps(rows[n])}", flush=True)
        for n in sizes:
            if not args.no_stock:
                rows[n]["stock"] = stock(client, n, args.runs)
                trim()
                print(f"stock datashader on dask {n:,}: {json.dumps(rows[n]['stock'])}",
                      flush=True)
    for n in sizes:  # the cluster is gone: the baseline has the machine to itself
        if n <= args.baseline_max:
            rows[n]["baseline"] = baseline(n, args.runs, saved[n])
            print(f"one PointLayer {n:,}: {json.dumps(rows[n]['baseline'])}", flush=True)
        saved.pop(n)
        trim()

    header = (f"{'N':>12} | {'what':<26} | {'build s':>7} | {'full ms':>7} | "
              f"{'province':>8} | {'city ms':>7} | {'memory':<28}")
    print(header)
    print("-" * len(header))
    for n in sizes:
        r = rows[n]
        print(f"{n:>12,} | {'partitioned (ours)':<26} | {r['build_s']:7.1f} | {r['full_ms']:7.0f}"
              f" | {r['province_ms']:8.0f} | {r['city_ms']:7.0f} | workers "
              f"{'+'.join(str(v) for v in r['worker_rss_delta_mb'])} MB, client "
              f"{r['client_rss_mb']} MB")
        if "stock" in r:
            s = r["stock"]
            print(f"{n:>12,} | {'stock datashader on dask':<26} | {s['load_s']:7.1f} | "
                  f"{s['full_ms']:7.0f} | {s['province_ms']:8.0f} | {'':>7} |")
        if "baseline" in r:
            b = r["baseline"]
            print(f"{n:>12,} | {'one PointLayer (baseline)':<26} | {b['build_s']:7.1f} | "
                  f"{b['full_ms']:7.0f} | {b['province_ms']:8.0f} | {b['city_ms']:7.0f} | "
                  f"process +{b['rss_delta_mb']} MB; equal: {b['equal']}")
        tag = f"{n / 1e6:g}M"
        result[tag] = r
    result["load_average_end"] = round(os.getloadavg()[0], 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
