"""Walls without a browser: what Chromium asks of the server for a page, minus the drawing.

:class:`WallClient` fetches a page (a new session), opens its websocket, pulls the whole
document and then receives its patches, as a browser does; :class:`StormWall` notes when
each marked storm event first reaches it; :class:`ProtocolWalls` keeps ``n`` of them open in a
thread while a storm runs; :func:`protocol_burst` opens ``n`` at once. Used by
``bench/capacity.py``, ``bench/capacity_spread.py`` and ``bench/page_cost.py``.
"""
from __future__ import annotations

import http.cookiejar
import json
import re
import threading
import time
import urllib.request


class WallClient:
    """A wall without a browser: what Chromium asks of the server for one page — the page
    (a new session), its websocket, the whole document (PULL-DOC) and then its patches —
    minus the drawing. Live once the document came and a first patch followed (the page's
    data or periodic callbacks changed it: on the embedded console with its feed, within
    a second). Many of them measure what the *server* can open at once; 50 Chromium pages
    on the same 2 cores mostly measure Chromium."""

    def __init__(self, url: str, path: str, origin: str | None = None):
        self.url, self.path, self.origin = url, path, origin or url
        self.doc_at: float | None = None  # the whole document came
        self.live_at: float | None = None
        self.error: str | None = None
        self.patches = 0

    async def run(self) -> None:
        import asyncio
        import re

        from websockets.asyncio.client import connect

        loop = asyncio.get_running_loop()
        # the page's cookies go with its websocket, as a browser's do: behind nginx's sticky
        # routing (sources.distributed.centre) they take it to the process that made the page
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        try:
            html = await loop.run_in_executor(None, lambda: opener.open(
                self.url + self.path, timeout=300).read().decode())
            token = re.search(r'"token":"([^"]+)"', html).group(1)
            ws_url = self.url.replace("http", "ws", 1) + self.path.split("?")[0] + "/ws"
            cookies = "; ".join(f"{c.name}={c.value}" for c in jar)
            async with connect(ws_url, subprotocols=["bokeh", token], max_size=None,
                               origin=self.origin, open_timeout=300, ping_interval=None,
                               additional_headers={"Cookie": cookies} if cookies else None) as ws:
                await self._read(ws)  # ACK
                for part in ('{"msgid":"1","msgtype":"PULL-DOC-REQ"}', "{}", "{}"):
                    await ws.send(part)
                pulled = False
                while True:  # ends when the burst is over (the task is cancelled)
                    kind, content = await self._read(ws)
                    self.on_message(kind, content)
                    if kind == "PULL-DOC-REPLY":
                        pulled, self.doc_at = True, time.time()
                    elif kind == "PATCH-DOC" and pulled:
                        self.patches += 1
                        if self.live_at is None:
                            self.live_at = time.time()
        except Exception as exc:  # noqa: BLE001 - reported
            self.error = f"{type(exc).__name__}: {exc}"

    def on_message(self, kind: str, content) -> None:
        """Each message the server sent (``content``: its JSON text), as it arrives."""

    @staticmethod
    async def _read(ws) -> tuple[str, str]:
        header = json.loads(await ws.recv())
        await ws.recv()  # metadata
        content = await ws.recv()
        for _ in range(int(header.get("num_buffers") or 0)):
            await ws.recv()
            await ws.recv()
        return header.get("msgtype", ""), content


#: A storm event's mark in a message's text (as is, or as JSON's escape of the brackets).
MARK = re.compile(r"(?:⟨|\\u27e8)(\d+)(?:⟩|\\u27e9)")


class StormWall(WallClient):
    """A browserless wall that notes when each marked event ``⟨n⟩`` first reaches it: in
    the document or a patch (the ticker's markup), stamped on arrival (epoch ms). What the
    server delivers, without a browser's drawing on the same cores."""

    def __init__(self, url: str, path: str, origin: str | None = None):
        super().__init__(url, path, origin)
        self.seen: dict[str, float] = {}

    def on_message(self, kind: str, content) -> None:
        if not isinstance(content, str):
            return
        now = time.time() * 1000
        for n in MARK.findall(content):
            self.seen.setdefault(n, now)


class ProtocolWalls:
    """``n`` :class:`StormWall` kept open in a thread of their own while a storm runs."""

    def __init__(self, url: str, path: str, n: int):
        import asyncio

        self.clients = [StormWall(url, path) for _ in range(n)]
        self._loop = asyncio.new_event_loop()
        self._done: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="protocol-walls")

    def _run(self) -> None:
        import asyncio

        async def main():
            self._done = asyncio.Event()
            tasks = [asyncio.create_task(c.run()) for c in self.clients]
            await self._done.wait()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self._loop.run_until_complete(main())
        self._loop.close()

    def start(self, timeout: float = 300) -> ProtocolWalls:
        """Open them all; return once each has its document (or failed, or ``timeout``)."""
        self._thread.start()
        deadline = time.time() + timeout
        while time.time() < deadline and not all(c.doc_at or c.error for c in self.clients):
            time.sleep(0.2)
        return self

    def stop(self) -> None:
        while self._done is None and self._thread.is_alive():
            time.sleep(0.05)
        if self._done is not None:
            self._loop.call_soon_threadsafe(self._done.set)
        self._thread.join(30)

    def errors(self) -> list[str]:
        return sorted({c.error for c in self.clients if c.error})


def protocol_burst(url: str, path: str, n: int, timeout: float, origin: str | None = None,
                   until: str = "live") -> tuple[list, float]:
    """Open ``n`` browserless walls at once; returns them (live or not) and the start time.

    ``origin``: the websocket's ``Origin`` (default ``url``; a serving process reached
    directly, not through its nginx, accepts only nginx's). ``until``: the burst ends when
    every wall is ``"live"`` (a first patch after the document) or has its ``"doc"``."""
    import asyncio

    clients = [WallClient(url, path, origin) for _ in range(n)]
    done = (lambda c: c.live_at) if until == "live" else (lambda c: c.doc_at)

    async def main():
        tasks = [asyncio.create_task(c.run()) for c in clients]
        deadline = time.time() + timeout
        while time.time() < deadline and not all(done(c) or c.error for c in clients):
            await asyncio.sleep(0.1)
        for t in tasks:  # every page closes (the server ends their sessions)
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    t0 = time.time()
    from tests.conftest import arun

    arun(main())
    return clients, t0
