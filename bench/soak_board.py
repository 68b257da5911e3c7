"""Soak test of the situation board: one wall page open for N minutes under a fast demo feed.

Starts ``serve.py --speed 20`` (demo feed, accelerated) on a copy of a store, opens
``/board?kiosk=1`` in headless Debian chromium at 1920×1080 and samples, every
``--sample-s`` seconds, the server's RSS and the page's JS heap (CDP
``Runtime.getHeapUsage`` after a forced GC) and DOM node count. The first sample is taken
after ``--warmup-s`` (caches, JIT and the first events settle); growth is end against that.

    python bench/soak_board.py --minutes 30            # the full soak
    python bench/soak_board.py --minutes 5 --db var/demo.duckdb

``--baseline`` runs a second console on its own copy with the same feed and no page open,
so the board's share of the server's growth (``board_rss_growth_mb``) is told apart from the
store's own (DuckDB's buffer cache grows with the data the feed adds).

Target: RSS and heap growth each ≤ 10 %. The last line printed is a JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    import psutil

    return psutil.Process(pid).memory_info().rss / 2**20


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) the process has used (its demo-feed child not counted)."""
    import psutil

    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


def start_server(db: Path, port: int, speed: float, log_path: Path, extra: list[str] = ()):
    """Start ``serve.py`` with its accelerated demo feed; returns (process, log, port)."""
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "serve.py"), "--db", str(db), "--port", str(port),
         "--address", "127.0.0.1", "--speed", str(speed), *extra],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    return proc, log, port


def memory(url: str) -> dict:
    """The server's own memory breakdown from its ``/health`` (DuckDB, glibc, Arrow; MB)."""
    try:
        health = json.loads(urllib.request.urlopen(f"{url}/health", timeout=10).read())
        return health.get("memory", {})
    except (OSError, ValueError):
        return {}


def duckdb_mb(url: str) -> float | None:
    """DuckDB's share of the server's memory, from its ``/health``."""
    return memory(url).get("duckdb_mb")


def stop_server(proc: subprocess.Popen) -> None:
    """SIGTERM serve.py, then make sure its demo-feed child goes too."""
    import psutil

    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        children = []
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    for child in children:
        try:
            child.wait(5)
        except psutil.TimeoutExpired:
            child.kill()
        except psutil.Error:
            pass


def wait_health(url: str, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"serve.py exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=3) as r:
                if json.loads(r.read())["status"] == "ok":
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError("the console did not start")


FRESHNESS_JS = """() => {
  const walk = (root) => {
    const hit = root.querySelector('[data-board=freshness]');
    if (hit) return hit;
    for (const el of root.querySelectorAll('*')) {
      if (el.shadowRoot) { const f = walk(el.shadowRoot); if (f) return f; }
    }
    return null;
  };
  const f = walk(document);
  return f ? f.dataset.state : null;
}"""


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=30.0, help="soak duration (default 30)")
    p.add_argument("--speed", type=float, default=20.0, help="demo feed acceleration")
    p.add_argument("--db", default=None, help="store to copy (default: build a tiny one)")
    p.add_argument("--sample-s", type=float, default=30.0, help="seconds between samples")
    p.add_argument("--warmup-s", type=float, default=60.0, help="seconds before the baseline")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    p.add_argument("--serve-arg", action="append", default=[],
                   help="extra serve.py argument for both consoles, e.g. --serve-arg=--malloc-trim-s=0")
    p.add_argument("--samples-out", default=None,
                   help="write every sample (with both servers' memory breakdown) to this JSON file")
    p.add_argument("--baseline", action="store_true",
                   help="also run the same console and feed with no board open, and compare")
    args = p.parse_args(argv)
    if CHROMIUM is None:
        raise SystemExit("no chromium: apt-get install -y chromium fonts-noto-cjk")

    work = Path(tempfile.mkdtemp(prefix="soak-board-"))
    db = work / "console.duckdb"
    if args.db:
        shutil.copy2(args.db, db)
    else:
        sys.path.insert(0, str(ROOT))
        from data.generate import build

        build(db, scale="tiny", seed=7, progress=False)
    if args.baseline:
        shutil.copy2(db, work / "baseline.duckdb")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    base_url = None
    servers = [start_server(db, port, args.speed, work / "serve.log", args.serve_arg)]
    if args.baseline:  # the same console and feed with no board open: what the rest costs
        servers.append(start_server(work / "baseline.duckdb", free_port(), args.speed,
                                    work / "baseline.log", args.serve_arg))
    server = servers[0][0]
    if args.baseline:
        base_url = f"http://127.0.0.1:{servers[1][2]}"
    samples: list[dict] = []
    result: dict = {}
    try:
        wait_health(url, server)
        if args.baseline:
            wait_health(base_url, servers[1][0])
        from playwright.sync_api import sync_playwright

        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=CHROMIUM, headless=True,
                args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                      "--enable-precise-memory-info"])
            page = browser.new_page(viewport={"width": 1920, "height": 1080})
            loads = []
            page.on("load", lambda: loads.append(time.time()))
            cdp = page.context.new_cdp_session(page)
            cdp.send("Performance.enable")
            page.goto(f"{url}/board?kiosk=1", timeout=300_000)

            def sample(label: str) -> dict:
                cdp.send("HeapProfiler.collectGarbage")
                heap = cdp.send("Runtime.getHeapUsage")
                metrics = {m["name"]: m["value"]
                           for m in cdp.send("Performance.getMetrics")["metrics"]}
                s = {"label": label, "t_s": round(time.time() - t0, 1),
                     "rss_mb": round(rss_mb(server.pid), 1),
                     "cpu_s": round(cpu_s(server.pid), 2),
                     "baseline_cpu_s": (round(cpu_s(servers[1][0].pid), 2)
                                        if args.baseline else None),
                     "baseline_rss_mb": (round(rss_mb(servers[1][0].pid), 1)
                                         if args.baseline else None),
                     "duckdb_mb": duckdb_mb(url),
                     "memory": memory(url),
                     "baseline_memory": memory(base_url) if args.baseline else None,
                     "heap_mb": round(heap["usedSize"] / 2**20, 2),
                     "dom_nodes": int(metrics.get("Nodes", 0)),
                     "state": page.evaluate(FRESHNESS_JS)}
                samples.append(s)
                base = (f"  baseline rss {s['baseline_rss_mb']:>8.1f} MB"
                        if args.baseline else "")
                print(f"{s['t_s']:>8.0f} s  rss {s['rss_mb']:>8.1f} MB (duckdb "
                      f"{s['duckdb_mb']} MB){base}  heap "
                      f"{s['heap_mb']:>7.2f} MB  nodes {s['dom_nodes']:>6}  {s['state']}",
                      flush=True)
                return s

            t0 = time.time()
            page.wait_for_timeout(args.warmup_s * 1000)
            first = sample("start")
            end_at = t0 + args.warmup_s + args.minutes * 60
            while time.time() < end_at:
                page.wait_for_timeout(min(args.sample_s, max(0.0, end_at - time.time())) * 1000)
                sample("run")
            last = sample("end")
            browser.close()
        health = json.loads(urllib.request.urlopen(f"{url}/health", timeout=10).read())
        feed = (health.get("feeds") or [{}])[0]
        result = {
            "bench": "soak_board", "minutes": args.minutes, "speed": args.speed,
            "warmup_s": args.warmup_s, "samples": len(samples),
            "rss_start_mb": first["rss_mb"], "rss_end_mb": last["rss_mb"],
            "rss_max_mb": max(s["rss_mb"] for s in samples),
            "duckdb_start_mb": first["duckdb_mb"], "duckdb_end_mb": last["duckdb_mb"],
            "serve_args": args.serve_arg,
            "rss_growth_pct": round(100 * (last["rss_mb"] / first["rss_mb"] - 1), 2),
            "heap_start_mb": first["heap_mb"], "heap_end_mb": last["heap_mb"],
            "heap_max_mb": max(s["heap_mb"] for s in samples),
            "heap_growth_pct": round(100 * (last["heap_mb"] / first["heap_mb"] - 1), 2),
            "dom_nodes_start": first["dom_nodes"], "dom_nodes_end": last["dom_nodes"],
            "page_loads": len(loads), "state_end": last["state"],
            "stale_samples": sum(1 for s in samples if s["state"] != "live"),
            "messages_stored": feed.get("stored"),
            # the server's CPU over the soak, in % of one core
            "cpu_pct": round(100 * (last["cpu_s"] - first["cpu_s"])
                             / max(1e-9, last["t_s"] - first["t_s"]), 1),
            "target_growth_pct": 10.0,
        }
        if args.baseline:
            b0, b1 = first["baseline_rss_mb"], last["baseline_rss_mb"]
            result["baseline_rss_start_mb"], result["baseline_rss_end_mb"] = b0, b1
            result["baseline_rss_growth_pct"] = round(100 * (b1 / b0 - 1), 2)
            # growth of the board's server beyond what the same console grows with no board
            result["board_rss_growth_mb"] = round(
                (last["rss_mb"] - first["rss_mb"]) - (b1 - b0), 1)
            result["baseline_cpu_pct"] = round(
                100 * (last["baseline_cpu_s"] - first["baseline_cpu_s"])
                / max(1e-9, last["t_s"] - first["t_s"]), 1)
        result["ok"] = (result["rss_growth_pct"] <= 10 and result["heap_growth_pct"] <= 10
                        and result["state_end"] == "live")
    finally:
        for proc, log, _ in servers:
            stop_server(proc)
            log.close()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    if args.samples_out:
        Path(args.samples_out).write_text(json.dumps(samples, indent=1))
    print(json.dumps(result, ensure_ascii=False))
    return result


if __name__ == "__main__":
    main()
