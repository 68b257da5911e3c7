"""Dashboards: the Panel apps composed from views. Each is a ``Dashboard`` subclass in its own
module; ``serve.py`` finds them with ``param.concrete_descendents`` and serves each at its route.
"""
from __future__ import annotations

import importlib
import pkgutil

from .base import Dashboard

__all__ = ["Dashboard", "discover"]


def discover() -> list[type[Dashboard]]:
    """Import every module of this package and return the concrete dashboards, in menu order."""
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")
    import param

    found = [
        cls for cls in param.concrete_descendents(Dashboard).values()
        if getattr(cls, "route", None) is not None
    ]
    return sorted(found, key=lambda cls: (cls.order, cls.route))
