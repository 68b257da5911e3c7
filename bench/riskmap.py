"""Benchmark of the four-colour risk map (a benchmark, not a test).

    .venv/bin/python bench/riskmap.py [--sizes 1e6 1e7 2.5e7] [--browser] [--runs 7]

For each N: synthetic clustered float32 points over Shandong; our frame (aggregate + shade,
1920×1080, full extent, no frame cache) against stock datashader ``count_cat`` + categorical
``shade`` on the same data (float64 DataFrame, as a user would hold it) in the same run; then
a plain Bokeh scatter of 1M points (what a user without datashader would do); optionally
(``--browser``) wheel zooms and pans in headless Chromium at 10M points: the time until the
new image is in the page. The last line is one JSON object.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sources.risk.pointlayer import GRADE_COLORS, GRADES, SHANDONG_EXTENT, PointLayer  # noqa: E402

W, H = 1920, 1080


def synthetic(n: int, seed: int = 1):
    """Clustered points (towns and industrial parks), most blue, few red; float32."""
    rng = np.random.default_rng(seed)
    x0, x1, y0, y1 = SHANDONG_EXTENT
    k = 600
    cx, cy = rng.uniform(x0 + 0.3, x1 - 0.3, k), rng.uniform(y0 + 0.2, y1 - 0.2, k)
    weight = rng.pareto(1.2, k) + 0.05
    idx = rng.choice(k, n, p=weight / weight.sum())
    scale = rng.uniform(0.01, 0.25, k)[idx]
    x = (cx[idx] + rng.standard_normal(n, np.float32) * scale).astype(np.float32)
    y = (cy[idx] + rng.standard_normal(n, np.float32) * scale * 0.8).astype(np.float32)
    np.clip(x, x0, x1 - 1e-4, out=x)
    np.clip(y, y0, y1 - 1e-4, out=y)
    cat = rng.choice(4, n, p=[0.02, 0.08, 0.30, 0.60]).astype(np.uint8)
    ent = rng.integers(0, 85_000, n, dtype=np.int32)
    return x, y, cat, ent


def median_ms(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def ours(layer: PointLayer, runs: int) -> dict[str, float]:
    """Median frame times: automatic threads, forced 2 and 1 threads, and a zoomed view."""

    def full(threads=None):
        counts, _ = layer.aggregate(SHANDONG_EXTENT, W, H, reuse=True, threads=threads)
        layer.shade_index(counts, spread=0, threads=threads)

    def zoomed():  # a city-sized view: reads only its cells
        counts, _ = layer.aggregate((116.8, 117.6, 36.4, 36.9), W, H, reuse=True)
        layer.shade_index(counts)

    full(1)
    full(2)
    zoomed()
    return {"auto": median_ms(full, runs), "two": median_ms(lambda: full(2), runs),
            "one": median_ms(lambda: full(1), runs), "zoomed": median_ms(zoomed, runs)}


def stock(x, y, cat, runs: int) -> float:
    import datashader as ds
    import datashader.transfer_functions as tf
    import pandas as pd

    df = pd.DataFrame({"x": x.astype(np.float64), "y": y.astype(np.float64),
                       "grade": pd.Categorical.from_codes(cat, GRADES)})
    cvs = ds.Canvas(plot_width=W, plot_height=H, x_range=SHANDONG_EXTENT[:2],
                    y_range=SHANDONG_EXTENT[2:])

    def frame():
        agg = cvs.points(df, "x", "y", ds.count_cat("grade"))
        tf.shade(agg, color_key=GRADE_COLORS)

    frame()
    return median_ms(frame, max(3, runs // 2))


def bokeh_scatter(x, y, cat) -> tuple[float, float]:
    """Build and serialise a plain Bokeh scatter of these points (ms, payload MB)."""
    from bokeh.embed import json_item
    from bokeh.models import ColumnDataSource
    from bokeh.plotting import figure

    t = time.perf_counter()
    colours = np.array([GRADE_COLORS[g] for g in GRADES])[cat]
    fig = figure(width=W, height=H, output_backend="webgl")
    fig.scatter("x", "y", color="c", size=2,
                source=ColumnDataSource({"x": x, "y": y, "c": colours}))
    payload = json.dumps(json_item(fig))
    return (time.perf_counter() - t) * 1e3, len(payload) / 1e6


# ---------------------------------------------------------------------- browser
def bench_store() -> Path:
    """A small store with Shandong's cities, counties and outlines (the points are synthetic)."""
    from data.geo import boundaries_frame, load_shandong
    from sources.store.store import Store

    geo = load_shandong()
    db = Path(tempfile.mkdtemp(prefix="riskbench-")) / "bench.duckdb"
    store = Store(db)
    store.insert("cities", geo.cities[["city_code", "name", "lon", "lat"]])
    store.insert("counties", geo.counties)
    store.insert("boundaries", boundaries_frame(geo))
    store.close()
    return db


def serve_synthetic(n: int, port: int, db: str) -> None:
    """Serve a RiskPointMap on ``n`` synthetic points (a separate process for the browser
    measurement, so that Playwright's polling does not share the server's GIL)."""
    import pandas as pd
    import panel as pn

    from sources.risk.risk import RiskLayer, RiskSource
    from sources.store.store import Store
    from views.risk_map import RiskPointMap

    store = Store(db)
    # load the compiled kernels first: their memory is not the points'
    PointLayer.from_arrays(*synthetic(1000)[:3], extent=SHANDONG_EXTENT).frame(
        SHANDONG_EXTENT, 64, 64)
    base = rss_mb()
    x, y, cat, ent = synthetic(n)
    layer = PointLayer.from_arrays(x, y, cat, ent, extent=SHANDONG_EXTENT,
                                   enterprise_ids=np.arange(85_000))
    del x, y, cat, ent
    gc.collect()
    try:  # hand the generator's freed temporaries back to the OS before measuring
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:  # pragma: no cover - not glibc
        pass
    ents = pd.DataFrame({"enterprise_id": np.arange(85_000), "industry": "hazchem",
                         "size": "small", "county_code": "370102", "city_code": "370100"})
    shared = RiskLayer(points=layer, enterprises=ents)
    layer.frame(SHANDONG_EXTENT, 64, 64)  # compile / warm
    source = RiskSource(store=store)
    print(f"READY {rss_mb():.0f} {rss_mb() - base:.0f}", flush=True)
    pn.serve({"risk": lambda: RiskPointMap(source=source, layer=shared)}, port=port,
             address="127.0.0.1", show=False, websocket_origin=[f"127.0.0.1:{port}"])


def browser_p95(n: int, moves: int = 24) -> dict:
    """Time wheel zooms and pans in headless Chromium against a served map of ``n`` points."""
    import shutil
    import socket
    import subprocess

    from playwright.sync_api import sync_playwright

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(n), "--port", str(port),
                             "--db", str(bench_store())],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)
    line = ""
    while not line.startswith("READY"):
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            raise RuntimeError("the benchmark server did not start")
    rss_total, rss_layer = (float(v) for v in line.split()[1:3])
    time.sleep(2.0)
    image_x = """() => { for (const d of Bokeh.documents) { const m = d.get_model_by_name(
      'risk-image'); if (m && m.data.image[0].length > 1) return [m.data.x[0], m.data.x1[0],
      m.data.y[0], m.data.y1[0]]; } return null; }"""
    times = []
    try:
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=shutil.which("chromium"), headless=True,
                                  args=["--no-sandbox", "--disable-gpu"])
            page = b.new_page(viewport={"width": 1920, "height": 1080})
            page.goto(f"http://127.0.0.1:{port}/risk")
            page.wait_for_selector("canvas", timeout=60_000)
            deadline = time.time() + 60
            while page.evaluate(image_x) is None and time.time() < deadline:
                page.wait_for_timeout(50)
            page.wait_for_timeout(1500)
            page.mouse.move(900, 500)
            for i in range(moves):
                before = page.evaluate(image_x)
                t = time.perf_counter()
                if i % 3 == 2:  # a pan
                    page.mouse.down()
                    page.mouse.move(900 + 120, 500 + 60, steps=4)
                    page.mouse.up()
                    page.mouse.move(900, 500)
                    t = time.perf_counter()  # from the end of the drag
                else:
                    page.mouse.wheel(0, -240 if (i // 3) % 2 == 0 else 240)
                while page.evaluate(image_x) == before and time.perf_counter() - t < 10:
                    page.wait_for_timeout(10)
                page.evaluate("() => new Promise(r => requestAnimationFrame(() => r()))")
                times.append((time.perf_counter() - t) * 1e3)
                page.wait_for_timeout(200)
            b.close()
    finally:
        proc.terminate()
        proc.wait(20)
    arr = np.array(times)
    return {"browser_p50_ms_10M": round(float(np.percentile(arr, 50)), 1),
            "browser_p95_ms_10M": round(float(np.percentile(arr, 95)), 1),
            "browser_moves": len(times), "server_rss_mb_10M": rss_total,
            "server_rss_points_mb_10M": rss_layer}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", nargs="+", type=float, default=[1e6, 1e7, 2.5e7])
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--browser", action="store_true", help="time pan/zoom in Chromium at 10M")
    p.add_argument("--no-stock", action="store_true", help="skip stock datashader")
    p.add_argument("--serve", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--db", default="", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve:
        serve_synthetic(args.serve, args.port, args.db)
        return

    import numba

    print(f"# {os.cpu_count()} cores, numba threads {numba.get_num_threads()}, "
          f"frame {W}x{H}, clustered synthetic points over Shandong")
    print(f"# load average at start: {os.getloadavg()[0]:.1f} (other processes share the "
          "cores; ours = automatic threads, see sources.risk.pointlayer.kernel_threads)")
    header = (f"{'N':>12} | {'build s':>7} | {'layer MB':>8} | {'RSS MB':>7} | "
              f"{'ours ms':>7} | {'2 thr':>6} | {'1 thr':>6} | {'zoomed':>6} | "
              f"{'stock ms':>8} | {'speedup':>7}")
    print(header)
    print("-" * len(header))
    result: dict = {}
    layer10 = None
    for n in (int(s) for s in args.sizes):
        x, y, cat, ent = synthetic(n)
        base = rss_mb()
        t = time.perf_counter()
        layer = PointLayer.from_arrays(x, y, cat, ent, extent=SHANDONG_EXTENT,
                                       enterprise_ids=np.arange(85_000))
        build = time.perf_counter() - t
        gc.collect()
        rss_layer = rss_mb() - base
        t = ours(layer, args.runs)
        full_ms, zoom_ms = t["auto"], t["zoomed"]
        stock_ms = float("nan") if args.no_stock else stock(x, y, cat, args.runs)
        del x, y, cat, ent
        gc.collect()
        print(f"{n:>12,} | {build:7.2f} | {layer.nbytes / 2**20:8.0f} | {rss_layer:7.0f} | "
              f"{full_ms:7.1f} | {t['two']:6.1f} | {t['one']:6.1f} | {zoom_ms:6.1f} | "
              f"{stock_ms:8.1f} | {stock_ms / full_ms:6.1f}x")
        tag = f"{n / 1e6:g}M"
        result.update({f"frame_ms_{tag}": round(full_ms, 1), f"zoomed_ms_{tag}": round(zoom_ms, 1),
                       f"frame_2thr_ms_{tag}": round(t["two"], 1),
                       f"frame_1thr_ms_{tag}": round(t["one"], 1),
                       f"stock_ms_{tag}": round(stock_ms, 1),
                       f"speedup_{tag}": round(stock_ms / full_ms, 2),
                       f"layer_mb_{tag}": round(layer.nbytes / 2**20, 1)})
        if n == 10_000_000:
            layer10 = layer
        else:
            del layer
        gc.collect()
    x, y, cat, _ = synthetic(1_000_000, seed=2)
    ms, mb = bokeh_scatter(x, y, cat)
    print(f"plain Bokeh scatter of 1,000,000 points: build + serialise {ms:.0f} ms, "
          f"payload {mb:.0f} MB (sent to every browser, drawn there)")
    result.update({"bokeh_scatter_ms_1M": round(ms, 1), "bokeh_scatter_mb_1M": round(mb, 1)})
    if args.browser:
        del layer10
        gc.collect()
        result.update(browser_p95(10_000_000))
        print(f"browser (Chromium, 1920x1080, 10M points): new image after zoom/pan "
              f"p50 {result['browser_p50_ms_10M']} ms, p95 {result['browser_p95_ms_10M']} ms; "
              f"server RSS {result['server_rss_mb_10M']:.0f} MB "
              f"({result['server_rss_points_mb_10M']:.0f} MB for the points)")
    result["load_average"] = round(os.getloadavg()[0], 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
