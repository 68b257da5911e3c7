"""The event log on NATS JetStream: streams, subjects, publishing, reading, snapshots.

Subjects name the jurisdiction that owns the object (``ev.<centre>.<scope>.<kind>[.<id>]``):

===================================  =====================================================
subject                              event
===================================  =====================================================
``ev.C.up.feed``                     a batch of validated feed messages (ingest node)
``ev.C.up.alarms``                   a batch of the alarm engine's changes (ingest node)
``ev.C.up.escalate``                 escalation of overdue red alarms (ingest node)
``ev.C.up.alarm.<id>``               an officer's step on one alarm
``ev.C.up.warning.<id>``             one version of a warning
``ev.C.local.incident``              an incident opened under command
``ev.C.local.dispatch[.<id>]``       a material dispatch: request, then its steps
``ev.C.local.team.<id>``             a rescue team committed to an incident
``ev.C.local.task.<id>``             a task's next state
===================================  =====================================================

Streams of a centre C (all in C's JetStream domain, ``replicas`` copies each):

* ``EV_C`` captures ``ev.C.>``: everything that happens at C, in order, once (publishes are
  deduplicated by ``Nats-Msg-Id`` over ``duplicate_window``);
* ``UP_C`` sources ``ev.C.up.>`` from ``EV_C`` and every child's ``UP``: what C passes up;
* ``VIEW_C`` sources ``EV_C``, every child's ``UP`` and every ancestor's warnings: what C's
  serving processes materialise. Sourcing across a leaf-node link resumes where it stopped
  when the link comes back (JetStream keeps the position), without loss or duplicate.

One winner per object: an action is published with ``Nats-Expected-Last-Subject-Sequence``
(the sequence of the last event on the object's subject that the actor has seen); JetStream
refuses it (:class:`WrongLastSequence`) when another event on that subject came first.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import param

from sources.service import Service

from .topology import Centre, Topology

log = logging.getLogger("console.distributed")

#: How long JetStream remembers a ``Nats-Msg-Id`` to drop a repeated publish.
DUPLICATE_WINDOW_S = 600.0
#: Events kept in a centre's streams (a new serving process starts from a snapshot younger
#: than this).
MAX_AGE_S = 7 * 86400.0
HEADER_JURISDICTION = "Console-Jurisdiction"
HEADER_KIND = "Console-Event"


class LogUnavailable(RuntimeError):
    """The log did not answer (no quorum, link down): the action was not recorded."""


class WrongLastSequence(RuntimeError):
    """Another event on the object's subject came first (JetStream error 10071)."""

    def __init__(self, last: int):
        super().__init__(f"wrong last sequence: {last}")
        self.last = last


def subject(code: str, kind: str, key: Any = None, *, scope: str = "up") -> str:
    """The subject of an event of ``kind`` on object ``key`` owned by centre ``code``."""
    tail = "" if key is None else "." + str(key).replace(".", "_").replace(" ", "_")
    return f"ev.{code}.{scope}.{kind}{tail}"


def jurisdiction_of(subj: str) -> str:
    """The centre code of an event's subject."""
    return subj.split(".", 2)[1]


def new_id() -> str:
    return uuid.uuid4().hex


# ---------------------------------------------------------------------- encoding
def _enc_hook(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, dt.datetime) and obj.tzinfo is None:
        return obj.replace(tzinfo=dt.UTC)
    if hasattr(obj, "to_pydatetime"):  # pandas Timestamp
        return obj.to_pydatetime()
    if obj is None or obj != obj:  # NaN-like (pd.NA, NaT)
        return None
    raise NotImplementedError(f"cannot put {type(obj).__name__} on the log")


_ENCODER = msgspec.msgpack.Encoder(enc_hook=_enc_hook)
_DECODER = msgspec.msgpack.Decoder()


def encode(payload: dict) -> bytes:
    """An event's payload as MessagePack (datetimes kept, numpy scalars as Python's)."""
    return _ENCODER.encode(payload)


def decode(data: bytes) -> dict:
    return _DECODER.decode(data)


@dataclass
class LogMessage:
    """One event read from a stream."""

    seq: int
    subject: str
    headers: dict = field(default_factory=dict)
    data: bytes = b""

    @property
    def msg_id(self) -> str | None:
        return self.headers.get("Nats-Msg-Id")

    @property
    def kind(self) -> str | None:
        return self.headers.get(HEADER_KIND)


# ---------------------------------------------------------------------- the connection
class EventLog(Service):
    """One NATS connection of a process, its asyncio loop in its own thread.

    Other threads call the blocking methods (:meth:`publish`, :meth:`last_on_subject`,
    :meth:`fetch`, ...): each runs a coroutine on the loop and waits for it.
    """

    servers = param.List(default=[], item_type=str, doc="NATS URLs of the centre's log servers.")
    client_name = param.String(default="console", doc="Connection name (server monitoring).")
    timeout_s = param.Number(default=5.0, bounds=(0.1, None),
                             doc="Seconds a request to the log may take before it is retried.")
    interval_s = param.Number(default=None, allow_None=True, doc="The loop runs until stop.")
    stop_timeout_s = param.Number(default=5.0, doc="Seconds to close the connection.")

    def __init__(self, **params):
        super().__init__(**params)
        self._aloop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._nc = None
        self._js: dict[str | None, Any] = {}
        self._subs: dict[str, Any] = {}
        self.reconnects = 0
        self.connect_error: str | None = None

    @property
    def service_name(self) -> str:
        return "EventLog"

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> EventLog:
        """Connect (the log's servers in any order) and keep the loop running."""
        if self._thread is None:
            super().start()
            if not self._ready.wait(self.timeout_s * 3) or self._nc is None:
                self.stop()
                raise LogUnavailable(f"no log server answered at {', '.join(self.servers)}"
                                     f" ({self.connect_error})")
        return self

    def run_once(self) -> None:
        loop = asyncio.new_event_loop()
        self._aloop = loop
        try:
            loop.run_until_complete(self._connect())
        except Exception as exc:  # noqa: BLE001 - start() reports it
            self.connect_error = f"{type(exc).__name__}: {exc}"
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        loop.run_forever()
        try:
            loop.run_until_complete(self._close())
        finally:
            loop.close()

    def interrupt(self) -> None:
        if self._aloop is not None and not self._aloop.is_closed():
            self._aloop.call_soon_threadsafe(self._aloop.stop)

    async def _connect(self) -> None:
        import nats

        async def reconnected():
            self.reconnects += 1

        self._nc = await nats.connect(
            servers=list(self.servers), name=self.client_name, connect_timeout=2,
            reconnect_time_wait=0.25, max_reconnect_attempts=-1, allow_reconnect=True,
            reconnected_cb=reconnected, ping_interval=5, max_outstanding_pings=2)

    async def _close(self) -> None:
        if self._nc is not None:
            for sub in list(self._subs):
                await self._drop(sub)
            try:
                await asyncio.wait_for(self._nc.close(), 2)
            except Exception:  # noqa: BLE001 - closing anyway
                pass

    def call(self, coro: Coroutine, timeout: float | None = None) -> Any:
        """Run ``coro`` on the log's loop and wait for its result (from another thread)."""
        if self._aloop is None or self._nc is None:
            coro.close()
            raise LogUnavailable("the event log is not connected")
        fut = asyncio.run_coroutine_threadsafe(coro, self._aloop)
        try:
            return fut.result(timeout=(self.timeout_s if timeout is None else timeout) + 1)
        except TimeoutError:
            fut.cancel()
            raise LogUnavailable("the event log did not answer in time") from None

    def js(self, domain: str | None = None):
        """The JetStream context of a domain (None: the centre's own servers)."""
        if domain not in self._js:
            self._js[domain] = self._nc.jetstream(domain=domain, timeout=self.timeout_s)
        return self._js[domain]

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    def status(self) -> dict:
        out = super().status()
        out.update(connected=self.connected, reconnects=self.reconnects,
                   server=str(self._nc.connected_url.netloc) if self.connected
                   and self._nc.connected_url else None)
        return out

    # ------------------------------------------------------------------ announcements
    def announce(self, subj: str, payload: dict) -> None:
        """Send ``payload`` to whoever listens on ``subj`` now (plain NATS, not stored in the
        log: a state that the next announcement replaces, like the feeds' statuses)."""
        self.call(self._nc.publish(subj, encode(payload)))

    def listen(self, subj: str, fn) -> None:
        """Call ``fn(payload)`` (on the log's thread) for every announcement on ``subj``;
        a payload that does not decode is dropped. Kept across reconnections."""

        async def handler(msg):
            try:
                payload = decode(msg.data)
            except Exception:  # noqa: BLE001 - a stray or hostile message is not a status
                return
            if isinstance(payload, dict):
                fn(payload)

        async def subscribe():
            # kept with the stream readers: closing the log drops them all alike
            self._subs["listen:" + subj] = (None, await self._nc.subscribe(subj, cb=handler))

        self.call(subscribe())

    # ------------------------------------------------------------------ writing
    def publish(self, subj: str, payload: dict, *, kind: str, msg_id: str | None = None,
                expected_last: int | None = None, domain: str | None = None,
                timeout: float | None = None) -> tuple[int, bool]:
        """Publish one event and wait until the log has stored it (its copies made).

        Returns ``(sequence in the owner's stream, duplicate)``. Raises
        :class:`WrongLastSequence` when ``expected_last`` is not the subject's last sequence,
        :class:`LogUnavailable` when the log did not acknowledge.
        """
        headers = {"Nats-Msg-Id": msg_id or new_id(), HEADER_KIND: kind,
                   HEADER_JURISDICTION: jurisdiction_of(subj)}
        if expected_last is not None:
            headers["Nats-Expected-Last-Subject-Sequence"] = str(int(expected_last))
        data = encode(payload)
        return self.call(self._publish(subj, data, headers, domain), timeout)

    async def _publish(self, subj, data, headers, domain) -> tuple[int, bool]:
        from nats.errors import NoRespondersError
        from nats.errors import TimeoutError as NatsTimeout
        from nats.js.errors import APIError, ServiceUnavailableError

        try:
            ack = await self.js(domain).publish(subj, data, headers=headers,
                                                timeout=self.timeout_s)
        except (NatsTimeout, NoRespondersError, ServiceUnavailableError) as exc:
            raise LogUnavailable(f"the log did not store the event ({type(exc).__name__})"
                                 ) from None
        except APIError as exc:
            if exc.err_code == 10071:
                last = str(exc.description).rsplit(":", 1)[-1].strip()
                raise WrongLastSequence(int(last) if last.isdigit() else -1) from None
            if exc.code in (503, 408):
                raise LogUnavailable(f"the log did not store the event ({exc.description})"
                                     ) from None
            raise
        return int(ack.seq), bool(ack.duplicate)

    # ------------------------------------------------------------------ reading
    def last_on_subject(self, stream: str, subj: str, *, domain: str | None = None
                        ) -> tuple[int, str | None]:
        """``(sequence, msg id)`` of the last event on ``subj`` in ``stream`` (0, None: none)."""
        return self.call(self._last(stream, subj, domain))

    async def _last(self, stream, subj, domain):
        from nats.errors import TimeoutError as NatsTimeout
        from nats.js.errors import NotFoundError, ServiceUnavailableError

        try:
            m = await self.js(domain).get_last_msg(stream, subj)
        except NotFoundError:
            return 0, None
        except (NatsTimeout, ServiceUnavailableError) as exc:
            raise LogUnavailable(f"the log did not answer ({type(exc).__name__})") from None
        return int(m.seq), (m.headers or {}).get("Nats-Msg-Id")

    def last_seq(self, stream: str, *, domain: str | None = None) -> int:
        """The last sequence of a stream."""
        return self.call(self._last_seq(stream, domain))

    async def _last_seq(self, stream, domain):
        info = await self.js(domain).stream_info(stream)
        return int(info.state.last_seq)

    def fetch(self, stream: str, after: int, *, batch: int = 256, wait: float = 0.5
              ) -> list[LogMessage]:
        """Up to ``batch`` events of ``stream`` after sequence ``after`` (waits up to
        ``wait`` seconds for the first). The consumer is recreated from ``after`` whenever
        it was lost (a log server died, the process reconnected)."""
        return self.call(self._fetch(stream, after, batch, wait), timeout=wait + self.timeout_s)

    async def _fetch(self, stream, after, batch, wait) -> list[LogMessage]:
        from nats.errors import TimeoutError as NatsTimeout
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

        key = f"{stream}:{after}"
        sub = self._subs.get(stream)
        if sub is not None and sub[0] != after:  # not where we are: start again from after
            await self._drop(stream)
            sub = None
        if sub is None:
            config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                                    opt_start_seq=after + 1, ack_policy=AckPolicy.NONE,
                                    inactive_threshold=30.0, max_waiting=4,
                                    mem_storage=True, num_replicas=1)
            try:
                psub = await self.js().pull_subscribe(">", stream=stream, config=config)
            except Exception as exc:  # noqa: BLE001 - no quorum yet: the caller retries
                raise LogUnavailable(f"cannot read {stream}: {exc!r}") from None
            sub = [after, psub, key]
            self._subs[stream] = sub
        try:
            msgs = await sub[1].fetch(batch, timeout=wait)
        except NatsTimeout:
            return []
        except Exception as exc:  # noqa: BLE001 - consumer lost: recreate it next time
            await self._drop(stream)
            raise LogUnavailable(f"reading {stream}: {exc!r}") from None
        out = []
        for m in msgs:
            meta = m.metadata
            out.append(LogMessage(int(meta.sequence.stream), m.subject, dict(m.headers or {}),
                                  m.data))
        if out:
            if out[0].seq <= after or any(b.seq <= a.seq for a, b in zip(out, out[1:],
                                                                         strict=False)):
                await self._drop(stream)  # out of order: never apply; read again
                out = [m for m in out if m.seq > after]
            sub[0] = out[-1].seq if out else after
        return out

    async def _drop(self, stream: str) -> None:
        sub = self._subs.pop(stream, None)
        if sub is not None:
            try:
                await sub[1].unsubscribe()
            except Exception:  # noqa: BLE001 - the consumer may be gone already
                pass

    def reset_reader(self, stream: str) -> None:
        """Forget the consumer of ``stream`` (the next :meth:`fetch` makes a new one)."""
        self.call(self._drop(stream))

    # ------------------------------------------------------------------ set-up
    def ensure_streams(self, topology: Topology, code: str, *, wait_s: float = 60.0) -> None:
        """Create (or update) the streams and the snapshot bucket of centre ``code``.

        Retries while the log servers elect their leaders (a cluster just started)."""
        import time

        deadline = time.monotonic() + wait_s
        while True:
            try:
                self.call(self._ensure(topology, topology[code]), timeout=self.timeout_s * 4)
                return
            except Exception as exc:  # noqa: BLE001 - JetStream not ready yet
                if time.monotonic() > deadline:
                    raise LogUnavailable(f"centre {code}: cannot set up its streams ({exc!r})"
                                         ) from None
                time.sleep(0.5)

    async def _ensure(self, topo: Topology, c: Centre) -> None:
        from nats.js.api import (
            ExternalStream,
            ObjectStoreConfig,
            StorageType,
            StreamConfig,
            StreamSource,
        )
        from nats.js.errors import BadRequestError

        js = self.js()

        def ext(other: Centre) -> ExternalStream:
            return ExternalStream(api=other.api)

        common = dict(storage=StorageType.FILE, num_replicas=c.replicas,
                      duplicate_window=DUPLICATE_WINDOW_S, max_age=MAX_AGE_S)
        children = topo.children(c.code)
        configs = [
            StreamConfig(name=c.own, subjects=[f"ev.{c.code}.>"], **common),
            StreamConfig(name=c.up, sources=[
                StreamSource(name=c.own, filter_subject=f"ev.{c.code}.up.>"),
                *[StreamSource(name=ch.up, external=ext(ch)) for ch in children]], **common),
            StreamConfig(name=c.view, sources=[
                StreamSource(name=c.own),
                *[StreamSource(name=ch.up, external=ext(ch)) for ch in children],
                *[StreamSource(name=a.own, filter_subject=f"ev.{a.code}.up.warning.>",
                               external=ext(a)) for a in topo.ancestors(c.code)]], **common),
        ]
        for config in configs:
            try:
                await js.add_stream(config)
            except BadRequestError:  # exists with another configuration: bring it up to date
                await js.update_stream(config)
        try:
            await js.object_store(c.snapshots)
        except Exception:  # noqa: BLE001 - not created yet
            await js.create_object_store(c.snapshots, config=ObjectStoreConfig(
                bucket=c.snapshots, replicas=c.replicas, storage=StorageType.FILE))

    # ------------------------------------------------------------------ snapshots
    def put_snapshot(self, bucket: str, path: Path, *, name: str = "view") -> None:
        """Publish a view snapshot (a DuckDB file) to the centre's bucket."""
        self.call(self._put(bucket, name, Path(path)), timeout=max(60.0, self.timeout_s))

    async def _put(self, bucket, name, path):
        store = await self.js().object_store(bucket)
        with open(path, "rb") as f:
            await store.put(name, f)

    def get_snapshot(self, bucket: str, target: Path, *, name: str = "view") -> bool:
        """Download the newest snapshot to ``target`` (False: none published yet)."""
        return self.call(self._get(bucket, name, Path(target)), timeout=max(120.0, self.timeout_s))

    async def _get(self, bucket, name, target):
        from nats.js.errors import NotFoundError, ObjectNotFoundError

        try:
            store = await self.js().object_store(bucket)
            tmp = target.with_name(target.name + ".part")
            with open(tmp, "wb") as f:
                await store.get(name, writeinto=f)
        except (NotFoundError, ObjectNotFoundError):
            return False
        tmp.replace(target)
        return True
