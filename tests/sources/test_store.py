"""The store's lifecycle: closing waits for a call in flight in another thread."""
from __future__ import annotations

import time


def test_closing_the_store_waits_for_a_call_in_another_thread(tmp_path):
    """SIGTERM right after start met the board's warm-up inside DuckDB: the close must wait
    for it (DuckDB refuses a busy connection), not raise and abort the process on exit."""
    import threading

    from sources.store import Store

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
