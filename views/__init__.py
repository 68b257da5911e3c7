"""Views: param-based ``pn.viewable.Viewer`` classes, the same in the apps and in Jupyter.

Build one on a source and display it::

    import panel as pn
    from sources.risk.risk import RiskSource
    from views.risk_map import RiskPointMap
    pn.extension()
    RiskPointMap(source=RiskSource.from_path("var/console.duckdb"))
"""
from __future__ import annotations

from .base import View
from .i18n import t

__all__ = ["View", "t"]
