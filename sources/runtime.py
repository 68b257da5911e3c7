"""The server-wide services of one console process: store, hub, feed ingests, shared caches.

``serve.py`` builds one :class:`Runtime` at start and installs it; dashboards and views
find it with :meth:`Runtime.current`. Nothing here starts at import.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar

import param

from sources.hub import Hub
from sources.store.store import Store


class Runtime(param.Parameterized):
    """Shared, process-wide services, started once."""

    store = param.ClassSelector(class_=Store, doc="The one read-write store of the process.")
    hub = param.ClassSelector(class_=Hub, doc="The in-process pub/sub hub.")
    ingests = param.List(default=[], doc="Feed ingests (sources.ingest.feed.FeedIngest), one per URL.")
    lang = param.Selector(default="zh", objects=["zh", "en"], doc="Default interface language.")
    started_at = param.Number(default=None, allow_None=True, doc="Epoch seconds of start.")
    server = param.Parameter(default=None, doc="The Bokeh server serving the console "
                             "(set by serve.py; /health counts its open pages).")

    _current: ClassVar[Runtime | None] = None

    def __init__(self, **params):
        params.setdefault("hub", Hub())
        params.setdefault("started_at", time.time())
        super().__init__(**params)
        self._cache: dict[str, Any] = {}
        self._cache_lock = threading.RLock()  # shared() factories may call shared()
        self._stoppers: list[Callable[[], None]] = []

    # ------------------------------------------------------------------ current
    @classmethod
    def current(cls) -> Runtime:
        """The installed runtime; raises with a hint when none is (e.g. in a bare notebook)."""
        if cls._current is None:
            raise RuntimeError(
                "no console runtime is installed: start the console with `python serve.py`, "
                "or build a source on a store yourself, e.g. "
                "`RiskSource.from_path('var/console.duckdb')`"
            )
        return cls._current

    def install(self) -> Runtime:
        type(self)._current = self
        return self

    # ------------------------------------------------------------------ shared caches
    def shared(self, name: str, factory: Callable[[], Any]) -> Any:
        """A process-wide object built once on first use (e.g. the in-memory point layer)."""
        obj = self._cache.get(name)
        if obj is not None:
            return obj
        with self._cache_lock:
            if name not in self._cache:
                self._cache[name] = factory()
            return self._cache[name]

    # ------------------------------------------------------------------ lifecycle
    def on_stop(self, fn: Callable[[], None], *, last: bool = False) -> None:
        """Register a function to run at shutdown (newest first; ``last=True``: after all)."""
        if last:
            self._stoppers.insert(0, fn)
        else:
            self._stoppers.append(fn)

    def stop(self) -> None:
        """Stop every service (ingests flush their pending batch) and close the store."""
        while self._stoppers:
            fn = self._stoppers.pop()
            try:
                fn()
            except Exception as exc:  # keep stopping the rest
                self.param.warning(f"error while stopping: {exc!r}")
        if type(self)._current is self:
            type(self)._current = None
        self.store.close()
