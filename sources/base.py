"""The contract of every query source: how a view asks for data, and how caches go stale.

In the spirit of Lumen's ``Source``: a source names its tables (:meth:`Source.get_tables`),
describes them (:meth:`Source.get_schema`) and answers ``get(table, **query)``. A table is a
method marked with :func:`query`; the base caches its results — per arguments, shared by
every page that uses the source — and drops them when they go stale:

* ``query(topics=("alarm",))``: when the hub publishes on one of those topics (the writer
  publishes after its commit, and the source drains its own subscription before every read,
  so a page that saw an event never reads a result older than it);
* ``query(max_age=10)``: after that many seconds (time windows move on);
* ``query()``: never (registries do not change while the console runs).

Sources are found by their ``source_type`` (:func:`source_types`), as views by their
``view_type``: a spec names them. Sources never import Panel.
"""
from __future__ import annotations

import functools
import importlib
import pkgutil
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
import param

from sources.hub import Hub
from sources.store.store import Store


def query(*, topics: tuple[str, ...] | frozenset[str] = (),
          max_age: float | str | None = None, maxsize: int = 64, table: bool = True,
          name: str | None = None):
    """Mark a source method as a cached table (see the module docstring).

    Parameters
    ----------
    topics : hub topics whose events make the cached results stale.
    max_age : seconds after which a result is read again (None: no age limit), or the name
        of the source's parameter that holds them.
    maxsize : results kept per method (one per distinct arguments), least recent dropped.
    table : list it in :meth:`Source.get_tables` (False: a cached helper, not a table).
    name : the cache's name for it (default: the method's), as :meth:`Source.read_at` and
        ``reads`` know it.
    """
    def wrap(fn: Callable) -> Callable:
        spec = _QuerySpec(name or fn.__name__, frozenset(topics), max_age, maxsize, table)

        @functools.wraps(fn)
        def cached(self: Source, *args, **kwargs):
            key = (spec.name, args, tuple(sorted(kwargs.items()))) if args or kwargs \
                else (spec.name,)
            return self._cached(spec, key, lambda: fn(self, *args, **kwargs))

        cached.__query__ = spec
        cached.uncached = fn
        return cached
    return wrap


_SPECS: dict[type, dict] = {}  # class -> its tables (read once per class)


class _QuerySpec:
    __slots__ = ("max_age", "maxsize", "name", "table", "topics")

    def __init__(self, name, topics, max_age, maxsize, table):
        self.name, self.topics, self.max_age = name, topics, max_age
        self.maxsize, self.table = maxsize, table


class Source(param.Parameterized):
    """A query source over the store: registries, history, live state.

    Concrete sources subclass this, keep their SQL, mark their tables with :func:`query`
    and return DataFrames (or plain data for layers); they never import Panel.

    Build one in a notebook with ``RiskSource.from_path("console.duckdb")``: when the console
    runs and holds the file, this opens the newest snapshot it wrote
    (:mod:`sources.store.snapshot`).
    """

    source_type: ClassVar[str | None] = "store"

    store = param.ClassSelector(class_=Store, doc="The DuckDB store the queries run on.")
    hub = param.ClassSelector(
        class_=Hub, allow_None=True, default=None,
        doc="The pub/sub hub for live updates and cache invalidation; None on a snapshot.")

    def __init__(self, **params):
        super().__init__(**params)
        self._cache: dict[str, OrderedDict] = {}  # method -> key -> (read at, value)
        self._cache_lock = threading.RLock()  # a table may read another table
        self._events = None  # hub subscription to the topics of this source's tables
        self.reads: dict[str, int] = {}  # store reads per table (what the caches save)

    @classmethod
    def from_path(cls, path: str | Path, **params) -> Source:
        """Open a source on a store file, read-only, or on a snapshot if the file is held."""
        from sources.store.snapshot import open_read_only

        return cls(store=open_read_only(path), **params)

    # ------------------------------------------------------------------ the contract
    @classmethod
    def _specs(cls) -> dict[str, _QuerySpec]:
        found = _SPECS.get(cls)
        if found is not None:
            return found
        found = {}
        for klass in reversed(cls.__mro__):
            for name, member in vars(klass).items():
                spec = getattr(member, "__query__", None)
                if spec is not None:
                    found[name] = spec
        _SPECS[cls] = found
        return found

    def get_tables(self) -> list[str]:
        """Names of the tables this source answers with :meth:`get`."""
        return sorted(attr for attr, spec in self._specs().items() if spec.table)

    def get(self, table: str, **query) -> Any:
        """The table ``table`` for the given query arguments (cached per the table's rules)."""
        if table not in self.get_tables():
            raise KeyError(f"{type(self).__name__} has no table {table!r}; "
                           f"tables: {', '.join(self.get_tables())}")
        return getattr(self, table)(**query)

    def get_schema(self, table: str, **query) -> dict[str, str]:
        """Column name -> dtype of a DataFrame table (read with its default arguments)."""
        value = self.get(table, **query)
        if not isinstance(value, pd.DataFrame):
            raise TypeError(f"{table!r} is not a DataFrame table")
        return {str(c): str(t) for c, t in value.dtypes.items()}

    def invalidate(self, *tables: str) -> None:
        """Forget cached results: of the given tables, or all."""
        with self._cache_lock:
            for name in tables or list(self._cache):
                self._cache.pop(name, None)

    # ------------------------------------------------------------------ the one cache
    def _cached(self, spec: _QuerySpec, key: tuple, compute: Callable[[], Any]) -> Any:
        with self._cache_lock:
            self._drain_events()
            entries = self._cache.setdefault(spec.name, OrderedDict())
            hit = entries.get(key)
            now = time.monotonic()
            age = getattr(self, spec.max_age) if isinstance(spec.max_age, str) else spec.max_age
            if hit is not None and (age is None or now - hit[0] < age):
                entries.move_to_end(key)
                return _fresh(hit[1])
            value = compute()
            self.reads[spec.name] = self.reads.get(spec.name, 0) + 1
            entries[key] = (now, value)
            while len(entries) > spec.maxsize:
                entries.popitem(last=False)
            return _fresh(value)

    def _drain_events(self) -> None:
        """Drop the results that the hub's events since the last read made stale."""
        if self.hub is None:
            return
        if self._events is None:
            topics = frozenset().union(*(s.topics for s in self._specs().values()))
            if not topics:
                return
            # opened on first use; nothing cached before it depends on earlier events
            self._events = self.hub.subscribe(topics, maxsize=256)
            return
        messages, missed = self._events.drain()
        if not messages and not missed:
            return
        seen = {m.topic for m in messages}
        for spec in self._specs().values():
            if spec.topics and (missed or spec.topics & seen):
                self._cache.pop(spec.name, None)

    def read_at(self, table: str) -> float | None:
        """When ``table`` was last read from the store (``time.monotonic()``), or None."""
        with self._cache_lock:
            self._drain_events()
            entries = self._cache.get(table)
            return max((t for t, _ in entries.values()), default=None) if entries else None


def _fresh(value: Any) -> Any:
    # a shallow copy: callers may add columns without touching the cache (copy-on-write)
    return value.copy(deep=False) if isinstance(value, pd.DataFrame) else value


def source_types() -> dict[str, type[Source]]:
    """Every concrete source class by its ``source_type`` (imports ``sources``' packages)."""
    import sources

    for info in pkgutil.walk_packages(sources.__path__, "sources."):
        if not info.name.rsplit(".", 1)[-1].startswith("_"):
            importlib.import_module(info.name)
    found = {Source.source_type: Source}
    for cls in param.concrete_descendents(Source).values():
        if cls.source_type:
            found[cls.source_type] = cls
    return found
