"""The query console's statement check and its refusal codes (defence in depth, clear messages).

The console's queries run in a sandbox process whose DuckDB is locked down
(:mod:`sources.analysis.sandbox_worker`): that is what enforces read-only, no files, no
extensions, no setting changes. This module only gives the clear message first: it parses a
cell with DuckDB's own parser (``extract_statements`` for the statement type,
``json_serialize_sql`` for the tree of a SELECT) and names what it refuses. It reads the
serialised tree with regular expressions over the JSON text, never by recursion, so a query
nested 600 deep is checked like any other (``json.loads`` of that tree once raised
``RecursionError`` out of the runner).

Imports only ``duckdb``, ``json`` and ``re``: the sandbox process loads it as a plain module.
"""
from __future__ import annotations

import json
import re

import duckdb

#: Every refusal code; the view translates ``console.refused.<code>`` (tested complete).
REFUSAL_CODES = (
    "empty",      # no statement
    "multi",      # more than one statement
    "too_long",   # the SQL text is longer than the console accepts
    "write",      # a statement that writes or changes the session or database
    "setting",    # a setting change (SET, RESET, PRAGMA x=, enable_logging(), ...)
    "function",   # a function the console does not offer
    "file",       # reading or writing a file of the server
    "extension",  # INSTALL / LOAD of an extension
    "depth",      # nested deeper than the parser allows
    "memory",     # needs more memory than the sandbox has
    "busy",       # every sandbox process is busy
    "sandbox",    # the sandbox process stopped (crashed); nothing else was affected
    "no_data",    # no snapshot of the store could be opened
    # saved consoles (sources.analysis.query_console.SavedConsoles)
    "not_owner",  # overwriting or deleting someone else's saved console
    "pin_right",  # pinning without the pin right
    "pinned",     # changing a pinned console without the pin right
)

#: Longest SQL text a cell may hold (characters).
MAX_SQL_CHARS = 100_000

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

# Functions refused inside a SELECT, for a clear message: they read the server's files or
# environment, run a string as SQL, or change the state of the database or the process.
# (The sandbox refuses them anyway: this list only names them.)
DENIED_FUNCTIONS = {
    "glob", "getenv", "read_text", "read_blob", "sniff_csv", "query", "query_table",
    "json_execute_serialized_sql", "checkpoint", "force_checkpoint", "nextval", "setseed",
    "set_variable", "load_aws_credentials", "duckdb_secrets", "which_secret",
    "enable_logging", "disable_logging", "truncate_duckdb_logs", "enable_profiling",
    "disable_profiling", "add_grammar_extension", "remove_grammar_extension",
    "create_external_resource", "destroy_external_resource", "register_external_resource",
    "deregister_external_resource", "register_external_resource_type", "arrow_scan",
    "arrow_scan_dumb", "python_arrow_scan", "pandas_scan", "python_map_function",
    "iceberg_scan", "delta_scan", "sqlite_scan", "sqlite_attach", "postgres_scan",
    "postgres_attach", "mysql_scan", "sql_auto_complete",
}
DENIED_PREFIXES = ("read_", "parquet_", "csv_", "json_scan", "http", "duckdb_log")

# In the JSON text of a serialised tree: a key and its string value. DuckDB escapes quotes in
# values, so a string literal of the query cannot fake a key.
_FUNCTION = re.compile(r'"function_name":"((?:[^"\\]|\\.)*)"')
_TABLE = re.compile(r'"table_name":"((?:[^"\\]|\\.)*)"')


class QueryRefused(Exception):
    """A query the console will not run.

    Parameters
    ----------
    code : str
        Why, one of :data:`REFUSAL_CODES`. The view translates it
        (``console.refused.<code>``).
    detail : str
        What was refused (the statement type, the function or the file name).
    """

    def __init__(self, code: str, detail: str = ""):
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail


def _statement_text(stmt) -> str:
    return str(getattr(stmt, "query", "") or "").strip().rstrip(";").strip()


def _words(text: str) -> list[str]:
    return text.replace("(", " ( ").replace("=", " = ").split()


def _json_string(raw: str) -> str:
    try:
        return json.loads(f'"{raw}"')
    except ValueError:
        return raw


def _check_select(con: duckdb.DuckDBPyConnection, text: str) -> None:
    tree = con.execute("SELECT json_serialize_sql(?)", [text]).fetchall()[0][0]
    if tree.startswith('{"error":true'):
        return  # let DuckDB report the error when the query runs
    for fn in sorted({_json_string(m).lower() for m in _FUNCTION.findall(tree)}):
        if fn in DENIED_FUNCTIONS or fn.startswith(DENIED_PREFIXES):
            raise QueryRefused("function", fn)
    for name in sorted({_json_string(m) for m in _TABLE.findall(tree)}):
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
        When the query is empty, too long, holds several statements, or would write, change
        a setting, attach, copy, import, export, install or load, or read server files.
    duckdb.ParserException
        When DuckDB cannot parse it (its message is shown at the cell).
    """
    if len(sql) > MAX_SQL_CHARS:
        raise QueryRefused("too_long", f"{len(sql):,} > {MAX_SQL_CHARS:,}")
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
                # IMPORT DATABASE and COPY FROM DATABASE parse as PRAGMA too
                raise QueryRefused("setting" if head == "PRAGMA" else "write",
                                   " ".join(words[:3]) or "PRAGMA")
            return text
        if kind == duckdb.StatementType.CALL:
            name = words[1].lower() if head == "CALL" and len(words) > 1 else ""
            if not (name.startswith("pragma_") and name[len("pragma_"):] in READ_PRAGMAS):
                raise QueryRefused("write", " ".join(words[:2]) or "CALL")
            return text
        if kind == duckdb.StatementType.SET:  # SET, RESET, USE, PRAGMA x = y, SET VARIABLE
            raise QueryRefused("setting", " ".join(words[:4]))
        if kind == duckdb.StatementType.LOAD:  # INSTALL, FORCE INSTALL, LOAD
            raise QueryRefused("extension", " ".join(words[:3]))
        if kind not in READ_TYPES:
            raise QueryRefused("write", kind.name)
        _check_select(parser, text)
        return text
    finally:
        if con is None:
            parser.close()


# What the locked-down engine says, as a refusal code (the guard may be off, or miss one).
_ENGINE_REFUSALS = (
    ("out of memory", "memory"),
    ("file system operations are disabled", "file"),
    ("file system localfilesystem has been disabled", "file"),
    ("loading external extensions is disabled", "extension"),
    ("the configuration has been locked", "setting"),
    ("has been disabled by configuration", "setting"),
    ("read-only mode", "write"),
    ("max expression depth", "depth"),
    ("maximum recursion depth", "depth"),
    ("recursion level in arrowschema", "depth"),
)


def engine_refusal(exc: BaseException) -> str | None:
    """The refusal code for an error the locked-down engine (or Arrow, or Python) raised,
    or None for a plain error of the query (DuckDB's message is then shown as it is)."""
    if isinstance(exc, duckdb.OutOfMemoryException | MemoryError):
        return "memory"
    if isinstance(exc, RecursionError):
        return "depth"
    text = str(exc).lower()
    for needle, code in _ENGINE_REFUSALS:
        if needle in text:
            return code
    if isinstance(exc, duckdb.PermissionException):
        return "file"
    return None
