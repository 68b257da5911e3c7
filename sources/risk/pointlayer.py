"""The shared in-memory point layer of the risk map: float32, spatially ordered, four grades.

Every open page of ``/risk`` renders from one :class:`PointLayer` per process. Points are
kept as float32 coordinates sorted by a regular grid cell (row-major), with the offset of
each cell, so a zoomed view reads only the cells it covers. One frame is

    aggregate (numba, both cores, 4 uint16 counts per pixel) -> shade (numba: one uint8
    palette index per pixel, or RGBA) -> spread

(the kernels are in :mod:`sources.risk.pointkernels`). Grades are categories 0..3 in :data:`GRADES` order. Nothing here imports Panel.
"""
from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from sources.levels import COLORS, RISK_GRADES
from sources.risk.pointkernels import (
    COUNT_DTYPE,
    _aggregate,
    _cell_keys,
    _counting_sort,
    _nearest,
    _shade,
    _shade_index,
    _spread,
    kernel_threads,
)

GRADES = RISK_GRADES
#: The four colours of the provinces' safety-risk maps (红橙黄蓝): major red, large orange,
#: general yellow, low blue. Chosen here: saturated, distinct on a light background.
GRADE_COLORS = COLORS
#: Weight of a grade when one pixel holds several: a red point weighs as much as eight blue, so
#: that where red and orange gather is seen at once even under many blue points.
GRADE_WEIGHTS = (8.0, 4.0, 2.0, 1.0)
SHANDONG_EXTENT = (114.8, 122.7, 34.4, 38.4)
#: Alpha of a pixel holding one point (the densest pixel gets 255, log scale between).
ALPHA_MIN = 120
#: Alpha levels per grade in the palette of :meth:`PointLayer.shade_index` (1 + 4·63 = 253).
LEVELS = 63


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    h = hex_colour.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


# ---------------------------------------------------------------------------- the layer
def palette(alpha_min: int = ALPHA_MIN) -> list[str]:
    """The 256 colours (``#rrggbbaa``) of :meth:`PointLayer.shade_index`: index 0 is
    transparent, then for each grade ``LEVELS`` alphas from ``alpha_min`` to opaque."""
    out = ["#00000000"]
    for g in GRADES:
        for level in range(LEVELS):
            a = int(alpha_min + (255 - alpha_min) * level / (LEVELS - 1))
            out.append(f"{GRADE_COLORS[g]}{a:02x}")
    return out + ["#00000000"] * (256 - len(out))


def palette_rgba(colors: dict[str, str] | None = None, alpha_min: int = ALPHA_MIN) -> np.ndarray:
    """:func:`palette` as packed RGBA (uint32: r | g << 8 | b << 16 | a << 24), in
    ``colors`` (one per grade; default :data:`GRADE_COLORS`): ``palette_rgba(c)[index]``
    turns a :meth:`PointLayer.shade_index` image into an RGBA one, each pixel in the colour
    of its heaviest grade, never a blend of two (blue and yellow would read as green)."""
    colors = colors or GRADE_COLORS
    out = np.zeros(256, np.uint32)
    i = 1
    for g in GRADES:
        r, gr, b = _rgb(colors[g])
        for level in range(LEVELS):
            a = int(alpha_min + (255 - alpha_min) * level / (LEVELS - 1))
            out[i] = r | gr << 8 | b << 16 | a << 24
            i += 1
    return out


@dataclass
class Frame:
    """One rendered view: the image, its bounds and the per-grade counts in it."""

    image: np.ndarray  # (h, w) RGBA uint32 or palette() uint8, row 0 at the bottom (y up)
    bounds: tuple[float, float, float, float]  # x0, x1, y0, y1
    counts: dict[str, int]
    max_count: int = 0

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def cached_frame(layer, bounds, width: int, height: int, grades, ent_mask, mask_key, spread,
                 palette_index: bool, aggregate) -> Frame:
    """A view's :class:`Frame` through ``layer``'s LRU cache (its ``_cache``, ``_lock`` and
    ``cache_size``): cached when there is no filter or the filter is named (``mask_key``);
    otherwise ``aggregate()`` (counts, totals) is shaded with the layer's own kernels."""
    key = None
    if ent_mask is None or mask_key is not None:
        key = (tuple(round(float(b), 9) for b in bounds), int(width), int(height),
               tuple(sorted(grades)), mask_key, spread, palette_index)
        with layer._lock:
            hit = layer._cache.get(key)
            if hit is not None:
                layer._cache.move_to_end(key)
                return hit
    counts, totals = aggregate()
    shade = layer.shade_index if palette_index else layer.shade
    img, tmax = shade(counts, spread=spread)
    fr = Frame(image=img, bounds=tuple(map(float, bounds)), counts=totals, max_count=tmax)
    if key is not None:
        with layer._lock:
            layer._cache[key] = fr
            while len(layer._cache) > layer.cache_size:
                layer._cache.popitem(last=False)
    return fr


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

    def shade_index(self, counts: np.ndarray, *, spread: int | None = None,
                    threads: int | None = None) -> tuple[np.ndarray, int]:
        """Palette indices (uint8) from per-pixel grade counts; and the max total.

        Each pixel takes the colour of its heaviest grade (red weighs 8 blue points) at an
        alpha that grows with the log of its total; see :func:`palette`. A quarter of the
        bytes of RGBA: what the browser receives on every pan and zoom.
        """
        img = np.empty(counts.shape[:2], np.uint8)
        with kernel_threads(counts.shape[0] * counts.shape[1], threads):
            tmax = _shade_index(counts, self._weights, LEVELS, img)
        if tmax and spread is None:
            nonempty = int(np.count_nonzero(img))
            spread = 2 if nonempty < 10_000 else (1 if nonempty < 60_000 else 0)
        if tmax and spread:
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
        palette_index: bool = False,
    ) -> Frame:
        """Aggregate and shade one view. Frames are cached (LRU) by view, size and filters.

        ``mask_key`` names ``ent_mask`` for the cache; without it a masked frame is not cached.
        The image is packed RGBA (uint32), or with ``palette_index`` one uint8 index of
        :func:`palette` per pixel (what the risk map sends to the browser).
        """
        return cached_frame(self, bounds, width, height, grades, ent_mask, mask_key, spread,
                            palette_index, lambda: self.aggregate(
                                bounds, width, height, grades=grades, ent_mask=ent_mask,
                                reuse=True))

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
