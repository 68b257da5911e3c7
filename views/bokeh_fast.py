"""Bokeh's answers that depend only on a class or a property, computed once instead of per read.

Creating a page is what a burst of walls costs (0.5–0.8 CPU s a page before this module,
measured with ``bench/capacity.py``; ``bench/page_cost.py`` compares with and without it), and
a large part of it was Bokeh working out the same answers again.
Every read of a property that was never set recomputes its default (the class's overridden
defaults walked up the MRO, the value copied and validated), and serialising a model reads
*every* property, set or not, before it drops the defaults: a page of ~240 models does that
~100,000 times, for answers that depend only on the class and the property's name. Sampled on
the serving process during 50 walls opened at once (py-spy), property defaults were 31 % of
its CPU.

:func:`install` keeps, per process:

- **stable defaults per (class, name)** — only where Bokeh's own test says the default is
  stable (``has_unstable_default``: not a function, not a container, not an
  ``InstanceDefault``; unstable ones get a value per instance as before), only where no theme
  overrides that property on that instance, and only immutable values (None, strings,
  numbers, booleans, tuples of them): a stable default that prepares into a list (a dash
  pattern) or a ``Field`` is made afresh for every read, as Bokeh does, so no instance can
  change another's;
- whether a (class, name) default is unstable, and each class's overridden defaults (Bokeh
  sets both when it creates the class);
- ``themed_values`` read from the instance's dict (Bokeh asks ``getattr`` with a default, which
  for the usual unthemed model raises and catches two ``AttributeError`` per read);
- the text of a parameterised property type (``Dict(String, Any)``), which ``Dict.validate``
  formats for its error message on every validation, error or not;
- a data spec's "fixed value" type (``value_type.replace(String, Nothing())``), which Bokeh
  builds anew for every data spec it serialises;
- the settings Bokeh reads for every model it makes or sends (simple ids, whether defaults
  are serialised, error diagnostics): their value at install, instead of a search of the
  environment per call (5 % of a burst).

What a page serialises is unchanged: ``tests/views/test_bokeh_fast.py`` compares each page's
document built with and without these. If Bokeh's internals are not what this expects,
nothing is installed and the pages run at Bokeh's own speed.
"""
from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

#: Bokeh's own methods while ours are installed (empty when not installed).
_originals: dict[tuple[type, str], Any] = {}

#: Bokeh's settings read for every model made or sent (``make_id``, ``to_serializable``,
#: callbacks): each call searches the environment and the config files again.
PER_MODEL_SETTINGS = ("simple_ids", "serialize_include_defaults", "perform_error_diagnostics")
#: The settings :func:`install` set (and :func:`uninstall` unsets).
_pinned: list = []

_ATOMS = (type(None), str, bool, int, float, bytes)


def _immutable(value: Any) -> bool:
    """Whether one value may be handed to every instance (nothing can change it)."""
    if isinstance(value, tuple):
        return all(_immutable(v) for v in value)
    return type(value) in _ATOMS


def installed() -> bool:
    return bool(_originals)


def install() -> bool:
    """Install the caches (once per process); whether they are installed."""
    if _originals:
        return True
    try:
        from bokeh.core.has_props import HasProps
        from bokeh.core.property.bases import ParameterizedProperty
        from bokeh.core.property.dataspec import DataSpec
        from bokeh.core.property.descriptors import PropertyDescriptor
        from bokeh.core.property.nothing import Nothing
        from bokeh.core.property.primitive import String
        from bokeh.core.property.vectorization import Field, Value
        from bokeh.settings import _Unset as _UNSET
        from bokeh.settings import settings as bokeh_settings

        targets = {(PropertyDescriptor, "instance_default"), (PropertyDescriptor,
                   "has_unstable_default"), (HasProps, "_overridden_defaults"),
                   (HasProps, "themed_values"), (ParameterizedProperty, "__str__"),
                   (DataSpec, "to_serializable")}
        originals = {(cls, name): cls.__dict__[name] for cls, name in targets}
    except (ImportError, KeyError) as exc:  # a Bokeh we do not know: its own speed
        log.warning("Bokeh's per-class answers are not cached (%s)", exc)
        return False

    instance_default = PropertyDescriptor.instance_default
    has_unstable_default = PropertyDescriptor.has_unstable_default
    overridden = HasProps.__dict__["_overridden_defaults"].__func__
    type_text = ParameterizedProperty.__str__
    defaults: dict[tuple[type, str], Any] = {}
    unstable: dict[tuple[type, str], bool] = {}
    overrides: dict[type, dict[str, Any]] = {}

    def cached_unstable(self, obj):
        key = (obj.__class__, self.name)
        try:
            return unstable[key]
        except KeyError:
            value = unstable[key] = has_unstable_default(self, obj)
            return value

    def cached_default(self, obj):
        themed = obj.__dict__.get("__themed_values__")
        if (themed is None or self.name not in themed) and not cached_unstable(self, obj):
            key = (obj.__class__, self.name)
            try:
                return defaults[key]
            except KeyError:
                value = instance_default(self, obj)
                if _immutable(value):
                    defaults[key] = value
                return value
        return instance_default(self, obj)

    def cached_overridden(cls):
        try:
            return overrides[cls]
        except KeyError:
            value = overrides[cls] = overridden(cls)
            return value

    def themed_values(self):
        return self.__dict__.get("__themed_values__")

    def cached_text(self):
        try:
            return self.__dict__["_console_text"]
        except KeyError:
            text = self.__dict__["_console_text"] = type_text(self)
            return text

    def fixed_value_type(spec):
        try:
            return spec.__dict__["_console_fixed"]
        except KeyError:
            kind = spec.__dict__["_console_fixed"] = spec.value_type.replace(String, Nothing())
            return kind

    def to_serializable(self, obj, name, val):
        try:
            fixed_value_type(self).validate(val, False)
            return Value(val)
        except ValueError:
            pass
        if isinstance(val, str):
            return Field(val)
        return val

    # settings Bokeh looks up per model (its id, its serialisation, each callback): the
    # value they have now, set once, instead of the environment searched on every call
    for name in PER_MODEL_SETTINGS:
        setting = getattr(bokeh_settings, name, None)
        if getattr(setting, "_user_value", None) is _UNSET:  # a value already set stays
            _pinned.append(setting)
            setting.set_value(setting())
    PropertyDescriptor.instance_default = cached_default
    PropertyDescriptor.has_unstable_default = cached_unstable
    HasProps._overridden_defaults = classmethod(cached_overridden)
    HasProps.themed_values = themed_values
    ParameterizedProperty.__str__ = cached_text
    DataSpec.to_serializable = to_serializable
    _originals.update(originals)
    return True


def uninstall() -> None:
    """Put Bokeh's own methods and settings back (the tests compare pages with and
    without)."""
    for (cls, name), method in _originals.items():
        setattr(cls, name, method)
    _originals.clear()
    while _pinned:
        _pinned.pop().unset_value()
