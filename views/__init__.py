"""Views: param-based ``pn.viewable.Viewer`` classes, the same in the apps and in Jupyter.

Build one on a source and display it::

    from sources.risk.risk import RiskSource
    from views import notebook_extension
    from views.risk_map import RiskPointMap
    notebook_extension()  # every resource inline: renders on an air-gapped network
    RiskPointMap(source=RiskSource.from_path("var/console.duckdb"))
"""
from __future__ import annotations

from .base import View
from .i18n import t
from .notebook import notebook_extension

__all__ = ["View", "notebook_extension", "t"]
