"""Benchmark (not a test): a reading leaving a feed -> its alarm row visible in a browser.

``python bench/alarm_latency.py [--rate 10000] [--alarms 40] [--db PATH]``

A feed server here (FEED-PROTOCOL.md) sends background readings at ``--rate`` readings/s
(frames of 100, values at each sensor's normal) to a console started with ``serve.py
--feed``; every ``--every`` seconds one reading of a new sensor breaches its hi_hi limit.
Chromium (Playwright, Debian's) shows ``/alarms``; a script in the page notes when each
breaching sensor's row appears in the alarm table (Date.now(), same clock as the sender).
Latency = row visible - frame sent. Prints a table; the last line is one JSON object.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


class BenchFeed:
    """A minimal feed server: frames given to :meth:`send` go to the connected console.

    Keeps every message so that a (re)connection with ``?since=N`` is replayed, as the
    protocol asks. ``sent_at[seq]`` is the wall-clock time the frame holding ``seq`` left.
    """

    def __init__(self, host: str = "127.0.0.1"):
        self.host, self.port = host, None
        self.log: list[tuple[int, str]] = []  # (last seq, frame text)
        self.sent_at: dict[int, float] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._q: asyncio.Queue | None = None
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._seq = 0
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self._thread.start()
        self._ready.wait(10)

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}/feed"

    def next_seqs(self, n: int) -> list[int]:
        first, self._seq = self._seq, self._seq + n
        return list(range(first, first + n))

    def send(self, messages: list[dict], *, watch: int | None = None) -> None:
        """Queue one frame (a JSON array); ``watch``: a seq whose send time to record."""
        item = (messages[-1]["seq"], json.dumps(messages), watch)
        self._loop.call_soon_threadsafe(self._q.put_nowait, item)

    async def _main(self) -> None:
        from websockets.asyncio.server import serve

        self._loop, self._q = asyncio.get_running_loop(), asyncio.Queue()
        async with serve(self._handler, self.host, 0, compression=None, max_size=2**24) as srv:
            self.port = srv.sockets[0].getsockname()[1]
            self._ready.set()
            while not self._stop.is_set():
                await asyncio.sleep(0.1)

    async def _handler(self, ws) -> None:
        since = int(parse_qs(urlsplit(ws.request.path).query).get("since", ["-1"])[0])
        for last, frame in list(self.log):
            if last > since:
                await ws.send(frame)
        while not self._stop.is_set():
            try:
                last, frame, watch = await asyncio.wait_for(self._q.get(), 0.2)
            except TimeoutError:
                continue
            self.log.append((last, frame))
            await ws.send(frame)
            if watch is not None:
                self.sent_at[watch] = time.time()

    def stop(self) -> None:
        self._stop.set()


WATCH_JS = """
(targets) => {
  window.__seen = {};
  const want = new Set(targets);
  let root = null;
  function findRoot(node) {
    if (node.querySelector && node.querySelector('[tabulator-field="sensor"]')) return node;
    for (const el of node.querySelectorAll('*')) {
      if (el.shadowRoot) { const r = findRoot(el.shadowRoot); if (r) return r; }
    }
    return null;
  }
  setInterval(() => {
    if (!root || !root.host || !root.host.isConnected) root = findRoot(document);
    if (!root) return;
    const now = Date.now();
    for (const cell of root.querySelectorAll('.tabulator-cell[tabulator-field="sensor"]')) {
      const sid = cell.textContent.trim().split(' ').pop();
      if (want.has(sid) && !(sid in window.__seen)) window.__seen[sid] = now;
    }
  }, 10);
}
"""


def engine_times(log_path: Path, targets: set[str]) -> dict[str, float]:
    """When the engine published each target's alarm, from the console log's INFO line
    ``alarms raised: N (sensor ...)`` (asctime is local time with milliseconds)."""
    out: dict[str, float] = {}
    for line in Path(log_path).read_text(errors="replace").splitlines():
        if "alarms raised:" not in line:
            continue
        stamp, ms = line[:23].split(",")
        at = time.mktime(time.strptime(stamp, "%Y-%m-%d %H:%M:%S")) + int(ms) / 1000
        for sid in line.rsplit("(", 1)[-1].rstrip(")").split():
            if sid in targets:
                out.setdefault(sid, at)
    return out


def targets_and_background(db: Path, n: int):
    """Sensors with a hi_hi limit (targets) and every sensor with its normal value."""
    from sources.store.store import Store

    store = Store(db, read_only=True)
    try:
        sensors = store.df("SELECT sensor_id, coalesce(normal, 0) AS normal, hi, hi_hi, lo "
                           "FROM sensors ORDER BY sensor_id")
    finally:
        store.close()
    hot = sensors[sensors.hi_hi.notna() & sensors.sensor_id.str.startswith("IN")]
    hot = hot.sample(min(n, len(hot)), random_state=1)
    return hot, sensors


def run(args) -> dict:
    from playwright.sync_api import sync_playwright

    from tests.conftest import CHROMIUM, CHROMIUM_ARGS, start_console

    work = Path(tempfile.mkdtemp(prefix="alarm-latency-"))
    db = work / "console.duckdb"
    if args.db:
        shutil.copy2(args.db, db)
    else:
        from data.generate import build

        build(db, scale="tiny", seed=7, progress=False)
    hot, sensors = targets_and_background(db, args.alarms)
    feed = BenchFeed()
    console = start_console(db, "--feed", feed.url, "--lang", "en")
    ids = sensors.sensor_id.tolist()
    normal = sensors.normal.tolist()
    targets = hot.sensor_id.tolist()
    breach = dict(zip(hot.sensor_id, hot.hi_hi + 1.0, strict=True))
    seq_of = {}
    stop = threading.Event()
    sent = [0]

    def produce():
        per_frame, period = 100, 100 / args.rate
        k, t_next, i_target = 0, time.perf_counter(), 0
        t_breach = time.perf_counter() + args.warmup
        while not stop.is_set():
            seqs = feed.next_seqs(per_frame)
            ts = int(time.time() * 1000)
            msgs = []
            for s in seqs:
                j = k % len(ids)
                k += 7
                if ids[j] in breach:  # keep background off the targets (no early clears)
                    j = (j + 1) % len(ids)
                msgs.append({"type": "reading", "seq": s, "ts": ts, "sensor_id": ids[j],
                             "value": normal[j]})
            watch = None
            if i_target < len(targets) and time.perf_counter() >= t_breach:
                sid = targets[i_target]
                msgs[-1] = {"type": "reading", "seq": seqs[-1], "ts": ts, "sensor_id": sid,
                            "value": breach[sid]}
                seq_of[sid] = watch = seqs[-1]
                i_target += 1
                t_breach += args.every
            feed.send(msgs, watch=watch)
            sent[0] += per_frame
            t_next += period
            delay = t_next - time.perf_counter()
            if delay > 0:
                time.sleep(delay)

    result = {}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                        args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.goto(f"{console.url}/alarms?lang=en")
            page.locator(".tabulator").first.wait_for(timeout=60_000)
            page.evaluate(WATCH_JS, targets)
            producer = threading.Thread(target=produce, daemon=True)
            t0 = time.perf_counter()
            producer.start()
            deadline = time.time() + args.warmup + args.every * len(targets) + 10
            lags = []  # the ingest's own lag (newest stored reading vs now), for attribution
            while time.time() < deadline:
                seen = page.evaluate("() => window.__seen")
                if len(seen) == len(targets):
                    break
                feeds = console.health()["feeds"]
                lags += [f["lag_s"] for f in feeds if f.get("lag_s") is not None]
                time.sleep(0.5)
            stop.set()
            producer.join(5)
            elapsed = time.perf_counter() - t0
            seen = page.evaluate("() => window.__seen")
            browser.close()
        in_order = [seen[s] / 1000 - feed.sent_at[seq_of[s]] for s in targets
                    if s in seen and seq_of.get(s) in feed.sent_at]
        print("latencies in send order (ms):", " ".join(f"{x * 1000:.0f}" for x in in_order))
        lat = sorted(in_order)
        health = console.health()
    finally:
        stop.set()
        console.stop()
        feed.stop()
    import numpy as np

    published = engine_times(console.log, set(targets))
    to_engine = sorted(published[s] - feed.sent_at[seq_of[s]] for s in published
                       if seq_of.get(s) in feed.sent_at)
    to_page = sorted(seen[s] / 1000 - published[s] for s in published if s in seen)

    def pct(values, q):
        return round(float(np.percentile(values, q)) * 1000, 1) if values else None

    arr = np.array(lat) * 1000
    result = {
        "benchmark": "alarm_latency", "target_rate_per_s": args.rate,
        "achieved_rate_per_s": round(sent[0] / elapsed),
        "alarms_sent": len(seq_of), "alarms_seen": len(lat),
        "p50_ms": round(float(np.percentile(arr, 50)), 1) if len(arr) else None,
        "p95_ms": round(float(np.percentile(arr, 95)), 1) if len(arr) else None,
        "max_ms": round(float(arr.max()), 1) if len(arr) else None,
        "feed_to_engine_p50_ms": pct(to_engine, 50), "feed_to_engine_p95_ms": pct(to_engine, 95),
        "engine_to_row_p50_ms": pct(to_page, 50), "engine_to_row_p95_ms": pct(to_page, 95),
        "ingest_lag_p95_ms": round(float(np.percentile(lags, 95)) * 1000) if lags else None,
        "stored_readings": sum(f.get("stored_readings", 0) for f in health["feeds"]),
    }
    result["p95_le_1s"] = result["p95_ms"] is not None and result["p95_ms"] <= 1000
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return result


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=10_000, help="background readings/s")
    ap.add_argument("--alarms", type=int, default=40, help="breaching readings to time")
    ap.add_argument("--every", type=float, default=0.5, help="seconds between breaches")
    ap.add_argument("--warmup", type=float, default=3.0, help="seconds before the first breach")
    ap.add_argument("--db", default=None, help="a store to copy (default: build a tiny one)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    args = ap.parse_args(argv)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    r = run(args)
    print(f"{'readings/s (target / achieved)':34} {r['target_rate_per_s']:>8.0f} / "
          f"{r['achieved_rate_per_s']}")
    print(f"{'alarms timed (seen / sent)':34} {r['alarms_seen']:>8} / {r['alarms_sent']}")
    print(f"{'ingest lag p95 (ms, from /health)':34} {r['ingest_lag_p95_ms']!s:>8}")
    print(f"{'feed -> alarm published p50 / p95':34} {r['feed_to_engine_p50_ms']!s:>8} / "
          f"{r['feed_to_engine_p95_ms']}")
    print(f"{'published -> row visible p50 / p95':34} {r['engine_to_row_p50_ms']!s:>8} / "
          f"{r['engine_to_row_p95_ms']}")
    for k in ("p50_ms", "p95_ms", "max_ms"):
        print(f"{'feed -> browser row ' + k:34} {r[k]!s:>8}")
    print(json.dumps(r))


if __name__ == "__main__":
    main()
