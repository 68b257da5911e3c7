"""Crash safety: ``kill -9`` a process ingesting heavily, restart it: no gap, no duplicate."""
from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest

from tests.conftest import ROOT, wait_until
from tests.sources.feed_servers import stored_seqs


class IngestProcess:
    """``python -m sources.ingest.feed --db DB URL``, its status lines read as they come."""

    def __init__(self, db, url):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sources.ingest.feed", "--db", str(db), url], cwd=ROOT,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.status: dict = {}
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)
            if line.startswith("["):
                self.status = json.loads(line)[0]

    def stored(self) -> int:
        return self.status.get("stored", 0)


@pytest.mark.slow
def test_kill_9_during_heavy_ingest_loses_nothing_and_stores_nothing_twice(tiny_db):
    from data.simulate import DemoFeed, read_registry

    feed = DemoFeed(read_registry(tiny_db), speed=300, seed=11).start()
    procs = []
    try:
        first = IngestProcess(tiny_db, feed.url)
        procs.append(first)
        wait_until(lambda: first.stored() > 15_000, timeout=60,
                   message=f"the ingest is storing: {first.lines[-5:]}")
        first.proc.kill()  # SIGKILL: no flush, no checkpoint
        first.proc.wait(10)
        killed_at = first.status["last_seq"]
        second = IngestProcess(tiny_db, feed.url)
        procs.append(second)
        wait_until(lambda: second.stored() > 5_000, timeout=60)
        feed.pause()
        wait_until(lambda: second.status.get("last_seq") == feed.last_seq, timeout=60,
                   message=f"caught up: {second.status}")
        second.proc.terminate()
        assert second.proc.wait(20) == 0
    finally:
        for p in procs:
            if p.proc.poll() is None:
                p.proc.kill()
                p.proc.wait(10)
        feed.stop()
    from sources.store.store import Store

    store = Store(tiny_db, read_only=True)
    try:
        seqs = stored_seqs(store, feed.url)
    finally:
        store.close()
    assert killed_at is not None and feed.first_seq < killed_at < feed.last_seq
    assert seqs == list(range(feed.first_seq, feed.last_seq + 1))
