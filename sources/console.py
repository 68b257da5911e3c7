"""The console: one object that owns every long-lived thing of a console process.

:class:`Console` holds the store, the hub, the feed ingests (and the demo feed's process),
the alarm engine and its timer, the warning expiry, the readings' retention, the snapshot
writer, memory housekeeping, the county geography, the shared risk point layer and one
instance of each query source, as typed attributes. :meth:`Console.start` starts them and
:meth:`Console.stop` stops them, in the order declared by :meth:`Console.services`.

``serve.py`` builds one and serves its pages; a dashboard receives it and only lays out
views; a notebook builds sources on a store of its own (``RiskSource.from_path(...)``).
Which object owns which thread is drawn in ``docs/ARCHITECTURE.md``.
"""
from __future__ import annotations

import contextlib
import contextvars
import gc
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import param

from sources.access.audit import AuditLog
from sources.access.guard import Guard
from sources.access.policy import Access
from sources.alarms.desk import AlarmSource
from sources.alarms.engine import AlarmEngine
from sources.alarms.timer import AlarmTimer
from sources.analysis.sandbox import Sandbox
from sources.base import Source
from sources.command.source import CommandSource
from sources.drills.desk import DrillSource
from sources.geo import CountyGeometry
from sources.hub import Hub
from sources.ingest.demo import DemoFeed
from sources.ingest.feed import FeedIngest
from sources.inventory.experts import ExpertSource
from sources.inventory.materials import MaterialSource
from sources.risk.risk import RiskLayer, RiskSource
from sources.service import Service
from sources.situation.source import SituationSource
from sources.store.housekeeping import MemoryTrimmer, allocators
from sources.store.retention import ReadingRetention
from sources.store.snapshot import SnapshotWriter
from sources.store.store import Store
from sources.warnings.expiry import WarningExpiry
from sources.warnings.monitoring import MonitoringSource
from sources.warnings.warnings import WarningSource

log = logging.getLogger(__name__)

#: Seconds between snapshots for notebooks (``CONSOLE_SNAPSHOT_S`` overrides; 0 disables).
SNAPSHOT_INTERVAL_S = 300.0

_serving: contextvars.ContextVar[Console | None] = contextvars.ContextVar(
    "serving_console", default=None)


def serving_console() -> Console | None:
    """The console whose page is being built in this context (a served notebook), or None."""
    return _serving.get()


class BoardWarmUp(Service):
    """Reads the wall's static layers and first situation once, in the background, so the
    first board page opens fast (one-shot service)."""

    situation = param.ClassSelector(class_=SituationSource, doc="The shared situation.")
    interval_s = param.Number(default=None, allow_None=True, doc="Runs once.")
    stop_timeout_s = param.Number(default=15.0, doc="A query in flight finishes first.")

    def run_once(self) -> None:
        from sources.situation.layers import DENSITY_SIZE

        steps = (lambda: self.situation.outlines("county"), self.situation.resources,
                 lambda: self.situation.risk_density(*DENSITY_SIZE), self.situation.situation)
        for step in steps:
            if self.stopping:  # a thread left inside a DuckDB query aborts the exit
                return
            step()


class Console(param.Parameterized):
    """Every service of one console process, started and stopped in a declared order.

    Build it on a store; :meth:`start` loads the shared layers and starts the feeds and the
    periodic services; :meth:`stop` stops them in reverse and closes the store. Pages use
    its sources (``console.alarms``, ``console.situation``, ...) and never start anything.
    """

    store = param.ClassSelector(class_=Store, doc="The one read-write store of the process.")
    hub = param.ClassSelector(class_=Hub, doc="The in-process pub/sub hub.")
    lang = param.Selector(default="zh", objects=["zh", "en"], doc="Default interface language.")
    feeds = param.List(default=[], item_type=str, doc="Feed URLs to ingest (one ingest each).")
    demo = param.ClassSelector(class_=DemoFeed, default=None, allow_None=True,
                               doc="The demo feed's process, started first and stopped last.")
    keep_readings_days = param.Number(default=7.0, bounds=(0, None),
                                      doc="Days of raw readings kept (0: all).")
    snapshot_interval_s = param.Number(
        default=None, allow_None=True, bounds=(0, None),
        doc="Seconds between snapshots for notebooks (None: $CONSOLE_SNAPSHOT_S or 300; "
            "0: none).")
    malloc_trim_s = param.Number(default=60.0, bounds=(0, None),
                                 doc="Seconds between malloc trims (0: none).")
    keep_audit_days = param.Number(default=365.0, bounds=(180, None),
                                   doc="Days of audit log kept (at least 180).")
    load_layers = param.Boolean(default=True, doc="Load the risk point layer at start "
                                "(else on first use) and warm the wall in the background.")
    risk_cluster = param.String(
        default=None, allow_None=True,
        doc="Where the risk points live: None (in this process), 'local:N' (a Dask "
            "LocalCluster of N worker processes owned by the console) or a scheduler address "
            "'tcp://host:port' (its workers read the points' Parquet files from the path "
            "beside the store: a shared file system). Needs the [scale] extra.")
    started_at = param.Number(default=None, allow_None=True, doc="Epoch seconds of start().")
    gc_frozen = param.Integer(default=0, doc="Objects set aside from the collector by "
                                             ":meth:`freeze` (0: none).")
    server = param.Parameter(default=None, doc="The Bokeh server serving the console "
                             "(set by serve.py; /health counts its open pages).")

    def __init__(self, **params):
        params.setdefault("hub", Hub())
        super().__init__(**params)
        store, hub = self.store, self.hub
        self.geography = CountyGeometry(store)
        # one instance of each source: every page shares its caches
        self.alarms = AlarmSource(store=store, hub=hub)
        self.warnings = WarningSource(store=store, hub=hub, geography=self.geography)
        self.monitoring = MonitoringSource(store=store, hub=hub, geography=self.geography)
        self.risk = RiskSource(store=store, hub=hub)
        self.experts = ExpertSource(store=store, hub=hub)
        self.materials = MaterialSource(store=store, hub=hub, geography=self.geography)
        self.analysis = Source(store=store, hub=hub)
        # analysts' queries run in these processes, never on the store's own connection
        self.sandbox = Sandbox(workers=int(os.environ.get("CONSOLE_SANDBOX_WORKERS", 2)),
                               memory_limit=os.environ.get("CONSOLE_SANDBOX_MEMORY", "512MB"))
        self.command = CommandSource(store=store, hub=hub, experts=self.experts,
                                     materials=self.materials)
        self.drills = DrillSource(store=store, hub=hub,
                                  control=None if self.demo is None else self.demo.control)
        self.situation = SituationSource(store=store, hub=hub, point_layer=self.risk_layer,
                                         geography=self.geography, command=self.command)
        self.ingests = [FeedIngest(url=url, store=store, hub=hub, geography=self.geography)
                        for url in self.feeds]
        # who may do what: set by serve.py when logins are on (else every page is open)
        writable = store.path != ":memory:" and not store.read_only
        self.audit = AuditLog(store) if not store.read_only else None
        self.access: Access | None = None
        self.principal_of: Callable[[Any], Any] | None = None
        self.users: Any = None  # the accounts (sources.access.users.UserDirectory) with logins
        self.alarm_engine: AlarmEngine | None = None
        self.alarm_timer: AlarmTimer | None = None
        self.expiry = WarningExpiry(source=self.warnings)
        self.retention = ReadingRetention(store=store, keep_days=self.keep_readings_days,
                                          audit=self.audit,
                                          keep_audit_days=self.keep_audit_days)
        interval = self.snapshot_interval_s
        if interval is None:
            interval = float(os.environ.get("CONSOLE_SNAPSHOT_S", SNAPSHOT_INTERVAL_S))
        self.snapshots = (SnapshotWriter(store=store, interval_s=interval)
                          if interval > 0 and writable else None)
        self.trimmer = (MemoryTrimmer(interval_s=self.malloc_trim_s)
                        if self.malloc_trim_s > 0 else None)
        self.warm_up = BoardWarmUp(situation=self.situation) if self.load_layers else None
        self.extra_services: list[Service] = []  # added with add_service(), started last
        self._layer: RiskLayer | None = None
        self._layer_lock = threading.Lock()
        self._started: list = []  # what start() started, in order (stop() reverses it)

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls, path: str | Path, **params) -> Console:
        """A console on the store file ``path`` (created with the schema if missing)."""
        return cls(store=Store(path), **params)

    # ------------------------------------------------------------------ shared layers
    def risk_layer(self) -> RiskLayer:
        """The risk points in memory, loaded once per process and shared by every page."""
        if self._layer is None:
            with self._layer_lock:
                if self._layer is None:
                    layer = (self.risk.load_layer() if not self.risk_cluster
                             else self._partitioned_layer())
                    # compile and warm the kernels before the first page asks for a frame
                    pts = layer.points
                    pts.frame(pts.extent, 64, 64, palette_index=True)
                    pts.frame(pts.extent, 64, 64)  # RGBA: the situation board's
                    pts.counts_in(pts.extent)
                    self._layer = layer
        return self._layer

    def _partitioned_layer(self) -> RiskLayer:
        """The risk layer on Dask workers (``risk_cluster``): the points exported to Parquet
        beside the store, read and partitioned by the workers."""
        from sources.risk.partition_io import load_partitioned_layer

        where = self.risk_cluster
        build = ({"n_workers": int(where.split(":", 1)[1])} if where.startswith("local:")
                 else {"scheduler": where})
        directory = Path(self.store.path).with_name(Path(self.store.path).stem + ".points")
        return load_partitioned_layer(self.risk, directory, **build)

    def risk_layer_status(self) -> dict | None:
        """Where the shared risk layer's points are (for ``/health``); None before it loads."""
        layer = self._layer
        if layer is None:
            return None
        points = layer.points
        meta = getattr(points, "meta", None)
        if meta is None:
            return {"kind": "in-process", "points": len(points)}
        return {"kind": "partitioned", "points": len(points), "partitions": len(meta),
                "workers": len({m["worker"] for m in meta}), "cluster": self.risk_cluster}

    # ------------------------------------------------------------------ lifecycle
    def services(self) -> list[Service]:
        """The periodic services, in start order (stopped in reverse)."""
        found = [self.alarm_timer, self.expiry, self.retention, self.snapshots, self.trimmer,
                 self.warm_up, *self.extra_services]
        return [s for s in found if s is not None]

    def add_service(self, service: Service) -> Service:
        """Own one more service (before :meth:`start`): started after the console's own,
        stopped before them."""
        if self._started:
            raise RuntimeError("add services before the console starts")
        self.extra_services.append(service)
        return service

    def start(self) -> Console:
        """Start everything, in order: demo feed, shared layers, alarm engine, ingests, services.

        The alarm engine listens to every ingest before the first batch can arrive. If a
        step fails, what was started is stopped again, the store closed and the error raised.
        """
        if self._started:
            return self
        self.started_at = time.time()
        try:
            if self.demo is not None:
                self._started.append(self.demo.start())
                if self.demo.url and self.demo.url not in self.feeds:
                    self.feeds = [*self.feeds, self.demo.url]
                    self.ingests.append(FeedIngest(url=self.demo.url, store=self.store,
                                                   hub=self.hub, geography=self.geography))
            if self.load_layers:
                self.risk_layer()
            try:  # the bureau's plan files: a broken one is said at start, the console runs
                self.command.plans()
            except Exception as exc:  # noqa: BLE001 - the page says it again at launch
                log.error("plan files: %s", exc)
            if not self.store.read_only:
                self.alarm_engine = AlarmEngine(store=self.store, hub=self.hub)
                self.alarm_timer = AlarmTimer(engine=self.alarm_engine, desk=self.alarms)
                for ingest in self.ingests:
                    ingest.add_listener(self.alarm_engine.on_batch)
            for ingest in self.ingests:
                self._started.append(ingest.start())
            for service in self.services():
                if self.store.read_only and service is not self.warm_up:
                    continue
                self._started.append(service.start())
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, *, close_store: bool = True) -> None:
        """Stop what :meth:`start` started, newest first, then close the store.

        Services stop first (a snapshot in progress is interrupted), then the ingests write
        their pending batches (the alarm engine evaluates them), then the demo feed ends.
        """
        while self._started:
            thing = self._started.pop()
            try:
                thing.stop()
            except Exception:  # noqa: BLE001 - keep stopping the rest
                log.exception("stopping %r", thing)
        self.sandbox.stop()  # its processes start on a page's first query, started or not
        points = getattr(self._layer, "points", None)
        close = getattr(points, "close", None) if hasattr(points, "meta") else None
        if close is not None:  # a partitioned layer: its workers (and a cluster it owns)
            try:
                close()
            except Exception:  # noqa: BLE001 - keep stopping
                log.exception("closing the risk layer's workers")
        if close_store:
            self.store.close()

    # ------------------------------------------------------------------ access
    @property
    def logins(self) -> bool:
        """Whether pages need a login (serve.py sets ``access`` and ``principal_of``)."""
        return self.principal_of is not None

    def guard(self, doc: Any = None) -> Guard:
        """The guard of one page (its Bokeh document): who acts there, what they may do,
        and the audit of it. Without logins: an open guard (every action, 'anonymous')."""
        if self.principal_of is None:
            return Guard.open(audit=self.audit)
        return Guard(access=self.access or Access(), audit=self.audit,
                     principal=lambda: self.principal_of(doc))

    @contextlib.contextmanager
    def serving(self) -> Iterator[Console]:
        """Make this the console of the code run inside (a notebook dashboard's cells)."""
        token = _serving.set(self)
        try:
            yield self
        finally:
            _serving.reset(token)

    # ------------------------------------------------------------------ health
    def freeze(self) -> int:
        """Set everything built so far (modules, registries, the shared layers) aside from
        Python's collector, for the life of the process (call once, before serving pages);
        the number of objects. Counted here once: counting them walks every one (10 ms a
        /health at a million objects)."""
        gc.collect()
        gc.freeze()
        self.gc_frozen = gc.get_freeze_count()
        return self.gc_frozen

    def memory(self) -> dict:
        """Resident memory (MB), DuckDB's and the allocators' shares, and open pages."""
        out: dict = {"rss_mb": None, "duckdb_mb": None, "sessions": None}
        try:  # Linux; elsewhere the figure is simply absent
            with open("/proc/self/statm") as f:
                pages = int(f.read().split()[1])
            out["rss_mb"] = round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith(("RssAnon:", "RssFile:")):
                        key = "rss_anon_mb" if line.startswith("RssAnon") else "rss_file_mb"
                        out[key] = round(int(line.split()[1]) / 1024, 1)
        except (OSError, ValueError, IndexError):
            pass
        try:  # DuckDB's buffers, in all and by what holds them (table data, hash tables...)
            tags = self.store.arrow(
                "SELECT tag, memory_usage_bytes AS b FROM duckdb_memory() "
                "WHERE memory_usage_bytes > 0").to_pylist()
            out["duckdb_mb"] = round(sum(r["b"] for r in tags) / 2**20, 1)
            out["duckdb_by_tag_mb"] = {r["tag"].lower(): round(r["b"] / 2**20, 1) for r in tags}
        except Exception:  # noqa: BLE001 - a busy or closing store must not break /health
            pass
        out.update(allocators())
        # objects set aside from the collector at start (serve.py, :meth:`freeze`): a full
        # collection during a burst of pages walks only what came after
        out["gc_frozen_objects"] = self.gc_frozen
        out["sessions"] = self.open_pages()
        return out

    def open_pages(self) -> int | None:
        """Pages connected now (Bokeh sessions with a live websocket); None before serving."""
        if self.server is None:
            return None
        try:
            return sum(1 for s in self.server.get_sessions() if s.connection_count > 0)
        except Exception:  # noqa: BLE001 - a session closing while counted
            return None

    def health(self) -> dict:
        """The JSON of ``/health``: store, uptime, memory, feeds and every service."""
        services = {s.service_name: s.status() for s in self.services()}
        if self.demo is not None:
            services["DemoFeed"] = self.demo.status()
        return {
            "status": "ok",
            "db": self.store.path,
            "uptime_s": None if self.started_at is None else round(time.time() - self.started_at, 1),
            "memory": self.memory(),
            "feeds": [ingest.status() for ingest in self.ingests],
            "services": services,
            "risk_layer": self.risk_layer_status(),
        }
