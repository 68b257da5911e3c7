"""Sources: the store (DuckDB), the hub (in-process pub/sub), feed ingest and query sources.

Nothing here imports Panel, ``views`` or ``dashboards``.
"""
from __future__ import annotations

from sources.base import Source
from sources.hub import Hub, Subscription
from sources.store.store import Store

__all__ = ["Hub", "Source", "Store", "Subscription"]
