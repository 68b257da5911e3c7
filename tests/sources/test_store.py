"""The store: closing waits for a call in flight in another thread; connection settings."""
from __future__ import annotations

import time


def test_closing_the_store_waits_for_a_call_in_another_thread(tmp_path):
    """SIGTERM right after start met the board's warm-up inside DuckDB: the close must wait
    for it (DuckDB refuses a busy connection), not raise and abort the process on exit."""
    import threading

    from sources.store.store import Store

    store = Store(tmp_path / "s.duckdb")
    started, errors = threading.Event(), []

    def busy():
        started.set()
        try:
            store._con.execute("SELECT sum(range) FROM range(400000000)").fetchall()
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    worker = threading.Thread(target=busy)
    worker.start()
    started.wait()
    time.sleep(0.05)
    store.close()  # raised ResourceInUseException before
    worker.join()
    assert not errors
    Store(tmp_path / "s.duckdb").close()  # the file was released


def test_every_cursor_runs_without_late_materialization(tmp_path):
    """A small ``ORDER BY … LIMIT`` must not become a row-id join (DuckDB's joins grow the
    heap when repeated, and the board repeats its top-n queries twice a second)."""
    from sources.store.store import Store

    store = Store(tmp_path / "s.duckdb")
    try:
        assert store.scalar("SELECT current_setting('late_materialization_max_rows')") == 0
        store.execute("CREATE TABLE t AS SELECT i AS id, 'x' || i AS s, i % 7 AS k "
                      "FROM range(1000) r(i)")
        plan = "\n".join(r[-1] for r in store.execute(
            "EXPLAIN SELECT id, s, k FROM t ORDER BY k DESC, id LIMIT 10"))
        assert "JOIN" not in plan.upper(), plan
    finally:
        store.close()
