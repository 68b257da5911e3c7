"""End to end: ``serve.py`` with the real demo-feed subprocess; the feed dies and comes back."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, free_port, wait_until
from tests.sources.feed_servers import ScriptedFeed, batch, msg, sending


def children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        out.extend(int(x) for x in text)
    return out


def simulator_pid(console_pid: int) -> int:
    for pid in children(console_pid):
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if b"data.simulate" in cmd:
            return pid
    raise AssertionError("no demo-feed subprocess")


def feed_status(console) -> dict:
    feeds = console.health()["feeds"]
    assert len(feeds) == 1
    return feeds[0]


@pytest.mark.slow
def test_console_ingests_the_demo_feed_and_survives_its_restart(serve, tiny_db):
    port = free_port()
    console = serve("--speed", "20", "--demo-port", str(port))
    first = wait_until(lambda: feed_status(console)["received"] > 0 and feed_status(console),
                       timeout=30)
    assert first["connected"] and first["url"] == f"ws://127.0.0.1:{port}/feed"
    wait_until(lambda: feed_status(console)["received"] > first["received"], timeout=10,
               message="received grows")
    # the demo feed dies (kill -9): the console keeps serving, and says it is disconnected
    os.kill(simulator_pid(console.proc.pid), signal.SIGKILL)
    wait_until(lambda: not feed_status(console)["connected"], timeout=10)
    assert console.get("/health")[0] == 200
    # a new simulator on the same port (it reads a copy: the console holds the store)
    sim = subprocess.Popen([sys.executable, "-m", "data.simulate", "--db", str(tiny_db),
                            "--port", str(port), "--speed", "20"], cwd=ROOT,
                           stdout=subprocess.PIPE, text=True)
    try:
        assert sim.stdout.readline().startswith("READY ")
        before = feed_status(console)
        wait_until(lambda: feed_status(console)["connected"]
                   and feed_status(console)["stored"] > before["stored"] + 200, timeout=30,
                   message="reconnected to the new simulator")
        assert feed_status(console)["reconnects"] >= 1
        assert feed_status(console)["rejected"] == 0
    finally:
        assert console.stop() == 0  # SIGTERM: the pending batch is written
        sim.terminate()
        sim.wait(10)
    from sources.store.store import Store

    store = Store(tiny_db, read_only=True)
    try:
        url = first["url"]
        union = " UNION ALL ".join(f"SELECT seq FROM {t} WHERE feed = $f" for t in
                                   ("readings", "hotspots", "quakes", "incidents", "warnings"))
        n, distinct = store.arrow(f"SELECT count(*), count(DISTINCT seq) FROM ({union})",
                                  {"f": url}).to_pylist()[0].values()
        islands = store.scalar(
            f"SELECT count(DISTINCT seq - rn) FROM (SELECT seq, row_number() OVER "
            f"(ORDER BY seq) AS rn FROM ({union}))", {"f": url})
    finally:
        store.close()
    assert n == distinct > 400  # nothing twice
    assert islands == 2  # one unbroken run of seqs per simulator: nothing lost


@pytest.mark.slow
def test_console_keeps_serving_a_hostile_feed(serve, tiny_db):
    from sources.store.store import Store

    store = Store(tiny_db, read_only=True)
    sensor = store.scalar("SELECT min(sensor_id) FROM sensors")
    store.close()
    frames = ["{not json", batch([msg(1, sensor), {"type": "reading", "seq": 2, "value": "x"},
                                  msg(3, "NOPE")]), json.dumps(msg(4, sensor, float("nan")))]
    with ScriptedFeed([sending(*frames)]) as hostile:
        console = serve("--feed", hostile.url)
        status = wait_until(lambda: feed_status(console)["received"] >= 5 and feed_status(console),
                            timeout=30)
        assert status["rejected"] == 4 and status["stored"] == 1 and status["connected"]
        assert set(status["rejected_by_reason"]) == {"malformed_json", "missing_field",
                                                     "unknown_sensor", "non_finite"}
        code, _, _ = console.get("/")
        assert code == 200
