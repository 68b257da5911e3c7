"""The base class of every query source."""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import param

from sources.hub import Hub
from sources.store.store import Store


class Source(param.Parameterized):
    """A query source over the store: registries, history, live state.

    Concrete sources subclass this, keep their SQL, and return DataFrames or Arrow tables;
    they never import Panel. ``source_type`` names the type in specs.

    Build one in a notebook with ``RiskSource.from_path("console.duckdb")``: when the console
    runs and holds the file, this opens the newest snapshot the console wrote (see :mod:`sources.store.snapshot`).
    """

    source_type: ClassVar[str | None] = None

    store = param.ClassSelector(class_=Store, doc="The DuckDB store the queries run on.")
    hub = param.ClassSelector(
        class_=Hub, allow_None=True, default=None,
        doc="The pub/sub hub for live updates; None in a notebook on a snapshot.",
    )

    @classmethod
    def from_path(cls, path: str | Path, **params) -> Source:
        """Open a source on a store file, read-only, or on a snapshot if the file is held."""
        from sources.store.snapshot import (
            open_read_only,  # the newest consistent snapshot when held
        )

        return cls(store=open_read_only(path), **params)
