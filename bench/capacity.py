"""Benchmark (not a test): what an open page costs the server, and the wall under a storm.

``python bench/capacity.py [--db PATH] [--walls 10] [--rate 400] [--minutes 1] [--burst 50]
[--phases idle,storm,burst,spread] [--processes 1,3]``

One console (``serve.py``) on a copy of a store (default: a ``small`` demo store built here)
reading the demo feed (``data.simulate``'s province, run in this process at speed 1 so every
event it sends is stamped here), and headless Debian Chromium pages (Playwright):

1. **idle** — per page kind (wall ``/board?kiosk=1``, risk map ``/risk``, alarm desk
   ``/alarms``): ``--idle-pages`` pages opened, the server's CPU seconds spent creating them,
   then its CPU and memory with them open, idle, against the same console with no page
   (baseline, measured first): per page.
2. **storm** — the exercise desk's event storm (``--rate`` events a minute of warnings,
   incidents, quakes and hotspots for ``--minutes``; ``python -m data.simulate --storm``)
   first with no page open (baseline), then with ``--walls`` browserless walls (the page,
   its websocket, its document and patches, as a browser receives them, minus the drawing:
   what the server delivers), then with ``--walls`` Chromium kiosk walls
   (``--storm-clients`` picks): reloads of the walls, event → wall latency (p50/p95/max
   over every event and wall), the last event's arrival on the walls after the storm,
   ``/health`` answer times (p50/max, polled every 0.25 s), server CPU; at the end each
   Chromium wall's KPIs and map are compared with the store and its ticker with a page
   opened afterwards. ``--pin`` puts the server on core 0 and this script, its browsers
   and the feed on the other cores: walls on other machines than the server, as on a
   real video wall, on one machine.
3. **burst** — ``--burst`` walls opened at once: time until every one is live, ``/health``
   max meanwhile; baseline: one wall opened alone.
4. **spread** (not run by default; ``--phases spread --processes 1,3``) — the same burst of
   browserless walls, first on the embedded console (one process: the baseline), then on a
   distributed centre of each ``--processes`` serving processes behind nginx's sticky
   routing (``bench/capacity_spread.py``): time until all are live, median, ``/health``
   p50/max, every process's CPU seconds.

Event → wall: warnings and incidents are marked ``⟨n⟩`` in their headline/title by this
script's feed (the only change to the simulator's storm); a wall has event *n* when its
ticker shows ``⟨n⟩`` or a later mark (a later event read from the store includes it).
Quakes and hotspots are found on a Chromium wall's map by their longitude (a browserless
wall sees only the marked events: the map's columns come as binary buffers). Each page stamps with
``Date.now()`` (one clock with this script's ``time.time()``), every 100 ms.

Reloads: main-frame navigations after the first, with what each page logged before
(websocket closes, the freshness indicator's states) kept in ``sessionStorage``.

Prints tables; the last line is one JSON object. The machine's load average is reported
with every phase (the figures move 2–3× on a loaded machine).
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.wall_clients import (  # noqa: E402 - after the path
    ProtocolWalls,
    protocol_burst,
)

#: Run in every page before its own scripts (and again after a reload): a log that outlives
#: reloads, the websocket's opens and closes, and the watcher of what the wall shows.
INIT_JS = r"""
(() => {
  const KEY = "__capacity";
  const log = JSON.parse(sessionStorage.getItem(KEY) || '{"loads":0,"events":[]}');
  const save = () => sessionStorage.setItem(KEY, JSON.stringify(log));
  const note = (what) => { log.events.push([Date.now(), what]);
                           if (log.events.length > 100) log.events.shift(); save(); };
  log.loads += 1;
  note("load");
  window.__capLog = log;
  const WS = window.WebSocket;
  window.WebSocket = class extends WS {
    constructor(...args) {
      super(...args);
      this.addEventListener("open", () => note("ws open"));
      this.addEventListener("close", (e) => note(`ws close ${e.code} ${e.reason || ""}`));
      this.addEventListener("message", (e) => {  // what the server sends this page
        window.__wsBytes = (window.__wsBytes || 0) +
          (typeof e.data === "string" ? e.data.length : e.data.byteLength);
        window.__wsFrames = (window.__wsFrames || 0) + 1;
      });
    }
  };
  const deep = (sel) => {
    const roots = [document];
    while (roots.length) {
      const root = roots.pop();
      const hit = root.querySelector(sel);
      if (hit) return hit;
      for (const el of root.querySelectorAll("*")) if (el.shadowRoot) roots.push(el.shadowRoot);
    }
    return null;
  };
  window.__deep = deep;
  const text = (el) => el ? ((el.shadowRoot || el).textContent || "") : "";
  const seen = window.__seen = {};
  let state = null, ticker = null, sources = null, observer = null;
  const findSources = () => {
    const doc = window.Bokeh && Bokeh.documents && Bokeh.documents[0];
    const fig = doc && doc.get_model_by_name("board-map");
    if (!fig) return null;
    const out = {};
    for (const r of fig.renderers) {
      const g = r.glyph, t = g && g.type;
      const marker = g && g.marker && (g.marker.value ?? g.marker);
      const radius = g && g.radius && (g.radius.field ?? null);
      if (t === "Scatter" && marker === "triangle") out.hotspot = r.data_source;
      else if (t === "Circle" && radius === "radius") out.quake = r.data_source;
      else if (t === "Scatter" && marker === "star") out.incident = r.data_source;
    }
    return out;
  };
  window.__mapCounts = () => {
    const found = findSources();
    if (!found) return null;
    const out = {};
    for (const [k, s] of Object.entries(found)) out[k] = s.data.x.length;
    return out;
  };
  // what the wall shows, noted when it changes (event-driven: the watcher's own work in the
  // browser stays small), with a slow poll that finds the elements and catches anything missed
  const scanTicker = () => {
    if (!ticker) return;
    const now = Date.now();
    for (const m of text(ticker).matchAll(/⟨(\d+)⟩/g)) if (!(m[1] in seen)) seen[m[1]] = now;
    if (!window.__tickerAt && ticker.shadowRoot && ticker.shadowRoot.querySelector("li, .empty"))
      window.__tickerAt = now;
  };
  const scanMap = (kind) => {
    const src = sources && sources[kind];
    if (!src) return;
    const now = Date.now();
    for (const x of src.data.x) {
      const k = kind + ":" + Number(x).toFixed(5);
      if (!(k in seen)) seen[k] = now;
    }
  };
  const poll = () => {
    const now = Date.now();
    const fresh = deep("[data-board=freshness]");
    const s = fresh ? fresh.dataset.state : null;
    if (s !== state) { state = s; note("fresh " + s);
                       if (s === "live" && !window.__liveAt) window.__liveAt = now; }
    if (!ticker || !ticker.isConnected) {
      ticker = deep(".board-ticker");
      if (observer) observer.disconnect();
      if (ticker && ticker.shadowRoot) {
        observer = new MutationObserver(scanTicker);
        observer.observe(ticker.shadowRoot, {childList: true, subtree: true, characterData: true});
      }
    }
    if (!sources) {
      sources = findSources();
      if (sources) for (const kind of ["quake", "hotspot"])
        if (sources[kind]) sources[kind].change.connect(() => scanMap(kind));
    }
    scanTicker(); scanMap("quake"); scanMap("hotspot");
  };
  setInterval(poll, 250);
  const fast = setInterval(() => { poll(); if (window.__liveAt && window.__tickerAt) clearInterval(fast); }, 50);
})();
"""

#: What a wall shows at the end: KPI figures, map counts and ticker titles.
SHOWN_JS = r"""
() => {
  const kpi = (key) => {
    const card = window.__deep(`[data-kpi="${key}"]`);
    if (!card) return null;
    return [...card.querySelectorAll(".num")].map(
      (n) => Number(n.textContent.replace(/[^0-9.]/g, "")) || 0).reduce((a, b) => a + b, 0);
  };
  const ticker = window.__deep(".board-ticker");
  const titles = ticker && ticker.shadowRoot
    ? [...ticker.shadowRoot.querySelectorAll("li .x")].map((e) => e.textContent) : [];
  return {kpis: {warnings: kpi("warnings"), incidents: kpi("incidents"),
                 hotspots: kpi("hotspots"), quakes: kpi("quakes"), drill: kpi("drill") || 0},
          map: window.__mapCounts(), titles};
}
"""

READY = {  # page kind -> (path, JS that is true once the page shows its data)
    "wall": ("/board?kiosk=1", "() => !!window.__liveAt && !!window.__tickerAt"),
    "risk map": ("/risk", "() => { const e = window.__deep('.risk-in-view');"
                          " return !!e && (e.shadowRoot || e).textContent.trim().length > 0; }"),
    "alarm desk": ("/alarms", "() => { const e = window.__deep('.alarm-count');"
                              " return !!e && (e.shadowRoot || e).textContent.trim().length > 0; }"),
}


def load() -> float:
    return round(os.getloadavg()[0], 2)


def pct(values, q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


class TaggedFeed:
    """The demo feed (``data.simulate.DemoFeed``, in this process) that stamps the storm.

    Every exercise event it publishes is noted with ``time.time()``; warnings and incidents
    get ``⟨n⟩`` appended to their headline/title so a wall's ticker says which it shows.
    """

    def __init__(self, db: Path):
        import orjson

        from data.simulate import DemoFeed, Frame, read_registry

        stamps = self.stamps = {}  # "n" or "quake:LON" / "hotspot:LON" -> sent (epoch ms)
        self.marks = []  # n of each marked event, in order
        counter = itertools.count(1)
        marks = self.marks

        class Feed(DemoFeed):
            def _publish(self, frames, counts):
                out = []
                for f in frames:
                    if f.data[:1] == b"{" and b'"drill_id"' in f.data:
                        body = orjson.loads(f.data)
                        kind, now = body.get("type"), time.time() * 1000
                        field = {"warning": "headline", "incident": "title"}.get(kind)
                        if field:
                            n = next(counter)
                            body[field] = f"{body.get(field) or ''}⟨{n}⟩"
                            f = Frame(f.first, f.last, orjson.dumps(body))
                            stamps[str(n)] = now
                            marks.append(n)
                        elif kind in ("quake", "hotspot"):
                            stamps[f"{kind}:{float(body['lon']):.5f}"] = now
                    out.append(f)
                super()._publish(out, counts)

        self.feed = Feed(read_registry(db), host="127.0.0.1", port=0, speed=1.0, seed=7).start()

    @property
    def url(self) -> str:
        return self.feed.url

    def storm(self, rate: float, minutes: float) -> None:
        from data.drill_control import storm_scenario

        self.feed.start_drill(storm_scenario(rate, minutes))

    def storm_running(self) -> bool:
        run = self.feed.drills.run
        return run is not None and run.state == "running"

    def stop(self) -> None:
        self.feed.stop()


class HealthPoller:
    """``GET /health`` every ``interval`` s in a thread: answer times in seconds, stamped."""

    def __init__(self, url: str, interval: float = 0.25):
        self.url, self.interval = url + "/health", interval
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            t0 = time.time()
            try:
                urllib.request.urlopen(self.url, timeout=30).read()
                self.samples.append((t0, time.time() - t0))
            except OSError:
                self.samples.append((t0, 30.0))
            self._stop.wait(max(0.0, self.interval - (time.time() - t0)))

    def between(self, t0: float, t1: float) -> dict:
        v = [d for t, d in self.samples if t0 <= t <= t1]
        return {"p50_s": round(statistics.median(v), 3) if v else None,
                "max_s": round(max(v), 3) if v else None, "n": len(v)}

    def stop(self):
        self._stop.set()
        self._thread.join(5)


class Server:
    """The console's process: its CPU seconds and resident memory."""

    def __init__(self, console):
        import psutil

        self.console = console
        self.proc = psutil.Process(console.proc.pid)

    def cpu(self) -> float:
        t = self.proc.cpu_times()
        return t.user + t.system

    def cpu_each(self) -> dict[str, float]:
        """CPU seconds by process (here the one)."""
        return {"serve": self.cpu()}

    def rss_mb(self) -> float:
        return self.proc.memory_info().rss / 2**20

    def sessions(self) -> int:
        try:
            return self.console.health()["memory"]["sessions"] or 0
        except (OSError, KeyError):
            return -1

    def measure(self, seconds: float) -> dict:
        c0, t0 = self.cpu(), time.monotonic()
        rss = []
        while time.monotonic() - t0 < seconds:
            time.sleep(min(2.0, seconds / 10))
            rss.append(self.rss_mb())
        return {"cpu_pct": round(100 * (self.cpu() - c0) / (time.monotonic() - t0), 2),
                "rss_mb": round(statistics.median(rss), 1), "load": load()}


def open_pages(context, url: str, n: int, ready_js: str, timeout: float = 120) -> list:
    """Navigate ``n`` new pages to ``url`` at once; returns them once each is ready."""
    from tests.conftest import wait_until

    pages = [context.new_page() for _ in range(n)]
    for p in pages:
        p.evaluate(f"location.href = {url!r}")
    for p in pages:
        wait_until(lambda p=p: _safe(p, ready_js), timeout=timeout, interval=0.2,
                   message=f"{url} not ready within {timeout} s")
    return pages


def _safe(page, js: str):
    from playwright.sync_api import Error

    try:
        return page.evaluate(js)
    except Error:  # navigating
        return None


def close_pages(server: Server, pages, timeout: float = 60) -> None:
    from tests.conftest import wait_until

    for p in pages:
        p.close()
    wait_until(lambda: server.sessions() == 0, timeout=timeout, interval=0.5,
               message="the server still counts open pages")


# ---------------------------------------------------------------------- phases
def open_kind(args, server: Server, context, url: str, kind: str) -> tuple[list, dict, float]:
    """``--idle-pages`` pages of ``kind`` opened at once, after one opened and closed (what
    every page imports and caches once); returns them, what opening them cost (``cpu_s`` a
    page, ``wall_s`` for all) and the server's memory (MB) before."""
    path, ready = READY[kind]
    n = args.idle_pages
    close_pages(server, open_pages(context, url + path, 1, ready))
    time.sleep(2)
    c0, t0, r0 = server.cpu(), time.monotonic(), server.rss_mb()
    pages = open_pages(context, url + path, n, ready)
    return pages, {"cpu_s": round((server.cpu() - c0) / n, 3),
                   "wall_s": round(time.monotonic() - t0, 2)}, r0


def idle_phase(args, server: Server, context, url: str) -> dict:
    time.sleep(args.settle)
    base = server.measure(args.measure_s)
    print(f"  no page: server {base['cpu_pct']:.1f} % of a core, {base['rss_mb']:.0f} MB "
          f"(load {base['load']})", flush=True)
    kinds = [k for k in READY if not args.kinds or k in args.kinds]
    return {"baseline": base, **per_page(args, server, context, url, kinds, "idle",
                                         lambda: server.measure(args.measure_s),
                                         base["cpu_pct"])}


def storm_per_page(args, server: Server, feed: TaggedFeed, health: HealthPoller, context,
                   url: str, base: dict) -> dict:
    """Per page kind (``--storm-kinds``): ``--idle-pages`` pages open (Chromium) through a
    storm; the server's CPU above the same storm with no page, and its memory, per page."""

    def measure() -> dict:
        m = storm_run(args, server, feed, health, [])
        return {"cpu_pct": m["server_cpu_pct"], "rss_mb": server.rss_mb(), "load": m["load"],
                "health": m["health"]}

    return per_page(args, server, context, url, args.storm_kinds, "storm", measure,
                    base["server_cpu_pct"])


def per_page(args, server: Server, context, url: str, kinds: list[str], what: str, measure,
             base_cpu_pct: float) -> dict:
    """For each page kind: ``--idle-pages`` pages opened (:func:`open_kind`), then
    ``measure()`` (``cpu_pct``, ``rss_mb``, ``load``, maybe ``health``) with them open: the
    server's CPU above ``base_cpu_pct`` and its memory, per page."""
    out = {}
    for kind in kinds:
        n = args.idle_pages
        pages, create, r0 = open_kind(args, server, context, url, kind)
        time.sleep(args.settle)
        m = measure()
        row = {"pages": n, "create_cpu_s_per_page": create["cpu_s"],
               "open_all_s": create["wall_s"],
               f"{what}_cpu_pct_per_page": round((m["cpu_pct"] - base_cpu_pct) / n, 2),
               "rss_mb_per_page": round((m["rss_mb"] - r0) / n, 2), "load": m["load"]}
        if "health" in m:
            row["health"] = m["health"]
        out[kind] = row
        print(f"  {kind:10}: create {row['create_cpu_s_per_page']:.2f} CPU s/page, {what} "
              f"{row[f'{what}_cpu_pct_per_page']:.2f} % of a core/page, "
              f"{row['rss_mb_per_page']:.1f} MB/page (load {row['load']})", flush=True)
        close_pages(server, pages)
    return out


def storm_run(args, server: Server, feed: TaggedFeed, health: HealthPoller, walls: list,
              protocol: ProtocolWalls | None = None):
    """One storm; returns what was measured. ``walls``: the open Chromium wall pages (maybe
    none); or ``protocol``: browserless walls, which see the marked events (warnings and
    incidents: the ticker's text) but not the map's quakes and hotspots (binary columns)."""
    from playwright.sync_api import Error

    navs = {id(p): 0 for p in walls}
    for p in walls:
        p.on("framenavigated", lambda f, p=p: f == p.main_frame and navs.__setitem__(
            id(p), navs[id(p)] + 1))
    bytes0 = [_safe(p, "() => [window.__wsBytes || 0, window.__wsFrames || 0]") or [0, 0]
              for p in walls]
    n0 = len(feed.marks)
    keys0 = set(feed.stamps)
    c0, t0 = server.cpu(), time.time()
    feed.storm(args.rate, args.minutes)
    time.sleep(1)
    while feed.storm_running():
        time.sleep(0.5)
    t_end = time.time()
    cpu_storm = 100 * (server.cpu() - c0) / (t_end - t0)
    sent = {k: v for k, v in feed.stamps.items() if k not in keys0
            and (protocol is None or ":" not in k)}
    marks = feed.marks[n0:]
    last_sent = max(sent.values()) / 1000
    if protocol is not None:
        seen_of = lambda: [dict(c.seen) for c in protocol.clients]  # noqa: E731
    else:
        seen_of = lambda: [_safe(p, "() => window.__seen") or {} for p in walls]  # noqa: E731
    n_walls = len(protocol.clients) if protocol is not None else len(walls)
    # wait until every wall has everything (or 30 s)
    deadline = time.time() + 30
    seen_by = []
    while n_walls and time.time() < deadline:
        seen_by = seen_of()
        if all(_has_all(s, sent, marks) for s in seen_by):
            break
        time.sleep(1)
    health_storm = health.between(t0, max(t_end, last_sent + 5))
    out = {"events": len(sent), "server_cpu_pct": round(cpu_storm, 1),
           "health": health_storm, "load": load()}
    if not n_walls:
        return out
    lat, missed, tails = [], 0, []
    for s in seen_by:
        got = _arrivals(s, sent, marks)
        for key, at in sent.items():
            if key in got:
                lat.append(got[key] - at)
                tails.append(got[key] / 1000 - last_sent)
            else:
                missed += 1
    out.update({
        "walls": n_walls, "client": "protocol" if protocol is not None else "chromium",
        "latency_ms": {"p50": round(pct(lat, .5) or -1), "p95": round(pct(lat, .95) or -1),
                       "max": round(max(lat) if lat else -1)},
        "missed": missed, "pairs": len(sent) * n_walls,
        "last_event_after_storm_s": round(max(tails), 2) if tails else None})
    if protocol is not None:
        out["errors"] = protocol.errors()[:3]
        return out
    received = [(_safe(p, "() => [window.__wsBytes || 0, window.__wsFrames || 0]") or [0, 0])
                for p in walls]
    per_wall = [(b[0] - a[0], b[1] - a[1]) for a, b in zip(bytes0, received, strict=True)
                if b[0] >= a[0]]  # a reloaded page counts from its reload
    reloads, logs = 0, []
    for p in walls:
        extra = max(0, navs[id(p)] - 0)
        reloads += extra
        if extra:
            try:
                logs.append(p.evaluate("() => window.__capLog"))
            except Error:
                pass
    out.update({
        "reloads": reloads,
        "ws_kb_per_wall": round(statistics.median(b for b, _ in per_wall) / 1024)
        if per_wall else None,
        "ws_messages_per_wall": round(statistics.median(f for _, f in per_wall))
        if per_wall else None,
        "reload_logs": logs[:3]})
    return out


def _arrivals(seen: dict, sent: dict, marks: list[int]) -> dict:
    """When a wall had each event: marked ones when it showed that mark or a later one."""
    got = {k: v for k, v in seen.items() if ":" in k}
    shown = sorted((int(k), v) for k, v in seen.items() if ":" not in k)
    # earliest time any mark >= n was shown, for every n
    best, i = None, len(shown) - 1
    by_n = {}
    for n in sorted(marks, reverse=True):
        while i >= 0 and shown[i][0] >= n:
            best = shown[i][1] if best is None else min(best, shown[i][1])
            i -= 1
        if best is not None:
            by_n[str(n)] = best
    got.update(by_n)
    return {k: v for k, v in got.items() if k in sent}


def _has_all(seen: dict, sent: dict, marks: list[int]) -> bool:
    return len(_arrivals(seen, sent, marks)) >= len(sent)


def consistency(args, console, server, context, url, walls, feed) -> dict:
    """Pause the feed, let the walls settle, compare each with the store and a fresh page."""
    feed.feed.pause()
    time.sleep(args.settle + 5)
    at_ms = time.time() * 1000
    shown = [_safe(p, f"({SHOWN_JS})") for p in walls]
    fresh = open_pages(context, url + READY["wall"][0], 1, READY["wall"][1])[0]
    time.sleep(2)
    truth_titles = _safe(fresh, f"({SHOWN_JS})")["titles"]
    fresh.close()
    return {"at_ms": at_ms, "shown": shown, "truth_titles": truth_titles}


def store_truth(db: Path, at_ms: float) -> list[dict]:
    """The KPIs and map counts the store gives at ``at_ms`` and 15 s before (a wall may have
    read it up to its idle refresh earlier)."""
    from sources.situation.source import SituationSource

    src = SituationSource.from_path(db)
    out = []
    for t in (at_ms, at_ms - 15_000):
        src.now_ms = lambda t=t: int(t)
        src.invalidate()
        sit = src.situation(force=True)
        k = sit["kpis"]
        drill = sum((k.get(f"drill.{x}") or {}).get("value") or 0
                    for x in ("alarms", "warnings", "incidents"))
        inc = sit["incidents"].dropna(subset=["lon", "lat"])
        out.append({"kpis": {"warnings": k["warnings"]["value"],
                             "incidents": k["incidents"]["value"],
                             "hotspots": k["hotspots"]["value"], "quakes": k["quakes"]["value"],
                             "drill": drill},
                    "map": {"hotspot": len(sit["hotspots"]), "quake": len(sit["quakes"]),
                            "incident": len(inc)}})
    src.store.close()
    return out


def burst_protocol(args, server: Server, url: str, health: HealthPoller,
                   until: str = "live") -> dict:
    """One wall alone, then ``args.burst`` at once (``until``: see :func:`protocol_burst`);
    ``*_doc_s``: until the walls' documents came, ``*_live_s``: their first patch."""
    path = READY["wall"][0]
    clients, t0 = protocol_burst(url, path, 1, 60, until=until)  # alone (also warms it)
    alone = (getattr(clients[0], f"{until}_at") or t0) - t0
    time.sleep(args.settle)
    c0, each0 = server.cpu(), server.cpu_each()
    clients, t0 = protocol_burst(url, path, args.burst, args.burst_timeout, until=until)
    t1 = time.time()
    each1 = server.cpu_each()
    lives = sorted(c.live_at - t0 for c in clients if c.live_at)
    docs = sorted(c.doc_at - t0 for c in clients if c.doc_at)
    errors = sorted({c.error for c in clients if c.error})
    return {"client": "protocol", "pages": args.burst, "until": until,
            "one_alone_s": round(alone, 2), "live": len(lives),
            "all_live_s": round(max(lives), 2) if len(lives) == args.burst else None,
            "median_live_s": round(statistics.median(lives), 2) if lives else None,
            "docs": len(docs),
            "all_doc_s": round(max(docs), 2) if len(docs) == args.burst else None,
            "median_doc_s": round(statistics.median(docs), 2) if docs else None,
            "reloads": 0, "errors": errors[:3],
            "create_cpu_s_per_page": round((server.cpu() - c0) / args.burst, 3),
            "cpu_s": {k: round(each1[k] - each0[k], 2) for k in each0},
            "health": health.between(t0, t1), "load": load()}


def burst_phase(args, server: Server, context, url: str, health: HealthPoller) -> dict:
    from tests.conftest import wait_until

    path, ready = READY["wall"]
    t0 = time.time()
    one = open_pages(context, url + path, 1, ready)
    alone = (_safe(one[0], "() => window.__liveAt") or 0) / 1000 - t0
    close_pages(server, one)
    time.sleep(args.settle)
    pages = [context.new_page() for _ in range(args.burst)]
    navs = {id(p): -1 for p in pages}  # the first navigation is the opening itself
    for p in pages:
        p.on("framenavigated", lambda f, p=p: f == p.main_frame and navs.__setitem__(
            id(p), navs[id(p)] + 1))
    c0, t0 = server.cpu(), time.time()
    for p in pages:
        p.evaluate(f"location.href = {url + path!r}")
    live: dict[int, float] = {}

    def all_live():
        for i, p in enumerate(pages):
            if i not in live and _safe(p, ready):
                live[i] = (_safe(p, "() => window.__liveAt") or 0) / 1000 - t0
        return len(live) == len(pages)

    try:
        wait_until(all_live, timeout=args.burst_timeout, interval=0.5)
    except AssertionError:
        pass
    t1 = time.time()
    lives = sorted(live.values())
    out = {"client": "chromium", "pages": args.burst, "one_alone_s": round(alone, 2),
           "live": len(lives),
           "all_live_s": round(max(lives), 2) if len(lives) == len(pages) else None,
           "median_live_s": round(statistics.median(lives), 2) if lives else None,
           "reloads": sum(max(0, n) for n in navs.values()),
           "create_cpu_s_per_page": round((server.cpu() - c0) / args.burst, 3),
           "health": health.between(t0, t1), "load": load()}
    close_pages(server, pages, timeout=120)
    return out


def run(args) -> dict:
    from playwright.sync_api import sync_playwright

    from tests.conftest import CHROMIUM, CHROMIUM_ARGS, start_console

    work = Path(tempfile.mkdtemp(prefix="capacity-"))
    db = work / "console.duckdb"
    if args.db:
        shutil.copy2(args.db, db)
    else:
        from data.generate import build

        build(db, scale="small", seed=7, progress=False)
    registry = None
    if "spread" in args.phases:  # the distributed centres start from the store as built
        registry = shutil.copy2(db, work / "registry.duckdb")
    feed = TaggedFeed(db)
    prelude = ""
    if args.profile:  # cProfile of the server's main thread (its IO loop), written at exit
        prelude = ("import atexit, cProfile\n_p = cProfile.Profile()\n_p.enable()\n"
                   f"atexit.register(lambda: (_p.disable(), _p.dump_stats({args.profile!r})))")
    console = start_console(db, "--feed", feed.url, prelude=prelude)
    server = Server(console)
    health = HealthPoller(console.url)
    result = {"benchmark": "capacity", "cores": os.cpu_count(), "load_start": load()}
    if args.pin:  # the server on core 0, everything else (clients, browsers, feed) on the rest
        import psutil

        others = list(range(1, os.cpu_count() or 1)) or [0]
        psutil.Process(console.proc.pid).cpu_affinity([0])
        psutil.Process().cpu_affinity(others)
        result["pinned"] = {"server": [0], "clients": others}
    needs_browser = bool(args.phases & {"idle", "burst-chromium"}) or (
        "storm" in args.phases and ("chromium" in args.storm_clients or args.storm_kinds)) or (
        "burst" in args.phases and "chromium" in args.burst_clients)
    try:
        with ExitStack() as stack:
            context = None
            if needs_browser:
                p = stack.enter_context(sync_playwright())
                browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                            args=CHROMIUM_ARGS)
                stack.callback(browser.close)
                context = browser.new_context(viewport={"width": 1920, "height": 1080})
                context.add_init_script(INIT_JS)
            url = console.url
            if "idle" in args.phases:
                print("idle pages:", flush=True)
                result["idle"] = idle_phase(args, server, context, url)
            if "storm" in args.phases:
                print(f"storm: {args.rate:g} events/min for {args.minutes:g} min", flush=True)
                time.sleep(args.settle)
                base = storm_run(args, server, feed, health, [])
                print(f"  no page (baseline): server {base['server_cpu_pct']} % of a core, "
                      f"/health p50 {base['health']['p50_s']} s max {base['health']['max_s']} s "
                      f"(load {base['load']})", flush=True)
                result["storm"] = {"baseline": base}
                if args.storm_kinds:
                    result["storm"]["per_page"] = storm_per_page(args, server, feed, health,
                                                                 context, url, base)
                if "protocol" in args.storm_clients:
                    time.sleep(args.settle)
                    pw = ProtocolWalls(url, READY["wall"][0], args.walls).start()
                    time.sleep(args.settle)
                    try:
                        ps = storm_run(args, server, feed, health, [], protocol=pw)
                    finally:
                        pw.stop()
                    result["storm"]["protocol_walls"] = ps
                    print(f"  {args.walls} browserless walls: warning/incident → wall "
                          f"{ps['latency_ms']}, missed {ps['missed']}/{ps['pairs']}, last "
                          f"event +{ps['last_event_after_storm_s']} s, /health {ps['health']}, "
                          f"server {ps['server_cpu_pct']} % (load {ps['load']})"
                          + (f", errors {ps['errors']}" if ps["errors"] else ""), flush=True)
            if "storm" in args.phases and "chromium" in args.storm_clients:
                time.sleep(args.settle)
                walls = open_pages(context, url + READY["wall"][0], args.walls, READY["wall"][1])
                time.sleep(args.settle)
                storm = storm_run(args, server, feed, health, walls)
                print(f"  {args.walls} walls: reloads {storm['reloads']}, event→wall "
                      f"{storm['latency_ms']}, missed {storm['missed']}/{storm['pairs']}, "
                      f"{storm['ws_kb_per_wall']} kB in {storm['ws_messages_per_wall']} "
                      f"frames a wall, last "
                      f"event +{storm['last_event_after_storm_s']} s, /health "
                      f"{storm['health']}, server {storm['server_cpu_pct']} % (load "
                      f"{storm['load']})", flush=True)
                end = consistency(args, console, server, context, url, walls, feed)
                result["storm"]["walls"] = storm
                result["_end"] = end
                close_pages(server, walls)
                feed.feed.resume()
            for client in ("protocol", "chromium"):
                if f"burst-{client}" not in args.phases and not (
                        "burst" in args.phases and client in args.burst_clients):
                    continue
                print(f"burst: {args.burst} walls at once ({client})", flush=True)
                time.sleep(args.settle)
                b = (burst_protocol(args, server, url, health) if client == "protocol"
                     else burst_phase(args, server, context, url, health))
                result[f"burst_{client}"] = b
                print(f"  one alone {b['one_alone_s']} s; {args.burst}: {b['live']} live, all "
                      f"live {b['all_live_s']} s (median {b['median_live_s']} s), reloads "
                      f"{b['reloads']}, /health p50 {b['health']['p50_s']} s max "
                      f"{b['health']['max_s']} s, {b['create_cpu_s_per_page']} CPU s/page "
                      f"(load {b['load']})", flush=True)
                if b.get("errors"):
                    print(f"  errors: {b['errors']}", flush=True)
            if "spread" in args.phases:  # last: it stops the embedded console
                from capacity_spread import spread_phase

                print(f"spread: {args.burst} walls at once on one process, then on a centre's "
                      f"{args.processes} serving processes behind nginx", flush=True)
                result["spread"] = spread_phase(args, console, health, feed.url, registry,
                                                work)
    finally:
        health.stop()
        console.stop()
        feed.stop()
    end = result.pop("_end", None)
    if end is not None:
        truth = store_truth(db, end["at_ms"])
        checks = []
        for shown in end["shown"]:
            ok_store = shown is not None and any(
                shown["kpis"] == t["kpis"] and shown["map"] == t["map"] for t in truth)
            checks.append({"store": ok_store,
                           "ticker": shown is not None and shown["titles"] == end["truth_titles"]})
            if not ok_store:
                print(f"  wall differs from the store: shown {shown and shown['kpis']} "
                      f"{shown and shown['map']}, store {truth[0]}", flush=True)
        result["storm"]["walls"]["consistent_with_store"] = all(c["store"] for c in checks)
        result["storm"]["walls"]["ticker_as_fresh_page"] = all(c["ticker"] for c in checks)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    result["load_end"] = load()
    return result


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", default=None, help="a store to copy (default: build a small one)")
    ap.add_argument("--phases", default="idle,storm,burst", help="which phases to run")
    ap.add_argument("--kinds", default="", help="idle: only these page kinds (comma-separated)")
    ap.add_argument("--walls", type=int, default=10, help="walls open during the storm")
    ap.add_argument("--rate", type=float, default=400, help="storm: events a minute")
    ap.add_argument("--minutes", type=float, default=1.0, help="storm: how long")
    ap.add_argument("--storm-clients", default="protocol,chromium",
                    help="storm: browserless walls, Chromium walls, or both (one after the "
                         "other)")
    ap.add_argument("--storm-kinds", default="",
                    help="storm: also the server's CPU and memory per open page of these "
                         "kinds (comma-separated: wall, risk map, alarm desk)")
    ap.add_argument("--pin", action="store_true",
                    help="pin the server to core 0 and this script, its browsers and the "
                         "feed to the other cores (walls on other machines than the server)")
    ap.add_argument("--burst", type=int, default=50, help="walls opened at once")
    ap.add_argument("--burst-clients", default="protocol,chromium",
                    help="burst: browserless walls (protocol), Chromium pages, or both")
    ap.add_argument("--burst-timeout", type=float, default=120,
                    help="seconds the burst's walls have to become live")
    ap.add_argument("--processes", default="1,3",
                    help="spread: serving processes of each distributed centre measured "
                         "after the embedded console (comma-separated)")
    ap.add_argument("--idle-pages", type=int, default=4, help="pages of each kind (idle)")
    ap.add_argument("--settle", type=float, default=8.0, help="seconds to settle")
    ap.add_argument("--measure-s", type=float, default=30.0, help="idle measuring window")
    ap.add_argument("--profile", default=None, metavar="FILE",
                    help="write a cProfile of the server's IO loop thread to FILE")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    args = ap.parse_args(argv)
    args.phases = set(args.phases.split(","))
    args.burst_clients = set(args.burst_clients.split(","))
    args.storm_clients = set(args.storm_clients.split(","))
    args.storm_kinds = [k.strip() for k in args.storm_kinds.split(",") if k.strip()]
    unknown = [k for k in args.storm_kinds if k not in READY]
    if unknown:
        ap.error(f"--storm-kinds {', '.join(unknown)}: the kinds are {', '.join(READY)}")
    args.processes = [int(n) for n in args.processes.split(",") if n.strip()]
    args.kinds = {k.strip() for k in args.kinds.split(",") if k.strip()}
    print(json.dumps(run(args), ensure_ascii=False))


if __name__ == "__main__":
    main()
