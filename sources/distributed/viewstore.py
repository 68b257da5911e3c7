"""The view store of a distributed process, and the hub that publishes after its commits.

A :class:`ViewStore` is a :class:`~sources.store.store.Store` whose writes come from the
event log. :meth:`ViewStore.applying` opens one transaction for one event: every
``transaction()`` the existing source code opens inside it joins that transaction, so an
event, its effects and the log position are committed together (a process killed in
between replays the event from its position; nothing is applied twice). A
:meth:`ViewStore.dry_run` runs an action's own code in a transaction that is always rolled
back, to tell an officer at once why it would be refused.

Outside both, a write is refused with :class:`NotReplicated` — unless it comes from a
module whose writes are the process's own business (audit trail, readings retention,
saved analyst consoles): a write that is not an event would make this process's view
diverge from every other's, silently. That is the guard behind the README's list of
actions not replicated yet.
"""
from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb

from sources.hub import Hub
from sources.inventory.common import InventoryError
from sources.store.store import SCHEMA_PATH, Store

#: Modules whose writes stay local to the process (not events): checked by caller.
LOCAL_WRITERS = ("sources.access.audit", "sources.store.retention",
                 "sources.analysis.query_console")
_SKIP = ("sources.store.store", "sources.distributed.viewstore", "contextlib")

POSITION_DDL = """
CREATE TABLE IF NOT EXISTS log_positions (stream VARCHAR PRIMARY KEY, seq BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS log_subjects (
    subject VARCHAR PRIMARY KEY, msg_id VARCHAR, seq BIGINT NOT NULL);
"""


class NotReplicated(InventoryError):
    """An action that distributed mode does not replicate yet: refused, nothing written.

    An :class:`~sources.inventory.common.InventoryError` (a ``ValueError`` with ``key`` and
    ``fmt``), so the pages that show refused actions show this one too.
    """

    def __init__(self, what: str):
        super().__init__("distributed.not_replicated",
                         "{what}: not replicated in distributed mode yet (分布式模式暂不支持此操作); "
                         "nothing was written", what=what)


class _Scope(threading.local):
    mode: str | None = None  # None, "apply" or "dry"
    cursor: duckdb.DuckDBPyConnection | None = None
    published: list | None = None


SCOPE = _Scope()


def inside() -> str | None:
    """``"apply"`` or ``"dry"`` when this thread is applying an event or trying an action."""
    return SCOPE.mode


class ViewStore(Store):
    """A store written only by applying the event log (see the module docstring)."""

    def apply_schema(self) -> None:
        """The console's schema, and the tables of the view's position in the log."""
        with Store.transaction(self) as cur:
            cur.execute(SCHEMA_PATH.read_text(encoding="utf-8"))
            cur.execute(POSITION_DDL)

    # ------------------------------------------------------------------ scopes
    @contextmanager
    def applying(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One event's transaction: joined by every ``transaction()`` inside; the hub's
        publications made inside go out after the commit (none if it rolls back)."""
        with self._scope("apply") as cur:
            yield cur

    @contextmanager
    def dry_run(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Run an action's own code against the current view and roll it all back."""
        with self._scope("dry") as cur:
            yield cur

    @contextmanager
    def _scope(self, mode: str):
        if SCOPE.mode is not None:
            raise RuntimeError("an event's transaction is already open in this thread")
        with self._write_lock:
            cur = self._con.cursor()
            cur.begin()
            SCOPE.mode, SCOPE.cursor, SCOPE.published = mode, cur, []
            try:
                yield cur
                if mode == "apply":
                    cur.commit()
                else:
                    cur.rollback()
            except BaseException:
                try:
                    cur.rollback()
                except duckdb.Error:
                    pass
                SCOPE.published = []
                raise
            finally:
                published = SCOPE.published if mode == "apply" else []
                SCOPE.mode, SCOPE.cursor, SCOPE.published = None, None, None
                cur.close()
        for hub, topic, payload in published or ():
            Hub.publish(hub, topic, payload)

    # ------------------------------------------------------------------ writes
    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        if SCOPE.mode is not None:
            yield SCOPE.cursor  # joined: committed or rolled back with the event
            return
        caller = _caller()
        if not caller.startswith(LOCAL_WRITERS):
            raise NotReplicated(caller)
        with super().transaction() as cur:
            yield cur

    def checkpoint(self) -> None:
        if SCOPE.mode is None:  # never inside an open event's transaction
            super().checkpoint()

    # ------------------------------------------------------------------ position
    def position(self, stream: str) -> int:
        """The last sequence of ``stream`` applied to this store (0: none)."""
        return int(self.scalar("SELECT seq FROM log_positions WHERE stream = ?", [stream]) or 0)

    def subjects(self) -> dict[str, str]:
        """The msg id of the last event applied on each object's subject."""
        rows = self.arrow("SELECT subject, msg_id FROM log_subjects").to_pylist()
        return {r["subject"]: r["msg_id"] for r in rows}


def _caller() -> str:
    """``module.function`` of the code that asked for the write."""
    frame = sys._getframe(2)
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if not module.startswith(_SKIP):
            return f"{module}.{frame.f_code.co_name}"
        frame = frame.f_back
    return "?"


class ViewHub(Hub):
    """A hub whose publications made while an event is applied wait for its commit (a page
    reading the store after a message must find the rows), and are dropped in a dry run."""

    def publish(self, topic: str, payload) -> None:
        if SCOPE.mode is None:
            super().publish(topic, payload)
        elif SCOPE.mode == "apply":
            SCOPE.published.append((self, topic, payload))
