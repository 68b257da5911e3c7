"""Memory housekeeping: malloc_trim hands freed pages back; the trimmer runs and stops."""
from __future__ import annotations

import sys
import time

import pytest

from sources.store.housekeeping import MemoryTrimmer, limit_arenas, trim

glibc = pytest.mark.skipif(not MemoryTrimmer().available or not sys.platform.startswith("linux"),
                           reason="glibc only")


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


@glibc
def test_trim_returns_freed_pages_that_glibc_keeps():
    # 80 MB in 1 kB blocks (malloc, not pymalloc), then one block above them pinning the heap
    # top: freeing the 80 MB leaves the pages mapped until malloc_trim
    blocks = [bytearray(1000) for _ in range(80_000)]
    pin = bytearray(1000)
    del blocks
    before = rss_mb()
    assert trim()
    after = rss_mb()
    assert before - after > 40, (before, after)
    del pin


@glibc
def test_trimmer_runs_periodically_and_stops():
    trimmer = MemoryTrimmer(interval_s=0.05).start()
    try:
        deadline = time.time() + 5
        while trimmer.runs < 3 and time.time() < deadline:
            time.sleep(0.02)
        assert trimmer.runs >= 3 and trimmer.last_run_s is not None and trimmer.errors == 0
    finally:
        trimmer.stop()
    runs = trimmer.runs
    time.sleep(0.2)
    assert trimmer.runs == runs  # stopped


@glibc
def test_limit_arenas_is_accepted():
    assert limit_arenas(2) is True
    assert limit_arenas(0) is False


def test_the_store_tells_duckdb_to_flush_freed_memory_early(tmp_path):
    from sources.store.store import Store

    store = Store(tmp_path / "s.duckdb")
    try:
        flush, background = store._con.sql(
            "SELECT current_setting('allocator_flush_threshold'), "
            "current_setting('allocator_background_threads')").fetchall()[0]
        assert flush.startswith("16"), flush
        assert background is True
    finally:
        store.close()

