"""Keep a console process's memory flat over weeks: fewer malloc arenas, freed pages returned.

A console runs many threads (the ingest, the alarm engine, expiry and snapshot timers,
DuckDB's workers, the web server) that allocate and free large blocks (Arrow batches,
DataFrames, JSON patches) all day. glibc gives each thread its own arena (up to 8 per core)
and keeps freed pages mapped, so the resident size creeps up with fragmentation although
nothing leaks. Two standard remedies, both glibc-only (no-ops elsewhere):

* :func:`limit_arenas` — ``mallopt(M_ARENA_MAX, n)`` before the threads start;
* :class:`MemoryTrimmer` — ``malloc_trim(0)`` (and Arrow's ``release_unused``) every
  ``interval_s``, a console service, which hands freed pages back to the system
  (``tests/sources/test_housekeeping.py``: > 40 MB of freed blocks glibc kept; the soak in
  ``bench/soak_board.py`` runs with it, not against it).

DuckDB's own allocator is told to flush early in :class:`sources.store.store.Store`.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging

import param

from sources.service import Service

log = logging.getLogger(__name__)

M_ARENA_MAX = -8


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


@functools.cache
def _libc():
    """glibc, loaded once (None elsewhere)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim  # noqa: B018  (glibc only)
        libc.mallopt  # noqa: B018
    except (OSError, AttributeError):
        return None
    if hasattr(libc, "mallinfo2"):
        libc.mallinfo2.restype = _MallInfo2
    return libc


def limit_arenas(n: int = 2) -> bool:
    """Cap glibc's malloc arenas at ``n`` (call before starting threads). True if applied."""
    libc = _libc()
    return bool(libc is not None and n > 0 and libc.mallopt(M_ARENA_MAX, n) == 1)


def trim() -> bool:
    """Return freed heap pages to the system now (glibc's and Arrow's pools).

    True if glibc released some memory."""
    try:
        import pyarrow as pa

        pa.default_memory_pool().release_unused()
    except (ImportError, AttributeError):
        pass
    libc = _libc()
    return bool(libc is not None and libc.malloc_trim(0))


def allocators() -> dict:
    """Where the native memory is, in MB: glibc's heap (in use, free but kept, mmapped) and
    Arrow's pool. Absent figures are None (not glibc, no Arrow)."""
    out = {"malloc_used_mb": None, "malloc_free_mb": None, "malloc_mmap_mb": None,
           "arrow_mb": None}
    libc = _libc()
    if libc is not None and hasattr(libc, "mallinfo2"):
        info = libc.mallinfo2()
        out["malloc_used_mb"] = round(info.uordblks / 2**20, 1)
        out["malloc_free_mb"] = round(info.fordblks / 2**20, 1)
        out["malloc_mmap_mb"] = round(info.hblkhd / 2**20, 1)
    try:
        import pyarrow as pa

        out["arrow_mb"] = round(pa.default_memory_pool().bytes_allocated() / 2**20, 1)
    except ImportError:
        pass
    return out


class MemoryTrimmer(Service):
    """Calls :func:`trim` every ``interval_s`` seconds until stopped (glibc only)."""

    run_at_start = False

    interval_s = param.Number(default=60.0, bounds=(0.001, None),
                              doc="Seconds between two trims.")

    @property
    def available(self) -> bool:
        return _libc() is not None

    def start(self) -> MemoryTrimmer:
        if self.available:  # elsewhere there is nothing to trim
            super().start()
        return self

    def run_once(self) -> None:
        trim()
