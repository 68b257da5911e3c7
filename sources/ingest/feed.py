"""Ingest of one live feed (FEED-PROTOCOL.md): websocket client → validated batches → store.

One :class:`FeedIngest` per feed URL. Two threads, each the only owner of its state:

* the **receiving thread** runs an asyncio loop: the websocket, parsing, the batch being
  filled (``Batch``), the reception counters (``received``, ``rejected``, ``connected``,
  ``last_error``) and the reconnects;
* the **writer thread** (:class:`~sources.ingest.writer.FeedWriter`) persists batches,
  exactly once by (feed URL, seq), publishes them and calls the listeners.

They talk through the writer's bounded queue only (``submit``; back-pressure on the socket
when the store is slow); a failed write comes back as a callback that the receiving loop
runs on its own thread (``call_soon_threadsafe``). ``rejected_by_reason`` is the one
structure read by other threads while it changes: it is guarded by a lock. Other threads
(``/health``, pages) only read counters.

Resume: every (re)connect opens ``URL?since=N`` with N the highest *persisted* seq. A batch
that fails to write stops further writes until the next connection (which waits for the
writer to drain first), so a failure can never leave a hole below N.
"""
from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import param
import pyarrow as pa

from sources.geo import CountyGeometry
from sources.hub import Hub
from sources.ingest.messages import Batch, cut_raw, parse_frame, reason_code
from sources.ingest.seqs import SeqIntervals
from sources.ingest.writer import FeedWriter
from sources.store.store import Store

log = logging.getLogger(__name__)

MAX_FRAME = 16 * 1024 * 1024
_ACTIVE: set[tuple[int, str]] = set()  # (store, url) pairs being ingested in this process
_ACTIVE_LOCK = threading.Lock()


def with_since(url: str, since: int) -> str:
    """``url`` with its ``since`` query parameter set (other parameters kept)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "since"]
    query.append(("since", str(since)))
    return urlunsplit(parts._replace(query=urlencode(query)))


class FeedIngest(param.Parameterized):
    """Client of one feed URL: receive, validate, persist exactly once, publish.

    ``start()`` runs it in the background; ``stop()`` writes what is pending;
    ``status()`` says how it goes (``/health`` shows it). Register alarm engines and the
    like with :meth:`add_listener`: they are called after each committed batch.
    """

    url = param.String(doc="Feed URL exactly as given on the command line (the `feed` column).")
    store = param.ClassSelector(class_=Store, doc="The store batches are written to.")
    hub = param.ClassSelector(class_=Hub, allow_None=True, default=None,
                              doc="Hub the new rows are published to after each commit.")
    flush_interval = param.Number(default=0.15, bounds=(0.001, 10),
                                  doc="Seconds a message may wait before its batch is written.")
    flush_rows = param.Integer(default=20_000, bounds=(1, None),
                               doc="A batch is written as soon as it holds this many messages.")
    idle_timeout = param.Number(
        default=300.0, bounds=(0.1, None),
        doc="Reconnect when no frame arrived for this many seconds. A dead peer is found "
            "sooner by the websocket pings (every 20 s, 20 s to answer); this only catches a "
            "gateway that answers pings but stopped sending, and is long so that a quiet feed "
            "(a warning platform) is not reconnected every minute.")
    open_timeout = param.Number(default=10.0, bounds=(0.1, None),
                                doc="Give up a connection attempt after this many seconds.")
    backoff_initial = param.Number(default=0.5, bounds=(0.001, None),
                                   doc="First reconnect delay (s); doubles on each failure.")
    backoff_max = param.Number(default=30.0, bounds=(0.01, None), doc="Longest reconnect delay (s).")
    max_frame = param.Integer(default=MAX_FRAME, doc="Largest frame accepted (bytes); close 1009.")
    geography = param.ClassSelector(class_=CountyGeometry, default=None, allow_None=True,
                                    doc="Counties of incidents and drawn warning areas "
                                        "(built from the store when None).")

    def __init__(self, *, url: str, store: Store, hub: Hub | None = None, **params):
        super().__init__(url=url, store=store, hub=hub, **params)
        self.connected = False
        self.received = 0
        self.rejected = 0
        self._reasons: Counter[str] = Counter()
        self._reasons_lock = threading.Lock()  # status() copies it from other threads
        self.last_error: str | None = None
        self.reconnects = 0
        self.connections = 0
        self.last_message_at: float | None = None
        self.newest_ts_us: int | None = None
        self.writer = FeedWriter(url, store, hub=hub, geography=self.geography,
                                 on_failure=self._write_failed)
        self._batch = Batch()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ws = None
        self._wake: asyncio.Event | None = None
        self._sensors: frozenset[str] = frozenset()
        self._idle_abort = False
        self.last_frame_mono = time.monotonic()

    # ------------------------------------------------------------------ public
    @property
    def intervals(self) -> SeqIntervals:
        """Stored seq intervals of this feed (what exactly-once is checked against)."""
        return self.writer.intervals

    @property
    def stored(self) -> int:
        return self.writer.stored

    @property
    def duplicates(self) -> int:
        return self.writer.duplicates

    @property
    def rejected_by_reason(self) -> dict[str, int]:
        """Rejected messages per reason code (a copy): refused when parsed, and warnings the
        writer held to the form's checks (unknown county, outside the province)."""
        with self._reasons_lock:
            out = Counter(self._reasons)
        out.update(dict(self.writer.warning_check.rejected))
        return dict(out)

    def add_listener(self, fn: Callable[[str, pa.Table], None]) -> None:
        """Call ``fn(topic, table)`` after each committed batch (in the writer thread).

        A listener's exception is logged and counted; it never stops the ingest.
        """
        self.writer.add_listener(fn)

    def remove_listener(self, fn: Callable[[str, pa.Table], None]) -> None:
        self.writer.remove_listener(fn)

    def start(self) -> FeedIngest:
        """Load the registry and stored seqs, then receive in the background.

        Raises
        ------
        ValueError
            When this URL is already ingested into this store (each ingest checks
            exactly-once against its own memory: two of them would store twice).
        """
        if self._thread is not None:
            return self
        key = (id(self.store), self.url)
        with _ACTIVE_LOCK:
            if key in _ACTIVE:
                raise ValueError(f"the feed {self.url} is already ingested into this store")
            _ACTIVE.add(key)
        try:
            self.writer.load()
        except BaseException:
            with _ACTIVE_LOCK:
                _ACTIVE.discard(key)
            raise
        self._sensors = self.writer.sensors
        self.writer.start()
        self._thread = threading.Thread(
            target=self._thread_main, name=f"feed {self.url}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10) -> None:
        """Stop receiving, write every pending batch, and wait (at most ``timeout`` s)."""
        if self._thread is None:
            return
        deadline = time.monotonic() + timeout
        self._stopping.set()
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._interrupt)
            except RuntimeError:  # the loop just closed
                pass
        self._thread.join(max(0.1, deadline - time.monotonic()))
        self._hand_off_now()
        self.writer.stop(max(0.1, deadline - time.monotonic()))
        self.connected = False
        self._thread = None
        with _ACTIVE_LOCK:
            _ACTIVE.discard((id(self.store), self.url))

    def status(self) -> dict:
        """Connection and counters, as ``/health`` and the feed-status panel show them."""
        now = time.time()
        lag = None if self.newest_ts_us is None else round(now - self.newest_ts_us / 1e6, 3)
        return {
            "url": self.url,
            "connected": self.connected,
            "last_seq": self.intervals.max,
            "received": self.received,
            "rejected": self.rejected + sum(self.writer.warning_check.rejected.values()),
            "duplicates": self.duplicates,
            "stored": self.stored,
            "stored_readings": self.writer.stored_readings,
            "rejected_by_reason": self.rejected_by_reason,
            "last_error": self.last_error,
            "lag_s": lag,
            "rate_per_s": round(self.writer.rate(), 1),
            "reconnects": self.reconnects,
            "connections": self.connections,
            "last_message_at": self.last_message_at,
            "listener_errors": self.writer.listener_errors,
            "write_errors": self.writer.write_errors,
        }

    # ------------------------------------------------------------------ receiving
    def _thread_main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._run())
        except Exception as exc:  # pragma: no cover - _run catches everything it expects
            log.exception("feed %s stopped: %r", self.url, exc)
            self.last_error = repr(exc)
        finally:
            try:
                pending = asyncio.all_tasks(loop)
                for task in pending:
                    task.cancel()
                if pending:
                    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    def _interrupt(self) -> None:
        if self._wake is not None:
            self._wake.set()
        ws = self._ws
        if ws is not None and ws.transport is not None:
            ws.transport.abort()
        for task in asyncio.all_tasks():
            task.cancel()

    async def _run(self) -> None:
        self._wake = asyncio.Event()
        flusher = asyncio.create_task(self._flush_timer())
        delay = self.backoff_initial
        try:
            while not self._stopping.is_set():
                began = time.monotonic()
                got = await self._session()
                if self._stopping.is_set():
                    break
                if got and time.monotonic() - began > 1.0:
                    delay = self.backoff_initial
                self.reconnects += 1
                pause = delay * (0.5 + random.random() / 2)  # jitter: never in lockstep
                delay = min(self.backoff_max, delay * 2)
                try:
                    await asyncio.wait_for(self._wake.wait(), pause)
                except TimeoutError:
                    pass
        except asyncio.CancelledError:
            pass
        finally:
            flusher.cancel()
            self.connected = False

    async def _session(self) -> bool:
        """One connection, until it ends; True when it delivered at least one frame."""
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

        # the since of this connection must count every batch received before it
        await asyncio.to_thread(self.writer.drain)
        self.writer.resume()
        since = self.intervals.max
        got = False
        ws = None
        try:
            ws = await connect(
                with_since(self.url, -1 if since is None else since),
                max_size=self.max_frame, compression=None, proxy=None,
                open_timeout=self.open_timeout, ping_interval=20, ping_timeout=20,
                close_timeout=2, max_queue=64,
            )
            self._ws = ws
            self._idle_abort = False
            self.connected = True
            self.connections += 1
            self.last_frame_mono = time.monotonic()
            watchdog = asyncio.create_task(self._watch_idle(ws))
            flush_rows = self.flush_rows  # a param lookup per frame costs more than parsing
            on_frame = self._on_frame
            try:
                async for frame in ws:
                    got = True
                    on_frame(frame)
                    if self._batch.size >= flush_rows:
                        await self._hand_off()
            finally:
                watchdog.cancel()
            self.last_error = f"closed by the feed ({ws.close_code})"
        except ConnectionClosed as exc:
            sent = exc.sent
            if sent is not None and sent.code == 1009:
                self._reject("frame_too_large", f"<frame over {self.max_frame} bytes refused>")
                self.last_error = "frame too large (closed 1009)"
            elif self._idle_abort:
                self.last_error = f"no frame for {self.idle_timeout:g} s: reconnected"
            else:
                self.last_error = f"connection lost: {exc}"
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a feed never stops the ingest
            log.exception("feed %s: unexpected error", self.url)
            self.last_error = f"{type(exc).__name__}: {exc}"
        finally:
            self.connected = False
            self._ws = None
            if ws is not None and ws.transport is not None:
                ws.transport.abort()
            self._hand_off_now()
        return got

    async def _watch_idle(self, ws) -> None:
        step = min(1.0, self.idle_timeout / 4)
        while True:
            await asyncio.sleep(step)
            if time.monotonic() - self.last_frame_mono > self.idle_timeout:
                self._idle_abort = True
                ws.transport.abort()
                return

    def _on_frame(self, frame: str | bytes) -> None:
        now = time.time()
        self.last_frame_mono = time.monotonic()
        self.last_message_at = now
        p = self._batch
        before = len(p.seq) + len(p.events)
        n_rejects = len(p.rejects)
        try:
            parse_frame(frame, self._sensors, into=p)
        except Exception as exc:  # noqa: BLE001 - parse_frame never raises; belt and braces
            p.rejects.append((f"invalid: {type(exc).__name__}", cut_raw(frame)))
        total = len(p.seq) + len(p.events) - before
        new_rejects = len(p.rejects) - n_rejects
        if new_rejects:
            received_us = int(now * 1e6)
            codes = [reason_code(reason) for reason, _raw in p.rejects[n_rejects:]]
            with self._reasons_lock:
                self._reasons.update(codes)
            p.received_at.extend([received_us] * new_rejects)
            self.rejected += new_rejects
            total += new_rejects
        p.size += total
        self.received += total
        newest = p.newest_ts_us
        if newest is not None and (self.newest_ts_us is None or newest > self.newest_ts_us):
            self.newest_ts_us = newest

    def _reject(self, reason: str, raw: str) -> None:
        self.rejected += 1
        with self._reasons_lock:
            self._reasons[reason_code(reason)] += 1
        self._batch.rejects.append((reason, raw))
        self._batch.received_at.append(int(time.time() * 1e6))
        self._batch.size += 1

    async def _flush_timer(self) -> None:
        step = self.flush_interval / 3
        interval = self.flush_interval
        next_status = 0.0
        while True:
            await asyncio.sleep(step)
            p = self._batch
            now = time.monotonic()
            if p.size and now - p.started >= interval:
                await self._hand_off()
            if self.hub is not None and now >= next_status:  # the feed-status panels
                next_status = now + 1.0
                self.hub.publish("feed_status", self.status())

    async def _hand_off(self) -> None:
        batch = self.take_batch()
        if batch is None:
            return
        if not self.writer.submit(batch, block=False):
            # the writer is behind: wait for it (back-pressure on the socket)
            await asyncio.to_thread(self.writer.submit, batch)

    def _hand_off_now(self) -> None:
        batch = self.take_batch()
        if batch is not None:
            self.writer.submit(batch)

    def take_batch(self) -> Batch | None:
        """The batch filled so far (a new one starts), or None when it is empty."""
        p = self._batch
        if not p.size:
            p.started = time.monotonic()
            return None
        self._batch = Batch()
        return p

    def on_frame(self, frame: str | bytes) -> None:
        """Parse one frame into the current batch (the receiving thread; tests call it)."""
        self._on_frame(frame)

    # ------------------------------------------------------------------ write failures
    def _write_failed(self, message: str) -> None:
        """The writer could not write a batch (its thread): reconnect to replay it."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._reconnect, message)
        except RuntimeError:  # the loop just closed: the ingest is stopping
            pass

    def _reconnect(self, message: str | None = None) -> None:
        """Drop the connection (in the receiving loop); the next one resumes from the store."""
        if message is not None:
            self.last_error = message
        ws = self._ws
        if ws is not None and ws.transport is not None:
            ws.transport.abort()

    def force_reconnect(self) -> None:
        """Drop the connection from any thread (tests, operators)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._reconnect)
            except RuntimeError:
                pass


__all__ = ["FeedIngest", "SeqIntervals", "with_since"]


def main(argv: list[str] | None = None) -> None:
    """``python -m sources.ingest.feed --db PATH URL...``: ingest feeds without serving pages.

    The headless ingest (for a separate ingest process, and the crash-safety test): runs
    until SIGTERM/SIGINT, then writes what is pending. Prints one status line a second.
    """
    import argparse
    import json
    import signal
    import sys

    p = argparse.ArgumentParser(description="Ingest live feeds into the console's store.")
    p.add_argument("--db", required=True, help="DuckDB store")
    p.add_argument("urls", nargs="+", help="feed URLs")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    store = Store(args.db)
    hub = Hub()
    ingests = [FeedIngest(url=u, store=store, hub=hub).start() for u in args.urls]
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.wait(1.0):
        sys.stdout.write(json.dumps([i.status() for i in ingests]) + "\n")
        sys.stdout.flush()
    for ingest in ingests:
        ingest.stop()
    store.close()


if __name__ == "__main__":
    main()
