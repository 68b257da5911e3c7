"""Helpers of the exercise tests: the demo feed as a subprocess, its control interface over
HTTP, and a websocket client that collects what the feed sends (in its own thread)."""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import orjson

from tests.conftest import ROOT, wait_until


def start_simulator(db, *args: str) -> tuple[subprocess.Popen, str]:
    """``python -m data.simulate`` on ``db`` (any free port); returns (process, feed URL)."""
    proc = subprocess.Popen([sys.executable, "-m", "data.simulate", "--db", str(db),
                             "--port", "0", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line.startswith("READY "):
        proc.kill()
        raise AssertionError(f"no READY: {line!r} {proc.stderr.read()[-2000:]}")
    return proc, line.split()[1]


def stop_simulator(proc: subprocess.Popen) -> int:
    proc.terminate()
    try:
        return proc.wait(15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def control(feed_url: str, path: str, method: str = "GET") -> tuple[int, dict]:
    """Ask the feed's exercise desk: ``(HTTP status, JSON body)``."""
    base = feed_url.replace("ws://", "http://").rsplit("/feed", 1)[0]
    req = urllib.request.Request(base + path, method=method,
                                 data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.headers["Content-Type"].startswith("application/json")
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        body = e.read()
        try:
            return e.code, json.loads(body)
        except ValueError:
            return e.code, {"text": body.decode()}


class Collector:
    """Receives every message of ``url?since=N`` in a background thread."""

    def __init__(self, url: str, since: int = -1):
        self.url = f"{url}?since={since}"
        self.messages: list[dict] = []
        self.frames = 0
        self._lock = threading.Lock()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        wait_until(lambda: self.frames > 0, timeout=30, message=f"nothing from {self.url}")

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(self._receive())
        self._loop.close()

    async def _receive(self) -> None:
        from websockets.asyncio.client import connect

        self._stop = asyncio.Event()
        async with connect(self.url, proxy=None, compression=None, max_size=2**24) as ws:
            while not self._stop.is_set():
                try:
                    frame = await asyncio.wait_for(ws.recv(), 0.2)
                except TimeoutError:
                    continue
                data = orjson.loads(frame)
                with self._lock:
                    self.frames += 1
                    self.messages.extend(data if isinstance(data, list) else [data])

    def of(self, drill_id: str | None = None) -> list[dict]:
        """The exercise messages so far (of one run)."""
        with self._lock:
            return [m for m in self.messages if m.get("exercise")
                    and (drill_id is None or m.get("drill_id") == drill_id)]

    def count(self) -> int:
        with self._lock:
            return len(self.messages)

    def last_seq(self) -> int:
        with self._lock:
            return max(m["seq"] for m in self.messages)

    def close(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
