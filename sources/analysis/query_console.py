"""Read-only SQL for analysts: the query console's runner and saved consoles.

A cell's query never runs in the console process. :class:`QueryRunner` sends it to a
sandbox process (:mod:`sources.analysis.sandbox`) that opens a consistent snapshot of the
store read-only, in a DuckDB instance of its own that is locked down before the query is
parsed (no file system, no extension, no setting change, no write; memory, thread and time
limits) and under OS limits (address space, CPU time, no file written). The statement check
of :mod:`sources.analysis.sql_guard` still runs first, in the sandbox, for the clear message.

The store the console writes is live; a query reads the newest snapshot, written first when
the newest is older than ``max_age_s`` (the result says when it was taken). A read-only
store (a notebook's) is read as it is. Rows are cut at ``row_limit`` and bytes at
``byte_limit`` (the result says which); :meth:`QueryRunner.run` never raises. Nothing here
imports Panel.
"""
from __future__ import annotations

import json
import logging
import shutil
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import duckdb
import param
import pyarrow as pa

from sources import geo
from sources.analysis.sandbox import Sandbox, Ticket
from sources.analysis.sql_guard import (
    DENIED_FUNCTIONS,
    DENIED_PREFIXES,
    MAX_SQL_CHARS,
    READ_PRAGMAS,
    READ_TYPES,
    REFUSAL_CODES,
    QueryRefused,
    check_read_only,
)
from sources.store.snapshot import (
    BUSY_FACTOR,
    list_snapshots,
    snapshot_dir,
    snapshot_time,
    write_snapshot,
)
from sources.store.store import Store

log = logging.getLogger(__name__)

__all__ = ["DENIED_FUNCTIONS", "DENIED_PREFIXES", "READ_PRAGMAS", "READ_TYPES", "REFUSAL_CODES",
           "QueryRefused", "QueryResult", "QueryRunner", "SavedConsoleRefused", "SavedConsoles",
           "check_read_only"]


@dataclass
class QueryResult:
    """What a run gives back: an Arrow table or a reason, never an exception."""

    sql: str
    status: str = "ok"          # ok / refused / error / cancelled / timeout
    table: pa.Table | None = None
    truncated: bool = False     # more existed than came back (row or byte limit)
    cut: str = ""               # what cut it: 'rows' or 'bytes'
    elapsed_s: float = 0.0
    message: str = ""           # DuckDB's message (error) or the refusal's detail
    code: str = ""              # the refusal's code (sql_guard.REFUSAL_CODES)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


# ---------------------------------------------------------------------- the runner
class QueryRunner(param.Parameterized):
    """Runs analysts' queries in the sandbox, with row, byte and time limits and cancel.

    One runner per page (or notebook); :meth:`run` may be called from a worker thread while
    :meth:`cancel` is called from another.
    """

    store = param.ClassSelector(class_=Store, doc="The store the queries read.")
    row_limit = param.Integer(default=10_000, bounds=(1, 5_000_000),
                              doc="At most this many rows come back; the result says if cut.")
    byte_limit = param.Integer(default=64 * 2**20, bounds=(1024, 2**30),
                               doc="At most this many bytes of result (Arrow) come back; the "
                                   "result says if cut.")
    time_limit_s = param.Number(default=30.0, bounds=(0.1, 3600),
                                doc="A query still running after this many seconds is stopped.")
    max_age_s = param.Number(default=60.0, bounds=(0, None),
                             doc="On a live store a query reads a snapshot at most this old "
                                 "(or BUSY_FACTOR times the last snapshot's duration): an older "
                                 "one is replaced first.")
    guard = param.Boolean(default=True,
                          doc="Check each statement with the parser first, for a clear message. "
                              "The sandbox enforces the same either way (tests turn it off).")
    sandbox = param.ClassSelector(class_=Sandbox, default=None, allow_None=True,
                                  doc="The sandbox processes to run in (the console's); "
                                      "Sandbox.shared() when None.")
    snapshots = param.Parameter(default=None,
                                doc="The console's SnapshotWriter: snapshots for queries are "
                                    "written through it, one at a time (optional).")
    running = param.Integer(default=0, doc="Number of queries running now (read-only).")
    on_run = param.Callable(default=None, allow_None=True,
                            doc="Called ``on_run(sql, result)`` after every query (the page's "
                                "audit: every console query is recorded).")

    # one snapshot refresh at a time in the process; how long the last took, by folder
    _refresh_lock: ClassVar[threading.Lock] = threading.Lock()
    _refresh_took: ClassVar[dict[str, float]] = {}

    def __init__(self, **params):
        super().__init__(**params)
        self._lock = threading.Lock()
        self._active: dict[int, Ticket] = {}
        self._next = 0
        self._timezone: str | None = None
        self._private_dir: str | None = None

    # ------------------------------------------------------------------ what to read
    def _memory_dir(self) -> Path:
        if self._private_dir is None:
            self._private_dir = tempfile.mkdtemp(prefix="console-memory-snapshots-")
            weakref.finalize(self, shutil.rmtree, self._private_dir, True)
        return Path(self._private_dir)

    def database(self) -> tuple[Path, datetime | None]:
        """The file the sandbox reads and when it was taken (None: the store's own file).

        A read-only store is read as it is. A writable store (the console's live one, or an
        in-memory one) is read through its newest snapshot, written now when there is none
        or it is older than ``max_age_s``.
        """
        store = self.store
        if store.read_only and store.path != ":memory:":
            return Path(store.path), None
        if store.path == ":memory:":
            folder, base = self._memory_dir(), "memory.duckdb"
        else:
            folder, base = snapshot_dir(store.path), store.path
        newest = self._newest(base, folder)
        if newest is None or self._stale(newest, folder):
            with self._refresh_lock:
                newest = self._newest(base, folder)  # another query may have just written one
                if newest is None or self._stale(newest, folder):
                    started = time.perf_counter()
                    writer = self.snapshots
                    if writer is not None and store.path != ":memory:":
                        newest = Path(writer.write())
                    else:
                        newest = write_snapshot(store, folder)
                    self._refresh_took[str(folder)] = time.perf_counter() - started
        return newest, snapshot_time(newest)

    @staticmethod
    def _newest(base, folder: Path) -> Path | None:
        found = list_snapshots(base, folder)
        return found[-1] if found else None

    def _stale(self, path: Path, folder: Path) -> bool:
        taken = snapshot_time(path)
        if taken is None:
            return True
        age = (datetime.now(UTC) - taken).total_seconds()
        return age > max(self.max_age_s, BUSY_FACTOR * self._refresh_took.get(str(folder), 0.0))

    def _zone(self) -> str:
        if self._timezone is None:
            try:
                self._timezone = str(self.store.scalar("SELECT current_setting('TimeZone')"))
            except duckdb.Error:
                self._timezone = ""
        return self._timezone

    # ------------------------------------------------------------------ running
    def run(self, sql: str, *, row_limit: int | None = None, time_limit_s: float | None = None,
            byte_limit: int | None = None) -> QueryResult:
        """Run one read-only query in the sandbox and return its result (never raises).

        Parameters
        ----------
        sql : str
            One statement.
        row_limit, time_limit_s, byte_limit : optional
            Override the runner's limits for this run.
        """
        started = time.perf_counter()
        ticket = Ticket()
        with self._lock:
            token = self._next
            self._next += 1
            self._active[token] = ticket
            self.running = len(self._active)
        try:
            result = self._run(sql, ticket, int(row_limit or self.row_limit),
                               float(time_limit_s or self.time_limit_s),
                               int(byte_limit or self.byte_limit))
        except Exception as exc:  # noqa: BLE001 - documented never to raise: say what broke
            result = QueryResult(sql=str(sql), status="error",
                                 message=f"{type(exc).__name__}: {exc}")
        finally:
            with self._lock:
                self._active.pop(token, None)
                self.running = len(self._active)
        result.elapsed_s = time.perf_counter() - started
        if self.on_run is not None:
            try:
                self.on_run(sql, result)
            except Exception:  # noqa: BLE001 - a failing record must not lose the answer
                log.exception("console query hook")
        return result

    def _run(self, sql: str, ticket: Ticket, limit: int, timeout: float,
             byte_limit: int) -> QueryResult:
        result = QueryResult(sql=str(sql) if isinstance(sql, str) else repr(sql))
        if not isinstance(sql, str):
            result.status, result.code = "refused", "empty"
            return result
        if len(sql) > MAX_SQL_CHARS:  # not even sent to the sandbox
            result.status, result.code = "refused", "too_long"
            result.message = f"{len(sql):,} > {MAX_SQL_CHARS:,}"
            return result
        try:
            db, taken = self.database()
        except (duckdb.Error, OSError, ValueError) as exc:
            result.status, result.code, result.message = "refused", "no_data", str(exc)
            return result
        request = {"sql": sql, "db": str(db), "row_limit": limit, "timezone": self._zone(),
                   "guard": bool(self.guard)}
        answer = self.sandbox_or_shared().run(request, time_limit_s=timeout,
                                              byte_limit=byte_limit, ticket=ticket)
        if taken is not None and answer.status == "error" and not db.exists():
            # the snapshot was replaced and deleted between choosing and opening: once more
            db, taken = self.database()
            request["db"] = str(db)
            answer = self.sandbox_or_shared().run(request, time_limit_s=timeout,
                                                  byte_limit=byte_limit, ticket=ticket)
        result.status, result.code, result.message = answer.status, answer.code, answer.message
        if ticket.cancelled and answer.status != "ok":
            result.status = "cancelled"
        if answer.status == "ok" and answer.table is not None:
            result.table = answer.table
            result.truncated, result.cut = bool(answer.cut), answer.cut
            result.extra["bytes"] = answer.bytes
        if result.cut == "bytes":
            result.extra["byte_limit"] = byte_limit
        if result.status == "timeout":
            result.extra["time_limit_s"] = timeout
        if taken is not None:
            result.extra["as_of"] = taken
        return result

    def sandbox_or_shared(self) -> Sandbox:
        """The sandbox this runner uses."""
        return self.sandbox if self.sandbox is not None else Sandbox.shared()

    def outlines(self) -> tuple[list[float], list[float]]:
        """City outlines (lon, lat, NaN between rings) to draw under map results; cached."""
        if getattr(self, "_outlines", None) is None:
            try:
                texts = self.store.arrow(
                    "SELECT geojson FROM boundaries WHERE level = 'city'").column(0).to_pylist()
            except duckdb.Error:  # a store without boundaries
                texts = []
            xs, ys = geo.rings_xy(ring for text in texts for ring in geo.rings(text))
            xs, ys = xs.tolist(), ys.tolist()
            self._outlines = (xs, ys)
        return self._outlines

    def cancel(self) -> int:
        """Interrupt every query this runner is running; returns how many."""
        with self._lock:
            active = list(self._active.values())
        for ticket in active:
            ticket.cancel()  # kills its sandbox process: the answer is 'cancelled' at once
        return len(active)


# ---------------------------------------------------------------------- saved consoles
class SavedConsoleRefused(PermissionError):
    """A change to a saved console that the caller may not make.

    Parameters
    ----------
    code : str
        ``not_owner`` (overwrite or delete someone else's), ``pin_right`` (pin or unpin
        without the pin right), ``pinned`` (change a pinned console without the pin right).
        The view translates ``console.refused.<code>``.
    name : str
        The saved console.
    """

    def __init__(self, code: str, name: str):
        super().__init__(f"{code}: {name}")
        self.code = code
        self.name = name


class SavedConsoles(param.Parameterized):
    """Named consoles (lists of cells) saved in the store's ``saved_consoles`` table.

    A cell is a dict ``{"sql": ..., "title": ...}``. A pinned console is shown, run, on the
    pinned-analyses dashboard (``/pinned``) and can be put on any page with
    ``views.query_console.PinnedConsole``: it runs for every viewer, hence the rules.

    - The user who first saves a name owns it (``owner``). Only the owner or an administrator
      overwrites or deletes it; anyone may open it and save it under another name. A console
      saved before owners were recorded has none: only an administrator changes it.
    - Only a caller with the pin right pins or unpins, and changing a pinned console needs the
      pin right too (else what the pinner vetted would run changed for every viewer); its
      owner may still delete it or unpin it.
    - ``is_admin`` holds every right.

    Each refusal is a :class:`SavedConsoleRefused` (a ``PermissionError``) with a code.
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

    def owner(self, name: str) -> str | None:
        """Who owns the console ``name`` (None: no such console, or saved before owners)."""
        if not self._exists():
            return None
        try:
            return self.store.scalar("SELECT owner FROM saved_consoles WHERE name = ?", [name])
        except duckdb.BinderException:  # a read-only snapshot from before the column
            return None

    @staticmethod
    def _row(cur, name: str) -> tuple[bool, str | None] | None:
        row = cur.execute("SELECT pinned, owner FROM saved_consoles WHERE name = ?",
                          [name]).fetchone()
        return None if row is None else (bool(row[0]), row[1])

    def save(self, name: str, cells: list[dict], *, user: str, can_pin: bool = False,
             is_admin: bool = False, pinned: bool | None = None) -> None:
        """Save a new console, or replace one the caller may change; keeps its pin and owner.

        Parameters
        ----------
        name : str
            The console's name.
        cells : list of dict
            ``{"sql", "title"}`` each.
        user : str
            Who saves (the owner of a new console).
        can_pin : bool
            The caller holds the pin right (needed to change a pinned console, or to pass
            ``pinned``).
        is_admin : bool
            The caller is an administrator (every right).
        pinned : bool, optional
            Pin or unpin at the same time (needs the pin right).

        Raises
        ------
        ValueError
            No name.
        SavedConsoleRefused
            ``not_owner``, ``pinned`` or ``pin_right``.
        PermissionError
            The store is read-only.
        """
        name = name.strip()
        if not name:
            raise ValueError("a saved console needs a name")
        may_pin = bool(can_pin or is_admin)
        if pinned is not None and not may_pin:
            raise SavedConsoleRefused("pin_right", name)
        clean = [{"sql": str(c.get("sql", "")), "title": str(c.get("title", "") or "")}
                 for c in cells]
        user = str(user or "")
        with self.store.transaction() as cur:
            row = self._row(cur, name)
            owner = user
            keep = False
            if row is not None:
                keep, owner = row
                if not is_admin and (owner is None or owner != user):
                    raise SavedConsoleRefused("not_owner", name)
                if keep and not may_pin:
                    raise SavedConsoleRefused("pinned", name)
            cur.execute("DELETE FROM saved_consoles WHERE name = ?", [name])
            cur.execute(
                "INSERT INTO saved_consoles (name, cells, pinned, saved_by, saved_at, owner) "
                "VALUES (?, ?, ?, ?, now(), ?)",
                [name, json.dumps(clean, ensure_ascii=False),
                 keep if pinned is None else bool(pinned), user, owner],
            )

    def load(self, name: str) -> list[dict]:
        """The cells of a saved console; KeyError if there is none of that name."""
        if not self._exists():
            raise KeyError(name)
        text = self.store.scalar("SELECT cells FROM saved_consoles WHERE name = ?", [name])
        if text is None:
            raise KeyError(name)
        return json.loads(text)

    def pin(self, name: str, pinned: bool = True, *, user: str, can_pin: bool,
            is_admin: bool = False) -> None:
        """Pin (or unpin) a saved console to the pinned-analyses dashboard.

        Pinning needs the pin right; unpinning needs it too, or to own the console.
        KeyError if there is no console ``name``; :class:`SavedConsoleRefused` (``pin_right``)
        if the caller may not.
        """
        with self.store.transaction() as cur:
            row = self._row(cur, name)
            if row is None:
                raise KeyError(name)
            owns = row[1] is not None and row[1] == str(user or "")
            if not (can_pin or is_admin or (not pinned and owns)):
                raise SavedConsoleRefused("pin_right", name)
            cur.execute("UPDATE saved_consoles SET pinned = ? WHERE name = ?", [pinned, name])

    def is_pinned(self, name: str) -> bool:
        """Whether the console ``name`` is pinned."""
        if not self._exists():
            return False
        return bool(self.store.scalar(
            "SELECT pinned FROM saved_consoles WHERE name = ?", [name]))

    def delete(self, name: str, *, user: str, is_admin: bool = False) -> None:
        """Delete a saved console (its owner or an administrator); nothing if there is none."""
        with self.store.transaction() as cur:
            row = self._row(cur, name)
            if row is None:
                return
            if not is_admin and (row[1] is None or row[1] != str(user or "")):
                raise SavedConsoleRefused("not_owner", name)
            cur.execute("DELETE FROM saved_consoles WHERE name = ?", [name])
