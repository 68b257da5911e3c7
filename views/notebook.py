"""Views in Jupyter on an air-gapped network: one call loads everything from the install.

``pn.extension()`` in a notebook tells the browser to fetch BokehJS, Panel and each
extension's JavaScript (Tabulator, ...) from public CDNs; on the command centre's isolated
network every view then stays blank. :func:`notebook_extension` sends them inline, in the
notebook's output, from the Python packages installed here — no request leaves the machine,
and a notebook saved with its outputs and exported to HTML still renders offline::

    from views import notebook_extension
    notebook_extension('tabulator')
"""
from __future__ import annotations

import panel as pn


def _served() -> bool:
    """True inside a page the console serves (a notebook dashboard): the console's server
    sends every resource itself, so there is nothing to inline."""
    doc = pn.state.curdoc
    return doc is not None and doc.session_context is not None


def notebook_extension(*extensions: str, **params) -> None:
    """Load Panel and HoloViews' Bokeh renderer for a notebook with every resource inline.

    Use it instead of ``pn.extension(...)`` and ``hv.extension('bokeh')`` (calling either of
    those after it asks the browser for the CDN again).

    Parameters
    ----------
    *extensions : str
        Panel extensions the notebook uses, as for ``pn.extension`` (``'tabulator'``, ...).
    **params
        Other ``pn.extension`` options (``sizing_mode=``, ``design=``, ...).
    """
    if _served():
        pn.extension(*extensions, **params)
        return
    import holoviews as hv  # here, not at import: ``import views`` stays light for the apps

    # HoloViews first: its display hooks make a bare ``hv.Curve`` render, and Panel then
    # sends only the extensions' code instead of a second copy of BokehJS (≈ 3 MB).
    hv.extension("bokeh", inline=True, logo=False)
    pn.extension(*extensions, inline=True, **params)
