"""A feed server the test drives (FEED-PROTOCOL): the console connects to it with ``--feed``."""
from __future__ import annotations

import asyncio
import json
import threading
import time


class ScriptedFeed:
    """A feed server (FEED-PROTOCOL) that sends what the test tells it to, when it says."""

    def __init__(self):
        self.port = 0
        self.seq = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._queue: asyncio.Queue | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/feed"

    def start(self) -> ScriptedFeed:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def send(self, **message) -> None:
        self.seq += 1
        msg = {"seq": self.seq, "ts": int(time.time() * 1000), **message}
        self._loop.call_soon_threadsafe(self._queue.put_nowait, msg)

    def incident(self, ident: str, status: str, *, lon: float, lat: float,
                 level: str = "red") -> None:
        self.send(type="incident", id=ident, kind="fire", lon=lon, lat=lat, level=level,
                  title=f"测试火灾 {ident}", status=status)

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        from websockets.asyncio.server import serve

        self._queue, self._stop = asyncio.Queue(), asyncio.Event()
        async with serve(self._handler, "127.0.0.1", 0, compression=None) as server:
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            await self._stop.wait()

    async def _handler(self, ws) -> None:
        try:
            while True:
                await ws.send(json.dumps(await self._queue.get()))
        except Exception:  # noqa: BLE001 - the console went away
            pass
