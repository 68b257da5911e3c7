"""Snapshots: a notebook process reads the store while another process holds it read-write."""
from __future__ import annotations

import re
import shlex
import subprocess
import sys
import textwrap

import duckdb
import pyarrow as pa
import pytest

from sources.base import Source
from sources.store.snapshot import (
    SnapshotWriter,
    latest_snapshot,
    list_snapshots,
    notebook_source,
    open_read_only,
    snapshot_time,
    write_snapshot,
)
from sources.store.store import Store
from tests.conftest import ROOT

# The "console": holds the store read-write, inserts batches, writes a snapshot on demand.
WRITER = textwrap.dedent("""
    import sys
    import pyarrow as pa
    sys.path.insert(0, {root!r})
    from sources.store.store import Store
    from sources.store.snapshot import write_snapshot
    store = Store({db!r})
    n = 0
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "insert":
            store.insert("quarantine", pa.table({{
                "feed": ["ws://x"] * 1000, "received_at": pa.array(
                    [0] * 1000, pa.timestamp("us", tz="UTC")),
                "reason": ["test"] * 1000, "raw": ["{{}}"] * 1000}}))
            n += 1000
            print("inserted", n, flush=True)
        elif cmd == "snap":
            print("snap", write_snapshot(store), flush=True)
        elif cmd == "quit":
            break
    store.close()
    print("closed", flush=True)
""")


@pytest.fixture
def held_store(tmp_path):
    """A store file held read-write by a real second process; ``send(cmd)`` talks to it."""
    db = tmp_path / "console.duckdb"
    Store(db).close()
    proc = subprocess.Popen([sys.executable, "-c", WRITER.format(root=str(ROOT), db=str(db))],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def send(cmd: str) -> str:
        proc.stdin.write(cmd + "\n")
        proc.stdin.flush()
        return proc.stdout.readline().strip()

    assert send("insert") == "inserted 1000"
    yield db, send
    if proc.poll() is None:
        send("quit")
        proc.wait(30)


def test_a_held_file_cannot_be_opened_but_its_snapshot_can(held_store):
    db, send = held_store
    with pytest.raises(duckdb.IOException):
        Store(db, read_only=True)
    path = send("snap").split(" ", 1)[1]
    assert latest_snapshot(db) is not None and str(latest_snapshot(db)) == path
    assert send("insert") == "inserted 2000"  # the console keeps writing

    store = open_read_only(db)  # what a notebook does
    try:
        assert store.read_only and store.path == path
        assert store.scalar("SELECT count(*) FROM quarantine") == 1000  # consistent, as taken
        with pytest.raises(PermissionError):
            store.execute("DELETE FROM quarantine")
        # a newer snapshot shows the newer rows; the open one is unaffected
        send("snap")
        assert open_read_only(db).scalar("SELECT count(*) FROM quarantine") == 2000
        assert store.scalar("SELECT count(*) FROM quarantine") == 1000
    finally:
        store.close()


def test_source_from_path_uses_the_newest_snapshot(held_store):
    db, send = held_store
    send("snap")
    src = Source.from_path(db)
    assert src.store.read_only
    assert src.store.scalar("SELECT count(*) FROM quarantine") == 1000
    src.store.close()


def test_open_read_only_opens_the_file_itself_when_free(tmp_path):
    db = tmp_path / "free.duckdb"
    Store(db).close()
    store = open_read_only(db)
    assert store.path == str(db) and store.read_only
    store.close()


def test_writer_keeps_the_newest_and_names_are_ordered(tmp_path):
    store = Store(tmp_path / "console.duckdb")
    store.insert("build_info", pa.table({"key": ["scale"], "value": ["tiny"]}))
    writer = SnapshotWriter(store=store, keep=2)
    paths = [writer.write() for _ in range(3)]
    assert list_snapshots(store.path) == paths[1:]
    assert not paths[0].exists()
    assert snapshot_time(paths[2]) >= snapshot_time(paths[1])
    assert not list(paths[2].parent.glob(".*.tmp*"))  # no half-written file left
    snap = Store(paths[2], read_only=True)
    assert snap.scalar("SELECT value FROM build_info WHERE key = 'scale'") == "tiny"
    snap.close()
    store.close()


def test_periodic_writer_starts_and_stops(tmp_path):
    store = Store(tmp_path / "console.duckdb")
    writer = SnapshotWriter(store=store, interval_s=3600).start()
    from tests.conftest import wait_until

    wait_until(lambda: writer.last_path is not None, timeout=20)
    assert writer.stop()
    assert writer.last_error is None and writer.errors == 0 and writer.runs == 1
    assert str(latest_snapshot(store.path)) == writer.last_path
    store.close()


def test_in_memory_store_has_no_snapshot():
    with pytest.raises(ValueError):
        write_snapshot(Store(":memory:"))


def test_periodic_snapshots_back_off_when_the_store_grows(store):
    """A big store must not spend its life copying itself: the period stretches to 20× the
    time the last snapshot took."""
    writer = SnapshotWriter(store=store, interval_s=300)
    writer.last_run_s = 2.0
    assert writer.next_wait() == 300
    writer.last_run_s = 60.0
    assert writer.next_wait() == 1200


@pytest.mark.slow
def test_stopping_interrupts_a_snapshot_in_progress(tmp_path):
    """A console stopping must not wait for a long copy (a store grown large with readings):
    the copy is interrupted and its partial file removed."""
    import time

    from tests.conftest import wait_until

    store = Store(tmp_path / "console.duckdb")
    store.execute("CREATE TABLE big AS SELECT range AS i, random() AS r, "
                  "(range % 1000)::VARCHAR AS k FROM range(12000000)")
    writer = SnapshotWriter(store=store, keep=5)
    started = time.monotonic()
    first = writer.write()  # the control: how long a whole copy takes here
    full_s = time.monotonic() - started
    assert full_s > 0.4, full_s
    writer = SnapshotWriter(store=store, interval_s=3600, keep=5).start()  # copies at once
    folder = first.parent
    wait_until(lambda: list(folder.glob(".*.tmp")), timeout=20, interval=0.01,
               message="the periodic copy did not start")
    started = time.monotonic()
    writer.stop()
    stop_s = time.monotonic() - started
    assert stop_s < full_s / 2, (stop_s, full_s)
    assert list_snapshots(store.path) == [first]  # nothing half-written under a final name
    assert not list(folder.glob(".*.tmp*"))  # and no partial file left
    assert writer.last_error is None  # stopping is not a failure
    store.close()


def test_a_notebook_on_a_store_not_built_yet_is_told_how_to_build_it(tmp_path, monkeypatch):
    """A fresh clone has no store: the notebook's first cell says which command builds one
    (quoted for a shell: this path has a space), creates nothing on the way, and the command
    it gives does build a store the same cell then opens."""
    missing = tmp_path / "fresh clone" / "var" / "console.duckdb"
    monkeypatch.setenv("CONSOLE_DB", str(missing))
    for attempt in (notebook_source, lambda: Source.from_path(missing),
                    lambda: open_read_only(missing)):
        with pytest.raises(FileNotFoundError) as err:
            attempt()
        message = str(err.value)
        assert message.startswith(f"no store at {missing} "), message
        assert f"python serve.py --db '{missing}'" in message
        assert "CONSOLE_DB" in message
    assert not missing.parent.parent.exists(), "opening a missing store created folders"
    command = re.search(r"`(python -m data\.generate [^`]+)`", message).group(1)
    argv = shlex.split(command)
    assert argv[-2:] == ["--db", str(missing)]
    done = subprocess.run([sys.executable, *argv[1:]], cwd=ROOT, capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    source = notebook_source()
    assert source.store.read_only
    assert source.store.scalar("SELECT count(*) FROM counties") == 136
    source.store.close()
