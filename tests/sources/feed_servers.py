"""Websocket feed servers for the ingest tests: real sockets, scripted behaviour.

:class:`ScriptedFeed` runs a websocket server in a thread; each connection runs the next
script of a list (an ``async def script(ws, since)``), so a test says exactly what a gateway
does on the first, second, ... connection. :class:`SilentServer` accepts TCP connections and
never answers (not even the handshake).
"""
from __future__ import annotations

import asyncio
import json
import socket
import threading
from urllib.parse import parse_qs, urlsplit

TS = 1795824000000  # 2026-11-28T00:00:00Z in epoch ms


def msg(seq: int, sensor: str, value: float = 1.0, **extra) -> dict:
    return {"type": "reading", "seq": seq, "ts": TS + seq, "sensor_id": sensor, "value": value,
            **extra}


def batch(messages) -> str:
    return json.dumps(list(messages), allow_nan=True)


class ScriptedFeed:
    """A websocket server whose n-th connection runs ``scripts[n]`` (the last one repeats)."""

    def __init__(self, scripts, *, max_size: int = 2**25):
        self.scripts = list(scripts)
        self.max_size = max_size
        self.sinces: list[int] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/feed"

    def __enter__(self) -> ScriptedFeed:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())
        pending = asyncio.all_tasks(self._loop)
        for task in pending:
            task.cancel()
        if pending:
            self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self._loop.close()

    async def _serve(self) -> None:
        from websockets.asyncio.server import serve

        self._stop = asyncio.Event()
        async with serve(self._handler, "127.0.0.1", 0, compression=None,
                         max_size=self.max_size, write_limit=2**22) as server:
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            await self._stop.wait()

    async def _handler(self, ws) -> None:
        since = int(parse_qs(urlsplit(ws.request.path).query)["since"][0])
        n = len(self.sinces)
        self.sinces.append(since)
        script = self.scripts[min(n, len(self.scripts) - 1)]
        try:
            await script(ws, since)
        except Exception:  # noqa: BLE001 - the client went away
            pass


async def idle(ws, since) -> None:
    """Keep the connection open and send nothing."""
    await ws.wait_closed()


def sending(*frames: str, then=idle):
    """A script that sends ``frames`` then runs ``then``."""
    async def script(ws, since):
        for f in frames:
            await ws.send(f)
        await then(ws, since)
    return script


async def abort(ws, since) -> None:
    """Cut the connection without a close frame."""
    ws.transport.abort()


class SilentServer:
    """Accepts TCP connections and never says a word (no websocket handshake)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/feed"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def __enter__(self) -> SilentServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.sock.close()
        for c in self.accepted:
            c.close()


def stored_seqs(store, feed: str) -> list[int]:
    """Every seq stored for ``feed`` across the message tables (with repeats, sorted)."""
    return store.arrow(
        "SELECT seq FROM (SELECT seq FROM readings WHERE feed = $f UNION ALL "
        "SELECT seq FROM hotspots WHERE feed = $f UNION ALL SELECT seq FROM quakes WHERE feed = $f "
        "UNION ALL SELECT seq FROM incidents WHERE feed = $f UNION ALL "
        "SELECT seq FROM warnings WHERE feed = $f) ORDER BY seq", {"f": feed}
    ).column(0).to_pylist()
