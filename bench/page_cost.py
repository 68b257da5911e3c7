"""Benchmark (not a test): what creating a page costs the server, Bokeh as shipped against the
console's caches (``views/bokeh_fast.py``) and no per-session validation (``serve.py``).

``python bench/page_cost.py [--db PATH] [--burst 50] [--rounds 2] [--kinds wall,risk,alarms]``

For each variant — ``stock`` (Bokeh's own methods, each session's document validated, as
before: the baseline, same run) and ``console`` (as ``serve.py`` serves) — one console
(``serve.py`` on a copy of the store, default a ``small`` demo store built here, reading its
demo feed) and, per page kind, browserless clients (``bench/capacity.py``'s: the page, its
websocket, its document and patches as a browser receives them, minus drawing):

- **one page at a time** (``--single``, default 10, after 2 to warm): the server's CPU
  seconds per page, median;
- for walls, **``--burst`` at once**: time until every one is live (its first patch after its
  document), the server's CPU seconds per page, ``/health`` p50/max meanwhile (polled every
  0.25 s).

The variants alternate, ``--rounds`` times, each on a fresh console; medians over rounds.
Prints a table; the last line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.capacity import HealthPoller, Server, load  # noqa: E402
from bench.wall_clients import protocol_burst  # noqa: E402

#: Page kind -> path; a wall is the kiosk board.
KINDS = {"wall": "/board?kiosk=1", "risk": "/risk", "alarms": "/alarms",
         "warnings": "/warnings", "command": "/command"}

#: Run in the console's process before it serves: Bokeh as shipped, every session's document
#: validated (serve.py turns validation off after building its routes; this keeps it on).
STOCK = """
import views.bokeh_fast as _fast
_fast.install = lambda: False
from bokeh.settings import settings as _s
_s.perform_document_validation.set_value = lambda value: None
"""


def one_variant(args, variant: str, db: Path) -> dict:
    from tests.conftest import start_console

    work = Path(tempfile.mkdtemp(prefix=f"page-cost-{variant}-"))
    copy = work / "console.duckdb"
    shutil.copy2(db, copy)
    console = start_console(copy, "--scale", "small",
                            prelude=STOCK if variant == "stock" else "")
    server, health = Server(console), HealthPoller(console.url)
    out: dict = {"variant": variant}
    try:
        for kind in args.kinds:
            path = KINDS[kind]
            protocol_burst(console.url, path, 2, 60, until="doc")  # warm: imports, caches
            costs = []
            for _ in range(args.single):
                c0 = server.cpu()
                clients, _t0 = protocol_burst(console.url, path, 1, 60, until="doc")
                time.sleep(0.3)  # the session's first patches, as a page gets them
                if clients[0].error:
                    raise RuntimeError(f"{kind}: {clients[0].error}")
                costs.append(server.cpu() - c0)
            out[kind] = {"single_cpu_s": round(statistics.median(costs), 3)}
            print(f"  {variant:8s} {kind:9s} one page: {out[kind]['single_cpu_s']:.3f} CPU s",
                  flush=True)
        if "wall" in args.kinds and args.burst:
            time.sleep(2)
            c0 = server.cpu()
            clients, t0 = protocol_burst(console.url, KINDS["wall"], args.burst, 300)
            t1 = time.time()
            lives = sorted(c.live_at - t0 for c in clients if c.live_at)
            out["burst"] = {
                "pages": args.burst, "live": len(lives),
                "all_live_s": round(max(lives), 2) if len(lives) == args.burst else None,
                "median_live_s": round(statistics.median(lives), 2) if lives else None,
                "cpu_s_per_page": round((server.cpu() - c0) / args.burst, 3),
                "health": health.between(t0, t1), "load": load()}
            b = out["burst"]
            print(f"  {variant:8s} {args.burst} walls at once: all live {b['all_live_s']} s, "
                  f"{b['cpu_s_per_page']} CPU s a page, /health max {b['health']['max_s']} s "
                  f"(load {b['load']})", flush=True)
    finally:
        health.stop()
        console.stop()
        shutil.rmtree(work, ignore_errors=True)
    return out


def median_of(runs: list[dict], *keys) -> float | None:
    values = []
    for r in runs:
        v = r
        for k in keys:
            v = v.get(k) if isinstance(v, dict) else None
        if v is not None:
            values.append(v)
    return round(statistics.median(values), 3) if values else None


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--db", type=Path, help="store to copy (default: a small demo store)")
    ap.add_argument("--burst", type=int, default=50)
    ap.add_argument("--single", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--kinds", default="wall,risk,alarms",
                    type=lambda s: [k for k in s.split(",") if k])
    args = ap.parse_args(argv)
    bad = [k for k in args.kinds if k not in KINDS]
    if bad:
        ap.error(f"unknown page kinds {bad}; known: {', '.join(KINDS)}")
    work = Path(tempfile.mkdtemp(prefix="page-cost-"))
    db = args.db
    if db is None:
        from data.generate import build

        db = work / "small.duckdb"
        build(db, scale="small", seed=7, progress=False)
    runs: dict[str, list] = {"stock": [], "console": []}
    try:
        for r in range(args.rounds):
            print(f"round {r + 1} (load {load()})", flush=True)
            for variant in ("stock", "console"):
                runs[variant].append(one_variant(args, variant, db))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {"benchmark": "page_cost", "cores": os.cpu_count(), "rounds": args.rounds,
              "burst": args.burst, "runs": runs, "median": {}}
    print(f"\n| median of {args.rounds} | stock Bokeh, validated | console | ratio |")
    print("|---|---:|---:|---:|")
    rows = [(f"{k}: one page, CPU s", (k, "single_cpu_s")) for k in args.kinds]
    if "wall" in args.kinds and args.burst:
        rows += [(f"{args.burst} walls: all live, s", ("burst", "all_live_s")),
                 (f"{args.burst} walls: CPU s a page", ("burst", "cpu_s_per_page")),
                 (f"{args.burst} walls: /health max, s", ("burst", "health", "max_s"))]
    for label, keys in rows:
        a, b = median_of(runs["stock"], *keys), median_of(runs["console"], *keys)
        ratio = round(b / a, 2) if a and b is not None else None
        result["median"][label] = {"stock": a, "console": b, "ratio": ratio}
        print(f"| {label} | {a} | {b} | {ratio} |")
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
