"""The catalogue of views: every concrete view by its ``view_type``, built from a spec.

``concrete_views()`` imports each module of the package and returns the concrete
:class:`~views.base.View` subclasses (as Lumen finds its types, with
``param.concrete_descendents``); :func:`view_types` names them by ``view_type`` and
:func:`build` builds one from a spec that names its source by ``source_type``
(:func:`sources.base.source_types`)::

    build({"type": "risk_map", "source": {"type": "risk"}}, store=store)

``build_view(cls, store)`` builds a class on the source class its ``source`` parameter asks
for (notebooks, the sweep test).
"""
from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping
from typing import Any

import param

from sources.base import Source, source_types
from sources.store.store import Store

from .base import View

#: Modules of the package that hold no view.
NOT_VIEWS = {"base", "catalog", "i18n", "urlargs", "panes"}


def concrete_views() -> list[type[View]]:
    """The concrete views of the package, sorted by module and name."""
    import views

    for info in pkgutil.iter_modules(views.__path__):
        if info.name not in NOT_VIEWS and not info.name.startswith("_"):
            importlib.import_module(f"views.{info.name}")
    found = [cls for cls in param.concrete_descendents(View).values()
             if cls.__module__.startswith("views.") and cls is not View]
    return sorted(found, key=lambda cls: (cls.__module__, cls.__name__))


def view_types() -> dict[str, type[View]]:
    """Every concrete view by its ``view_type``."""
    return {cls.view_type: cls for cls in concrete_views() if cls.view_type}


def source_class(cls: type[View]) -> type[Source]:
    """The source class a view asks for (its ``source`` parameter's ``class_``)."""
    wanted = cls.param["source"].class_
    if isinstance(wanted, tuple):
        wanted = wanted[0]
    return wanted if isinstance(wanted, type) and issubclass(wanted, Source) else Source


def build_view(cls: type[View], store: Store, *, hub=None, lang: str = "zh", **params) -> View:
    """Build ``cls`` on ``store`` (and ``hub``, for live updates; None on a snapshot)."""
    return cls(source=source_class(cls)(store=store, hub=hub), lang=lang, **params)


def build(spec: Mapping[str, Any], *, store: Store, hub=None) -> View:
    """Build a view from a spec: ``{"type": view_type, "source": {"type": source_type, ...},
    ...view parameters}``; the source defaults to the one the view asks for.

    Raises ``KeyError`` naming the known types when a type is unknown.
    """
    spec = dict(spec)
    views = view_types()
    kind = spec.pop("type", None)
    if kind not in views:
        raise KeyError(f"unknown view type {kind!r}; known: {', '.join(sorted(views))}")
    cls = views[kind]
    source_spec = dict(spec.pop("source", None) or {})
    source_kind = source_spec.pop("type", None)
    if source_kind is None:
        source_cls = source_class(cls)
    else:
        sources = source_types()
        if source_kind not in sources:
            raise KeyError(f"unknown source type {source_kind!r}; "
                           f"known: {', '.join(sorted(sources))}")
        source_cls = sources[source_kind]
    return cls(source=source_cls(store=store, hub=hub, **source_spec), **spec)
