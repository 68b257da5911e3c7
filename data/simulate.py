"""Demo feed: a websocket server that speaks FEED-PROTOCOL.md about the demo province.

``python -m data.simulate --db PATH --port P [--host 127.0.0.1] [--speed X]`` reads the
registry (sensors, stations, counties, boundaries, landslide points) from the store, closes
the file, prints ``READY ws://HOST:PORT/feed`` and serves ``/feed?since=N``.

Exercises (:mod:`data.drill`): ``--scenario NAME`` plays a scenario of ``data/scenarios``
from the start (``--scenario-speed X`` runs its timeline X times faster still),
``--demo-scenario NAME`` plays it and plays it again ten simulated minutes after it ends,
``--storm [--storm-rate 400] [--storm-minutes 1]`` sends an event storm. The same port
answers a loopback control interface (``GET /scenarios``, ``GET /scenario/status``,
``POST /scenario/start?name=N``, ``/pause``, ``/resume``, ``/stop``:
:mod:`data.drill_control`).

What it sends (simulated time runs ``speed`` times faster than the wall clock):
every sensor every ``period_s`` (drift and noise around ``normal``; a few excursions an hour
beyond hi / hi-hi or lo that last minutes and clear); rain cells that move across counties,
raising rain gauges and then, with a lag, river and reservoir levels; hotspot batches every
10 minutes (more when dry); rare small earthquakes; warnings (Alert, Update, Cancel) and
incidents (open, then closed). The model lives in :mod:`data.province_model`.
"""
from __future__ import annotations

import argparse
import asyncio
import bisect
import logging
import shutil
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import orjson

from data.drill_control import CONTROL_PATHS, DrillControl, json_body, storm_scenario
from data.province_model import Province, Registry
from data.scenario import SCENARIO_DIR, ScenarioError

log = logging.getLogger("data.simulate")

FRAME_MESSAGES = 300
LOOPBACK_PREFIXES = ("127.", "::1", "::ffff:127.")


def read_registry(db: str | Path) -> Registry:
    """Read what the simulation needs and close the file (copy it first if it is held)."""
    import duckdb

    tmp = None
    try:
        con = duckdb.connect(str(db), read_only=True)
    except (duckdb.IOException, duckdb.ConnectionException):  # held read-write: read a copy
        tmp = Path(tempfile.mkdtemp(prefix="simulate-"))
        src = Path(db)
        shutil.copy2(src, tmp / src.name)
        wal = src.with_name(src.name + ".wal")
        if wal.exists():
            shutil.copy2(wal, tmp / wal.name)
        con = duckdb.connect(str(tmp / src.name), read_only=False)
    try:
        return Registry.from_connection(con)
    finally:
        con.close()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


@dataclass(frozen=True)
class Frame:
    """One frame of the history: its seq range and its encoded text."""

    first: float
    last: float
    data: bytes


class History:
    """Bounded ring of the frames sent, to serve ``?since=N``."""

    def __init__(self, max_messages: int = 2_000_000, max_age_s: float = 1800.0):
        self.max_messages = max_messages
        self.max_age_s = max_age_s
        self._frames: list[Frame] = []
        self._lasts: list[float] = []
        self._counts: list[int] = []
        self._born: list[float] = []
        self._head = 0
        self.messages = 0

    @property
    def last(self) -> float:
        return self._lasts[-1] if len(self._lasts) > self._head else -1

    def append(self, frame: Frame, count: int) -> None:
        self._frames.append(frame)
        self._lasts.append(max(frame.last, self.last))
        self._counts.append(count)
        self._born.append(time.monotonic())
        self.messages += count
        now = time.monotonic()
        while self._head < len(self._frames) - 1 and (
                self.messages > self.max_messages or now - self._born[self._head] > self.max_age_s):
            self.messages -= self._counts[self._head]
            self._head += 1
        if self._head > 10_000:  # compact once in a while, not on every eviction
            for lst in (self._frames, self._lasts, self._counts, self._born):
                del lst[: self._head]
            self._head = 0

    def after(self, since: float, limit: int = 64) -> list[tuple[float, bytes]]:
        """Frames with messages whose seq is greater than ``since`` (the first one trimmed)."""
        i = max(bisect.bisect_right(self._lasts, since, lo=self._head), self._head)
        out = []
        for frame, last in zip(self._frames[i:i + limit], self._lasts[i:i + limit], strict=True):
            if frame.last <= since:
                continue  # an event frame published after a higher seq
            data = frame.data
            if frame.first <= since < frame.last:
                data = _trim(data, since)
            if data is not None:
                out.append((last, data))
        return out


def _trim(data: bytes, since: float) -> bytes | None:
    try:
        msgs = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if isinstance(msgs, list):
        kept = [m for m in msgs if not isinstance(m, dict) or not isinstance(m.get("seq"), int)
                or m["seq"] > since]
        return orjson.dumps(kept) if kept else None
    return data


class DemoFeed:
    """The demo feed server; runs its own asyncio loop in a background thread.

    Parameters
    ----------
    registry : Registry
        What the province holds (see :func:`read_registry`).
    host, port : str, int
        Where to listen (port 0: any free port; :attr:`url` tells which).
    speed : float
        Simulated seconds per wall second.
    tick_s : float
        Wall seconds between two generation steps.
    """

    def __init__(self, registry: Registry, *, host: str = "127.0.0.1", port: int = 0,
                 speed: float = 1.0, tick_s: float = 0.1, seed: int | None = None,
                 max_messages: int = 2_000_000, max_age_s: float = 1800.0,
                 scenario_dir: str | Path | None = None):
        self.host, self.port, self.speed, self.tick_s = host, port, speed, tick_s
        self.first_seq = int(time.time() * 1e6)
        self._next_seq = self.first_seq
        self._seq_lock = threading.Lock()
        self.province = Province(registry, seed=seed, start=time.time(), next_seq=self._take,
                                 speed=speed)
        self.drills = DrillControl(self.province, registry,
                                   directory=Path(scenario_dir or SCENARIO_DIR))
        self.history = History(max_messages, max_age_s)
        self.sent_frames = 0
        self._paused = threading.Event()
        self._pause_seen = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server = None
        self._clients: set = set()
        self._changed: asyncio.Event | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._closing = False

    # ------------------------------------------------------------------ seqs
    def _take(self, n: int) -> int:
        with self._seq_lock:
            first = self._next_seq
            self._next_seq += n
            return first

    def allocate_seqs(self, n: int) -> list[int]:
        """Reserve ``n`` fresh seqs (for messages a test injects)."""
        first = self._take(n)
        return list(range(first, first + n))

    @property
    def last_seq(self) -> int:
        """Highest seq handed out so far."""
        return self._next_seq - 1

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}/feed"

    @property
    def clients(self) -> int:
        return len(self._clients)

    # ------------------------------------------------------------------ control
    def start(self, timeout: float = 30) -> DemoFeed:
        """Start serving in a background thread; returns once the port is bound."""
        self._thread = threading.Thread(target=self._main, name="demo-feed", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout) or self._error is not None:
            raise RuntimeError(f"the demo feed did not start: {self._error!r}")
        return self

    def stop(self, timeout: float = 10) -> None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(self._stop.set)
            except RuntimeError:
                pass
        if self._thread is not None:
            self._thread.join(timeout)

    def pause(self, timeout: float = 5.0) -> None:
        """Stop generating (frames already generated are still served).

        Returns once the generator has seen the pause, so no frame is made after it.
        """
        self._pause_seen.clear()
        self._paused.set()
        if self._thread is not None and self._thread.is_alive():
            self._pause_seen.wait(timeout)

    def resume(self) -> None:
        self._paused.clear()

    def drop_connections(self) -> None:
        """Cut every client connection abruptly (no close frame), as a network failure would."""
        def drop():
            conns = set(self._clients) | set(getattr(self._server, "connections", ()))
            for ws in conns:
                if ws.transport is not None:
                    ws.transport.abort()
        self._call(drop)

    def inject(self, frame: str | bytes, *, seq: int | None = None) -> None:
        """Send a raw frame (valid or not) after what was generated so far, and keep it.

        ``seq``: the highest seq it carries (so ``?since=`` replays it correctly).
        """
        data = frame.encode("utf-8", "surrogatepass") if isinstance(frame, str) else frame

        def put():
            pos = self.history.last + 0.5 if seq is None else seq
            self._publish([Frame(pos, pos, data)], counts=[1])
        self._call(put)

    def _call(self, fn):
        """Run ``fn`` in the feed's thread (where the province lives); its result or error."""
        if self._loop is None:
            raise RuntimeError("the demo feed is not running")
        done = threading.Event()
        result: list = [None, None]

        def run():
            try:
                result[0] = fn()
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                result[1] = exc
            finally:
                done.set()
        self._loop.call_soon_threadsafe(run)
        done.wait(10)
        if result[1] is not None:
            raise result[1]
        return result[0]

    def start_drill(self, name, *, speed: float = 1.0, repeat: bool = False) -> dict:
        """Start an exercise (a scenario name, path or :class:`~data.scenario.Scenario`);
        raises :class:`~data.scenario.ScenarioError` when it does not validate."""
        return self._call(lambda: self.drills.start(name, speed=speed, repeat=repeat))

    def _publish_events(self, messages: list[tuple[int, bytes]]) -> None:
        if messages:
            self._publish([Frame(seq, seq, msg) for seq, msg in messages], [1] * len(messages))

    # ------------------------------------------------------------------ serving
    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # noqa: BLE001 - reported by start()
            self._error = exc
            self._ready.set()
            log.exception("demo feed stopped")
        finally:
            _cancel_all(loop)
            loop.close()

    async def _serve(self) -> None:
        from websockets.asyncio.server import serve

        self._stop = asyncio.Event()
        self._changed = asyncio.Event()
        async with serve(self._handler, self.host, self.port, compression=None,
                         max_size=2**20, process_request=self._route,
                         ping_interval=20, ping_timeout=20, close_timeout=2,
                         write_limit=2**20) as server:
            self._server = server
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            generator = asyncio.create_task(self._generate())
            await self._stop.wait()
            generator.cancel()
            self._closing = True
            self._changed.set()  # wake every handler waiting for news: they end
            for ws in list(self._clients):
                if ws.transport is not None:
                    ws.transport.abort()

    def _route(self, connection, request):
        """The feed at ``/feed``; the exercise desk's control requests (loopback only)."""
        path = urlsplit(request.path).path.rstrip("/")
        if path == "/feed":
            return None
        if path not in CONTROL_PATHS:
            return connection.respond(404, "not found: the feed is at /feed\n")
        host = str((connection.remote_address or ("",))[0])
        if not host.startswith(LOOPBACK_PREFIXES):
            return connection.respond(403, "the exercise desk answers loopback clients only\n")
        try:
            status, body = self.drills.handle(getattr(request, "method", "GET"), request.path,
                                              self._publish_events)
        except Exception as exc:  # noqa: BLE001 - a control bug must not stop the feed
            log.exception("control request %s failed", request.path)
            status, body = 500, {"error": f"{type(exc).__name__}: {exc}"}
        response = connection.respond(status, "")
        response.body = json_body(body)
        del response.headers["Content-Type"]
        del response.headers["Content-Length"]
        response.headers["Content-Type"] = "application/json; charset=utf-8"
        response.headers["Content-Length"] = str(len(response.body))
        return response

    async def _handler(self, ws) -> None:
        query = parse_qs(urlsplit(ws.request.path).query)
        try:
            cursor: float = int(query.get("since", ["-1"])[0])
        except ValueError:
            cursor = -1
        self._clients.add(ws)
        try:
            while not self._closing:
                changed = self._changed
                frames = self.history.after(cursor)
                for last, data in frames:
                    await ws.send(data, text=True)
                    cursor = last
                    self.sent_frames += 1
                if not frames:
                    await changed.wait()
        except Exception:  # noqa: BLE001 - a client went away: nothing to do
            pass
        finally:
            self._clients.discard(ws)

    def _publish(self, frames: list[Frame], counts: list[int]) -> None:
        for frame, n in zip(frames, counts, strict=True):
            self.history.append(frame, n)
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def _generate(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(self.tick_s)
            now = time.monotonic()
            dt, last = (now - last) * self.speed, now
            if self._paused.is_set():
                self._pause_seen.set()
                continue
            readings, events = self.province.step(dt)
            frames, counts = [], []
            for i in range(0, len(readings), FRAME_MESSAGES):
                chunk = readings[i:i + FRAME_MESSAGES]
                frames.append(Frame(chunk[0][0], chunk[-1][0],
                                    b"[" + b",".join(m for _, m in chunk) + b"]"))
                counts.append(len(chunk))
            for seq, msg in events:  # events go one per frame, as single objects
                frames.append(Frame(seq, seq, msg))
                counts.append(1)
            if frames:  # in seq order, so that a replay from since=N is exact
                order = sorted(range(len(frames)), key=lambda i: frames[i].first)
                self._publish([frames[i] for i in order], [counts[i] for i in order])


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel and await what is left (connection handlers), so the loop closes cleanly."""
    pending = asyncio.all_tasks(loop)
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Demo feed of the emergency console (websocket).")
    p.add_argument("--db", required=True, help="DuckDB store holding the registry")
    p.add_argument("--port", type=int, default=8765, help="port (0: any free port)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--speed", type=float, default=1.0, help="simulated seconds per second")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    p.add_argument("--scenario", help="play this exercise scenario (name or path) at once")
    p.add_argument("--demo-scenario", metavar="NAME",
                   help="play a scenario at once, and again 10 simulated minutes after it ends")
    p.add_argument("--scenario-speed", type=float, default=1.0,
                   help="scenario seconds per simulated second (on top of --speed)")
    p.add_argument("--scenario-dir", default=str(SCENARIO_DIR),
                   help="where the scenario files are (default: data/scenarios)")
    p.add_argument("--storm", action="store_true", help="send an event storm at once")
    p.add_argument("--storm-rate", type=float, default=400.0,
                   help="storm: events a minute of scenario time (at the default speeds, of "
                        "wall-clock time)")
    p.add_argument("--storm-minutes", type=float, default=1.0, help="storm: how long (minutes)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    if sum(bool(x) for x in (args.scenario, args.demo_scenario, args.storm)) > 1:
        p.error("--scenario, --demo-scenario and --storm start one exercise: choose one")
    if args.storm and not (args.storm_rate > 0 and args.storm_minutes > 0):
        p.error("--storm-rate and --storm-minutes must be positive")
    feed = DemoFeed(read_registry(args.db), host=args.host, port=args.port, speed=args.speed,
                    seed=args.seed, scenario_dir=args.scenario_dir).start()
    try:
        if args.storm:
            feed.start_drill(storm_scenario(args.storm_rate, args.storm_minutes),
                             speed=args.scenario_speed)
        elif args.scenario or args.demo_scenario:
            feed.start_drill(args.scenario or args.demo_scenario, speed=args.scenario_speed,
                             repeat=bool(args.demo_scenario))
    except ScenarioError as exc:
        sys.stderr.write(f"{exc}\n")
        feed.stop()
        sys.exit(2)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    sys.stdout.write(f"READY {feed.url}\n")
    sys.stdout.flush()
    while not stop.wait(1.0):
        if feed._thread is not None and not feed._thread.is_alive():
            break
    feed.stop()


if __name__ == "__main__":
    main()
