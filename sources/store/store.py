"""The store: one DuckDB file, one read-write connection per process, a cursor per query.

DuckDB lets one process open a file read-write and no other process open it at all while
it does, so the console owns the file and every reader in the process goes through
:class:`Store`. Writes are serialised by a lock and run in transactions.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import param
import pyarrow as pa

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "data" / "schema.sql"


class Store(param.Parameterized):
    """The console's DuckDB store.

    Parameters
    ----------
    path : str
        DuckDB file, or ``":memory:"``.
    read_only : bool
        Open without write access (analysts, tests). A read-only store cannot be opened
        while another process holds the file read-write; use :meth:`snapshot` for that.
    """

    path = param.String(default=":memory:", doc="DuckDB file, or ':memory:'.")
    read_only = param.Boolean(default=False, doc="Open the file without write access.")

    def __init__(self, path: str | Path = ":memory:", *, read_only: bool = False, **params):
        super().__init__(path=str(path), read_only=read_only, **params)
        # A 24/7 console must not let DuckDB's buffer cache grow with the readings table:
        # cap it (it spills to disk beyond) so the process memory stays flat. DuckDB's
        # allocator (jemalloc on Linux) keeps up to 128 MB of freed memory per task before
        # it flushes; flush above 16 MB and purge in the background instead.
        # Late materialization turns a small ``ORDER BY … LIMIT`` into a join on row ids, and
        # DuckDB's joins leave buffer bookkeeping on the heap each time (LATEST_NOTE in
        # sources/situation/source.py): the board's ticker grew the heap 3.3 MB per 1,000 refreshes
        # with it, 0.3 MB without.
        config = {"memory_limit": os.environ.get("CONSOLE_DB_MEMORY", "1GB"),
                  "allocator_flush_threshold": "16MB",
                  "allocator_background_threads": True,
                  "late_materialization_max_rows": 0}
        self._con = duckdb.connect(self.path, read_only=self.read_only, config=config)
        #: set by :meth:`close`: pages still open at shutdown stop their refreshes on it
        self.closed = False
        self._write_lock = threading.RLock()
        if not self.read_only:
            self.apply_schema()

    # ------------------------------------------------------------------ opening
    @classmethod
    def snapshot(cls, path: str | Path, *, directory: str | Path | None = None) -> Store:
        """Open a read-only copy of ``path`` (safe while the console holds the file).

        The copy is taken from the file and its WAL as they are on disk; the console
        checkpoints after each ingest batch, so the copy is at most one batch behind.
        """
        src = Path(path)
        target_dir = Path(directory or tempfile.mkdtemp(prefix="console-snapshot-"))
        target = target_dir / src.name
        shutil.copy2(src, target)
        wal = src.with_name(src.name + ".wal")
        if wal.exists():
            shutil.copy2(wal, target.with_name(target.name + ".wal"))
        return cls(target, read_only=False)

    def apply_schema(self) -> None:
        """Create the tables of ``data/schema.sql`` that do not exist yet."""
        with self.transaction() as cur:
            cur.execute(SCHEMA_PATH.read_text(encoding="utf-8"))

    def close(self, timeout: float = 10.0) -> None:
        """Checkpoint (when writable) and close the connection.

        A reader in another thread (a page's query, a warm-up) may be creating a cursor at
        that moment: DuckDB refuses to close a busy connection instead of waiting, so wait
        for it (up to ``timeout`` seconds) rather than leave the file open.
        """
        deadline = time.monotonic() + timeout
        with self._write_lock:
            if not self.read_only:
                try:
                    self._con.execute("CHECKPOINT")
                except duckdb.Error:
                    pass
            while True:
                try:
                    self._con.close()
                    self.closed = True
                    return
                except duckdb.Error as exc:
                    if "busy" not in str(exc) or time.monotonic() > deadline:
                        raise
                    time.sleep(0.01)

    # ------------------------------------------------------------------ reading
    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A new cursor on the shared connection: use one per thread or per query."""
        return self._con.cursor()

    def arrow(self, sql: str, params: Sequence[Any] | dict | None = None) -> pa.Table:
        """Run a query and return an Arrow table (the fast path, strings included)."""
        cur = self._con.cursor()
        try:
            return cur.sql(sql, params=params).to_arrow_table()
        finally:
            cur.close()

    def df(self, sql: str, params: Sequence[Any] | dict | None = None) -> pd.DataFrame:
        """Run a query and return a pandas DataFrame (through Arrow)."""
        return self.arrow(sql, params).to_pandas()

    def scalar(self, sql: str, params: Sequence[Any] | dict | None = None) -> Any:
        """Run a query and return the first column of its first row (None if no row)."""
        cur = self._con.cursor()
        try:
            row = cur.execute(sql, params).fetchone()
        finally:
            cur.close()
        return None if row is None else row[0]

    def tables(self) -> list[str]:
        """Names of the tables in the main schema."""
        return self.arrow(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = 'main' ORDER BY 1"
        ).column(0).to_pylist()

    # ------------------------------------------------------------------ writing
    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A write transaction on its own cursor; commits on success, rolls back on error.

        Writes are serialised by a process-wide lock so that a batch of the ingest and an
        officer's action never interleave half-way.
        """
        if self.read_only:
            raise PermissionError("this store is read-only")
        with self._write_lock:
            cur = self._con.cursor()
            cur.begin()
            try:
                yield cur
            except BaseException:
                cur.rollback()
                cur.close()
                raise
            cur.commit()
            cur.close()

    def execute(self, sql: str, params: Sequence[Any] | dict | None = None) -> list[tuple]:
        """Run one write statement in its own transaction and return its rows (if any)."""
        with self.transaction() as cur:
            return cur.execute(sql, params).fetchall()

    def insert(
        self,
        table: str,
        rows: pd.DataFrame | pa.Table,
        *,
        cur: duckdb.DuckDBPyConnection | None = None,
        or_ignore: bool = False,
    ) -> int:
        """Insert a batch (DataFrame or Arrow table) into ``table`` by column name.

        Never call this row by row: a batch of thousands costs about what one row does.
        """
        n = len(rows)
        if n == 0:
            return 0
        columns = ", ".join(f'"{c}"' for c in rows.columns if True) if isinstance(
            rows, pd.DataFrame) else ", ".join(f'"{c}"' for c in rows.column_names)
        verb = "INSERT OR IGNORE INTO" if or_ignore else "INSERT INTO"
        sql = f'{verb} "{table}" ({columns}) SELECT {columns} FROM __batch'
        if cur is not None:
            cur.register("__batch", rows)
            try:
                cur.execute(sql)
            finally:
                cur.unregister("__batch")
            return n
        with self.transaction() as tx:
            tx.register("__batch", rows)
            try:
                tx.execute(sql)
            finally:
                tx.unregister("__batch")
        return n

    def checkpoint(self) -> None:
        """Flush the WAL into the file (lets :meth:`snapshot` copy a compact file)."""
        with self._write_lock:
            self._con.execute("CHECKPOINT").fetchall()
