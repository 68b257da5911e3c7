"""Losing a node: a centre on a 3-server JetStream cluster (R=3), two ``serve.py
--distributed`` processes behind nginx, a feed of thousands of readings per second;
``kill -9`` of a log server and of a serving process; then every process holds exactly what
the feed sent — as a run without faults would.

Started here as real processes (``python -m sources.distributed.centre``'s code), each
stopped by its PID.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import urllib.request
from pathlib import Path

import duckdb

from sources.distributed.centre import NGINX
from tests.distributed.conftest import NEEDS_NATS, write_centres
from tests.distributed.test_processes import wait_for

pytestmark = NEEDS_NATS

ROOT = Path(__file__).resolve().parents[2]
sys.path.append(str(ROOT / "bench"))  # after site-packages: no bench script shadows a package


def get(url: str, cookie: str | None = None, timeout: float = 5.0) -> tuple[int, dict]:
    req = urllib.request.Request(url, headers={"Cookie": cookie} if cookie else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"{}")
    except OSError:
        return 0, {}


def position(port: int) -> int:
    status, body = get(f"http://127.0.0.1:{port}/health")
    if status != 200:
        return -1
    return int(body.get("services", {}).get("Materialiser", {}).get("position", -1))


def test_kill_a_log_server_and_a_serving_process_under_a_feed(tmp_path, registry):
    from alarm_latency import BenchFeed

    from sources.distributed.centre import Centre, parse_args
    from sources.distributed.local import LogServers, free_port
    from sources.distributed.log import EventLog

    servers = LogServers(tmp_path, "370102", n=3).start()
    centres = write_centres(tmp_path / "centres.json", {
        "370102": {"level": "county", "replicas": 3, "servers": servers.urls}})
    feed = BenchFeed()
    listen = f"127.0.0.1:{free_port()}"
    args = parse_args(["--centres", str(centres), "--centre", "370102", "--processes", "2",
                       "--first-port", str(free_port()), "--listen", listen,
                       "--registry", str(registry), "--feed", feed.url, "--var",
                       str(tmp_path / "var"), *(["--nginx"] if NGINX else []), "--",
                       "--malloc-trim-s", "0"])
    centre = Centre(args)
    centre.ports = [args.first_port, free_port()]  # two free ports
    admin = None
    sent = 0
    try:
        centre.start()
        supervisor = threading.Thread(target=centre.supervise, daemon=True)
        supervisor.start()
        wait_for(lambda: all(position(p) >= 0 for p in centre.ports), 90,
                 "both serving processes answer /health")
        sensors = [r[0] for r in duckdb.connect(str(registry), read_only=True).execute(
            "SELECT sensor_id FROM sensors ORDER BY 1 LIMIT 400").fetchall()]
        stop = threading.Event()

        def pump():  # ≈ 4,000 readings/s in frames of 200
            nonlocal sent
            while not stop.is_set():
                now = int(time.time() * 1000)
                seqs = feed.next_seqs(200)
                feed.send([{"type": "reading", "seq": s, "ts": now,
                            "sensor_id": sensors[s % len(sensors)], "value": 1.0}
                           for s in seqs])
                sent += len(seqs)
                time.sleep(0.05)

        pumper = threading.Thread(target=pump, daemon=True)
        pumper.start()
        time.sleep(2.0)
        servers.kill(1)  # kill -9 one of the three log servers
        time.sleep(2.0)
        victim = centre.procs["serve-0"]
        os.kill(victim.pid, signal.SIGKILL)  # kill -9 one serving process
        if NGINX:  # the wall's /health polls go to the other process meanwhile
            for _ in range(5):
                assert get(f"http://{listen}/health", cookie="console_node=x")[0] == 200
        time.sleep(2.0)
        servers.start(1)  # the log server comes back and catches up from the others
        time.sleep(1.0)
        stop.set()
        pumper.join(5)
        admin = EventLog(servers=servers.urls).start()
        # The log is complete when it stays at the same end across the processes' catch-up
        # and a second quiet spell: an ingest node still reconnecting to the log servers, or
        # slowed by a loaded machine, can pause publishing for longer than one quiet spell.
        end, deadline = 0, time.monotonic() + 180
        while True:
            now_end = wait_for(lambda: settled(admin, "VIEW_370102"), 60,
                               "the log stopped growing (every reading published)")
            wait_for(lambda e=now_end: all(position(p) >= e for p in centre.ports), 90,
                     "both processes (one restarted) applied the whole log")
            if now_end == end or time.monotonic() > deadline:
                break
            end = now_end
        assert centre.procs["serve-0"].pid != victim.pid  # restarted by the centre
        health = {p: get(f"http://127.0.0.1:{p}/health")[1].get("services", {}).get(
            "Materialiser") for p in centre.ports}  # named in a failure below
    finally:
        if admin is not None:
            admin.stop()
        centre.stop()
        feed._stop.set()
        servers.stop()
    held = {}
    for i in range(2):
        con = duckdb.connect(str(tmp_path / "var" / f"serve-{i}.duckdb"), read_only=True)
        held[i] = con.execute("SELECT count(*), count(DISTINCT seq) FROM readings").fetchone()
        con.close()
    assert all(v == (sent, sent) for v in held.values()), \
        f"rows, seqs per process {held} of {sent}; end of log {end}; materialisers {health}"


def settled(admin, stream: str, quiet_s: float = 3.0) -> int:
    """The stream's last sequence once it has not grown for ``quiet_s`` (0: still growing,
    or the cluster, a server just back and electing under load, did not answer yet)."""
    from sources.distributed.log import LogUnavailable

    try:
        first = admin.last_seq(stream)
        time.sleep(quiet_s)
        return first if admin.last_seq(stream) == first else 0
    except LogUnavailable:
        return 0
