"""The sandbox process of the query console: runs analysts' queries one at a time.

Started by :class:`sources.analysis.sandbox.Sandbox` as
``python -E -s -B sandbox_worker.py`` with an empty environment and an empty working folder;
it imports only ``duckdb``, ``pyarrow`` and :mod:`sql_guard` (never the project's packages,
nor the console's secrets: they are neither in its command line nor in its environment).

Before it reads any request it confines itself (OS limits, which it cannot raise again):
no core file, no file written (``RLIMIT_FSIZE`` 0), a bounded address space
(``RLIMIT_AS``), a bounded number of open files and a lower priority.
Each query then gets a DuckDB instance of its own, opened read-only on a snapshot of the
store and locked before the query is parsed: external access off, the local file system
disabled, no extension installed or loaded, no persistent secret, no temporary directory
(no spill files: a query that needs more than ``memory_limit`` fails), ``threads``,
``memory_limit`` and ``max_execution_time`` set, then ``lock_configuration`` so that nothing
can change them. Nothing a query does (a temporary table, a variable, an ``ATTACH
':memory:'``) outlives it: the instance is closed after each query. A CPU-time limit per
query (``RLIMIT_CPU``) backs up the engine's time limit.

Protocol: one JSON request per line on stdin; each answer on stdout is a 4-byte big-endian
length and a JSON header, then an 8-byte length and an Arrow IPC stream (empty if no table).
The process says ``{"ready": true}`` first, and exits at end of input.
"""
from __future__ import annotations

import json
import os
import resource
import signal
import struct
import sys
import time

import duckdb
import pyarrow as pa

if __package__:  # imported by the console (tests, constants)
    from .sql_guard import QueryRefused, check_read_only, engine_refusal
else:  # the sandbox process: a plain module beside this file
    from sql_guard import QueryRefused, check_read_only, engine_refusal  # type: ignore

#: Most rows per Arrow batch read from DuckDB (a batch that crosses the byte limit is cut
#: row-exactly; fewer, larger batches make large results cheaper to pass on).
BATCH_ROWS = 65_536
#: Deepest nesting of a result type that Arrow exports (its C data interface stops at 64;
#: DuckDB spends seconds finding that out for a list 600 deep).
MAX_TYPE_DEPTH = 64
#: Open files the process may hold (a snapshot, its WAL, Python's own).
MAX_OPEN_FILES = 256
#: Settings applied after opening, in this order (external access must go off before the
#: local file system is disabled, and the lock comes last).
LOCKDOWN = (
    "SET GLOBAL autoinstall_known_extensions = false",
    "SET GLOBAL autoload_known_extensions = false",
    "SET GLOBAL allow_community_extensions = false",
    "SET GLOBAL allow_unsigned_extensions = false",
    "SET GLOBAL allow_persistent_secrets = false",
    "SET GLOBAL enable_external_access = false",
    "SET GLOBAL disabled_filesystems = 'LocalFileSystem'",
    "SET GLOBAL lock_configuration = true",
)


def confine(*, address_space: int, nice: int) -> None:
    """Apply the OS limits of the sandbox to this process (soft and hard: for good).

    No parent-death signal: Linux ties it to the thread that started the process, and the
    console starts sandboxes from short-lived worker threads. The process ends instead at
    end of input (the console's end of the pipe closes when it exits), or, inside a query,
    when the query's time limit stops it and the answer meets the closed pipe.
    """
    if nice:
        os.nice(nice)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (MAX_OPEN_FILES, MAX_OPEN_FILES))
    if address_space:
        resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))


def cpu_budget(seconds: float) -> None:
    """Let the next query use ``seconds`` more CPU time; past it the kernel stops the process
    (SIGXCPU). Only the soft limit moves: the hard one stays where the console left it."""
    used = resource.getrusage(resource.RUSAGE_SELF)
    spent = used.ru_utime + used.ru_stime
    _soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
    want = int(spent + seconds) + 1
    if hard != resource.RLIM_INFINITY:
        want = min(want, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (want, hard))


def open_database(req: dict) -> duckdb.DuckDBPyConnection:
    """A new DuckDB instance on ``req['db']``, read-only and locked down."""
    config = {"threads": int(req["threads"]), "memory_limit": str(req["memory_limit"]),
              "temp_directory": "",
              "max_execution_time": max(1, int(float(req["time_limit_s"]) * 1000))}
    con = duckdb.connect(req["db"], read_only=True, config=config)
    try:
        if req.get("timezone"):  # results as the console shows them (ICU is built in)
            con.execute("SET GLOBAL TimeZone = ?", [str(req["timezone"])]).fetchall()
        for statement in LOCKDOWN:
            con.execute(statement).fetchall()
    except BaseException:
        con.close()
        raise
    return con


def _key(req: dict) -> tuple:
    return tuple(req.get(k) for k in ("db", "threads", "memory_limit", "time_limit_s",
                                      "timezone"))


def collect(reader: pa.RecordBatchReader, row_limit: int, byte_limit: int
            ) -> tuple[list[pa.RecordBatch], str, int]:
    """Read batches up to ``row_limit`` rows and ``byte_limit`` bytes.

    Returns the batches, what cut them (``''``, ``'rows'`` or ``'bytes'``) and their bytes.
    A batch that crosses a limit is sliced; one more batch is read past an exact row limit
    to know whether more rows existed.
    """
    batches: list[pa.RecordBatch] = []
    rows = size = 0
    cut = ""
    for batch in reader:
        if batch.num_rows == 0:
            continue
        if rows >= row_limit:
            cut = "rows"
            break
        if rows + batch.num_rows > row_limit:
            batch, cut = batch.slice(0, row_limit - rows), "rows"
        if size + batch.nbytes > byte_limit:
            room = byte_limit - size
            lo, hi = 0, batch.num_rows  # the most rows whose slice fits: binary search
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if batch.slice(0, mid).nbytes <= room:
                    lo = mid
                else:
                    hi = mid - 1
            batch, cut = batch.slice(0, lo), "bytes"
        if batch.num_rows:
            batches.append(batch)
            rows += batch.num_rows
            size += batch.nbytes
        if cut:
            break
    return batches, cut, size


def type_depth(type_text: str) -> int:
    """An upper bound of how deeply a DuckDB type nests, from its text: parentheses
    (``STRUCT(...)``, ``MAP(...)``) and list brackets (``INTEGER[][]``) each add a level."""
    depth = deepest = 0
    for ch in type_text:
        if ch == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif ch == ")":
            depth -= 1
    return 1 + deepest + type_text.count("[")


def run_query(req: dict, con: duckdb.DuckDBPyConnection | None) -> tuple[dict, pa.Buffer]:
    """Run one request; the header and the Arrow IPC bytes of its answer. Never raises."""
    started = time.perf_counter()
    head: dict = {"id": req.get("id"), "status": "ok", "code": "", "message": ""}
    payload = pa.py_buffer(b"")
    try:
        if con is None:
            con = open_database(req)
        cpu_budget(float(req["time_limit_s"]) * max(1, int(req["threads"])) + 2)
        sql = str(req["sql"])
        text = check_read_only(sql, con) if req.get("guard", True) else sql
        relation = con.sql(text)
        if relation is None:  # a statement without a result (only without the guard)
            table = pa.table({})
            cut, size = "", 0
        else:
            depth = max((type_depth(str(t)) for t in relation.types), default=0)
            if depth > MAX_TYPE_DEPTH:
                raise QueryRefused("depth", f"{depth} > {MAX_TYPE_DEPTH}")
            reader = relation.to_arrow_reader(min(int(req["row_limit"]) + 1, BATCH_ROWS))
            try:
                batches, cut, size = collect(reader, int(req["row_limit"]),
                                             int(req["byte_limit"]))
                schema = reader.schema
            finally:
                reader.close()
            table = pa.Table.from_batches(batches, schema=schema)
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        payload = sink.getvalue()
        head.update(rows=table.num_rows, cut=cut, bytes=size)
    except QueryRefused as exc:
        head.update(status="refused", code=exc.code, message=exc.detail)
    except duckdb.InterruptException as exc:  # max_execution_time
        head.update(status="timeout", message=str(exc))
    except Exception as exc:  # noqa: BLE001 - any failure is the query's answer, not a crash
        code = engine_refusal(exc)
        message = str(exc) if isinstance(exc, duckdb.Error) else f"{type(exc).__name__}: {exc}"
        head.update(status="refused" if code else "error", code=code or "", message=message)
    finally:
        if con is not None:
            try:
                con.close()
            except duckdb.Error:
                pass
    head["elapsed_s"] = time.perf_counter() - started
    return head, payload


def address_space() -> int:
    """Bytes of address space the process holds now (DuckDB's and Arrow's allocators keep
    freed memory mapped: the console replaces a process that holds too much)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def send(out, head: dict, payload: pa.Buffer | bytes = b"") -> None:
    data = json.dumps(head, ensure_ascii=True, default=str).encode()
    size = len(payload)
    out.write(struct.pack(">I", len(data)) + data + struct.pack(">Q", size))
    if size:
        out.write(memoryview(payload))
    out.flush()


def main() -> None:
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed by a library goes to stderr, never into the answers
    settings = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    confine(address_space=int(settings.get("address_space", 0)),
            nice=int(settings.get("nice", 0)))
    send(out, {"ready": True, "pid": os.getpid()})
    prepared: tuple[tuple, duckdb.DuckDBPyConnection] | None = None
    stdin = sys.stdin.buffer
    while True:
        line = stdin.readline()
        if not line:
            return
        try:
            req = json.loads(line)
        except ValueError as exc:
            send(out, {"status": "error", "message": f"bad request: {exc}"})
            continue
        con = None
        if prepared is not None:
            key, ready = prepared
            prepared = None
            if key == _key(req):
                con = ready
            else:
                ready.close()
        head, payload = run_query(req, con)
        head["address_space"] = address_space()
        send(out, head, payload)
        del payload
        cpu_budget(30)  # for opening the next instance; each query sets its own budget
        # Open the next query's instance now, while the console shows this answer: the
        # next query on the same snapshot with the same limits starts at once.
        try:
            prepared = (_key(req), open_database(req))
        except (duckdb.Error, MemoryError):
            prepared = None


if __name__ == "__main__":
    main()
