"""``serve.py --risk-workers N`` / ``--risk-scheduler ADDR``: the risk points on Dask workers.

A real console process on the tiny store, a real Dask LocalCluster it owns; the partitioned
layer's pixels are compared with the in-process layer's in tests/sources/test_risk_partitioned.py
(the page's contract); here: the option reaches the console, the /risk page is served from
the workers, ``/health`` says where the points are, and stopping leaves no worker behind.
"""
from __future__ import annotations

import re
import subprocess
import sys
import time
from itertools import pairwise

import duckdb
import psutil
import pytest

from tests.conftest import ROOT, free_port

pytest.importorskip("distributed", reason="the [scale] extra (Dask) is not installed")
pytestmark = pytest.mark.slow


def test_the_risk_map_is_served_from_local_dask_workers(serve, tiny_db):
    con = duckdb.connect(str(tiny_db), read_only=True)
    n_points = con.execute("SELECT count(*) FROM risk_points").fetchone()[0]
    con.close()
    console = serve("--no-demo-feed", "--risk-workers", "2")
    layer = console.health()["risk_layer"]
    assert layer["kind"] == "partitioned" and layer["cluster"] == "local:2"
    assert layer["points"] == n_points > 0
    assert layer["partitions"] >= 1 and 1 <= layer["workers"] <= 2
    workers = [p for p in psutil.Process(console.proc.pid).children(recursive=True)
               if "spawn" in " ".join(p.cmdline())]
    assert len(workers) >= 2, [p.cmdline() for p in workers]  # the two Dask workers
    status, body, _ = console.get("/risk")  # the page builds its first frame on the workers
    assert status == 200 and b"bokeh" in body.lower()
    assert console.health()["risk_layer"]["points"] == n_points  # still serving
    assert console.stop() == 0
    deadline = time.monotonic() + 20
    while any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in workers) \
            and time.monotonic() < deadline:
        time.sleep(0.2)
    left = [p.pid for p in workers if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not left, f"Dask workers left running after the console stopped: {left}"
    log = console.log.read_text()
    # Dask's own teardown races (a worker's heartbeat into a closing scheduler, a nanny's
    # close cancelled) log tracebacks under a loaded CPU: those are Dask's; none is ours
    ours = _our_tracebacks(log)
    assert not ours, "\n".join(ours)[-3000:]


_RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (?:- )?", re.M)


def _records(log: str) -> list[str]:
    """The log's records: each begins with a timestamp; a traceback belongs to the record
    above it. Text before the first record (the console's start-up lines) is one record."""
    starts = [m.start() for m in _RECORD.finditer(log)]
    bounds = [0, *starts, len(log)] if not starts or starts[0] else [*starts, len(log)]
    return [log[a:b] for a, b in pairwise(bounds) if log[a:b].strip()]


def _our_tracebacks(log: str) -> list[str]:
    """The records holding a traceback that no Dask logger wrote."""
    return [r for r in _records(log)
            if "Traceback" in r and not _logger(r).startswith("distributed.")]


def _logger(record: str) -> str:
    """The logger's name of one record ('' for text that is not a record)."""
    m = _RECORD.match(record)
    return record[m.end():].split(" ", 1)[0] if m else ""


@pytest.mark.parametrize(("args", "said"), [
    (["--risk-workers", "0"], "--risk-workers 0: a number of worker processes"),
    (["--risk-scheduler", "http://127.0.0.1:8786"], "a Dask scheduler address is tcp://"),
    (["--risk-scheduler", "tcp://127.0.0.1"], "a Dask scheduler address is tcp://"),
    (["--risk-workers", "2", "--risk-scheduler", "tcp://127.0.0.1:8786"], "give one of them"),
])
def test_a_bad_risk_cluster_option_is_one_line_and_exit_2(tmp_path, args, said):
    db = tmp_path / "never.duckdb"
    out = subprocess.run([sys.executable, str(ROOT / "serve.py"), "--address", "127.0.0.1",
                          "--port", str(free_port()), "--no-demo-feed", "--db", str(db), *args],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stderr[-2000:]
    assert said in out.stderr and "Traceback" not in out.stderr
    assert not db.exists()  # refused before anything was built


def test_the_log_check_tells_dask_teardown_from_ours():
    log = ("starting\n"
           "2026-12-02 02:35:54,931 distributed.nanny \nTraceback (most recent call last):\n  x\n"
           "2026-12-02 02:13:23,143 - distributed.worker - ERROR - heartbeat\nTraceback\n"
           "2026-12-02 02:13:24,000 sources.console closing the risk layer's workers\n"
           "Traceback (most recent call last):\n  y\nstopped\n")
    recs = _records(log)
    assert [_logger(r) for r in recs] == ["", "distributed.nanny", "distributed.worker",
                                          "sources.console"]
    ours = _our_tracebacks(log)
    assert len(ours) == 1 and "closing the risk layer" in ours[0] and "stopped" in ours[0]
    assert [_logger(r) for r in _records("Traceback (most recent call last):\n")] == [""]
