"""Read-only SQL for analysts: the query console's guard, runner and saved consoles.

A query is checked before it runs, with DuckDB's own parser (``extract_statements`` gives
each statement's type, ``json_serialize_sql`` the tree of a SELECT): only reading statements
pass. It then runs on its own cursor inside a ``BEGIN TRANSACTION READ ONLY`` that is always
rolled back, so even a writing function that slipped past the guard cannot change the store.
Rows are streamed and cut at ``row_limit``; a timer interrupts the cursor at ``time_limit_s``;
:meth:`QueryRunner.cancel` interrupts it on demand. Nothing here imports Panel.
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import duckdb
import param
import pyarrow as pa

from sources.store.store import Store

# Statement types that only read. EXPLAIN, PRAGMA and CALL are checked one by one below.
READ_TYPES = {duckdb.StatementType.SELECT}

# PRAGMAs (and their table-function twins for CALL) that only report; anything else — a
# setting (``PRAGMA threads=1`` parses as SET), ``IMPORT DATABASE`` and
# ``COPY FROM DATABASE`` (both parse as PRAGMA) — is refused.
READ_PRAGMAS = {
    "table_info", "show", "show_tables", "show_tables_expanded", "show_databases",
    "database_list", "database_size", "storage_info", "version", "platform", "functions",
    "collations", "metadata_info", "user_agent", "table_storage_info",
}

# Functions refused inside a SELECT: they read the server's files or environment, or
# change the state of the database or the session.
DENIED_FUNCTIONS = {
    "glob", "getenv", "read_text", "read_blob", "sniff_csv", "query", "query_table",
    "checkpoint", "force_checkpoint", "nextval", "setseed", "set_variable", "load_aws_credentials",
    "duckdb_secrets", "which_secret", "parquet_metadata", "parquet_schema",
    "parquet_file_metadata", "parquet_kv_metadata", "iceberg_scan", "delta_scan",
    "sqlite_scan", "sqlite_attach", "postgres_scan", "postgres_attach", "mysql_scan",
}
DENIED_PREFIXES = ("read_", "parquet_", "csv_", "json_scan", "http")


class QueryRefused(Exception):
    """A query the console will not run.

    Parameters
    ----------
    code : str
        Why, as a short code: ``empty``, ``multi``, ``write``, ``function``, ``file``.
        The view translates it (``console.refused.<code>``).
    detail : str
        What was refused (the statement type, the function or the file name).
    """

    def __init__(self, code: str, detail: str = ""):
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail


@dataclass
class QueryResult:
    """What a run gives back: an Arrow table or a reason, never an exception."""

    sql: str
    status: str = "ok"          # ok / refused / error / cancelled / timeout
    table: pa.Table | None = None
    truncated: bool = False     # more rows than the row limit existed
    elapsed_s: float = 0.0
    message: str = ""           # DuckDB's message (error) or the refusal's detail
    code: str = ""              # the refusal's code
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


# ---------------------------------------------------------------------- the guard
def _statement_text(stmt) -> str:
    return str(getattr(stmt, "query", "") or "").strip().rstrip(";").strip()


def _words(text: str) -> list[str]:
    return text.replace("(", " ( ").replace("=", " = ").split()


def _walk(node, functions: set[str], tables: set[str]) -> None:
    """Collect the function names and base-table names of a serialised SELECT tree."""
    if isinstance(node, dict):
        name = node.get("function_name")
        if isinstance(name, str):
            functions.add(name.lower())
        if node.get("type") == "BASE_TABLE" and isinstance(node.get("table_name"), str):
            tables.add(node["table_name"])
        for value in node.values():
            _walk(value, functions, tables)
    elif isinstance(node, list):
        for value in node:
            _walk(value, functions, tables)


def _check_select(con: duckdb.DuckDBPyConnection, text: str) -> None:
    tree = json.loads(con.execute("SELECT json_serialize_sql(?)", [text]).fetchone()[0])
    if tree.get("error"):
        return  # let DuckDB report the error when the query runs
    functions: set[str] = set()
    tables: set[str] = set()
    _walk(tree.get("statements", []), functions, tables)
    for fn in sorted(functions):
        if fn in DENIED_FUNCTIONS or fn.startswith(DENIED_PREFIXES):
            raise QueryRefused("function", fn)
    for name in sorted(tables):
        # a quoted path ('x.csv', '/etc/passwd', 'https://...') is a replacement scan
        if "/" in name or "\\" in name or ":" in name or "." in name:
            raise QueryRefused("file", name)


def check_read_only(sql: str, con: duckdb.DuckDBPyConnection | None = None) -> str:
    """Check that ``sql`` is one statement that only reads; return its text.

    Parameters
    ----------
    sql : str
        The query of a cell.
    con : duckdb.DuckDBPyConnection, optional
        A connection used to parse (any; an in-memory one by default).

    Raises
    ------
    QueryRefused
        When the query is empty, holds several statements, or would write, change a
        setting, attach, copy, import, export, install or load, or read server files.
    duckdb.ParserException
        When DuckDB cannot parse it (its message is shown at the cell).
    """
    parser = con if con is not None else duckdb.connect()
    try:
        try:
            statements = parser.extract_statements(sql)
        except ValueError as exc:  # a statement type the Python API does not know
            raise QueryRefused("write", str(exc)) from exc
        if not statements:
            raise QueryRefused("empty")
        if len(statements) > 1:
            raise QueryRefused("multi", str(len(statements)))
        stmt = statements[0]
        text = _statement_text(stmt)
        words = _words(text)
        head = words[0].upper() if words else ""
        kind = stmt.type
        if kind == duckdb.StatementType.EXPLAIN:
            rest = words[1:]
            if rest and rest[0].upper() in ("ANALYZE", "ANALYSE"):
                raise QueryRefused("write", "EXPLAIN ANALYZE")
            inner = text[len(words[0]):].strip()
            check_read_only(inner, parser)
            return text
        if kind == duckdb.StatementType.PRAGMA:
            name = words[1].lower() if head == "PRAGMA" and len(words) > 1 else ""
            if name not in READ_PRAGMAS:
                raise QueryRefused("write", " ".join(words[:3]) or "PRAGMA")
            return text
        if kind == duckdb.StatementType.CALL:
            name = words[1].lower() if head == "CALL" and len(words) > 1 else ""
            if not (name.startswith("pragma_") and name[len("pragma_"):] in READ_PRAGMAS):
                raise QueryRefused("write", " ".join(words[:2]) or "CALL")
            return text
        if kind not in READ_TYPES:
            raise QueryRefused("write", kind.name)
        _check_select(parser, text)
        return text
    finally:
        if con is None:
            parser.close()


# ---------------------------------------------------------------------- the runner
class QueryRunner(param.Parameterized):
    """Runs analysts' queries read-only, with a row limit, a time limit and cancel.

    One runner per page (or notebook); :meth:`run` may be called from a worker thread while
    :meth:`cancel` is called from another.
    """

    store = param.ClassSelector(class_=Store, doc="The store the queries read.")
    row_limit = param.Integer(default=10_000, bounds=(1, 5_000_000),
                              doc="At most this many rows come back; the result says if cut.")
    time_limit_s = param.Number(default=30.0, bounds=(0.1, 3600),
                                doc="A query still running after this many seconds is interrupted.")
    running = param.Integer(default=0, doc="Number of queries running now (read-only).")

    def __init__(self, **params):
        super().__init__(**params)
        self._lock = threading.Lock()
        self._active: dict[int, tuple[duckdb.DuckDBPyConnection, dict]] = {}
        self._next = 0

    def run(self, sql: str, *, row_limit: int | None = None,
            time_limit_s: float | None = None) -> QueryResult:
        """Run one read-only query and return its result (never raises for bad SQL).

        Parameters
        ----------
        sql : str
            One statement.
        row_limit, time_limit_s : optional
            Override the runner's limits for this run.
        """
        limit = int(row_limit or self.row_limit)
        timeout = float(time_limit_s or self.time_limit_s)
        started = time.perf_counter()
        result = QueryResult(sql=sql)
        cur = self.store.cursor()
        flags = {"cancelled": False, "timeout": False}
        with self._lock:
            token = self._next
            self._next += 1
            self._active[token] = (cur, flags)
            self.running = len(self._active)

        def on_timeout():
            flags["timeout"] = True
            cur.interrupt()

        timer = threading.Timer(timeout, on_timeout)
        timer.daemon = True
        try:
            text = check_read_only(sql, cur)
            cur.execute("BEGIN TRANSACTION READ ONLY")
            timer.start()
            if flags["cancelled"]:
                raise duckdb.InterruptException("cancelled before start")
            reader = cur.sql(text).to_arrow_reader(min(limit + 1, 65_536))
            batches, rows = [], 0
            try:
                for batch in reader:
                    batches.append(batch)
                    rows += batch.num_rows
                    if rows > limit:
                        break
            finally:
                reader.close()
            table = (pa.Table.from_batches(batches, schema=reader.schema)
                     if batches else reader.schema.empty_table())
            result.truncated = table.num_rows > limit
            result.table = table.slice(0, limit) if result.truncated else table
        except QueryRefused as exc:
            result.status, result.code, result.message = "refused", exc.code, exc.detail
        except duckdb.InterruptException as exc:
            result.status = ("cancelled" if flags["cancelled"]
                             else "timeout" if flags["timeout"] else "error")
            result.message = str(exc)
        except (duckdb.Error, ValueError, TypeError, pa.ArrowException) as exc:
            result.status, result.message = "error", str(exc)
            if flags["cancelled"] or flags["timeout"]:
                result.status = "cancelled" if flags["cancelled"] else "timeout"
        finally:
            timer.cancel()
            try:
                cur.execute("ROLLBACK")
            except duckdb.Error:
                pass  # no transaction was open (refused before BEGIN)
            cur.close()
            with self._lock:
                self._active.pop(token, None)
                self.running = len(self._active)
        result.elapsed_s = time.perf_counter() - started
        if result.status == "timeout":
            result.extra["time_limit_s"] = timeout
        return result

    def outlines(self) -> tuple[list[float], list[float]]:
        """City outlines (lon, lat, NaN between rings) to draw under map results; cached."""
        if getattr(self, "_outlines", None) is None:
            xs: list[float] = []
            ys: list[float] = []
            try:
                texts = self.store.arrow(
                    "SELECT geojson FROM boundaries WHERE level = 'city'").column(0).to_pylist()
            except duckdb.Error:  # a store without boundaries
                texts = []
            for text in texts:
                geom = json.loads(text)
                polys = geom["coordinates"] if geom["type"] == "MultiPolygon" else [geom["coordinates"]]
                for poly in polys:
                    for lon, lat in poly[0]:
                        xs.append(lon)
                        ys.append(lat)
                    xs.append(float("nan"))
                    ys.append(float("nan"))
            self._outlines = (xs, ys)
        return self._outlines

    def cancel(self) -> int:
        """Interrupt every query this runner is running; returns how many."""
        with self._lock:
            active = list(self._active.values())
        for cur, flags in active:
            flags["cancelled"] = True
            try:
                cur.interrupt()
            except duckdb.Error:
                pass
        return len(active)


# ---------------------------------------------------------------------- saved consoles
class SavedConsoles(param.Parameterized):
    """Named consoles (lists of cells) saved in the store's ``saved_consoles`` table.

    A cell is a dict ``{"sql": ..., "title": ...}``. A pinned console is shown, run, on the
    pinned-analyses dashboard (``/pinned``) and can be put on any page with
    ``views.query_console.PinnedConsole``.
    """

    store = param.ClassSelector(class_=Store, doc="The store that keeps the saved consoles.")

    def _exists(self) -> bool:
        return bool(self.store.scalar(
            "SELECT count(*) FROM information_schema.tables "
            "WHERE table_schema = 'main' AND table_name = 'saved_consoles'"))

    def names(self, *, pinned_only: bool = False) -> list[str]:
        """Names of the saved consoles (the pinned ones only, if asked), sorted."""
        if not self._exists():
            return []
        sql = "SELECT name FROM saved_consoles"
        if pinned_only:
            sql += " WHERE pinned"
        return self.store.arrow(sql + " ORDER BY name").column(0).to_pylist()

    def save(self, name: str, cells: list[dict], *, user: str | None = None,
             pinned: bool | None = None) -> None:
        """Save (or replace) a console; keeps its pin unless ``pinned`` is given."""
        name = name.strip()
        if not name:
            raise ValueError("a saved console needs a name")
        clean = [{"sql": str(c.get("sql", "")), "title": str(c.get("title", "") or "")}
                 for c in cells]
        with self.store.transaction() as cur:
            row = cur.execute("SELECT pinned FROM saved_consoles WHERE name = ?",
                              [name]).fetchone()
            keep = bool(row[0]) if row else False
            cur.execute("DELETE FROM saved_consoles WHERE name = ?", [name])
            cur.execute(
                "INSERT INTO saved_consoles (name, cells, pinned, saved_by, saved_at) "
                "VALUES (?, ?, ?, ?, now())",
                [name, json.dumps(clean, ensure_ascii=False),
                 keep if pinned is None else bool(pinned), user],
            )

    def load(self, name: str) -> list[dict]:
        """The cells of a saved console; KeyError if there is none of that name."""
        if not self._exists():
            raise KeyError(name)
        text = self.store.scalar("SELECT cells FROM saved_consoles WHERE name = ?", [name])
        if text is None:
            raise KeyError(name)
        return json.loads(text)

    def pin(self, name: str, pinned: bool = True) -> None:
        """Pin (or unpin) a saved console to the pinned-analyses dashboard."""
        with self.store.transaction() as cur:
            cur.execute("UPDATE saved_consoles SET pinned = ? WHERE name = ?", [pinned, name])

    def is_pinned(self, name: str) -> bool:
        """Whether the console ``name`` is pinned."""
        if not self._exists():
            return False
        return bool(self.store.scalar(
            "SELECT pinned FROM saved_consoles WHERE name = ?", [name]))

    def delete(self, name: str) -> None:
        """Delete a saved console."""
        with self.store.transaction() as cur:
            cur.execute("DELETE FROM saved_consoles WHERE name = ?", [name])
