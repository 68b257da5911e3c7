"""Every concrete view of ``views/``, and how to build one on a store (notebooks, sweep test).

``concrete_views()`` imports each module of the package and returns the concrete
:class:`~views.base.View` subclasses (as Lumen finds its types, with
``param.concrete_descendents``); ``build_view(cls, store)`` builds one on the source class
its ``source`` parameter asks for.
"""
from __future__ import annotations

import importlib
import pkgutil
import sys

import param

from sources.base import Source
from sources.store.store import Store

from .base import View

#: Modules of the package that hold no view.
NOT_VIEWS = {"base", "catalog", "i18n"}


def concrete_views() -> list[type[View]]:
    """The concrete views of the package, sorted by module and name."""
    import views

    for info in pkgutil.iter_modules(views.__path__):
        if info.name not in NOT_VIEWS and not info.name.startswith("_"):
            importlib.import_module(f"views.{info.name}")
    found = [cls for cls in param.concrete_descendents(View).values()
             if cls.__module__.startswith("views.") and cls is not View]
    return sorted(found, key=lambda cls: (cls.__module__, cls.__name__))


def source_class(cls: type[View]) -> type[Source]:
    """The source class a view asks for (its ``source`` parameter's ``class_``)."""
    wanted = cls.param["source"].class_
    if isinstance(wanted, tuple):
        wanted = wanted[0]
    if isinstance(wanted, type) and issubclass(wanted, Source) and wanted is not Source:
        return wanted
    # a view that keeps the base type but checks at run time: the one source its module uses
    module = sys.modules[cls.__module__]
    found = sorted({v for v in vars(module).values() if isinstance(v, type)
                    and issubclass(v, Source) and v is not Source}, key=lambda v: v.__name__)
    return found[0] if len(found) == 1 else Source


def _all_sources() -> list[type[Source]]:
    import sources

    for info in pkgutil.iter_modules(sources.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"sources.{info.name}")
    return sorted(param.concrete_descendents(Source).values(), key=lambda c: c.__name__)


def build_view(cls: type[View], store: Store, *, hub=None, lang: str = "zh", **params) -> View:
    """Build ``cls`` on ``store`` (and ``hub``, for live updates; None on a snapshot).

    A view whose ``source`` parameter names only the base class and whose module imports no
    source (duck typing) is tried on each source type until one builds; declare
    ``source = param.ClassSelector(class_=YourSource)`` to spare that.
    """
    wanted = source_class(cls)
    if wanted is not Source:
        return cls(source=wanted(store=store, hub=hub), lang=lang, **params)
    first_error: Exception | None = None
    for candidate in [Source, *_all_sources()]:
        try:
            return cls(source=candidate(store=store, hub=hub), lang=lang, **params)
        except (AttributeError, TypeError, NotImplementedError) as exc:
            first_error = first_error or exc
    raise first_error or TypeError(f"no source builds {cls.__name__}")
