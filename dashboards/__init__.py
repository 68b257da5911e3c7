"""Dashboards: the Panel apps composed from views. Each is a ``Dashboard`` subclass in its own
module; :func:`routes` finds them with ``param.concrete_descendents`` and serves each at its
route, with the analysts' notebook dashboards beside them. A page lays out views over the
console's sources; it starts nothing (the console owns every service).
"""
from __future__ import annotations

import importlib
import pkgutil

from .base import Dashboard

__all__ = ["Dashboard", "discover", "routes"]


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


def routes(console) -> tuple[dict, dict]:
    """``({route: app}, {route: (title_key, title)})`` of every page served for ``console``."""
    from views import bokeh_fast
    from views.choices import use_text_labels

    from .notebooks_served import notebook_apps  # dashboards/notebooks/*.ipynb

    use_text_labels()  # multi-choice labels as text, no Choices.js warning on any page
    bokeh_fast.install()  # what depends only on a class or a property: once, not per read
    apps, titles = {}, {}
    for cls in discover():
        key = "/" if cls.route == "" else cls.route
        apps[key] = cls.app(console)
        titles[key] = (cls.title_key, None)
    for key, (app, title) in notebook_apps(console).items():
        apps[key], titles[key] = app, (None, title)
    return apps, titles
