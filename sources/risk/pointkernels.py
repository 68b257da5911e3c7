"""The numba kernels of the point layer (:mod:`sources.risk.pointlayer`) and their threads.

Kept apart from the layer so each file stays small; nothing here is public API except
:func:`kernel_threads` and :func:`machine_busy`.
"""
from __future__ import annotations

import math
import os
import time
from contextlib import contextmanager

import numba as nb
import numpy as np

#: Pixel counts are uint16 and saturate here; per-grade totals are exact.
COUNT_MAX = 65535
COUNT_DTYPE = np.uint16


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

    Colour: the weighted mean of the grades' colours (a pixel of one grade takes its colour
    as is); alpha: log scale of the total, from a table built once per frame.
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
    alpha = np.empty(tmax + 1, np.uint32)  # alpha << 24 for every total 0..tmax
    for t in range(tmax + 1):
        alpha[t] = np.uint32(int(alpha_min + (255 - alpha_min) * math.log1p(t) / lmax)) << 24
    pure = np.empty(4, np.uint32)
    for k in range(4):
        pure[k] = (np.uint32(int(colors[k, 0])) | (np.uint32(int(colors[k, 1])) << 8)
                   | (np.uint32(int(colors[k, 2])) << 16))
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
            if t == c3:  # most pixels hold one grade: its colour, no arithmetic
                img[r, c] = pure[3] | alpha[t]
                continue
            if t == c2:
                img[r, c] = pure[2] | alpha[t]
                continue
            if t == c1:
                img[r, c] = pure[1] | alpha[t]
                continue
            if t == c0:
                img[r, c] = pure[0] | alpha[t]
                continue
            w0 = c0 * weights[0]
            w1 = c1 * weights[1]
            w2 = c2 * weights[2]
            w3 = c3 * weights[3]
            inv = 1.0 / (w0 + w1 + w2 + w3)
            red = (w0 * colors[0, 0] + w1 * colors[1, 0] + w2 * colors[2, 0] + w3 * colors[3, 0]) * inv
            grn = (w0 * colors[0, 1] + w1 * colors[1, 1] + w2 * colors[2, 1] + w3 * colors[3, 1]) * inv
            blu = (w0 * colors[0, 2] + w1 * colors[1, 2] + w2 * colors[2, 2] + w3 * colors[3, 2]) * inv
            img[r, c] = (np.uint32(int(red)) | (np.uint32(int(grn)) << 8)
                         | (np.uint32(int(blu)) << 16) | alpha[t])
    return tmax


@nb.njit(parallel=True, cache=True, nogil=True)
def _shade_index(counts, weights, levels, out):
    """Four counts per pixel -> one palette index (uint8): 0 empty, else
    1 + grade · levels + level, where grade is the heaviest by weight · count (the more
    severe on a tie) and level the log-scaled total (0 .. levels - 1)."""
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
        out[:] = 0
        return 0
    lmax = math.log1p(tmax)
    level = np.empty(tmax + 1, np.uint8)
    for t in range(tmax + 1):
        level[t] = min(levels - 1, int((levels - 1) * math.log1p(t) / lmax + 0.5))
    for r in nb.prange(h):
        for c in range(w):
            c0 = np.int64(counts[r, c, 0])
            c1 = np.int64(counts[r, c, 1])
            c2 = np.int64(counts[r, c, 2])
            c3 = np.int64(counts[r, c, 3])
            t = c0 + c1 + c2 + c3
            if t == 0:
                out[r, c] = 0
                continue
            best = 0
            bw = c0 * weights[0]
            if c1 * weights[1] > bw:
                best = 1
                bw = c1 * weights[1]
            if c2 * weights[2] > bw:
                best = 2
                bw = c2 * weights[2]
            if c3 * weights[3] > bw:
                best = 3
            out[r, c] = 1 + best * levels + level[t]
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
