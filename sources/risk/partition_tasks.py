"""What runs on the Dask workers for :mod:`sources.risk.partitioned`: loading and checking a
chunk, counting its points per fine cell, cutting it by quadtree leaf, building one
:class:`PartitionLayer` (a :class:`PointLayer`) per leaf, and answering a frame's, a count's
or a click's question for the partitions a worker holds. Plain functions of plain arguments
(Dask pickles them by reference); the client's side, which asks them, is
:class:`sources.risk.partitioned.PartitionedPointLayer`.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Callable

import numba as nb
import numpy as np

from sources.risk.pointkernels import COUNT_MAX, _counting_sort, _nearest
from sources.risk.pointlayer import GRADES, PointLayer

log = logging.getLogger(__name__)

#: x, y (float32), grade index 0..3 (uint8), enterprise index (int32) of some points.
Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
#: A picklable callable without arguments, run on a worker, returning :data:`Arrays`.
Chunk = Callable[[], Arrays]


class PartitionedLayerError(RuntimeError):
    """The cluster could not answer: a chunk failed to load, a worker was lost, a timeout."""


def worker_address() -> str | None:
    from distributed import get_worker

    try:
        return get_worker().address
    except ValueError:  # run outside a worker (a test calling the function directly)
        return None


def load_chunk(chunk: Chunk, index: int, extent, fine: int) -> tuple:
    """Load and check one chunk; with each point's cell of the fine grid (F × F)."""
    try:
        x, y, cat, ent = chunk()
    except Exception as exc:
        raise PartitionedLayerError(f"chunk {index} ({chunk!r}) could not be loaded: "
                                    f"{type(exc).__name__}: {exc}") from exc
    x = np.ascontiguousarray(x, np.float32)
    y = np.ascontiguousarray(y, np.float32)
    cat = np.asarray(cat)
    ent = np.asarray(ent)
    n = x.shape[0]
    if not (np.issubdtype(cat.dtype, np.integer) and np.issubdtype(ent.dtype, np.integer)):
        raise PartitionedLayerError(f"chunk {index}: cat and ent must be integers "
                                    f"(got {cat.dtype}, {ent.dtype}; nulls?)")
    if not (y.shape[0] == cat.shape[0] == ent.shape[0] == n):
        raise PartitionedLayerError(
            f"chunk {index}: x, y, cat and ent have different lengths "
            f"({n}, {y.shape[0]}, {cat.shape[0]}, {ent.shape[0]})")
    if n and (cat.min() < 0 or cat.max() > 3):
        raise PartitionedLayerError(f"chunk {index}: cat holds grade indices 0..3 "
                                    f"(red, orange, yellow, blue), found {cat.max()}")
    if n and ent.min() < 0:
        raise PartitionedLayerError(f"chunk {index}: negative enterprise index")
    bad = n - int(np.count_nonzero(np.isfinite(x) & np.isfinite(y)))
    if bad:
        raise PartitionedLayerError(f"chunk {index}: {bad} points with non-finite coordinates")
    x0, x1, y0, y1 = extent  # points outside the extent belong to its edge cells
    cx = np.clip(np.floor((x.astype(np.float64) - x0) * (fine / (x1 - x0))), 0, fine - 1)
    cy = np.clip(np.floor((y.astype(np.float64) - y0) * (fine / (y1 - y0))), 0, fine - 1)
    cells = cy.astype(np.int32) * fine + cx.astype(np.int32)
    return x, y, cat.astype(np.uint8), ent.astype(np.int32), cells


def cell_counts(loaded: tuple, fine: int) -> np.ndarray:
    return np.bincount(loaded[4], minlength=fine * fine).astype(np.int64)


def add_up(*arrays: np.ndarray) -> np.ndarray:
    return np.sum(arrays, axis=0)


def identity(value):
    return value


def cut(loaded: tuple, leaf_of_cell: np.ndarray, nleaves: int) -> dict[int, Arrays]:
    """One chunk's points by partition (stable: a partition keeps the chunk's order)."""
    x, y, cat, ent, cells = loaded
    order, offsets = _counting_sort(leaf_of_cell[cells], nleaves)
    out = {}
    for t in np.flatnonzero(np.diff(offsets)):
        sl = order[offsets[t]:offsets[t + 1]]
        out[int(t)] = (x[sl], y[sl], cat[sl], ent[sl])
    return out


def sizes(pieces: dict[int, Arrays]) -> dict[int, int]:
    return {t: int(p[0].shape[0]) for t, p in pieces.items()}


def bundle(pieces: dict[int, Arrays], leaves: list[int]) -> dict[int, Arrays]:
    """A chunk's pieces for one worker's partitions: moved to it once, read by each."""
    return {k: pieces[k] for k in leaves if k in pieces}


def trim_memory() -> None:
    """Hand the build's freed heap pages back to the OS (glibc keeps them otherwise)."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass


def quadtree(counts: np.ndarray, cap: int) -> list[tuple[int, int, int, int]]:
    """Leaves (cx0, cx1, cy0, cy1) of fine cells, each with at most ``cap`` points unless
    it is one cell; a square of counts (F × F, F a power of two), empty leaves left out."""
    fine = counts.shape[0]
    sat = np.zeros((fine + 1, fine + 1), np.int64)  # summed-area table: any rectangle's sum
    sat[1:, 1:] = counts.cumsum(0).cumsum(1)
    leaves, todo = [], [(0, fine, 0, fine)]
    while todo:
        cx0, cx1, cy0, cy1 = r = todo.pop()
        n = sat[cy1, cx1] - sat[cy0, cx1] - sat[cy1, cx0] + sat[cy0, cx0]
        if n == 0:
            continue
        if n <= cap or (cx1 - cx0 == 1 and cy1 - cy0 == 1):
            leaves.append(r)
            continue
        mx, my = (cx0 + cx1) // 2, (cy0 + cy1) // 2
        todo += [(a, b, c, d) for a, b in ((cx0, mx), (mx, cx1)) if b > a
                 for c, d in ((cy0, my), (my, cy1)) if d > c]
    return sorted(leaves, key=lambda r: (r[2], r[0]))


class PartitionLayer(PointLayer):
    """One partition's :class:`PointLayer`, picklable (its arrays only), so Dask can move
    it from worker to worker (a rebuilt partition read where the frame's task runs)."""

    def __sizeof__(self) -> int:
        # what Dask counts (dask.sizeof falls back to sys.getsizeof): without it a partition
        # looks free to move, and the scheduler copies partitions between workers
        return object.__sizeof__(self) + self.nbytes

    def __reduce__(self):
        return (PartitionLayer, (self.x, self.y, self.cat, self.ent, self.offsets, self.grid,
                            self.extent, self.enterprise_ids, self.cache_size))


def build_partition(bounds, grid: int, leaf: int, *bundles: dict) -> PartitionLayer:
    """One partition's layer from its pieces, in chunk order (a cell keeps the input order);
    its index about 8 points a cell, at most ``grid`` cells a side."""
    pieces = [b[leaf] for b in bundles if leaf in b]
    cols = [np.concatenate([p[i] for p in pieces]) for i in range(4)]
    side = 2 ** round(math.log2(max(1.0, math.sqrt(cols[0].shape[0] / 8))))
    # ``ent`` indexes the client's enterprise table: no copy of it per partition
    return PartitionLayer.from_arrays(*cols, extent=bounds, grid=int(min(max(side, 8), grid)),
                                 enterprise_ids=np.zeros(0, np.int64))


def describe(layer: PartitionLayer) -> dict:
    # load the kernels now (a cold compile takes seconds): not in the first frame's time
    layer.aggregate(layer.extent, 8, 8, threads=1)
    n = len(layer)
    bbox = ((float(layer.x.min()), float(layer.x.max()), float(layer.y.min()),
             float(layer.y.max())) if n else None)
    return {"n": n, "bbox": bbox, "nbytes": layer.nbytes, "worker": worker_address()}


def aggregate_group(view, grades, mask, threads, windows, *layers):
    """The counts of several partitions, each cut to the pixel window its points can reach and
    sent as the smaller of: the window's counts, or its non-empty pixels (index, counts)."""
    bounds, w, h = view
    crops = []
    for layer, (r0, r1, c0, c1) in zip(layers, windows, strict=True):
        counts, totals = layer.aggregate(bounds, w, h, grades=grades, ent_mask=mask,
                                         threads=threads)
        crop = np.ascontiguousarray(counts[r0:r1, c0:c1])
        if crop.size == 0:
            crops.append((r0, c0, 0, None, None, totals))
            continue
        words = crop.view(np.uint64).reshape(-1)  # a pixel's four uint16 counts: one word
        nz = np.flatnonzero(words)
        if nz.size * 12 < words.size * 8:  # 4 + 8 bytes a non-empty pixel vs 8 a pixel
            crops.append((r0, c0, c1 - c0, nz.astype(np.int32), words[nz], totals))
        else:
            crops.append((r0, c0, c1 - c0, None, crop, totals))
    return worker_address(), crops


def totals_group(bounds, mask, *layers):
    totals = np.zeros(4, np.int64)
    for layer in layers:
        _, t = layer.aggregate(bounds, 1, 1, grades=(), ent_mask=mask, threads=1)
        totals += [t[g] for g in GRADES]
    return worker_address(), totals


def nearest_group(x, y, rx, ry, grades, mask, *layers):
    """(squared normalised distance, enterprise index) of the nearest visible point."""
    cat_mask = np.array([g in grades for g in GRADES], np.uint8)
    use_ent = mask is not None
    m = mask if use_ent else np.zeros(1, np.uint8)
    best = None
    for layer in layers:
        if not len(layer):
            continue
        i = _nearest(layer.x, layer.y, layer.cat, layer.ent, layer.offsets, layer.grid,
                     layer.extent[0], layer.extent[2], layer._gsx, layer._gsy,
                     float(x), float(y), float(rx), float(ry), cat_mask, m, use_ent)
        if i >= 0:  # the kernel's arithmetic: float32 coordinate, float64 query
            d = ((np.float64(layer.x[i]) - x) / rx) ** 2 + ((np.float64(layer.y[i]) - y) / ry) ** 2
            if best is None or d <= best[0]:
                best = (float(d), int(layer.ent[i]))
    return worker_address(), best


# ---------------------------------------------------------------------- on the client
@nb.njit(cache=True, nogil=True)
def add_saturating(out, crop, r0, c0):
    """out[r0:, c0:] += crop, saturating at COUNT_MAX as the aggregation kernel does."""
    for r in range(crop.shape[0]):
        for c in range(crop.shape[1]):
            for k in range(4):
                v = np.uint32(out[r0 + r, c0 + c, k]) + np.uint32(crop[r, c, k])
                out[r0 + r, c0 + c, k] = v if v < COUNT_MAX else COUNT_MAX


@nb.njit(cache=True, nogil=True)
def add_sparse(out, idx, vals, r0, c0, width):
    """Add non-empty pixels (flat index in a window ``width`` wide at r0, c0), saturating."""
    for j in range(idx.shape[0]):
        r = r0 + idx[j] // width
        c = c0 + idx[j] % width
        for k in range(4):
            v = np.uint32(out[r, c, k]) + np.uint32(vals[j, k])
            out[r, c, k] = v if v < COUNT_MAX else COUNT_MAX


def meets(bbox, x0, x1, y0, y1, *, closed: bool = False) -> bool:
    """Whether points inside ``bbox`` can fall in [x0, x1) × [y0, y1) (closed: [x0, x1])."""
    if bbox is None:
        return False
    bx0, bx1, by0, by1 = bbox
    if closed:
        return bx0 <= x1 and bx1 >= x0 and by0 <= y1 and by1 >= y0
    return bx0 < x1 and bx1 >= x0 and by0 < y1 and by1 >= y0


def window(bbox, bounds, w: int, h: int) -> tuple[int, int, int, int]:
    """Pixel rows and columns a partition's points can reach in a view (one pixel to spare).

    The kernel's pixel is ``int((v - v0) * (size / (v1 - v0)))``, non-decreasing in v: the
    bbox's corners bound it.
    """
    vx0, vx1, vy0, vy1 = bounds
    bx0, bx1, by0, by1 = bbox
    sx, sy = w / (vx1 - vx0), h / (vy1 - vy0)
    c0 = max(int((max(bx0, vx0) - vx0) * sx) - 1, 0)
    c1 = min(int((min(bx1, vx1) - vx0) * sx) + 2, w)
    r0 = max(int((max(by0, vy0) - vy0) * sy) - 1, 0)
    r1 = min(int((min(by1, vy1) - vy0) * sy) + 2, h)
    return r0, max(r1, r0), c0, max(c1, c0)

