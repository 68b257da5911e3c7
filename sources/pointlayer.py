"""The shared in-memory point layer of the risk map: float32, spatially ordered, four grades.

Every open page of ``/risk`` renders from one :class:`PointLayer` per process. Points are
kept as float32 coordinates sorted by a regular grid cell (row-major), with the offset of
each cell, so a zoomed view reads only the cells it covers. One frame is

    aggregate (numba, both cores, 4 uint16 counts per pixel) -> shade (numba) -> spread

Grades are categories 0..3 in :data:`GRADES` order. Nothing here imports Panel.
"""
from __future__ import annotations

import math
import os
import threading
import time
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field

import numba as nb
import numpy as np

GRADES = ("red", "orange", "yellow", "blue")
#: The four standard colours of safety-production risk (GB/T 33000 practice, as used by the
#: provincial four-colour maps): major red, large orange, general yellow, low blue.
GRADE_COLORS = {"red": "#e60012", "orange": "#ff8c00", "yellow": "#ffd700", "blue": "#1e6fff"}
#: Weight of a grade when one pixel holds several: a red point outweighs eight blue ones, so
#: that where red and orange gather is seen at once even under many blue points.
GRADE_WEIGHTS = (8.0, 4.0, 2.0, 1.0)
SHANDONG_EXTENT = (114.8, 122.7, 34.4, 38.4)
#: Alpha of a pixel holding one point (the densest pixel gets 255, log scale between).
ALPHA_MIN = 120
#: Pixel counts are uint16 and saturate here; per-grade totals are exact.
COUNT_MAX = 65535
COUNT_DTYPE = np.uint16


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    h = hex_colour.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


# ---------------------------------------------------------------------------- threads
#: Below this many points read, one thread is faster than starting a parallel region.
SERIAL_BELOW = 300_000
_load = {"at": 0.0, "busy": False}


def machine_busy() -> bool:
    """Whether other processes keep every core busy (1-minute load above the core count).

    A parallel region waits for its slowest thread; when another process holds the second
    core, that wait costs more than the core gives (measured here: 1M points, 1920×1080,
    51 ms on two threads vs 21 ms on one under load 11), so the kernels then run on one.
    """
    now = time.monotonic()
    if now - _load["at"] > 1.0:
        _load["at"] = now
        try:
            _load["busy"] = os.getloadavg()[0] > (os.cpu_count() or 1)
        except OSError:  # pragma: no cover - no load average on this platform
            _load["busy"] = False
    return _load["busy"]


@contextmanager
def kernel_threads(work: int, threads: int | None = None):
    """Run numba kernels on ``threads`` (None: every core unless the work is small or the
    machine is busy). numba's thread count is per calling thread, so sessions don't mix."""
    prev = nb.get_num_threads()
    if threads is None:
        threads = 1 if (work < SERIAL_BELOW or machine_busy()) else prev
    threads = max(1, min(int(threads), nb.config.NUMBA_NUM_THREADS))
    nb.set_num_threads(threads)
    try:
        yield threads
    finally:
        nb.set_num_threads(prev)


# ---------------------------------------------------------------------------- kernels
@nb.njit(cache=True, nogil=True)
def _cell_keys(x, y, x0, y0, sx, sy, g):
    n = x.shape[0]
    keys = np.empty(n, np.int32)
    for i in range(n):
        cx = int((x[i] - x0) * sx)
        cy = int((y[i] - y0) * sy)
        cx = min(max(cx, 0), g - 1)
        cy = min(max(cy, 0), g - 1)
        keys[i] = cy * g + cx
    return keys


@nb.njit(cache=True, nogil=True)
def _counting_sort(keys, ncells):
    counts = np.zeros(ncells + 1, np.int64)
    for k in keys:
        counts[k + 1] += 1
    offsets = np.cumsum(counts)
    pos = offsets[:-1].copy()
    order = np.empty(keys.shape[0], np.int64)
    for i in range(keys.shape[0]):
        k = keys[i]
        order[pos[k]] = i
        pos[k] += 1
    return order, offsets


@nb.njit(parallel=True, cache=True, nogil=True)
def _aggregate(x, y, cat, ent, offsets, g, gx0, gy0, gsx, gsy,
               vx0, vx1, vy0, vy1, w, h, cat_mask, ent_mask, use_ent, out, nbands):
    """Count points per pixel and grade into ``out[h, w, 4]``; return per-grade totals.

    Pixel counts are uint16 and saturate at 65535 (half the memory traffic of uint32; the
    shading's log scale cannot tell more apart). The totals are exact int64.

    Bands of pixel rows are processed in parallel; each band writes only its own rows, so
    there are no races. A point belongs to the view iff vx0 <= x < vx1 and vy0 <= y < vy1
    (x, y as float32, compared in float64), the same rule as the SQL counts.
    """
    sx = w / (vx1 - vx0)
    sy = h / (vy1 - vy0)
    c0 = min(max(int(math.floor((vx0 - gx0) * gsx)) - 1, 0), g - 1)
    c1 = min(max(int(math.floor((vx1 - gx0) * gsx)) + 1, 0), g - 1)
    totals = np.zeros((nbands, 4), np.int64)
    for b in nb.prange(nbands):
        # interleave bands between the threads: clustered data stays balanced
        band = (b % 2) * ((nbands + 1) // 2) + b // 2
        r0 = band * h // nbands
        r1 = (band + 1) * h // nbands
        if r1 <= r0:
            continue
        ylo = vy0 + r0 / sy
        yhi = vy0 + r1 / sy
        g0 = min(max(int(math.floor((ylo - gy0) * gsy)) - 1, 0), g - 1)
        g1 = min(max(int(math.floor((yhi - gy0) * gsy)) + 1, 0), g - 1)
        for gr in range(g0, g1 + 1):
            start = offsets[gr * g + c0]
            end = offsets[gr * g + c1 + 1]
            for i in range(start, end):
                yi = np.float64(y[i])
                if yi < vy0 or yi >= vy1:
                    continue
                py = min(int((yi - vy0) * sy), h - 1)
                if py < r0 or py >= r1:
                    continue
                xi = np.float64(x[i])
                if xi < vx0 or xi >= vx1:
                    continue
                if use_ent and not ent_mask[ent[i]]:
                    continue
                k = cat[i]
                totals[band, k] += 1
                if cat_mask[k]:
                    px = min(int((xi - vx0) * sx), w - 1)
                    v = out[py, px, k]
                    if v < COUNT_MAX:  # saturate: only the shading reads pixel counts
                        out[py, px, k] = v + 1
    return totals.sum(axis=0)


@nb.njit(parallel=True, cache=True, nogil=True)
def _shade(counts, colors, weights, alpha_min, img):
    """Four counts per pixel -> packed RGBA (uint32, little-endian R,G,B,A).

    Colour: the weighted mean of the grades' colours; alpha: log scale of the total.
    """
    h, w = counts.shape[0], counts.shape[1]
    rowmax = np.zeros(h, np.int64)
    for r in nb.prange(h):
        m = 0
        for c in range(w):
            t = (np.int64(counts[r, c, 0]) + np.int64(counts[r, c, 1])
                 + np.int64(counts[r, c, 2]) + np.int64(counts[r, c, 3]))
            if t > m:
                m = t
        rowmax[r] = m
    tmax = rowmax.max()
    if tmax == 0:
        return 0
    lmax = math.log1p(tmax)
    for r in nb.prange(h):
        for c in range(w):
            c0 = np.int64(counts[r, c, 0])
            c1 = np.int64(counts[r, c, 1])
            c2 = np.int64(counts[r, c, 2])
            c3 = np.int64(counts[r, c, 3])
            t = c0 + c1 + c2 + c3
            if t == 0:
                img[r, c] = 0
                continue
            w0 = c0 * weights[0]
            w1 = c1 * weights[1]
            w2 = c2 * weights[2]
            w3 = c3 * weights[3]
            ws = w0 + w1 + w2 + w3
            red = (w0 * colors[0, 0] + w1 * colors[1, 0] + w2 * colors[2, 0] + w3 * colors[3, 0]) / ws
            grn = (w0 * colors[0, 1] + w1 * colors[1, 1] + w2 * colors[2, 1] + w3 * colors[3, 1]) / ws
            blu = (w0 * colors[0, 2] + w1 * colors[1, 2] + w2 * colors[2, 2] + w3 * colors[3, 2]) / ws
            a = alpha_min + (255 - alpha_min) * math.log1p(t) / lmax
            img[r, c] = (np.uint32(int(red)) | (np.uint32(int(grn)) << 8)
                         | (np.uint32(int(blu)) << 16) | (np.uint32(int(a)) << 24))
    return tmax


@nb.njit(cache=True, nogil=True)
def _spread(img, radius):
    """Grow each non-empty pixel into empty ones within ``radius`` (for sparse views)."""
    h, w = img.shape
    out = img.copy()
    for r in range(h):
        for c in range(w):
            v = img[r, c]
            if v == 0:
                continue
            for dr in range(-radius, radius + 1):
                rr = r + dr
                if rr < 0 or rr >= h:
                    continue
                for dc in range(-radius, radius + 1):
                    cc = c + dc
                    if cc < 0 or cc >= w or dr * dr + dc * dc > radius * radius + 1:
                        continue
                    if img[rr, cc] == 0 and out[rr, cc] == 0:
                        out[rr, cc] = v
    return out


@nb.njit(cache=True, nogil=True)
def _nearest(x, y, cat, ent, offsets, g, gx0, gy0, gsx, gsy, px, py, rx, ry,
             cat_mask, ent_mask, use_ent):
    """Index of the visible point nearest to (px, py) within the ellipse (rx, ry); -1 if none."""
    c0 = min(max(int(math.floor((px - rx - gx0) * gsx)), 0), g - 1)
    c1 = min(max(int(math.floor((px + rx - gx0) * gsx)), 0), g - 1)
    g0 = min(max(int(math.floor((py - ry - gy0) * gsy)), 0), g - 1)
    g1 = min(max(int(math.floor((py + ry - gy0) * gsy)), 0), g - 1)
    best = -1
    bestd = 1.0
    for gr in range(g0, g1 + 1):
        for i in range(offsets[gr * g + c0], offsets[gr * g + c1 + 1]):
            if not cat_mask[cat[i]]:
                continue
            if use_ent and not ent_mask[ent[i]]:
                continue
            dx = (x[i] - px) / rx
            dy = (y[i] - py) / ry
            d = dx * dx + dy * dy
            if d <= bestd:
                bestd = d
                best = i
    return best


# ---------------------------------------------------------------------------- the layer
@dataclass
class Frame:
    """One rendered view: the RGBA image, its bounds and the per-grade counts in it."""

    image: np.ndarray  # (h, w) uint32 RGBA, row 0 at the bottom (y ascending)
    bounds: tuple[float, float, float, float]  # x0, x1, y0, y1
    counts: dict[str, int]
    max_count: int = 0

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass
class PointLayer:
    """All risk points in memory: float32 x/y, grade (uint8), enterprise index (int32).

    Build it with :meth:`from_arrays`; points are reordered by grid cell. ``ent`` indexes the
    layer's own enterprise table (``enterprise_ids``), used for filters and clicks.
    """

    x: np.ndarray
    y: np.ndarray
    cat: np.ndarray
    ent: np.ndarray
    offsets: np.ndarray
    grid: int
    extent: tuple[float, float, float, float]
    enterprise_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    cache_size: int = 8

    def __post_init__(self):
        self._cache: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        x0, x1, y0, y1 = self.extent
        self._gsx = self.grid / (x1 - x0)
        self._gsy = self.grid / (y1 - y0)
        self._buffers = threading.local()  # one reusable count buffer per thread
        self._colors = np.array([_rgb(GRADE_COLORS[g]) for g in GRADES], np.float64)
        self._weights = np.array(GRADE_WEIGHTS, np.float64)

    # ------------------------------------------------------------------ building
    @classmethod
    def from_arrays(
        cls,
        x: np.ndarray,
        y: np.ndarray,
        cat: np.ndarray,
        ent: np.ndarray | None = None,
        *,
        enterprise_ids: np.ndarray | None = None,
        grid: int = 512,
        extent: tuple[float, float, float, float] | None = None,
    ) -> PointLayer:
        """Build the layer from coordinates, grades (0..3) and enterprise indices.

        Parameters
        ----------
        x, y : array-like
            Longitudes and latitudes (converted to float32).
        cat : array-like of uint8
            Grade index of each point, in :data:`GRADES` order.
        ent : array-like of int32, optional
            Index of each point's enterprise in ``enterprise_ids``.
        grid : int
            Cells per side of the spatial index.
        extent : (x0, x1, y0, y1), optional
            Bounds of the grid; defaults to the data's bounds.
        """
        x = np.ascontiguousarray(x, np.float32)
        y = np.ascontiguousarray(y, np.float32)
        cat = np.ascontiguousarray(cat, np.uint8)
        n = x.shape[0]
        if not (y.shape[0] == cat.shape[0] == n):
            raise ValueError("x, y and cat must have the same length")
        if n and cat.max() > 3:
            raise ValueError("cat holds grade indices 0..3 (red, orange, yellow, blue)")
        ent = (np.zeros(n, np.int32) if ent is None else np.ascontiguousarray(ent, np.int32))
        if extent is None:
            if n:
                extent = (float(x.min()), float(x.max()) + 1e-6,
                          float(y.min()), float(y.max()) + 1e-6)
            else:
                extent = SHANDONG_EXTENT
        x0, x1, y0, y1 = extent
        keys = _cell_keys(x, y, x0, y0, grid / (x1 - x0), grid / (y1 - y0), grid)
        order, offsets = _counting_sort(keys, grid * grid)
        del keys
        if enterprise_ids is None:
            enterprise_ids = np.arange(int(ent.max()) + 1 if n else 0, dtype=np.int64)
        return cls(x=x[order], y=y[order], cat=cat[order], ent=ent[order], offsets=offsets,
                   grid=grid, extent=tuple(map(float, extent)),
                   enterprise_ids=np.asarray(enterprise_ids, np.int64))

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def nbytes(self) -> int:
        """Memory held by the layer's arrays."""
        return sum(a.nbytes for a in (self.x, self.y, self.cat, self.ent, self.offsets,
                                      self.enterprise_ids))

    # ------------------------------------------------------------------ rendering
    def enterprise_mask(self, enterprise_ids) -> np.ndarray:
        """A uint8 mask over the layer's enterprises from a collection of enterprise ids."""
        mask = np.zeros(len(self.enterprise_ids), np.uint8)
        mask[np.isin(self.enterprise_ids, np.asarray(list(enterprise_ids), np.int64))] = 1
        return mask

    def aggregate(
        self,
        bounds: tuple[float, float, float, float],
        width: int,
        height: int,
        *,
        grades=GRADES,
        ent_mask: np.ndarray | None = None,
        reuse: bool = False,
        threads: int | None = None,
    ) -> tuple[np.ndarray, dict[str, int]]:
        """Counts per pixel and grade, shape (height, width, 4) uint16, and per-grade totals.

        The totals count every grade in the view (hidden ones included) so the legend can
        show them; the pixel counts hold only the visible ``grades``. With ``reuse`` the
        counts live in this thread's buffer, overwritten by its next call. ``threads``: see
        :func:`kernel_threads` (None: automatic).
        """
        vx0, vx1, vy0, vy1 = map(float, bounds)
        if not (vx1 > vx0 and vy1 > vy0 and width > 0 and height > 0):
            raise ValueError(f"empty view: bounds={bounds}, size={width}x{height}")
        if reuse:
            out = getattr(self._buffers, "counts", None)
            if out is None or out.shape != (height, width, 4):
                out = self._buffers.counts = np.empty((height, width, 4), COUNT_DTYPE)
            out.fill(0)  # memset: no page faults of a fresh buffer
        else:
            out = np.zeros((height, width, 4), COUNT_DTYPE)
        cat_mask = np.array([g in grades for g in GRADES], np.uint8)
        use_ent = ent_mask is not None
        mask = ent_mask if use_ent else np.zeros(1, np.uint8)
        # enough bands for both cores, never more than the grid rows in view (reads overlap)
        rows_in_view = max(1, int((vy1 - vy0) * self._gsy))
        nbands = int(min(64, max(2, rows_in_view // 2), height))
        with kernel_threads(self.candidates(bounds), threads) as used:
            totals = _aggregate(self.x, self.y, self.cat, self.ent, self.offsets, self.grid,
                                self.extent[0], self.extent[2], self._gsx, self._gsy,
                                vx0, vx1, vy0, vy1, int(width), int(height), cat_mask, mask,
                                use_ent, out, nbands if used > 1 else 1)
        return out, {g: int(totals[i]) for i, g in enumerate(GRADES)}

    def shade(self, counts: np.ndarray, *, spread: int | None = None,
              threads: int | None = None) -> tuple[np.ndarray, int]:
        """Packed RGBA image (uint32) from per-pixel grade counts; and the max total."""
        img = np.empty(counts.shape[:2], np.uint32)
        with kernel_threads(counts.shape[0] * counts.shape[1], threads):
            tmax = _shade(counts, self._colors, self._weights, ALPHA_MIN, img)
        if tmax == 0:
            img[:] = 0
            return img, 0
        if spread is None:
            nonempty = int(np.count_nonzero(img))
            spread = 2 if nonempty < 10_000 else (1 if nonempty < 60_000 else 0)
        if spread:
            img = _spread(img, int(spread))
        return img, int(tmax)

    def frame(
        self,
        bounds: tuple[float, float, float, float],
        width: int,
        height: int,
        *,
        grades=GRADES,
        ent_mask: np.ndarray | None = None,
        mask_key: str | None = None,
        spread: int | None = None,
    ) -> Frame:
        """Aggregate and shade one view. Frames are cached (LRU) by view, size and filters.

        ``mask_key`` names ``ent_mask`` for the cache; without it a masked frame is not cached.
        """
        key = None
        if ent_mask is None or mask_key is not None:
            key = (tuple(round(float(b), 9) for b in bounds), int(width), int(height),
                   tuple(sorted(grades)), mask_key, spread)
            with self._lock:
                hit = self._cache.get(key)
                if hit is not None:
                    self._cache.move_to_end(key)
                    return hit
        counts, totals = self.aggregate(bounds, width, height, grades=grades, ent_mask=ent_mask,
                                        reuse=True)
        img, tmax = self.shade(counts, spread=spread)
        fr = Frame(image=img, bounds=tuple(map(float, bounds)), counts=totals, max_count=tmax)
        if key is not None:
            with self._lock:
                self._cache[key] = fr
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return fr

    def candidates(self, bounds) -> int:
        """How many points a view of ``bounds`` reads (the points of the cells it covers)."""
        vx0, vx1, vy0, vy1 = map(float, bounds)
        g, x0, y0 = self.grid, self.extent[0], self.extent[2]
        c0 = min(max(math.floor((vx0 - x0) * self._gsx) - 1, 0), g - 1)
        c1 = min(max(math.floor((vx1 - x0) * self._gsx) + 1, 0), g - 1)
        g0 = min(max(math.floor((vy0 - y0) * self._gsy) - 1, 0), g - 1)
        g1 = min(max(math.floor((vy1 - y0) * self._gsy) + 1, 0), g - 1)
        rows = np.arange(g0, g1 + 1) * g
        return int((self.offsets[rows + c1 + 1] - self.offsets[rows + c0]).sum())

    def counts_in(self, bounds, *, grades=GRADES, ent_mask=None) -> dict[str, int]:
        """Per-grade point counts in ``bounds`` (reads only the cells it covers)."""
        _, totals = self.aggregate(bounds, 1, 1, grades=(), ent_mask=ent_mask)
        return {g: (totals[g] if g in grades else 0) for g in GRADES}

    def nearest(self, x: float, y: float, rx: float, ry: float, *, grades=GRADES,
                ent_mask=None) -> int | None:
        """Enterprise id of the visible point nearest to (x, y) within (rx, ry); None if none."""
        if len(self) == 0:
            return None
        cat_mask = np.array([g in grades for g in GRADES], np.uint8)
        use_ent = ent_mask is not None
        mask = ent_mask if use_ent else np.zeros(1, np.uint8)
        i = _nearest(self.x, self.y, self.cat, self.ent, self.offsets, self.grid,
                     self.extent[0], self.extent[2], self._gsx, self._gsy,
                     float(x), float(y), float(rx), float(ry), cat_mask, mask, use_ent)
        if i < 0:
            return None
        return int(self.enterprise_ids[self.ent[i]])
