"""Benchmark phase ``spread`` of ``bench/capacity.py``: a burst of walls on one process vs N.

``python bench/capacity.py --phases spread --processes 1,3 [--burst 50]``

The same burst (``--burst`` browserless walls opened at once: the page, its websocket, the
whole document, then its patches; ``wall_clients.WallClient``) against, in one run:

1. the **embedded** console ``capacity.py`` started (one process, its own feed and store):
   the baseline;
2. for each ``n`` of ``--processes``: a **distributed centre** (province 370000) on loopback —
   its ``nats-server`` (:class:`sources.distributed.local.LogServers`), then
   :class:`sources.distributed.centre.Centre`: the first view snapshot (the same store as
   built, copied before the embedded console started), the ingest node on the same demo
   feed, ``n`` serving processes (``serve.py --distributed``) and nginx with its sticky
   cookie in front. The walls open through nginx; each keeps its cookie, so its websocket
   reaches the process that made its page.

Every server is started here on free loopback ports and stopped by its PID (also on error);
one setup runs at a time (the embedded console is stopped before the first centre starts).
Before each burst, every serving process opens one wall directly (what each caches once),
then ``capacity.burst_protocol`` runs as in phase ``burst``: one wall alone, then the burst.

A wall counts as open when its whole document came over its websocket (the page made, its
session and document built and sent: what a burst costs the server), not at its first
patch as in phase ``burst``: a distributed serving process sends a wall a patch only when its
view changes (the feed's events reach it through the ingest node and the log, seconds
apart), so a first patch there measures the feed, not the opening. (Chromium is not used
here: its walls would wait for their first data the same way.) The first patches seen before
the burst ends are reported too (``live``).

Measured per setup: time until every wall is open, the median, ``/health`` p50/max meanwhile (polled
every 0.25 s through the front, as a wall's clock does: behind nginx each poll lands on a
process chosen by a fresh key), and the CPU seconds each process spent during the burst —
serving processes, ingest node, nginx, nats-server, the demo feed (a thread of this script)
and the rest of this script (the walls' clients and the ``/health`` poller), all on the same
machine.
"""
from __future__ import annotations

import os
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: The centre the small demo store belongs to (Shandong province).
CODE = "370000"


class Processes:
    """CPU seconds of named processes, each with its children (nginx's worker), and of this
    script: named threads of it (``threads``: name -> native thread id) apart, the rest as
    ``bench (clients)``."""

    def __init__(self, pids: dict[str, int], threads: dict[str, int] | None = None):
        import psutil

        self.procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.me, self.threads = psutil.Process(), dict(threads or {})

    def cpu_each(self) -> dict[str, float]:
        import psutil

        out = {}
        for name, proc in self.procs.items():
            total = 0.0
            try:
                for p in (proc, *proc.children(recursive=True)):
                    t = p.cpu_times()
                    total += t.user + t.system
            except psutil.NoSuchProcess:  # died: its figure stops at what was read
                pass
            out[name] = total
        mine = self.me.cpu_times()
        by_id = {t.id: t.user_time + t.system_time for t in self.me.threads()}
        for name, tid in self.threads.items():
            out[name] = by_id.get(tid, 0.0)
        out["bench (clients)"] = mine.user + mine.system - sum(
            out[name] for name in self.threads)
        return out

    def cpu(self) -> float:
        """CPU seconds of the serving processes together (what creates the pages)."""
        return sum(v for k, v in self.cpu_each().items() if k.startswith("serve"))


def _ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/health", timeout=5) as r:
            return r.status == 200
    except OSError:
        return False


@contextmanager
def centre_on_loopback(var: Path, n: int, registry: Path, feed_url: str,
                       timeout: float = 300) -> Iterator[tuple[str, list[int], dict[str, int]]]:
    """A centre of ``n`` serving processes behind nginx, up: its front URL, the serving
    processes' ports and every process's PID by name; all stopped by PID at the end."""
    from capacity import load

    from sources.distributed.centre import NGINX, Centre, parse_args
    from sources.distributed.local import LogServers, free_port, wait_port, write_centres

    if NGINX is None:
        raise SystemExit("spread needs nginx (apt-get install -y nginx)")
    ports: list[int] = []
    while len(ports) < n + 1:  # n serving processes and nginx, all different
        port = free_port()
        if port not in ports:
            ports.append(port)
    servers = LogServers(var, CODE).start()
    centre = None
    try:
        centres = write_centres(var / "centres.json", {
            CODE: {"level": "province", "servers": servers.urls}})
        listen = f"127.0.0.1:{ports[-1]}"
        args = parse_args(["--centres", str(centres), "--centre", CODE, "--processes", str(n),
                           "--first-port", str(ports[0]), "--listen", listen,
                           "--registry", str(registry), "--feed", feed_url,
                           "--var", str(var / "var"), "--nginx",
                           # no view snapshot published during the measurement
                           "--snapshot-every-s", "86400"])
        centre = Centre(args)
        centre.ports = ports[:n]
        t0 = time.monotonic()
        centre.start()
        deadline = t0 + timeout
        waiting = [f"http://127.0.0.1:{p}" for p in centre.ports]
        while waiting:
            for name, proc in centre.procs.items():
                if proc.poll() is not None:
                    tail = (var / "var" / f"{name}.log").read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"{name} exited ({proc.returncode}):\n{tail}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"not up within {timeout} s: {waiting}")
            waiting = [u for u in waiting if not _ok(u)]
            time.sleep(0.5)
        wait_port(ports[-1])
        front = f"http://{listen}"
        if not _ok(front):
            raise RuntimeError(f"nginx at {front} does not reach the serving processes")
        print(f"  centre of {n}: up in {time.monotonic() - t0:.1f} s (load {load()})",
              flush=True)
        pids = {name: proc.pid for name, proc in centre.procs.items()}
        pids["nats-server"] = servers.procs[0].pid
        yield front, list(centre.ports), pids
    finally:
        if centre is not None:
            centre.stop()
        servers.stop()


def measure(args, front: str, direct: list[str], pids: dict[str, int]) -> dict:
    """Warm every serving process with one wall, then ``capacity.burst_protocol`` on
    ``front`` with its own ``/health`` poller; CPU seconds of ``pids`` and this script."""
    from capacity import READY, HealthPoller, burst_protocol, load, protocol_burst

    path = READY["wall"][0]
    time.sleep(args.settle)
    for url in direct:  # each process's first page (imports, caches) is not the burst's
        clients, _ = protocol_burst(url, path, 1, 120, origin=front, until="doc")
        if clients[0].error:
            raise RuntimeError(f"a wall on {url} failed: {clients[0].error}")
    feed = {t.native_id for t in threading.enumerate() if t.name == "demo-feed"}
    procs = Processes(pids, {"demo feed": feed.pop()} if len(feed) == 1 else {})
    load_before = load()
    health = HealthPoller(front)
    try:
        out = burst_protocol(args, procs, front, health, until="doc")
    finally:
        health.stop()
    out["load_before"] = load_before
    out["serving_processes"] = len(direct)
    out["serving_cpu_s"] = round(sum(v for k, v in out["cpu_s"].items()
                                     if k.startswith("serve")), 2)
    return out


def spread_phase(args, console, health, feed_url: str, registry: Path, work: Path) -> dict:
    """The burst on the embedded console, then on a centre of each ``args.processes``."""
    health.stop()  # each setup has its own poller
    out = {"pages": args.burst, "client": "protocol", "cores": os.cpu_count(),
           "setups": {}}
    rows = out["setups"]
    try:
        rows["embedded"] = measure(args, console.url, [console.url],
                                   {"serve": console.proc.pid})
        _print("embedded (1 process)", rows["embedded"])
    finally:
        console.stop()  # one setup at a time on the machine
    for n in args.processes:
        with centre_on_loopback(work / f"centre-{n}", n, registry, feed_url) as (
                front, ports, pids):
            key = f"distributed x{n}"
            rows[key] = measure(args, front, [f"http://127.0.0.1:{p}" for p in ports], pids)
            _print(f"{n} serving process{'es' if n > 1 else ''} + nginx", rows[key])
    print(f"\n| {args.burst} walls at once | all open | median | open | /health p50 / max | "
          "serving CPU s | other CPU s | load |", flush=True)
    print("|---|---:|---:|---:|---:|---:|---|---:|")
    for name, r in rows.items():
        other = ", ".join(f"{k} {v}" for k, v in r["cpu_s"].items() if not k.startswith("serve"))
        print(f"| {name} | {r['all_doc_s']} s | {r['median_doc_s']} s | {r['docs']} | "
              f"{r['health']['p50_s']} / {r['health']['max_s']} s | {r['serving_cpu_s']} | "
              f"{other} | {r['load']} |", flush=True)
    return out


def _print(name: str, r: dict) -> None:
    each = ", ".join(f"{k} {v}" for k, v in r["cpu_s"].items())
    print(f"  {name}: one alone {r['one_alone_s']} s; {r['pages']}: {r['docs']} open, all open "
          f"{r['all_doc_s']} s (median {r['median_doc_s']} s; {r['live']} had a first patch "
          f"by then), /health p50 "
          f"{r['health']['p50_s']} s max {r['health']['max_s']} s; CPU s: {each} "
          f"(load {r['load_before']} → {r['load']})", flush=True)
    if r.get("errors"):
        print(f"  errors: {r['errors']}", flush=True)
