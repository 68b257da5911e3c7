"""A centre's ingest node: its feeds and its one alarm engine, publishing to the log.

``python -m sources.distributed.ingest --centres centres.json --centre 370102
--db var/370102/ingest.duckdb --registry var/registry.duckdb --feed ws://gateway/feed``

One per centre. Its feed ingests validate messages exactly as the embedded console does,
then publish each batch to the centre's stream (``ev.C.up.feed``) and wait for the log's
acknowledgement instead of writing it: a batch the log did not take is replayed from the
feed (``?since=``), as a failed write is in the embedded console. Its own store is a view of
the centre's stream like any other, and the alarm engine runs on what that view applies —
so the engine runs once per centre, its alarm ids come from the centre's own range
(``code × 10⁹ + n``) and agree everywhere, and its changes (raise, upgrade, clear, stale)
and escalations are events too. After ``kill -9`` the node resumes from its store's
position in the log and from the feed's highest published seq.
"""
from __future__ import annotations

import argparse
import logging
import shutil
import signal
import threading
import time
from pathlib import Path

import numpy as np
import param

from sources.alarms.desk import AlarmSource
from sources.alarms.engine import AlarmEngine
from sources.alarms.timer import AlarmTimer
from sources.drills.desk import DrillSource
from sources.geo import CountyGeometry
from sources.ingest.feed import FeedIngest
from sources.ingest.messages import Batch
from sources.ingest.writer import FeedWriter

from .actions import ALARM_ID_SPAN
from .feeds import FeedBeacon
from .log import EventLog, LogUnavailable, subject
from .materialise import Materialiser, Targets, payload_of
from .topology import Topology
from .viewstore import ViewHub, ViewStore, inside

log = logging.getLogger("console.distributed")


def publish_until_stored(event_log: EventLog, subj: str, payload: dict, *, kind: str,
                         msg_id: str | None = None, stopping=lambda: False) -> None:
    """Publish and retry until the log stores it (a log server dying: an election, seconds)."""
    delay = 0.1
    while True:
        try:
            event_log.publish(subj, payload, kind=kind, msg_id=msg_id)
            return
        except LogUnavailable:
            if stopping():
                raise
            log.warning("log unavailable for %s; retrying in %.1f s", subj, delay)
            time.sleep(delay)
            delay = min(delay * 2, 2.0)


class PublishingWriter(FeedWriter):
    """A feed writer that publishes each validated batch to the log instead of writing it."""

    def __init__(self, url: str, store, *, event_log: EventLog, code: str, **kwargs):
        super().__init__(url, store, **kwargs)
        self.event_log, self.code = event_log, code
        self.published = 0

    def _write(self, batch: Batch) -> None:
        seqs = np.array([*batch.seq, *(rec["seq"] for _, rec in batch.events)], dtype=np.int64)
        msg_id = (f"feed:{self.url}:{int(seqs.min())}:{int(seqs.max())}:{len(seqs)}"
                  if len(seqs) else None)
        # LogUnavailable: the batch is replayed from the feed after the reconnect
        self.event_log.publish(subject(self.code, "feed"), payload_of(self.url, batch),
                               kind="feed", msg_id=msg_id)
        self.published += 1
        if len(seqs):
            self.intervals.add(np.unique(seqs))
        self.stored += len(seqs)
        self.stored_readings += len(batch.seq)
        self._rate.append((time.monotonic(), len(batch.seq)))


class CentreAlarmEngine(AlarmEngine):
    """The centre's alarm engine: ids from its range, changes published to the log."""

    event_log = param.ClassSelector(class_=EventLog, doc="The centre's log.")
    code = param.String(doc="The centre (its alarm ids start at code × 10⁹).")

    def _load_open(self) -> None:
        super()._load_open()
        self._next_id = max(self._next_id, int(self.code) * ALARM_ID_SPAN + 1)

    def _commit(self, changes) -> list[dict]:
        merged = self._merge(changes)
        if merged is None:
            return []
        raised, updates, actions = merged
        publish_until_stored(self.event_log, subject(self.code, "alarms"),
                             {"raised": raised, "updates": updates, "actions": actions},
                             kind="alarms")
        return []  # written and told to the pages when the event is applied


class EscalatingDesk(AlarmSource):
    """The ingest node's desk: escalation of overdue red alarms is published as an event."""

    event_log = param.ClassSelector(class_=EventLog, doc="The centre's log.")
    code = param.String(doc="The centre.")

    def escalate_overdue(self, now=None) -> list[int]:
        if inside():
            return super().escalate_overdue(now)
        import datetime as dt

        now = now or dt.datetime.now(dt.UTC)
        cutoff = now - dt.timedelta(minutes=self.escalate_after_min)
        due = self.store.scalar(
            "SELECT count(*) FROM alarms WHERE level = 'red' AND state = 'raised' "
            "AND escalated_at IS NULL AND raised_at < ?", [cutoff])
        if due:
            publish_until_stored(self.event_log, subject(self.code, "escalate"), {"at": now},
                                 kind="escalate")
        return []


class CentreIngest(param.Parameterized):
    """The ingest node of one centre (module docstring)."""

    topology = param.ClassSelector(class_=Topology, doc="Every centre.")
    code = param.String(doc="This centre.")
    db = param.String(doc="The node's own view store (copied from the registry at first).")
    registry = param.String(default=None, allow_None=True,
                            doc="A store with the registries (first start only).")
    feeds = param.List(default=[], item_type=str, doc="Feed URLs.")

    def __init__(self, **params):
        super().__init__(**params)
        self.log: EventLog | None = None
        self.store: ViewStore | None = None
        self.ingests: list[FeedIngest] = []
        self._started: list = []

    def start(self) -> CentreIngest:
        centre = self.topology[self.code]
        try:
            self.log = EventLog(servers=list(centre.servers), client_name=f"ingest {self.code}")
            self._started.append(self.log.start())
            self.log.ensure_streams(self.topology, self.code)
            db = Path(self.db)
            if not db.exists():
                if not self.registry:
                    raise FileNotFoundError(f"{db}: no store, and no --registry to start from")
                db.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(self.registry, db)
            self.store = ViewStore(db)
            hub = ViewHub()
            geo = CountyGeometry(self.store)
            desk = EscalatingDesk(store=self.store, hub=hub, event_log=self.log, code=self.code)
            # drills: a purge deletes the drill's rows here too and says its alarms are
            # closed, so the engine forgets them (the timer below hears it), as embedded
            targets = Targets(store=self.store, hub=hub, alarms=desk, geography=geo,
                              drills=DrillSource(store=self.store, hub=hub))
            self.materialiser = Materialiser(log=self.log, stream=centre.own, targets=targets,
                                             kinds=["feed", "alarms", "escalate", "call"])
            self.materialiser.catch_up()
            self.engine = CentreAlarmEngine(store=self.store, hub=hub, event_log=self.log,
                                            code=self.code)
            targets.feed_listeners = [self.engine.on_batch]
            targets.forget_writers()
            self._started.append(self.materialiser.start())
            self.timer = AlarmTimer(engine=self.engine, desk=desk)
            self._started.append(self.timer.start())
            for url in self.feeds:
                ingest = FeedIngest(url=url, store=self.store, hub=None, geography=geo)
                ingest.writer = PublishingWriter(url, self.store, event_log=self.log,
                                                 code=self.code, geography=geo,
                                                 on_failure=ingest._write_failed)
                self.ingests.append(ingest)
                self._started.append(ingest.start())
            # the serving processes' walls hear the feeds' liveness from here
            self._started.append(FeedBeacon(log=self.log, code=self.code,
                                            ingests=self.ingests).start())
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        while self._started:
            thing = self._started.pop()
            try:
                thing.stop()
            except Exception:  # noqa: BLE001 - keep stopping the rest
                log.exception("stopping %r", thing)
        if self.store is not None:
            self.store.close()
            self.store = None

    def status(self) -> dict:
        return {"feeds": [i.status() for i in self.ingests],
                "materialiser": self.materialiser.status(), "log": self.log.status()}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--centres", required=True, help="the centres file (JSON)")
    p.add_argument("--centre", required=True, help="this centre's code")
    p.add_argument("--db", required=True, help="the node's own store")
    p.add_argument("--registry", default=None, help="registries to start from (first start)")
    p.add_argument("--feed", action="append", default=[], help="feed URL (repeatable)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    node = CentreIngest(topology=Topology.load(args.centres), code=args.centre, db=args.db,
                        registry=args.registry, feeds=args.feed).start()
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    print(f"READY ingest {args.centre}", flush=True)  # noqa: T201 - the parent waits for it
    while not done.wait(1.0):
        pass
    node.stop()
    print("stopped", flush=True)  # noqa: T201


def prepare_registry(path: str | Path, target: str | Path) -> Path:
    """A copy of a registry store with the view's position tables (a first snapshot)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(path, target)
    wal = Path(str(path) + ".wal")
    if wal.exists():
        shutil.copy2(wal, Path(str(target) + ".wal"))
    ViewStore(target).close()
    return target


if __name__ == "__main__":
    main()
