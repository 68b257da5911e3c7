"""Consistent read-only snapshots of the store, for notebooks and other processes.

DuckDB lets no other process open a file while the console holds it read-write, not even
read-only. So the console process itself writes a snapshot — ``ATTACH`` a new file and
``COPY FROM DATABASE`` into it, one read transaction, hence consistent — periodically and on
demand, under ``<store dir>/snapshots/``. A snapshot appears under its final name only once
complete (written as ``.tmp`` then renamed), so a reader never sees half a file. Notebooks
open the newest one read-only: :func:`open_read_only` does the right thing in each case.
"""
from __future__ import annotations

import logging
import os
import re
import shlex
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import param

from sources.service import Service
from sources.store.store import Store

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DB = ROOT / "var" / "console.duckdb"
_STAMP = re.compile(r"\.(\d{8}T\d{6}\d{6})\.duckdb$")


def default_db() -> Path:
    """The store analysts read by default: ``$CONSOLE_DB`` or ``var/console.duckdb``."""
    return Path(os.environ.get("CONSOLE_DB") or DEFAULT_DB)


def snapshot_dir(db_path: str | Path) -> Path:
    """Where the snapshots of ``db_path`` are written: ``<its folder>/snapshots``."""
    return Path(db_path).resolve().parent / "snapshots"


def list_snapshots(db_path: str | Path, directory: str | Path | None = None) -> list[Path]:
    """The complete snapshots of ``db_path`` (in ``directory``, if given), oldest first."""
    folder = Path(directory) if directory else snapshot_dir(db_path)
    stem = Path(db_path).stem
    if not folder.is_dir():
        return []
    found = [p for p in folder.glob(f"{stem}.*.duckdb") if _STAMP.search(p.name)
             and p.name[: -len(_STAMP.search(p.name).group(0))] == stem]
    return sorted(found, key=lambda p: _STAMP.search(p.name).group(1))


def latest_snapshot(db_path: str | Path) -> Path | None:
    """The newest complete snapshot of ``db_path``, or None."""
    found = list_snapshots(db_path)
    return found[-1] if found else None


def snapshot_time(path: str | Path) -> datetime | None:
    """When a snapshot was taken (UTC), from its name."""
    m = _STAMP.search(Path(path).name)
    if not m:
        return None
    return datetime.strptime(m.group(1), "%Y%m%dT%H%M%S%f").replace(tzinfo=UTC)


#: Tables only administrators read (the audit trail): left out of the snapshots analysts
#: and notebooks read, kept in a private copy (``private_dir``) for ``audit verify``.
PRIVATE_TABLES = ("audit_log", "audit_anchor", "audit_state")


def private_dir(db_path: str | Path) -> Path:
    """Where the private copies (with the audit trail) go: ``snapshots/private``, mode 0700."""
    return snapshot_dir(db_path) / "private"


def write_snapshot(store: Store, directory: str | Path | None = None, *, keep: int = 2,
                   cursor: duckdb.DuckDBPyConnection | None = None,
                   private: bool = False) -> Path:
    """Write a consistent snapshot of ``store`` and return its path (console process).

    Parameters
    ----------
    store : Store
        The console's store (the process that holds the file), or an in-memory store
        (then ``directory`` is needed; the snapshots are named ``memory.<time>.duckdb``).
    directory : path, optional
        Where to write; ``snapshots/`` beside the store by default.
    keep : int
        How many snapshots to keep (older ones are deleted; a reader that has one open
        keeps reading it, as the file lives on until it closes).
    cursor : optional
        The cursor to copy with (the caller may ``interrupt()`` it: the copy stops, the
        partial file is removed and ``duckdb.InterruptException`` is raised).
    private : bool
        Keep the audit trail (:data:`PRIVATE_TABLES`) in the copy; the file and its folder
        are readable by the console's user only. Without it those tables are left out.
    """
    memory = store.path == ":memory:"
    if memory and directory is None:
        raise ValueError("an in-memory store has no folder: give the snapshot a directory")
    folder = Path(directory) if directory else (
        private_dir(store.path) if private else snapshot_dir(store.path))
    folder.mkdir(parents=True, exist_ok=True)
    if private:
        folder.chmod(0o700)
    stem = "memory" if memory else Path(store.path).stem
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    final = folder / f"{stem}.{stamp}.duckdb"
    tmp = folder / f".{stem}.{stamp}.tmp"
    alias = f"__snapshot_{stamp}"
    cur = cursor if cursor is not None else store.cursor()
    try:
        source = cur.execute("SELECT current_database()").fetchone()[0]
        cur.execute(f"ATTACH '{tmp}' AS \"{alias}\"")
        try:
            cur.execute(f'COPY FROM DATABASE "{source}" TO "{alias}"')
            if not private:  # analysts and notebooks never read the audit trail
                for table in PRIVATE_TABLES:
                    cur.execute(f'DROP TABLE IF EXISTS "{alias}".main."{table}"')
        finally:
            cur.execute(f'DETACH "{alias}"')
    except BaseException:
        tmp.unlink(missing_ok=True)
        tmp.with_name(tmp.name + ".wal").unlink(missing_ok=True)
        raise
    finally:
        if cursor is None:
            cur.close()
    tmp.with_name(tmp.name + ".wal").unlink(missing_ok=True)
    if private:
        tmp.chmod(0o600)
    os.replace(tmp, final)
    for old in list_snapshots(folder / f"{stem}.duckdb", folder)[:-keep]:
        old.unlink(missing_ok=True)
    return final


BUSY_FACTOR = 20


class SnapshotWriter(Service):
    """Writes a snapshot of the console's store at start, every ``interval_s`` and on demand.

    A console service: stopping it interrupts a copy in progress (with a store grown large,
    copying it would hold up the console's stop for many seconds) and removes the partial file.
    """

    store = param.ClassSelector(class_=Store, doc="The console's read-write store.")
    interval_s = param.Number(default=300.0, bounds=(1, None),
                              doc="Seconds between periodic snapshots.")
    keep = param.Integer(default=2, bounds=(1, None), doc="Snapshots kept on disk.")
    stop_timeout_s = param.Number(default=60.0, bounds=(0, None),
                                  doc="Seconds a stop waits for an interrupted copy to end.")
    last_path = param.String(default=None, allow_None=True, doc="The newest snapshot written.")

    def __init__(self, **params):
        super().__init__(**params)
        self._lock = threading.Lock()
        self._cursor: duckdb.DuckDBPyConnection | None = None  # of the copy in progress

    def write(self) -> Path:
        """Write a snapshot now (one at a time) and return its path."""
        with self._lock:
            if self.stopping:
                raise RuntimeError("the snapshot writer is stopped")
            self._cursor = cur = self.store.cursor()
            try:
                path = write_snapshot(self.store, keep=self.keep, cursor=cur)
            finally:
                self._cursor = None
                cur.close()
        self.last_path = str(path)
        return path

    def run_once(self) -> None:
        started = time.perf_counter()
        path = self.write()
        log.info("snapshot %s in %.2f s", path.name, time.perf_counter() - started)
        if self.store.scalar("SELECT count(*) FROM information_schema.tables "
                             "WHERE table_name = 'audit_log'"):
            with self._lock:  # the administrators' copy, with the audit trail
                if not self.stopping:
                    self._cursor = cur = self.store.cursor()
                    try:
                        write_snapshot(self.store, keep=1, cursor=cur, private=True)
                    finally:
                        self._cursor = None
                        cur.close()

    def next_wait(self) -> float:
        """Seconds until the next periodic snapshot: ``interval_s``, but never less than
        ``BUSY_FACTOR`` times the last one took, so that a store grown large with readings
        never spends more than 1/``BUSY_FACTOR`` of the time copying itself."""
        return max(self.interval_s, BUSY_FACTOR * (self.last_run_s or 0.0))

    def interrupt(self) -> None:
        cur = self._cursor
        if cur is not None:
            try:
                cur.interrupt()
            except duckdb.Error:  # finished meanwhile
                pass


def missing_store_message(path: str | Path) -> str:
    """What to do when a notebook asks for a store that does not exist yet."""
    db = shlex.quote(str(path))  # the commands are pasted into a shell
    return (f"no store at {path} (and no snapshot of it). Build the demo one first, from "
            f"the repository's folder: `python -m data.generate --scale tiny --db {db}` "
            f"(seconds; `--scale demo` for the whole province), or start the console, which "
            f"builds it on its first start: `python serve.py --db {db}`. Set CONSOLE_DB to "
            f"read a store elsewhere.")


def open_read_only(path: str | Path | None = None) -> Store:
    """Open the store at ``path`` for reading, from any process, even while the console runs.

    Tries, in order: the file itself read-only (the console is not running); the newest
    consistent snapshot the console wrote; a raw copy of the file (:meth:`Store.snapshot`;
    may miss the last batch when no snapshot exists yet).

    Raises
    ------
    FileNotFoundError
        When there is neither a store at ``path`` nor a snapshot of it (a fresh clone); the
        message says how to build one.
    """
    path = Path(path) if path is not None else default_db()
    if not path.exists() and latest_snapshot(path) is None:
        raise FileNotFoundError(missing_store_message(path))
    try:
        return Store(path, read_only=True)
    except (duckdb.IOException, duckdb.ConnectionException):
        pass  # held by another process (IO: lock), or read-write by this one (Connection)
    snap = latest_snapshot(path)
    if snap is not None:
        try:
            return Store(snap, read_only=True)
        except duckdb.Error as exc:  # being deleted as we open it: fall through
            log.warning("could not open snapshot %s: %r", snap, exc)
    return Store.snapshot(path)


def notebook_source(cls=None, path: str | Path | None = None, **params):
    """A source for a notebook, the same code in Jupyter and when served by the console.

    Served by the console (a notebook dashboard runs in the console's process, see
    :meth:`sources.console.Console.serving`), it uses the console's live store and hub; in
    Jupyter it opens ``path`` (default :func:`default_db`) with :func:`open_read_only`.

    Parameters
    ----------
    cls : type of Source, optional
        The source class (default :class:`sources.base.Source`).
    path : path, optional
        The store file (ignored when served by the console).
    """
    from sources.base import Source
    from sources.console import serving_console

    cls = cls or Source
    console = serving_console()
    if console is not None and path is None:
        return cls(store=console.store, hub=console.hub, **params)
    return cls(store=open_read_only(path), **params)
