"""Risk points beyond one machine's memory: the point layer split over Dask workers.

A :class:`PartitionedPointLayer` answers the risk map as a :class:`PointLayer` does
(``frame``, ``aggregate``, ``counts_in``, ``nearest``, ``extent``, ``len``), but its points
live in the memory of Dask ``distributed`` worker processes, one :class:`PointLayer` per
spatial partition: the leaves of a quadtree over a fine grid of the extent, each holding at
most ``partition_points`` points. Building it:

    chunks (callables run ON the workers: a Parquet file, a generator...) -> points per fine
    cell (summed on the workers) -> quadtree leaves (here: a small table) -> each chunk cut
    by leaf on its worker -> one PointLayer per leaf, built on the worker that will hold it
    (pieces move worker to worker)

so the client never holds the points. One frame: the partitions whose points meet the view
run the same numba ``aggregate`` (one task per worker, for its partitions); each sends the
pixel window its points can reach (uint16 counts, whole or only its non-empty pixels); the
client adds them with the kernel's saturation (65535) and shades with the layer's own
kernels. Counts equal a single :class:`PointLayer`'s over the same points, pixel for pixel
(a saturating sum of saturated parts is the saturation of the sum). A lost worker's
partitions are rebuilt by Dask from their chunks; until then a frame fails after
``frame_timeout`` seconds with :class:`PartitionedLayerError`, never hangs. Nothing here
imports Panel. What runs on the workers is :mod:`sources.risk.partition_tasks`; the points'
Parquet input and the store's export, :mod:`sources.risk.partition_io`.
"""
from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from sources.risk import partition_tasks as tasks
from sources.risk.partition_io import (  # noqa: F401  (the module's public names)
    export_points,
    load_partitioned_layer,
    parquet_chunks,
    read_parquet_points,
)
from sources.risk.partition_tasks import (  # noqa: F401  (the module's public names)
    Arrays,
    Chunk,
    PartitionedLayerError,
    PartitionLayer,
    quadtree,
)
from sources.risk.pointkernels import COUNT_DTYPE
from sources.risk.pointlayer import GRADES, Frame, PointLayer, cached_frame

log = logging.getLogger(__name__)

#: A frame larger than this (pixels) is refused: each partition's worker allocates one.
MAX_PIXELS = 40_000_000
TASK_PREFIX = "risk-layer"


def _connect(client, scheduler, n_workers, memory_limit):
    """(client, cluster we started or None, whether we own the client)."""
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:
        raise ImportError("the partitioned risk layer needs Dask: pip install "
                          "'emergency-console[scale]' (dask, distributed)") from exc

    if client is not None:
        return client, None, False
    if scheduler:
        return Client(scheduler, timeout="20s"), None, True
    # one single-threaded worker process per core: the kernels run one thread a partition
    cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                           host="127.0.0.1", dashboard_address=None,
                           # no dashboard; its HTTP server on a free port, not 8787
                           scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                           memory_limit=memory_limit)
    return Client(cluster), cluster, True


# ---------------------------------------------------------------------- the layer
class PartitionedPointLayer:
    """The risk points in the memory of Dask workers, one :class:`PointLayer` a partition.

    Build it with :meth:`build`; use it where a :class:`PointLayer` is used
    (``RiskLayer(points=...)``); :meth:`close` it at the end. Thread-safe: several pages may
    ask for frames at once (each frame is its own set of tasks).

    Attributes
    ----------
    extent : (x0, x1, y0, y1)
        The partitioned extent (points outside it belong to its edge cells).
    meta : list of dict
        Per partition: ``n`` points, ``bbox`` of its points, ``bounds`` of its quadtree
        leaf, ``nbytes`` on its worker, ``worker`` that built it.
    frame_timeout : float
        Seconds a frame, count or click may wait for the workers before it fails.
    last_frame : dict
        What the last :meth:`aggregate` touched: partitions, workers, bytes received, and
        how many windows came as non-empty pixels (``sparse``) or whole (``dense``).
    """

    def __init__(self, *, client, layers, meta: list[dict], extent, enterprise_ids=None,
                 cluster=None, own_client: bool = False, frame_timeout: float = 10.0,
                 partition_threads: int = 1, cache_size: int = 8):
        self._client, self._cluster, self._own_client = client, cluster, own_client
        self._layers = list(layers)  # futures: the client's reference keeps them on workers
        self.meta = meta
        self.extent = tuple(map(float, extent))
        self.enterprise_ids = (None if enterprise_ids is None
                               else np.asarray(enterprise_ids, np.int64))
        self.frame_timeout = float(frame_timeout)
        self.partition_threads = partition_threads
        self.cache_size = cache_size
        self.last_frame: dict = {}
        self._n = sum(m["n"] for m in meta)
        self._where = {i: m["worker"] for i, m in enumerate(meta)}
        self._stale = False  # after a failure: ask the scheduler where the partitions are
        self._lock = threading.Lock()
        self._cache: OrderedDict = OrderedDict()
        self._masks: OrderedDict = OrderedDict()
        # the shading kernels of PointLayer, on the client: an empty layer lends them
        z = np.zeros(0, np.float32)
        self._shader = PointLayer.from_arrays(z, z, z.astype(np.uint8), extent=self.extent,
                                              grid=1, enterprise_ids=np.zeros(0, np.int64))

    # ------------------------------------------------------------------ building
    @classmethod
    def build(cls, chunks: Sequence[Chunk], *, extent, partition_points: int = 1_000_000,
              fine: int = 512, grid: int = 256, enterprise_ids=None, client=None,
              scheduler: str | None = None, n_workers: int = 2,
              memory_limit: str | float = "auto", timeout: float = 3600.0,
              frame_timeout: float = 10.0) -> PartitionedPointLayer:
        """Load ``chunks`` on the workers, cut them into quadtree partitions, build one
        layer per partition there.

        Parameters
        ----------
        chunks : sequence of callables
            Each, called on a worker without arguments, returns ``(x, y, cat, ent)`` for some
            points (e.g. ``parquet_chunks(paths)``); picklable, importable by the workers.
        extent : (x0, x1, y0, y1)
            The partitioned extent (points outside it join its edge cells).
        partition_points : int
            A partition holds at most this many points, unless they share one fine cell:
            quadtree leaves of the fine grid (a dense city gets small partitions, an empty
            region none), so a zoomed view touches only the few partitions it meets.
        fine : int
            Cells per side of the grid the quadtree splits (a power of two).
        grid : int
            At most this many cells per side of each partition's spatial index.
        enterprise_ids : array of int64, optional
            Enterprise id of each ``ent`` index (for :meth:`nearest`); None: the index.
        client, scheduler, n_workers, memory_limit
            A ``distributed.Client`` to use (left open by :meth:`close`), or the address of
            a scheduler (``tcp://host:8786``), or neither: a ``LocalCluster`` of
            ``n_workers`` single-threaded worker processes on loopback, owned by the layer.
        timeout : float
            Seconds the whole build may take.
        """
        x0, x1, y0, y1 = map(float, extent)
        if not (math.isfinite(x0 + x1 + y0 + y1) and x1 > x0 and y1 > y0):
            raise ValueError(f"extent must be (x0, x1, y0, y1) with x1 > x0, y1 > y0: {extent}")
        if int(fine) not in {2 ** k for k in range(13)}:
            raise ValueError(f"fine must be a power of two, 1..4096: {fine}")
        if not 1 <= int(grid) <= 4096:
            raise ValueError(f"grid must be 1..4096 cells per side: {grid}")
        if int(partition_points) < 1:
            raise ValueError(f"partition_points must be positive: {partition_points}")
        chunks = list(chunks)
        if not chunks or not all(callable(c) for c in chunks):
            raise ValueError("chunks: a non-empty sequence of callables returning "
                             "(x, y, cat, ent)")
        client, cluster, own = _connect(client, scheduler, n_workers, memory_limit)
        tag = f"{TASK_PREFIX}-{uuid.uuid4().hex[:8]}"
        extent = (x0, x1, y0, y1)
        try:
            layers, meta = cls._build(client, chunks, extent, int(fine), int(partition_points),
                                      int(grid), tag, timeout)
        except BaseException:
            if own:
                client.close()
            if cluster is not None:
                cluster.close()
            raise
        return cls(client=client, layers=layers, meta=meta, extent=extent,
                   enterprise_ids=enterprise_ids, cluster=cluster, own_client=own,
                   frame_timeout=frame_timeout)

    @staticmethod
    def _build(client, chunks, extent, fine, cap, grid, tag, timeout):
        from distributed import wait

        def settle(futs, what):
            try:
                wait(futs, timeout=timeout)
                return client.gather(futs)
            except TimeoutError:
                client.cancel(futs)
                raise PartitionedLayerError(f"{what}: not done within {timeout:g} s") from None
            except PartitionedLayerError:
                raise
            except Exception as exc:
                raise PartitionedLayerError(f"{what} failed: {type(exc).__name__}: {exc}") \
                    from exc

        loaded = [client.submit(tasks.load_chunk, c, i, extent, fine, key=f"{tag}-load-{i}")
                  for i, c in enumerate(chunks)]
        counts = [client.submit(tasks.cell_counts, f, fine, key=f"{tag}-cells-{i}")
                  for i, f in enumerate(loaded)]
        while len(counts) > 1:  # summed on the workers, 16 at a time: one array comes here
            counts = [client.submit(tasks.add_up, *counts[i:i + 16], key=f"{tag}-sum-{len(counts)}-{i}")
                      for i in range(0, len(counts), 16)]
        total = settle(counts, "loading the chunks")[0].reshape(fine, fine)
        leaves = quadtree(total, cap)
        leaf_of_cell = np.zeros((fine, fine), np.int32)
        for k, (cx0, cx1, cy0, cy1) in enumerate(leaves):
            leaf_of_cell[cy0:cy1, cx0:cx1] = k
        # a task, not scattered data: Dask can recompute it if a worker holding it is lost
        lut = client.submit(tasks.identity, leaf_of_cell.reshape(-1), key=f"{tag}-leaves")
        cuts = [client.submit(tasks.cut, f, lut, len(leaves), key=f"{tag}-cut-{i}")
                for i, f in enumerate(loaded)]
        sizes = settle([client.submit(tasks.sizes, c, key=f"{tag}-sizes-{i}")
                        for i, c in enumerate(cuts)], "cutting the chunks")
        workers = sorted(client.scheduler_info(n_workers=-1)["workers"])
        if not workers:
            raise PartitionedLayerError("the cluster has no workers")
        load = dict.fromkeys(workers, 0)
        x0, x1, y0, y1 = extent
        sx, sy = (x1 - x0) / fine, (y1 - y0) / fine
        order = sorted(range(len(leaves)), key=lambda k: -int(sum(s.get(k, 0) for s in sizes)))
        placed = []
        for k in order:  # the largest partitions first, each to the least loaded worker
            placed.append(min(load, key=load.get))
            load[placed[-1]] += sum(s.get(k, 0) for s in sizes)
        # one bundle per chunk and worker (not per partition): few tasks, one move each
        bundles = {}
        for w in workers:
            mine = [k for k, pw in zip(order, placed, strict=True) if pw == w]
            bundles[w] = [client.submit(tasks.bundle, cuts[i], mine, key=f"{tag}-bundle-{i}-{w}")
                          for i, s in enumerate(sizes) if any(k in s for k in mine)]
        layers, bounds = [], []
        for k, w in zip(order, placed, strict=True):
            cx0, cx1, cy0, cy1 = leaves[k]
            bounds.append((x0 + sx * cx0, x0 + sx * cx1, y0 + sy * cy0, y0 + sy * cy1))
            # a loose restriction: if that worker is lost, Dask rebuilds it elsewhere
            layers.append(client.submit(tasks.build_partition, bounds[-1], grid, k, *bundles[w],
                                        key=f"{tag}-part-{k}", workers=[w],
                                        allow_other_workers=True))
        loaded = counts = cuts = bundles = None  # raw chunks leave the workers once built
        meta = settle([client.submit(tasks.describe, f, key=f"{tag}-describe-{k}", workers=[w],
                                     allow_other_workers=True)
                       for f, k, w in zip(layers, order, placed, strict=True)],
                      "building the partitions")
        for m, b in zip(meta, bounds, strict=True):
            m["bounds"] = b
        try:
            client.run(tasks.trim_memory)
        except Exception as exc:  # best effort: a worker gone now is the frames' business
            log.warning("risk layer: trimming the workers' memory: %s", exc)
        return layers, meta

    # ------------------------------------------------------------------ about it
    def __len__(self) -> int:
        return self._n

    def __enter__(self) -> PartitionedPointLayer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def nbytes(self) -> int:
        """Memory held by the partitions' arrays, on the workers (the client holds none)."""
        return sum(m["nbytes"] for m in self.meta)

    @property
    def client(self):
        """The ``distributed.Client`` the layer talks through."""
        return self._client

    def partitions_in(self, bounds) -> list[int]:
        """The partitions whose points can fall inside ``bounds`` (x0, x1, y0, y1)."""
        vx0, vx1, vy0, vy1 = map(float, bounds)
        return [i for i, m in enumerate(self.meta) if tasks.meets(m["bbox"], vx0, vx1, vy0, vy1)]

    def close(self) -> None:
        """Release the partitions on the workers; close the client and cluster if the layer
        started them."""
        layers, self._layers = self._layers, []
        with self._lock:
            self._cache.clear()
            self._masks.clear()
        try:
            if layers and self._client.status == "running":
                self._client.cancel(layers)
        finally:
            if self._own_client:
                self._client.close()
            if self._cluster is not None:
                self._cluster.close()
                self._cluster = None

    # ------------------------------------------------------------------ asking the workers
    def _mask(self, ent_mask, mask_key):
        """The enterprise mask as the workers get it: sent once per named filter."""
        if ent_mask is None:
            return None
        mask = np.ascontiguousarray(ent_mask, np.uint8)
        if mask_key is None or mask.nbytes < 1 << 20:
            return mask  # small: travels inside the tasks
        with self._lock:
            fut = self._masks.get(mask_key)
            if fut is None:
                try:
                    fut = self._client.scatter(mask, broadcast=True, timeout=self.frame_timeout)
                except Exception as exc:
                    raise PartitionedLayerError(f"sending the filter to the workers: {exc}") \
                        from exc
                self._masks[mask_key] = fut
                while len(self._masks) > 4:
                    self._masks.popitem(last=False)
        return fut

    def _ask(self, fn, parts: list[int], per_part, *args, what: str) -> list:
        """Run ``fn(*args, per-part values, *layers)`` once per worker holding ``parts``;
        the results, or :class:`PartitionedLayerError` after ``frame_timeout`` seconds."""
        if not self._layers:
            raise PartitionedLayerError("the partitioned layer is closed")
        if self._stale:
            self._locate()
        groups: dict[str | None, list[int]] = {}
        for p in parts:
            groups.setdefault(self._where.get(p), []).append(p)
        futs = []
        for worker, ps in groups.items():
            extra = ([per_part[p] for p in ps],) if per_part is not None else ()
            where = {} if worker is None else {"workers": [worker], "allow_other_workers": True}
            futs.append(self._client.submit(
                fn, *args, *extra, *(self._layers[p] for p in ps), pure=False,
                key=f"{TASK_PREFIX}-{fn.__name__.strip('_')}-{uuid.uuid4().hex}", **where))
        deadline = time.monotonic() + self.frame_timeout
        try:  # each result bounded: a worker lost after its task ended must not hang us
            results = [f.result(timeout=max(0.05, deadline - time.monotonic())) for f in futs]
        except TimeoutError:
            self._failed(futs)
            raise self._stalled(what, parts) from None
        except Exception as exc:
            self._failed(futs)
            log.warning("risk layer: %s failed: %s", what, exc)
            raise PartitionedLayerError(f"{what} failed on the workers: "
                                        f"{type(exc).__name__}: {exc}") from exc
        with self._lock:  # where each group ran, it now holds its partitions
            for ps, res in zip(groups.values(), results, strict=True):
                for p in ps:
                    self._where[p] = res[0]
        return [r[1] for r in results]

    def _failed(self, futs) -> None:
        """After a failed request: drop its tasks and scattered masks (a lost worker may
        have held them), and find the partitions again before the next one."""
        self._stale = True
        with self._lock:
            self._masks.clear()
        try:
            self._client.cancel(futs)
        except Exception as exc:  # the scheduler is gone too: the next request says so
            log.warning("risk layer: cancelling a failed request: %s", exc)

    def _locate(self) -> None:
        """Ask the scheduler which worker holds each partition (a lost one is rebuilt)."""
        keys = [f.key for f in self._layers]
        try:
            who = self._client.sync(self._client.scheduler.who_has, keys=keys,
                                    callback_timeout=self.frame_timeout)
        except Exception as exc:
            raise PartitionedLayerError(f"the scheduler did not answer: {exc}") from exc
        with self._lock:
            for p, k in enumerate(keys):
                holders = who.get(k) or []
                if self._where.get(p) not in holders:
                    self._where[p] = holders[0] if holders else None
            self._stale = False

    def _stalled(self, what: str, parts: list[int]) -> PartitionedLayerError:
        lost = [p for p in parts if self._layers[p].status != "finished"]
        try:
            workers = len(self._client.scheduler_info(n_workers=-1)["workers"])
        except Exception:  # the scheduler itself is gone: say so
            workers = "unknown (scheduler unreachable)"
        at_build = len({m["worker"] for m in self.meta})
        msg = (f"{what}: no answer from the workers within {self.frame_timeout:g} s; "
               f"{len(lost)} of {len(parts)} partitions not in memory "
               f"(holding {sum(self.meta[p]['n'] for p in lost):,} points); workers now {workers}, "
               f"{at_build} held partitions at build. Lost ones are rebuilt from their chunks: "
               "try again shortly.")
        log.warning("risk layer: %s", msg)
        return PartitionedLayerError(msg)

    # ------------------------------------------------------------------ rendering
    def aggregate(self, bounds, width: int, height: int, *, grades=GRADES, ent_mask=None,
                  reuse: bool = False, threads: int | None = None, mask_key=None):
        """Counts per pixel and grade, (height, width, 4) uint16, and per-grade totals:
        as :meth:`PointLayer.aggregate`, equal to it for the same points. ``threads``: the
        kernel's threads per partition on the workers (default ``partition_threads``); ``reuse``
        is accepted for compatibility (the client's counts are a new array per call)."""
        vx0, vx1, vy0, vy1 = map(float, bounds)
        width, height = int(width), int(height)
        if not (vx1 > vx0 and vy1 > vy0 and width > 0 and height > 0):
            raise ValueError(f"empty view: bounds={bounds}, size={width}x{height}")
        if width * height > MAX_PIXELS:
            raise ValueError(f"frame of {width}x{height} pixels is over {MAX_PIXELS:,}")
        view = ((vx0, vx1, vy0, vy1), width, height)
        parts = self.partitions_in(view[0])
        windows = {p: tasks.window(self.meta[p]["bbox"], view[0], width, height) for p in parts}
        out = np.zeros((height, width, 4), COUNT_DTYPE)
        totals = np.zeros(4, np.int64)
        received, sparse, dense = 0, 0, 0
        if parts:
            groups = self._ask(tasks.aggregate_group, parts, windows, view, tuple(grades),
                               self._mask(ent_mask, mask_key),
                               threads or self.partition_threads, what="risk frame")
            for crops in groups:
                for r0, c0, width, idx, vals, t in crops:
                    totals += [t[g] for g in GRADES]
                    if vals is None:
                        continue
                    received += vals.nbytes + (0 if idx is None else idx.nbytes)
                    if idx is None:
                        dense += 1
                        tasks.add_saturating(out, vals, r0, c0)
                    else:
                        sparse += 1
                        tasks.add_sparse(out, idx, vals.view(np.uint16).reshape(-1, 4), r0, c0,
                                    width)
        self.last_frame = {"partitions": len(parts), "bytes": received, "sparse": sparse,
                           "dense": dense, "workers": len({self._where.get(p) for p in parts})}
        return out, {g: int(totals[i]) for i, g in enumerate(GRADES)}

    def shade(self, counts, *, spread=None, threads=None):
        """Packed RGBA image from counts: :meth:`PointLayer.shade`."""
        return self._shader.shade(counts, spread=spread, threads=threads)

    def shade_index(self, counts, *, spread=None, threads=None):
        """Palette indices from counts: :meth:`PointLayer.shade_index`."""
        return self._shader.shade_index(counts, spread=spread, threads=threads)

    def frame(self, bounds, width: int, height: int, *, grades=GRADES, ent_mask=None,
              mask_key: str | None = None, spread: int | None = None,
              palette_index: bool = False) -> Frame:
        """Aggregate on the workers and shade here: :meth:`PointLayer.frame` (cached LRU by
        view, size and filters; ``mask_key`` names ``ent_mask``)."""
        return cached_frame(self, bounds, width, height, grades, ent_mask, mask_key, spread,
                            palette_index, lambda: self.aggregate(
                                bounds, width, height, grades=grades, ent_mask=ent_mask,
                                mask_key=mask_key))

    def counts_in(self, bounds, *, grades=GRADES, ent_mask=None) -> dict[str, int]:
        """Per-grade point counts in ``bounds``: :meth:`PointLayer.counts_in`."""
        vx0, vx1, vy0, vy1 = map(float, bounds)
        if not (vx1 > vx0 and vy1 > vy0):
            raise ValueError(f"empty view: bounds={bounds}")
        parts = self.partitions_in((vx0, vx1, vy0, vy1))
        totals = np.zeros(4, np.int64)
        if parts:
            for t in self._ask(tasks.totals_group, parts, None, (vx0, vx1, vy0, vy1),
                               self._mask(ent_mask, None), what="risk counts"):
                totals += t
        return {g: (int(totals[i]) if g in grades else 0) for i, g in enumerate(GRADES)}

    def nearest(self, x: float, y: float, rx: float, ry: float, *, grades=GRADES,
                ent_mask=None) -> int | None:
        """Enterprise id of the visible point nearest to (x, y) within (rx, ry); None if
        none: :meth:`PointLayer.nearest` (at exactly equal distances either may win)."""
        x, y, rx, ry = float(x), float(y), float(rx), float(ry)
        parts = [i for i, m in enumerate(self.meta)
                 if tasks.meets(m["bbox"], x - rx, x + rx, y - ry, y + ry, closed=True)]
        if not parts or not (rx > 0 and ry > 0):
            return None
        found = [b for b in self._ask(tasks.nearest_group, parts, None, x, y, rx, ry, tuple(grades),
                                      self._mask(ent_mask, None), what="risk click")
                 if b is not None]
        if not found:
            return None
        ent = min(found, key=lambda b: b[0])[1]
        return int(ent if self.enterprise_ids is None else self.enterprise_ids[ent])
